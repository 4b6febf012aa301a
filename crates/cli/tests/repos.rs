//! `botarmy repo add|list|remove`, `--repo` names and `botarmy worktree list|gc`, against
//! real git repositories made here (clones come from `file://` URLs: no network).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// Runs git in `dir` with a fixed identity; returns its standard output.
fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@localhost",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A repository on `main` with one commit of `file`.
fn repository(dir: &Path, file: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "--quiet"]);
    std::fs::write(dir.join(file), "first\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "first"]);
    std::fs::canonicalize(dir).unwrap()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[test]
fn a_checkout_and_a_cloned_url_are_registered_listed_and_removed() {
    let s = Sandbox::new();
    let web = repository(&s.out("src/web"), "index.html");
    let origin = repository(&s.out("remote/lib.git"), "lib.rs");

    // A checkout, given relative to the current folder: registered where it is.
    let o = ok(s.cmd().args(["repo", "add", "src/web"]));
    assert_eq!(
        stdout(&o).trim(),
        format!("added web ({})", web.display()),
        "{}",
        stderr(&o)
    );

    // A URL: cloned into $BOTARMY_HOME/repos/<name>, the name taken from it without .git.
    let o = ok(s.cmd().args(["repo", "add", &file_url(&origin)]));
    let clone = s.home().join("repos/lib");
    assert!(stdout(&o).contains("added lib"), "{}", stdout(&o));
    assert_eq!(git(&clone, &["log", "--format=%s"]), "first");
    assert!(clone.join("lib.rs").is_file());

    // The same URL under another name.
    ok(s.cmd()
        .args(["repo", "add", &file_url(&origin), "--name", "lib-2"]));
    assert!(s.home().join("repos/lib-2/lib.rs").is_file());

    let o = ok(s.cmd().args(["repo", "list"]));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("NAME"), "{text}");
    assert!(lines[1].starts_with("lib ") && lines[1].contains(&file_url(&origin)));
    assert!(lines[2].starts_with("lib-2 "), "{text}");
    assert!(
        lines[3].starts_with("web ") && lines[3].ends_with(&web.display().to_string()),
        "{text}"
    );

    let listed = json(&ok(s.cmd().args(["repo", "list", "--json"])));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["name"], "lib");
    assert_eq!(listed[0]["location"], file_url(&origin));
    assert_eq!(
        listed[0]["path"],
        std::fs::canonicalize(&clone).unwrap().display().to_string()
    );
    assert_eq!(listed[2]["name"], "web");
    assert_eq!(listed[2]["path"], web.display().to_string());
    assert!(listed[2]["added_at"].as_i64().unwrap() > 0);

    // A checkout of the user's is never deleted, and nothing is removed when asked to.
    let o = run(s.cmd().args(["repo", "remove", "web", "--delete-clone"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`web` is not a clone BotArmy made"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        json(&ok(s.cmd().args(["repo", "list", "--json"])))
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A clone is deleted only when asked.
    let o = ok(s.cmd().args(["repo", "remove", "lib", "--delete-clone"]));
    assert!(stdout(&o).contains("deleted its clone"), "{}", stdout(&o));
    assert!(!clone.exists());
    let o = ok(s.cmd().args(["repo", "remove", "lib-2"]));
    assert!(stdout(&o).contains("stays"), "{}", stdout(&o));
    assert!(s.home().join("repos/lib-2/lib.rs").is_file());
    ok(s.cmd().args(["repo", "remove", "web"]));
    assert!(web.join("index.html").is_file());
    let o = ok(s.cmd().args(["repo", "list"]));
    assert!(
        stdout(&o).contains("no repositories are registered"),
        "{}",
        stdout(&o)
    );

    let o = run(s.cmd().args(["repo", "remove", "web"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("repository `web` not found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_repositories_are_refused_with_what_is_wrong() {
    let s = Sandbox::new();
    let web = repository(&s.out("web"), "index.html");
    ok(s.cmd().args(["repo", "add"]).arg(&web));

    let refused = |args: &[&str], expected: &str| {
        let o = run(s.cmd().args(args));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stdout(&o));
        assert!(
            stderr(&o).contains(expected),
            "{args:?}: expected {expected:?} in:\n{}",
            stderr(&o)
        );
    };
    // The name is taken, whatever the location.
    let other = repository(&s.out("elsewhere/web"), "x");
    refused(
        &["repo", "add", &other.display().to_string()],
        &format!(
            "a repository named `web` is registered already (at {})",
            web.display()
        ),
    );
    // Not a checkout.
    std::fs::create_dir_all(s.out("plain")).unwrap();
    refused(&["repo", "add", "plain"], "plain is not a git checkout");
    refused(&["repo", "add", "missing"], "missing is not a git checkout");
    // Bad names.
    refused(
        &["repo", "add", "elsewhere/web", "--name", "my app"],
        "repository name `my app` may only contain letters, digits",
    );
    // A clone that fails says what git said, and leaves nothing behind.
    let url = file_url(&s.out("no-such-remote"));
    refused(
        &["repo", "add", &url],
        &format!("cloning {url} failed: fatal:"),
    );
    assert!(!s.home().join("repos/no-such-remote").exists());
    refused(
        &["repo", "add", "ftp://example.com/x.git"],
        "`ftp://` URLs are not cloned",
    );
    // A clone's folder that exists is not overwritten.
    let origin = repository(&s.out("origin"), "a");
    std::fs::create_dir_all(s.home().join("repos/origin")).unwrap();
    std::fs::write(s.home().join("repos/origin/keep"), "mine").unwrap();
    refused(
        &["repo", "add", &file_url(&origin)],
        "the folder exists already",
    );
    assert!(s.home().join("repos/origin/keep").is_file());

    let listed = json(&ok(s.cmd().args(["repo", "list", "--json"])));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn a_run_names_registered_repositories_or_checkouts() {
    let s = Sandbox::new();
    let web = repository(&s.out("web"), "index.html");
    ok(s.cmd()
        .args(["repo", "add"])
        .arg(&web)
        .args(["--name", "site"]));
    let o = run(s.cmd().args(["run", "an idea", "--repo", "nosuch"]));
    assert_eq!(o.status.code(), Some(1));
    let text = stderr(&o);
    assert!(
        text.contains("`nosuch` is neither a registered repository nor a git checkout's folder; registered: site"),
        "{text}"
    );
    // Nothing was stored.
    let runs = json(&ok(s.cmd().args(["runs", "--json"])));
    assert_eq!(runs.as_array().unwrap().len(), 0);

    // A registered name whose folder is gone.
    std::fs::rename(&web, s.out("moved")).unwrap();
    let o = run(s.cmd().args(["run", "an idea", "--repo", "site"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "registered repository `site` is at {}, which is not a git checkout any more",
            web.display()
        )),
        "{}",
        stderr(&o)
    );
}

/// A worktree of `repo` on `botarmy/<id>`, like a run makes.
fn run_worktree(repo: &Path, id: &str, at: &Path) -> PathBuf {
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    git(
        repo,
        &[
            "worktree",
            "add",
            "--quiet",
            "-b",
            &format!("botarmy/{id}"),
            &at.display().to_string(),
        ],
    );
    at.to_path_buf()
}

fn commit_in(dir: &Path, file: &str) {
    std::fs::write(dir.join(file), "work\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", file]);
}

#[test]
fn worktree_gc_removes_merged_run_worktrees_and_keeps_the_rest() {
    let s = Sandbox::new();
    let app = repository(&s.out("app"), "README");
    ok(s.cmd().args(["repo", "add"]).arg(&app));
    let trees = s.home().join("work/worktrees");

    // Merged: its commit is merged into main.
    let merged = run_worktree(&app, "r-merged", &trees.join("r-merged/app"));
    commit_in(&merged, "done.txt");
    git(&app, &["merge", "--quiet", "--no-edit", "botarmy/r-merged"]);
    // Not merged: a commit main does not have.
    let open = run_worktree(&app, "r-open", &trees.join("r-open/app"));
    commit_in(&open, "wip.txt");
    // Merged, but not a BotArmy branch: never touched.
    let feature = s.out("feature");
    git(
        &app,
        &[
            "worktree",
            "add",
            "--quiet",
            "-b",
            "feature",
            &feature.display().to_string(),
        ],
    );
    // A greenfield run's own repository, whose run branch was merged.
    let fresh = repository(&s.home().join("work/repos/r-green"), "main.rs");
    let green = run_worktree(&fresh, "r-green", &trees.join("r-green/project"));
    commit_in(&green, "lib.rs");
    git(
        &fresh,
        &["merge", "--quiet", "--no-edit", "botarmy/r-green"],
    );

    let listed = json(&ok(s.cmd().args(["worktree", "list", "--json"])));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["repository"]["name"], "app");
    assert_eq!(listed[0]["repository"]["registered"], true);
    assert_eq!(listed[0]["base"], "main");
    let app_trees: Vec<(String, bool)> = listed[0]["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["branch"].as_str().unwrap().to_string(),
                t["merged"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        app_trees,
        vec![
            ("botarmy/r-merged".to_string(), true),
            ("botarmy/r-open".to_string(), false)
        ]
    );
    assert_eq!(listed[1]["repository"]["name"], "r-green");
    assert_eq!(listed[1]["repository"]["registered"], false);
    let o = ok(s.cmd().args(["worktree", "list"]));
    assert!(
        stdout(&o).contains("botarmy/r-open, not merged"),
        "{}",
        stdout(&o)
    );

    let o = ok(s.cmd().args(["worktree", "gc"]));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("removed {} (botarmy/r-merged)", merged.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("removed {} (botarmy/r-green)", green.display())),
        "{text}"
    );
    assert!(
        text.contains("2 worktree(s) of merged run branches removed"),
        "{text}"
    );
    assert!(!merged.exists() && !green.exists());
    assert!(open.join("wip.txt").is_file());
    assert!(feature.join("README").is_file());
    // The branches stay.
    assert!(git(&app, &["branch", "--list", "botarmy/r-merged"]).contains("r-merged"));
    assert!(git(&fresh, &["branch", "--list", "botarmy/r-green"]).contains("r-green"));

    // Nothing is left to collect.
    let again = json(&ok(s.cmd().args(["worktree", "gc", "--json"])));
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["worktrees"].as_array().unwrap().is_empty()),
        "{again}"
    );

    // A repository left on a run branch has no main branch to compare with: said, and the
    // command fails, while the others are still collected.
    git(&app, &["checkout", "--quiet", "botarmy/r-merged"]);
    let o = run(s.cmd().args(["worktree", "gc"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("skipped: its HEAD is on the run branch `botarmy/r-merged`"),
        "{}",
        stdout(&o)
    );
    assert!(open.join("wip.txt").is_file());
}
