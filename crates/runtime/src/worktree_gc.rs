//! The worktrees BotArmy has made, across every repository it knows (the registered ones
//! and the fresh repositories of greenfield runs under `<work root>/repos/`): listed, and
//! collected once their branch is merged into the repository's main branch (the branch its
//! `HEAD` is on).

use std::path::{Path, PathBuf};

use botarmy_store::Store;
use botarmy_workspace::{Git, gc};
use serde::Serialize;

use crate::repositories::RepositoryError;

/// A repository BotArmy knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownRepository {
    /// Its registered name, or the run id of a greenfield run's repository.
    pub name: String,
    /// Its folder.
    pub path: PathBuf,
    /// Registered (`true`) or a greenfield run's own (`false`).
    pub registered: bool,
}

/// The registered repositories and the greenfield runs' ones under `work_root/repos`, each
/// folder once.
pub async fn known_repositories(
    store: &dyn Store,
    work_root: &Path,
) -> Result<Vec<KnownRepository>, RepositoryError> {
    let mut known: Vec<KnownRepository> = store
        .list_repositories()
        .await?
        .into_iter()
        .map(|r| KnownRepository {
            name: r.name,
            path: PathBuf::from(r.path),
            registered: true,
        })
        .collect();
    let greenfield = work_root.join("repos");
    let entries = match std::fs::read_dir(&greenfield) {
        Ok(entries) => entries.collect::<Result<Vec<_>, _>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
    .map_err(|source| RepositoryError::Io {
        path: greenfield.clone(),
        source,
    })?;
    let mut fresh: Vec<KnownRepository> = entries
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.join(".git").exists())
        .map(|path| KnownRepository {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path,
            registered: false,
        })
        .collect();
    fresh.sort_by(|a, b| a.name.cmp(&b.name));
    known.extend(fresh);
    let mut seen = Vec::new();
    known.retain(|r| {
        let key = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
        let first = !seen.contains(&key);
        seen.push(key);
        first
    });
    Ok(known)
}

/// One worktree of a `botarmy/…` branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotWorktree {
    /// Where it is.
    pub path: PathBuf,
    /// Its branch.
    pub branch: String,
    /// Whether the branch is merged into the repository's main branch.
    pub merged: bool,
}

/// A repository's BotArmy worktrees, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryWorktrees {
    /// The repository.
    pub repository: KnownRepository,
    /// Its main branch (the branch its `HEAD` is on), if it could be told.
    pub base: Option<String>,
    /// Its worktrees of `botarmy/…` branches.
    pub worktrees: Vec<BotWorktree>,
    /// What went wrong with this repository (the others are still read).
    pub problem: Option<String>,
}

/// The main branch of the repository at `repo`: the branch its `HEAD` is on. Not a
/// `botarmy/…` branch (a checkout left on a run's branch has no main branch to tell).
async fn base_branch(repo: &Path) -> Result<String, String> {
    let branch = Git::new(repo)
        .run(&["symbolic-ref", "--quiet", "--short", "HEAD"])
        .await
        .map_err(|_| {
            "its HEAD is detached, so it has no main branch to compare with".to_string()
        })?;
    if branch.starts_with("botarmy/") {
        return Err(format!(
            "its HEAD is on the run branch `{branch}`; check out its main branch first"
        ));
    }
    Ok(branch)
}

/// The `botarmy/…` worktrees of one repository.
async fn worktrees_of(repository: KnownRepository) -> RepositoryWorktrees {
    let mut out = RepositoryWorktrees {
        repository,
        base: None,
        worktrees: Vec::new(),
        problem: None,
    };
    let path = out.repository.path.clone();
    if !path.join(".git").exists() {
        out.problem = Some(format!("{} is not a git checkout any more", path.display()));
        return out;
    }
    match read_worktrees(&path).await {
        Ok((base, worktrees)) => {
            out.base = Some(base);
            out.worktrees = worktrees;
        }
        Err(problem) => out.problem = Some(problem),
    }
    out
}

async fn read_worktrees(repo: &Path) -> Result<(String, Vec<BotWorktree>), String> {
    let base = base_branch(repo).await?;
    let git = Git::new(repo);
    let merged = git
        .run(&["branch", "--format=%(refname:short)", "--merged", &base])
        .await
        .map_err(|e| e.to_string())?;
    let merged: Vec<&str> = merged.lines().map(str::trim).collect();
    let listing = git
        .run(&["worktree", "list", "--porcelain"])
        .await
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    let mut path: Option<PathBuf> = None;
    for line in listing.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            path = Some(PathBuf::from(p));
        } else if let Some(branch) = line.strip_prefix("branch refs/heads/")
            && branch.starts_with("botarmy/")
            && let Some(p) = path.take()
        {
            found.push(BotWorktree {
                path: p,
                branch: branch.to_string(),
                merged: merged.contains(&branch),
            });
        }
    }
    Ok((base, found))
}

/// Every BotArmy worktree of every repository BotArmy knows.
pub async fn list_worktrees(
    store: &dyn Store,
    work_root: &Path,
) -> Result<Vec<RepositoryWorktrees>, RepositoryError> {
    let mut out = Vec::new();
    for repository in known_repositories(store, work_root).await? {
        out.push(worktrees_of(repository).await);
    }
    Ok(out)
}

/// Removes, in every repository BotArmy knows, the worktrees of `botarmy/…` branches merged
/// into its main branch (the branches stay); returns, per repository, what was removed
/// (in `worktrees`) or what went wrong.
pub async fn collect_worktrees(
    store: &dyn Store,
    work_root: &Path,
) -> Result<Vec<RepositoryWorktrees>, RepositoryError> {
    let mut out = Vec::new();
    for repository in known_repositories(store, work_root).await? {
        let mut report = RepositoryWorktrees {
            repository,
            base: None,
            worktrees: Vec::new(),
            problem: None,
        };
        let path = report.repository.path.clone();
        if !path.join(".git").exists() {
            report.problem = Some(format!("{} is not a git checkout any more", path.display()));
        } else {
            match base_branch(&path).await {
                Err(problem) => report.problem = Some(problem),
                Ok(base) => {
                    match gc(&path, &base).await {
                        Ok(removed) => {
                            report.worktrees = removed
                                .into_iter()
                                .map(|m| BotWorktree {
                                    path: m.path,
                                    branch: m.branch,
                                    merged: true,
                                })
                                .collect();
                        }
                        Err(e) => report.problem = Some(e.to_string()),
                    }
                    report.base = Some(base);
                }
            }
        }
        out.push(report);
    }
    Ok(out)
}
