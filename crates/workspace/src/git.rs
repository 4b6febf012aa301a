use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A failed `git` command.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` could not be started.
    #[error("cannot run git in {dir}: {source} (is git installed and on PATH?)")]
    Spawn {
        /// Where it was run.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worktree's `.git` no longer leads to its repository (something in the worktree
    /// replaced it); BotArmy runs no git command there.
    #[error(
        "{worktree}/.git does not lead to {repo}'s worktrees any more ({found}); git is not run there"
    )]
    Unlinked {
        /// The worktree.
        worktree: PathBuf,
        /// Its repository.
        repo: PathBuf,
        /// What `.git` holds now.
        found: String,
    },
    /// `git` ran and failed.
    #[error("`git {args}` in {dir} failed ({status}): {stderr}")]
    Failed {
        /// Where it was run.
        dir: PathBuf,
        /// Its arguments.
        args: String,
        /// Exit status.
        status: String,
        /// What git said.
        stderr: String,
    },
}

/// `git` run in one folder, with a fixed identity for commits and no prompts.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    /// Git commands run in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `git args…` and returns its standard output (trimmed at the end).
    pub async fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let output = tokio::process::Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            // Never wait for a password or an editor; commits made by BotArmy say so.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_EDITOR", "true")
            .env("GIT_AUTHOR_NAME", "BotArmy")
            .env("GIT_AUTHOR_EMAIL", "botarmy@localhost")
            .env("GIT_COMMITTER_NAME", "BotArmy")
            .env("GIT_COMMITTER_EMAIL", "botarmy@localhost")
            .stdin(Stdio::null())
            // A caller that gives up waiting (a time limit) stops git too.
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| GitError::Spawn {
                dir: self.dir.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(GitError::Failed {
                dir: self.dir.clone(),
                args: args.join(" "),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned())
    }
}
