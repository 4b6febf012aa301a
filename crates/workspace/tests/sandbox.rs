//! The `bash` tool's runner, with bubblewrap (installed by `.ci/run`): escapes fail, and the
//! host's toolchains work inside without showing the rest of the home folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use botarmy_workspace::{HostEnv, Isolation, Sandbox, Toolchains};

struct Fixture {
    _dir: tempfile::TempDir,
    worktrees: std::path::PathBuf,
    root: std::path::PathBuf,
    other: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let worktrees = dir.path().join("worktrees");
    let root = worktrees.join("run-a");
    let other = worktrees.join("run-b");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.txt"), "other run's secret").unwrap();
    Fixture {
        _dir: dir,
        worktrees,
        root,
        other,
    }
}

fn home() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("HOME").unwrap())
}

#[tokio::test]
async fn commands_run_in_the_worktree_and_every_escape_fails() {
    let f = fixture();
    let toolchains = Toolchains::from_env();
    let sb = Sandbox::new(
        &f.root,
        vec![f.worktrees.clone(), home()],
        toolchains.clone(),
        false,
    )
    .unwrap();
    assert!(matches!(sb.isolation(), Isolation::Bubblewrap(_)));

    let ok = sb
        .run("echo built > out.txt && cat out.txt && pwd")
        .await
        .unwrap();
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(ok.stdout.starts_with("built\n"), "{ok:?}");
    assert_eq!(
        std::fs::read_to_string(f.root.join("out.txt")).unwrap(),
        "built\n"
    );

    // Writing outside: the root, /etc, the real home folder, a parent of the worktree.
    let home_file = home().join("botarmy-sandbox-escape");
    for attempt in [
        "cd / && touch escaped".to_string(),
        "touch /etc/escaped".to_string(),
        format!("touch {}", home_file.display()),
        "touch ../escaped".to_string(),
    ] {
        let o = sb.run(&attempt).await.unwrap();
        assert_ne!(o.code, Some(0), "`{attempt}` succeeded: {o:?}");
    }
    assert!(!home_file.exists());
    assert!(!f.worktrees.join("escaped").exists());

    // Another run's worktree is not there to read.
    let o = sb
        .run(&format!("cat {}", f.other.join("secret.txt").display()))
        .await
        .unwrap();
    assert_ne!(o.code, Some(0), "{o:?}");
    assert!(!o.stdout.contains("secret"), "{o:?}");

    // Nothing of the parent's environment but a few harmless variables and those that point
    // the toolchains at their folders: the test process has many (cargo's and the test
    // runner's, keys where a developer set them).
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO_PKG")));
    let o = sb.run("env").await.unwrap();
    let mut allowed = vec![
        "PATH", "LANG", "LC_ALL", "TERM", "TZ", "HOME", "PWD", "SHLVL", "_",
    ];
    allowed.extend(toolchains.env().map(|(name, _)| name));
    for line in o.stdout.lines() {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            allowed.contains(&name),
            "`{name}` leaked into the sandbox:\n{}",
            o.stdout
        );
    }
    assert!(o.stdout.contains("PATH="), "{}", o.stdout);

    // No network, not even to this machine.
    let o = sb
        .run("python3 -c \"import socket; socket.create_connection(('127.0.0.1', 5432), 2)\"")
        .await
        .unwrap();
    assert_ne!(o.code, Some(0), "{o:?}");
    // The same connection (to the PostgreSQL server `.ci/run` starts) works where the
    // network is opened, as for a confirmed setup command.
    let mut open = sb.clone();
    open.network = true;
    let o = open
        .run("python3 -c \"import socket; socket.create_connection(('127.0.0.1', 5432), 2)\"")
        .await
        .unwrap();
    assert_eq!(o.code, Some(0), "{o:?}");
}

