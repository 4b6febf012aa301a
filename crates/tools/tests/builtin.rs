//! The worktree tools through the `Tool` interface, as an agent loop calls them.

use std::sync::Arc;

use botarmy_protocol::FileChangeKind;
use botarmy_tools::{Toolbox, WorktreeTools, worktree_tools};
use botarmy_workspace::{Sandbox, Toolchains, init_repository};
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    tools: Toolbox,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    init_repository(&root).await.unwrap();
    let home = std::path::PathBuf::from(std::env::var("HOME").unwrap());
    let sandbox = Sandbox::new(&root, vec![home], Toolchains::from_env(), false).unwrap();
    let mut tools = Toolbox::new();
    for tool in worktree_tools(Arc::new(WorktreeTools::new(&root, sandbox))) {
        tools.insert(tool);
    }
    Fixture {
        _dir: dir,
        root,
        tools,
    }
}

#[tokio::test]
async fn files_are_written_edited_read_listed_and_searched() {
    let f = fixture().await;
    let created = f
        .tools
        .call(
            "file_write",
            &json!({"path": "src/lib.rs", "content": "pub fn one() -> u32 { 1 }\n"}),
        )
        .await
        .unwrap();
    assert!(!created.is_error, "{created:?}");
    assert_eq!(created.changes.len(), 1);
    assert_eq!(created.changes[0].path, "src/lib.rs");
    assert_eq!(created.changes[0].change, FileChangeKind::Created);

    let edited = f
        .tools
        .call(
            "file_write",
            &json!({"path": "src/lib.rs", "old": "{ 1 }", "new": "{ 2 }"}),
        )
        .await
        .unwrap();
    assert_eq!(
        edited.changes[0].change,
        FileChangeKind::Modified,
        "{edited:?}"
    );
    assert_eq!(
        std::fs::read_to_string(f.root.join("src/lib.rs")).unwrap(),
        "pub fn one() -> u32 { 2 }\n"
    );

    let read = f
        .tools
        .call("file_read", &json!({"path": "src/lib.rs"}))
        .await
        .unwrap();
    assert_eq!(read.content, "pub fn one() -> u32 { 2 }\n");
    assert_eq!(read.summary, "read src/lib.rs (1 lines)");

    let listed = f.tools.call("list_dir", &json!({})).await.unwrap();
    assert!(listed.content.lines().any(|l| l == "src/"), "{listed:?}");

    let found = f
        .tools
        .call("search", &json!({"text": "u32"}))
        .await
        .unwrap();
    assert_eq!(found.content, "src/lib.rs:1: pub fn one() -> u32 { 2 }");
}

#[tokio::test]
async fn mistakes_come_back_to_the_model_as_errors_it_can_act_on() {
    let f = fixture().await;
    let cases = [
        (
            "file_read",
            json!({}),
            "file_read: argument `path` is missing",
        ),
        (
            "file_read",
            json!({"path": 3}),
            "file_read: argument `path` must be a string, found a number",
        ),
        (
            "file_write",
            json!({"path": "a.txt"}),
            "give either `content`",
        ),
        ("file_read", json!({"path": "../outside"}), "outside"),
        ("file_read", json!({"path": "/etc/passwd"}), "absolute"),
        ("git", json!({"command": "push"}), "`push` is not allowed"),
        (
            "git",
            json!({"command": "commit"}),
            "argument `message` is missing",
        ),
        (
            "nope",
            json!({}),
            "there is no tool `nope`; available tools: bash, file_read",
        ),
    ];
    for (tool, args, expected) in cases {
        let out = f.tools.call(tool, &args).await.unwrap();
        assert!(out.is_error, "{tool} {args}: {out:?}");
        assert!(
            out.content.contains(expected),
            "{tool} {args}: `{}` does not contain `{expected}`",
            out.content
        );
    }
    assert!(!f.root.join("a.txt").exists());
}

#[tokio::test]
async fn bash_reports_exit_codes_and_output_and_git_commits_on_the_branch() {
    let f = fixture().await;
    let ok = f
        .tools
        .call(
            "bash",
            &json!({"command": "echo hi > note.txt; cat note.txt"}),
        )
        .await
        .unwrap();
    assert!(!ok.is_error, "{ok:?}");
    assert!(
        ok.content.starts_with("exit code 0\n--- stdout ---\nhi\n"),
        "{ok:?}"
    );
    let bad = f
        .tools
        .call("bash", &json!({"command": "echo oops >&2; exit 3"}))
        .await
        .unwrap();
    assert!(bad.is_error);
    assert!(
        bad.content.contains("exit code 3") && bad.content.contains("oops"),
        "{bad:?}"
    );
    assert_eq!(bad.summary, "`echo oops >&2; exit 3`: exit code 3");

    let add = f
        .tools
        .call("git", &json!({"command": "add", "args": ["-A"]}))
        .await
        .unwrap();
    assert!(!add.is_error, "{add:?}");
    let commit = f
        .tools
        .call(
            "git",
            &json!({"command": "commit", "message": "add a note"}),
        )
        .await
        .unwrap();
    assert!(!commit.is_error, "{commit:?}");
    let log = f
        .tools
        .call("git", &json!({"command": "log", "args": ["--format=%s"]}))
        .await
        .unwrap();
    assert_eq!(log.content.lines().next(), Some("add a note"), "{log:?}");
    let status = f
        .tools
        .call(
            "git",
            &json!({"command": "status", "args": ["--porcelain"]}),
        )
        .await
        .unwrap();
    assert_eq!(status.content, "(no output)");
}

#[tokio::test]
async fn the_worktree_tools_are_the_ones_definitions_may_name() {
    let f = fixture().await;
    let mut names: Vec<&str> = f.tools.names().collect();
    let mut listed = botarmy_protocol::BUILTIN_TOOLS.to_vec();
    names.sort_unstable();
    listed.sort_unstable();
    assert_eq!(names, listed);
}

#[tokio::test]
async fn the_git_tool_refuses_options_that_reach_outside_and_files_refuse_dot_git() {
    let f = fixture().await;
    for args in [
        json!(["--output=/tmp/botarmy-escape"]),
        json!(["--output", "/tmp/botarmy-escape"]),
        json!(["--no-index", "/etc/hostname", "x"]),
        json!(["--ext-diff"]),
        json!(["-Fmessage.txt"]),
        json!(["-c", "core.pager=sh"]),
    ] {
        let out = f
            .tools
            .call("git", &json!({"command": "diff", "args": args}))
            .await
            .unwrap();
        assert!(out.is_error, "{args}: {out:?}");
        assert!(
            out.content.contains("is not allowed"),
            "{args}: {}",
            out.content
        );
    }
    assert!(!std::path::Path::new("/tmp/botarmy-escape").exists());
    // Ordinary options still work.
    let ok = f
        .tools
        .call(
            "git",
            &json!({"command": "log", "args": ["--oneline", "-n", "1"]}),
        )
        .await
        .unwrap();
    assert!(!ok.is_error, "{ok:?}");
    // The worktree's link to its repository is not the tools' to write.
    for path in [
        ".git",
        ".git/config",
        "./.git/hooks/pre-commit",
        "sub/.git/config",
    ] {
        let out = f
            .tools
            .call("file_write", &json!({"path": path, "content": "x"}))
            .await
            .unwrap();
        assert!(
            out.is_error && out.content.contains("git's own files"),
            "{path}: {out:?}"
        );
    }
}
