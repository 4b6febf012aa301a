use std::path::{Path, PathBuf};

use crate::git::{Git, GitError};

/// The branch a run works on.
pub fn branch_for(run_id: &str) -> String {
    format!("botarmy/{run_id}")
}

/// A run's checkout of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// The repository it belongs to.
    pub repo: PathBuf,
    /// Where the checkout is.
    pub path: PathBuf,
    /// Its branch (`botarmy/<run-id>`).
    pub branch: String,
}

impl Worktree {
    /// `git worktree add -b botarmy/<run-id> <path> <base>`: a new branch from `base`
    /// (default: the repository's current `HEAD`) checked out at `path`. If the run's
    /// branch exists already (a resumed run), it is checked out as it is.
    pub async fn create(
        repo: &Path,
        run_id: &str,
        path: &Path,
        base: Option<&str>,
    ) -> Result<Self, GitError> {
        let git = Git::new(repo);
        let branch = branch_for(run_id);
        let target = path.display().to_string();
        let exists = git
            .run(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .await
            .is_ok();
        if exists {
            git.run(&["worktree", "add", &target, &branch]).await?;
        } else {
            let base = base.unwrap_or("HEAD");
            git.run(&["worktree", "add", "-b", &branch, &target, base])
                .await?;
        }
        Ok(Self {
            repo: repo.to_path_buf(),
            path: path.to_path_buf(),
            branch,
        })
    }

    /// Removes the checkout (uncommitted changes included); the branch and its commits
    /// stay in the repository.
    pub async fn remove(&self) -> Result<(), GitError> {
        Git::new(&self.repo)
            .run(&[
                "worktree",
                "remove",
                "--force",
                &self.path.display().to_string(),
            ])
            .await?;
        Ok(())
    }
}

/// A worktree removed by [`gc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedWorktree {
    /// Where it was.
    pub path: PathBuf,
    /// Its branch, merged into the base.
    pub branch: String,
}

/// Removes the worktrees of BotArmy branches (`botarmy/…`) that are merged into `base`;
/// returns what was removed. Other worktrees are never touched.
pub async fn gc(repo: &Path, base: &str) -> Result<Vec<MergedWorktree>, GitError> {
    let git = Git::new(repo);
    let merged = git
        .run(&["branch", "--format=%(refname:short)", "--merged", base])
        .await?;
    let merged: Vec<&str> = merged.lines().map(str::trim).collect();
    let listing = git.run(&["worktree", "list", "--porcelain"]).await?;
    let mut removed = Vec::new();
    let mut path: Option<PathBuf> = None;
    for line in listing.lines().chain(std::iter::once("")) {
        if let Some(p) = line.strip_prefix("worktree ") {
            path = Some(PathBuf::from(p));
        } else if let Some(r) = line.strip_prefix("branch refs/heads/") {
            if let Some(p) = path.take()
                && r.starts_with("botarmy/")
                && merged.contains(&r)
            {
                git.run(&["worktree", "remove", "--force", &p.display().to_string()])
                    .await?;
                removed.push(MergedWorktree {
                    path: p,
                    branch: r.to_owned(),
                });
            }
        } else if line.is_empty() {
            path = None;
        }
    }
    git.run(&["worktree", "prune"]).await?;
    Ok(removed)
}

/// A fresh repository for a greenfield run: `git init` on branch `main` with an empty
/// first commit, so worktrees can branch from it.
pub async fn init_repository(dir: &Path) -> Result<Git, GitError> {
    std::fs::create_dir_all(dir).map_err(|source| GitError::Spawn {
        dir: dir.to_path_buf(),
        source,
    })?;
    let git = Git::new(dir);
    git.run(&["init", "--quiet", "--initial-branch=main"])
        .await?;
    git.run(&[
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "Start (BotArmy)",
    ])
    .await?;
    Ok(git)
}

/// Checks that the worktree at `worktree` is still linked to `repo`: its `.git` is a file
/// naming a folder under `<repo>/.git/worktrees/`. Everything in a worktree can be written
/// by the agents' commands; a `.git` they replaced could point git at a configuration of
/// their own (hooks, filters, fsmonitor) that BotArmy's git commands, which run outside the
/// sandbox, would execute. Check before each. Returns the worktree's folder under
/// `<repo>/.git/worktrees/`.
pub fn check_link(worktree: &Path, repo: &Path) -> Result<PathBuf, GitError> {
    let unlinked = |found: String| GitError::Unlinked {
        worktree: worktree.to_path_buf(),
        repo: repo.to_path_buf(),
        found,
    };
    let dot_git = worktree.join(".git");
    let meta = std::fs::symlink_metadata(&dot_git).map_err(|e| unlinked(e.to_string()))?;
    if !meta.is_file() {
        return Err(unlinked("not a plain file".into()));
    }
    let text = std::fs::read_to_string(&dot_git).map_err(|e| unlinked(e.to_string()))?;
    let Some(target) = text.trim().strip_prefix("gitdir:").map(str::trim) else {
        return Err(unlinked(format!("`{}`", text.trim())));
    };
    let target = Path::new(target);
    let target = if target.is_relative() {
        worktree.join(target)
    } else {
        target.to_path_buf()
    };
    let (Ok(target), Ok(expected)) = (
        target.canonicalize(),
        repo.join(".git").join("worktrees").canonicalize(),
    ) else {
        return Err(unlinked(format!("gitdir: {}", target.display())));
    };
    if target.parent() != Some(expected.as_path()) {
        return Err(unlinked(format!("gitdir: {}", target.display())));
    }
    // And that folder is this worktree's, not another run's of the same repository: git
    // keeps the way back in its `gitdir` file.
    let back = std::fs::read_to_string(target.join("gitdir")).unwrap_or_default();
    let back = Path::new(back.trim()).canonicalize().ok();
    if back != dot_git.canonicalize().ok() {
        return Err(unlinked(format!(
            "gitdir: {}, the worktree of another checkout",
            target.display()
        )));
    }
    Ok(target)
}