#[tokio::test]
async fn time_limit_and_output_cap_hold() {
    let f = fixture();
    let mut sb = Sandbox::new(
        &f.root,
        vec![f.worktrees.clone()],
        Toolchains::none(),
        false,
    )
    .unwrap();
    sb.output_cap = 1_000;
    let o = sb
        .run("head -c 100000 /dev/zero | tr '\\0' 'x'")
        .await
        .unwrap();
    assert_eq!(
        (o.code, o.stdout.len(), o.truncated),
        (Some(0), 1_000, true)
    );

    sb.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let o = sb.run("sleep 30").await.unwrap();
    assert!(o.timed_out && o.code.is_none(), "{o:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A sandbox for `f` that hides the real home folder and shows the real toolchains.
fn with_host_toolchains(f: &Fixture) -> Sandbox {
    Sandbox::new(
        &f.root,
        vec![f.worktrees.clone(), home()],
        Toolchains::from_env(),
        false,
    )
    .unwrap()
}

#[tokio::test]
async fn cargo_test_of_a_crate_runs_inside() {
    let f = fixture();
    std::fs::write(
        f.root.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(f.root.join("src")).unwrap();
    std::fs::write(
        f.root.join("src/lib.rs"),
        "#[test]\nfn adds() { assert_eq!(1 + 1, 2); }\n",
    )
    .unwrap();
    let sb = with_host_toolchains(&f);
    let o = sb.run("cargo test").await.unwrap();
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(
        o.stdout.contains("test adds ... ok") && o.stdout.contains("1 passed; 0 failed"),
        "{o:?}"
    );
    // It built inside the worktree, and cargo's home inside is not the real one.
    assert!(f.root.join("target").is_dir());
    let o = sb.run("echo $CARGO_HOME").await.unwrap();
    assert_eq!(o.stdout.trim(), "/tmp/cargo-home", "{o:?}");
}

#[tokio::test]
async fn python_from_pyenv_in_the_home_folder_runs_inside() {
    let f = fixture();
    let host = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.version.split()[0])"])
        .output()
        .unwrap();
    let sb = with_host_toolchains(&f);
    let o = sb
        .run("python3 -c 'import sys; print(sys.version.split()[0])'")
        .await
        .unwrap();
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(o.stdout, String::from_utf8_lossy(&host.stdout), "{o:?}");
}

#[tokio::test]
async fn toolchain_folders_are_read_only_inside() {
    let f = fixture();
    let sb = with_host_toolchains(&f);
    let binds: Vec<_> = sb.toolchains().binds().cloned().collect();
    // This machine has rustup in the home folder at least; the test means nothing without.
    assert!(
        binds.iter().any(|b| b.source.ends_with(".rustup")),
        "{binds:?}"
    );
    for bind in binds {
        let target = bind.target.join("botarmy-sandbox-escape");
        let o = sb
            .run(&format!("touch '{}'", target.display()))
            .await
            .unwrap();
        assert_ne!(o.code, Some(0), "writing into {bind:?} succeeded: {o:?}");
        assert!(!bind.source.join("botarmy-sandbox-escape").exists());
    }
}

/// A home folder with toolchains and secrets side by side, as a developer's is.
fn fake_home(dir: &Path) -> PathBuf {
    let home = dir.join("home");
    for (file, content) in [
        (".cargo/bin/cargo-fake", "#!/bin/sh\necho fake\n"),
        (".cargo/registry/index/marker", "index"),
        (
            ".cargo/credentials.toml",
            "[registry]\ntoken = \"cargo-secret\"\n",
        ),
        (
            ".cargo/config.toml",
            "[registry]\ntoken = \"cargo-secret\"\n",
        ),
        (".rustup/settings.toml", "default_toolchain = \"stable\"\n"),
        (".pyenv/version", "3.11\n"),
        (".ssh/id_ed25519", "ssh-secret"),
        (".config/gh/hosts.yml", "oauth_token: gh-secret"),
        (".npmrc", "//registry/:_authToken=npm-secret"),
    ] {
        let path = home.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    home
}

#[tokio::test]
async fn secrets_beside_the_toolchains_stay_hidden() {
    let f = fixture();
    let home = fake_home(f.worktrees.parent().unwrap());
    let toolchains = Toolchains::detect(&HostEnv::new(&home));
    let names: Vec<_> = toolchains.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["rust", "python"]);
    let sb = Sandbox::new(
        &f.root,
        vec![f.worktrees.clone(), home.clone()],
        toolchains,
        false,
    )
    .unwrap();
    let h = home.display();

    // The toolchains' own folders are there, read-only.
    let o = sb
        .run(&format!(
            "ls -A {h}; ls -A {h}/.cargo; cat {h}/.rustup/settings.toml {h}/.pyenv/version"
        ))
        .await
        .unwrap();
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(
        o.stdout, ".cargo\n.pyenv\n.rustup\nbin\ndefault_toolchain = \"stable\"\n3.11\n",
        "{o:?}"
    );
    let o = sb
        .run(&format!("echo x > {h}/.rustup/settings.toml"))
        .await
        .unwrap();
    assert_ne!(o.code, Some(0), "{o:?}");

    // Cargo's home inside is writable, with the real registry and bin read-only in it.
    let o = sb
        .run(
            "touch $CARGO_HOME/.package-cache && cat $CARGO_HOME/registry/index/marker \
             && ls $CARGO_HOME/bin && ! touch $CARGO_HOME/registry/x",
        )
        .await
        .unwrap();
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "indexcargo-fake\n"),
        "{o:?}"
    );

    // Nothing else of the home folder, wherever a command looks.
    for secret in [
        ".cargo/credentials.toml",
        ".cargo/config.toml",
        ".ssh/id_ed25519",
        ".config/gh/hosts.yml",
        ".npmrc",
    ] {
        let o = sb.run(&format!("cat {h}/{secret}")).await.unwrap();
        assert_ne!(o.code, Some(0), "{secret} is readable: {o:?}");
    }
    let o = sb
        .run("grep -rs secret /tmp/cargo-home $HOME; echo done")
        .await
        .unwrap();
    assert_eq!(o.stdout, "done\n", "{o:?}");
}

