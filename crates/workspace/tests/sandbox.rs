//! The `bash` tool's runner, with bubblewrap (installed by `.ci/run`): escapes fail.

use std::time::Duration;

use botarmy_workspace::{Isolation, Sandbox};

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
    let sb = Sandbox::new(&f.root, vec![f.worktrees.clone(), home()], false).unwrap();
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

    // Nothing of the parent's environment but a few harmless variables: the test process
    // has many (cargo's and the test runner's, keys where a developer set them).
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    let o = sb.run("env").await.unwrap();
    let allowed = [
        "PATH", "LANG", "LC_ALL", "TERM", "TZ", "HOME", "PWD", "SHLVL", "_",
    ];
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
}

#[tokio::test]
async fn time_limit_and_output_cap_hold() {
    let f = fixture();
    let mut sb = Sandbox::new(&f.root, vec![f.worktrees.clone()], false).unwrap();
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
