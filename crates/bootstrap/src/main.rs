//! `cargo botarmy ARGS…` (an alias in `.cargo/config.toml`): the first command a newcomer
//! runs. It checks the machine for what building BotArmy and running a lifecycle need, from
//! the one list in [`prerequisites::ALL`]; installs the missing Debian packages when it runs
//! as root (or may use `sudo` without a password); otherwise stops at once with one message
//! that names each missing package and the command that installs it. Then it builds and
//! runs the release `botarmy ARGS…` in its place.
//!
//! `.ci/run` uses the same list: `cargo run -p botarmy-bootstrap -- --prerequisites
//! build,run,test` checks and installs, and runs nothing else.

mod prerequisites;

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use prerequisites::{Host, Plan, Purpose};

const USAGE: &str = "usage: cargo botarmy [BOTARMY ARGS...]
       cargo run -p botarmy-bootstrap -- --prerequisites build,run,test";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (purposes, forward) = match args.first().map(String::as_str) {
        Some("--prerequisites") => {
            let Some(list) = args.get(1) else {
                eprintln!(
                    "botarmy-bootstrap: --prerequisites needs a list such as build,run,test\n{USAGE}"
                );
                return ExitCode::from(2);
            };
            let mut purposes = Vec::new();
            for part in list.split(',') {
                match Purpose::parse(part.trim()) {
                    Some(p) => purposes.push(p),
                    None => {
                        eprintln!(
                            "botarmy-bootstrap: --prerequisites: `{part}` is not one of build, run, test\n{USAGE}"
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            (purposes, false)
        }
        _ => (vec![Purpose::Build, Purpose::Run], true),
    };
    if let Err(code) = ensure(&purposes) {
        return code;
    }
    if !forward {
        return ExitCode::SUCCESS;
    }
    run_release(&args)
}

/// Checks, and installs what is missing where this process may.
fn ensure(purposes: &[Purpose]) -> Result<(), ExitCode> {
    let host = Host::from_env();
    let missing = prerequisites::missing(&host, purposes);
    match prerequisites::plan(&host, &missing) {
        Plan::Ready => Ok(()),
        Plan::Stop(refusal) => {
            eprintln!("{refusal}");
            Err(ExitCode::FAILURE)
        }
        Plan::Install { packages, sudo } => {
            if let Err(e) = prerequisites::install(&packages, sudo) {
                eprintln!("{e}");
                return Err(ExitCode::FAILURE);
            }
            let still: Vec<&str> = prerequisites::missing(&host, purposes)
                .iter()
                .map(|p| p.package)
                .collect();
            if still.is_empty() {
                Ok(())
            } else {
                eprintln!(
                    "botarmy: installed, yet still not found: {}; install them by hand and run \
                     the same command again",
                    still.join(" ")
                );
                Err(ExitCode::FAILURE)
            }
        }
    }
}

/// Replaces this process with `cargo run --release -p botarmy-cli -- ARGS`, so that Ctrl-C,
/// the exit status and the terminal go to `botarmy` itself.
fn run_release(args: &[String]) -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["run", "--release", "--package", "botarmy-cli", "--"])
        .args(args);
    // `cargo run` described this package to it; none of that is about the build it starts.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let err = cmd.exec();
    eprintln!(
        "botarmy: cannot start `{} run --release`: {err}",
        cargo.to_string_lossy()
    );
    ExitCode::FAILURE
}