#[test]
fn variables_move_toolchains_out_of_the_home_folder() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cargo = dir.path().join("opt/cargo");
    let rustup = dir.path().join("opt/rustup");
    let venv = dir.path().join("venv");
    for d in [cargo.join("bin"), rustup.clone(), venv.join("bin")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let host = HostEnv::new(&home)
        .with_var("CARGO_HOME", &cargo)
        .with_var("RUSTUP_HOME", &rustup)
        .with_var("VIRTUAL_ENV", &venv);
    let toolchains = Toolchains::detect(&host);
    let sources: Vec<_> = toolchains.binds().map(|b| b.source.clone()).collect();
    assert_eq!(
        sources,
        [
            cargo.join("bin"),
            cargo.join("bin"),
            rustup.clone(),
            venv.clone()
        ]
    );
    let env: Vec<_> = toolchains
        .env()
        .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
        .collect();
    assert!(
        env.contains(&format!("RUSTUP_HOME={}", rustup.display())),
        "{env:?}"
    );
    assert!(
        env.contains(&format!("VIRTUAL_ENV={}", venv.display())),
        "{env:?}"
    );
    assert!(
        env.contains(&"CARGO_HOME=/tmp/cargo-home".to_string()),
        "{env:?}"
    );
    let direct: Vec<_> = toolchains
        .direct_env()
        .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
        .collect();
    assert!(
        direct.contains(&format!("CARGO_HOME={}", cargo.display())),
        "{direct:?}"
    );

    // A home folder with none of them: nothing to show.
    assert_eq!(Toolchains::detect(&HostEnv::new(&home)), Toolchains::none());
}

/// The default layout: the data folder (with every run's worktrees) inside the home
/// folder, both hidden, the worktree bound back in. Hidden in either order, the command runs
/// and only the worktree is there.
#[tokio::test]
async fn a_worktree_inside_nested_hidden_folders_works() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let data = home.join(".local/share/botarmy");
    let worktrees = data.join("work/worktrees");
    let root = worktrees.join("run-a");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(data.join("botarmy.db"), "data").unwrap();
    std::fs::write(home.join("notes.txt"), "private").unwrap();
    for hidden in [
        vec![data.clone(), home.clone(), worktrees.clone()],
        vec![home.clone(), worktrees.clone(), data.clone()],
    ] {
        let sb = Sandbox::new(&root, hidden, Toolchains::none(), false).unwrap();
        let o = sb
            .run(&format!(
                "echo ok > made.txt && ls {} && ls -A {} | wc -l",
                root.display(),
                home.display()
            ))
            .await
            .unwrap();
        assert_eq!(o.code, Some(0), "{o:?}");
        assert!(o.stdout.starts_with("made.txt\n"), "{o:?}");
        // The home folder shows only the way down to the worktree.
        assert_eq!(o.stdout.lines().last(), Some("1"), "{o:?}");
        let o = sb
            .run(&format!("cat {}", data.join("botarmy.db").display()))
            .await
            .unwrap();
        assert_ne!(o.code, Some(0), "the data folder is hidden: {o:?}");
        let o = sb
            .run(&format!("touch {}", home.join("x").display()))
            .await
            .unwrap();
        assert_ne!(o.code, Some(0), "the home folder is read-only: {o:?}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("made.txt")).unwrap(),
        "ok\n"
    );
}
