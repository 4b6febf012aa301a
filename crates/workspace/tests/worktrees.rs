use std::path::Path;

use botarmy_workspace::{Git, GitError, Worktree, branch_for, detect_setup, gc, init_repository};

async fn commit_file(git: &Git, name: &str, text: &str) {
    std::fs::write(git.dir().join(name), text).unwrap();
    git.run(&["add", name]).await.unwrap();
    git.run(&["commit", "--quiet", "-m", &format!("add {name}")])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_run_gets_its_own_branch_and_checkout_and_keeps_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let git = init_repository(&repo).await.unwrap();
    commit_file(&git, "README.md", "hello\n").await;

    let wt_path = dir.path().join("worktrees/run-1/repo");
    let wt = Worktree::create(&repo, "run-1", &wt_path, None)
        .await
        .unwrap();
    assert_eq!(wt.branch, "botarmy/run-1");
    assert_eq!(
        std::fs::read_to_string(wt_path.join("README.md")).unwrap(),
        "hello\n"
    );
    // Work in the worktree lands on the run's branch only.
    let wt_git = Git::new(&wt_path);
    commit_file(&wt_git, "main.rs", "fn main() {}\n").await;
    assert_eq!(
        wt_git
            .run(&["rev-parse", "--abbrev-ref", "HEAD"])
            .await
            .unwrap(),
        "botarmy/run-1"
    );
    assert!(!repo.join("main.rs").exists());
    let log = git
        .run(&["log", "--format=%s", "botarmy/run-1"])
        .await
        .unwrap();
    assert!(log.starts_with("add main.rs"), "{log}");

    // Removed when the run ends: the checkout goes, the branch and its commit stay.
    wt.remove().await.unwrap();
    assert!(!wt_path.exists());
    let branches = git
        .run(&["branch", "--format=%(refname:short)"])
        .await
        .unwrap();
    assert!(branches.lines().any(|b| b == "botarmy/run-1"), "{branches}");
    assert!(
        !git.run(&["worktree", "list"])
            .await
            .unwrap()
            .contains("run-1")
    );

    // A resumed run checks its existing branch out again, with its work.
    let again = Worktree::create(&repo, "run-1", &wt_path, None)
        .await
        .unwrap();
    assert!(again.path.join("main.rs").is_file());
}

#[tokio::test]
async fn gc_removes_only_merged_botarmy_worktrees() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let git = init_repository(&repo).await.unwrap();
    commit_file(&git, "a.txt", "a\n").await;
    let merged = Worktree::create(&repo, "merged", &dir.path().join("wt-merged"), None)
        .await
        .unwrap();
    commit_file(&Git::new(&merged.path), "b.txt", "b\n").await;
    let open = Worktree::create(&repo, "open", &dir.path().join("wt-open"), None)
        .await
        .unwrap();
    commit_file(&Git::new(&open.path), "c.txt", "c\n").await;
    // A user's own worktree on a merged branch is not BotArmy's to remove.
    git.run(&["branch", "mine"]).await.unwrap();
    git.run(&[
        "worktree",
        "add",
        &dir.path().join("wt-mine").display().to_string(),
        "mine",
    ])
    .await
    .unwrap();
    git.run(&["merge", "--quiet", "--no-edit", &branch_for("merged")])
        .await
        .unwrap();

    let removed = gc(&repo, "main").await.unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].branch, "botarmy/merged");
    assert!(!merged.path.exists());
    assert!(open.path.exists());
    assert!(dir.path().join("wt-mine").exists());
    // Nothing more to collect the second time.
    assert!(gc(&repo, "main").await.unwrap().is_empty());
}

#[tokio::test]
async fn git_failures_name_the_command_and_what_git_said() {
    let dir = tempfile::tempdir().unwrap();
    let err = Worktree::create(dir.path(), "x", &dir.path().join("wt"), None)
        .await
        .unwrap_err();
    match &err {
        GitError::Failed { args, stderr, .. } => {
            assert!(args.starts_with("worktree add"), "{err}");
            assert!(
                stderr.to_lowercase().contains("not a git repository"),
                "{err}"
            );
        }
        other => panic!("expected a git failure, got {other}"),
    }
}

#[test]
fn setup_is_detected_from_the_project_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(detect_setup(d).is_empty());
    let write = |name: &str| std::fs::write(d.join(name), "").unwrap();
    write("Makefile");
    assert_eq!(detect_setup(d)[0].display(), "make");
    write("Cargo.toml");
    write("package.json");
    write("pyproject.toml");
    write("go.mod");
    let found: Vec<String> = detect_setup(d).iter().map(|c| c.display()).collect();
    assert_eq!(
        found,
        [
            "cargo fetch",
            "npm install",
            "python3 -m pip install -e .",
            "go mod download"
        ]
    );
    write("package-lock.json");
    write("requirements.txt");
    let found: Vec<String> = detect_setup(d).iter().map(|c| c.display()).collect();
    assert_eq!(found[1], "npm ci");
    assert_eq!(found[2], "python3 -m pip install -r requirements.txt");
    assert!(Path::new(&d.join("Makefile")).exists());
}

#[tokio::test]
async fn a_replaced_dot_git_unlinks_a_worktree_from_its_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    botarmy_workspace::init_repository(&repo).await.unwrap();
    let path = dir.path().join("worktrees/run/repo");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    botarmy_workspace::Worktree::create(&repo, "run", &path, None)
        .await
        .unwrap();
    botarmy_workspace::check_link(&path, &repo).unwrap();
    // Pointed at another worktree of the same repository (another run's).
    let other = dir.path().join("worktrees/other/repo");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    botarmy_workspace::Worktree::create(&repo, "other", &other, None)
        .await
        .unwrap();
    let mine = std::fs::read_to_string(path.join(".git")).unwrap();
    let theirs = std::fs::read_to_string(other.join(".git")).unwrap();
    std::fs::write(path.join(".git"), &theirs).unwrap();
    let err = botarmy_workspace::check_link(&path, &repo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another checkout"), "{err}");
    std::fs::write(path.join(".git"), &mine).unwrap();
    botarmy_workspace::check_link(&path, &repo).unwrap();
    // Pointed at a git folder of the worktree's own (whose config could name hooks).
    let own = path.join("evil");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(path.join(".git"), format!("gitdir: {}\n", own.display())).unwrap();
    let err = botarmy_workspace::check_link(&path, &repo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not lead to"), "{err}");
    // A folder instead of the link file.
    std::fs::remove_file(path.join(".git")).unwrap();
    std::fs::create_dir(path.join(".git")).unwrap();
    assert!(botarmy_workspace::check_link(&path, &repo).is_err());
}
