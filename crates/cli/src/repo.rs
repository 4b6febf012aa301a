//! Repositories runs work in: `botarmy repo add|list|remove`, `botarmy worktree list|gc`,
//! and the repositories a run names (`--repo`). The rules are the runtime's
//! (`botarmy_runtime::repositories`); this module reads arguments and prints.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use botarmy_protocol::format_millis;
use botarmy_runtime::files::absolute;
use botarmy_runtime::repositories::{
    Location, add_repository, remove_repository, resolve_repositories,
};
use botarmy_runtime::worktree_gc::{RepositoryWorktrees, collect_worktrees, list_worktrees};
use clap::Subcommand;

use crate::config::Config;
use crate::inspect::out;

/// `botarmy repo …`.
#[derive(Subcommand)]
pub enum RepoCommand {
    /// Register a repository: a git checkout's folder (used where it is) or a URL
    /// (https://, ssh://, git://, file://, user@host:path), cloned into
    /// $BOTARMY_HOME/repos/<name>.
    Add {
        /// The folder or URL.
        location: String,
        /// Its name (default: the last part of the folder or URL, without .git).
        #[arg(long)]
        name: Option<String>,
    },
    /// The registered repositories.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Forget a repository; its folder stays unless --delete-clone.
    Remove {
        /// Its name.
        name: String,
        /// Also delete the clone BotArmy made of it (never a checkout of yours).
        #[arg(long)]
        delete_clone: bool,
    },
}

/// `botarmy worktree …`.
#[derive(Subcommand)]
pub enum WorktreeCommand {
    /// The worktrees of BotArmy's run branches (botarmy/<run-id>) in every repository it
    /// knows.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Remove the worktrees whose run branch is merged into its repository's main branch
    /// (the branch its HEAD is on); the branches stay.
    Gc {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

pub async fn repo(config: &Config, command: RepoCommand) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let clones = config.clones_dir();
    let mut w = out();
    match command {
        RepoCommand::Add { location, name } => {
            // A folder is registered by its absolute path; a URL as it is.
            let location = match Location::parse(&location) {
                Err(_) if !location.trim().is_empty() && !location.contains("://") => {
                    absolute(Path::new(&location)).display().to_string()
                }
                _ => location,
            };
            let added = add_repository(store.as_ref(), &clones, &location, name.as_deref())
                .await
                .context("cannot add the repository")?;
            if added.location == added.path {
                writeln!(w, "added {} ({})", added.name, added.path)?;
            } else {
                writeln!(
                    w,
                    "added {} ({} cloned into {})",
                    added.name, added.location, added.path
                )?;
            }
        }
        RepoCommand::List { json } => {
            let all = store.list_repositories().await?;
            if json {
                serde_json::to_writer_pretty(&mut w, &all)?;
                writeln!(w)?;
            } else if all.is_empty() {
                writeln!(
                    w,
                    "no repositories are registered; add one with `botarmy repo add PATH|URL`"
                )?;
            } else {
                let width = all.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
                writeln!(w, "{:<width$}  {:<19}  PATH (LOCATION)", "NAME", "ADDED")?;
                for r in all {
                    let origin = if r.location == r.path {
                        String::new()
                    } else {
                        format!(" ({})", r.location)
                    };
                    writeln!(
                        w,
                        "{:<width$}  {:<19}  {}{origin}",
                        r.name,
                        format_millis(r.added_at),
                        r.path
                    )?;
                }
            }
        }
        RepoCommand::Remove { name, delete_clone } => {
            let removed = remove_repository(store.as_ref(), &clones, &name, delete_clone)
                .await
                .with_context(|| format!("cannot remove the repository `{name}`"))?;
            match removed.deleted {
                Some(folder) => writeln!(
                    w,
                    "removed {} and deleted its clone {}",
                    removed.repository.name,
                    folder.display()
                )?,
                None => writeln!(
                    w,
                    "removed {} (its folder {} stays)",
                    removed.repository.name, removed.repository.path
                )?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn worktree(config: &Config, command: WorktreeCommand) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let work_root = config.workspace().root;
    let (reports, json, collecting) = match command {
        WorktreeCommand::List { json } => (
            list_worktrees(store.as_ref(), &work_root).await?,
            json,
            false,
        ),
        WorktreeCommand::Gc { json } => (
            collect_worktrees(store.as_ref(), &work_root).await?,
            json,
            true,
        ),
    };
    let mut w = out();
    let failed = reports.iter().any(|r| r.problem.is_some());
    if json {
        serde_json::to_writer_pretty(&mut w, &reports)?;
        writeln!(w)?;
    } else {
        print_worktrees(&mut w, &reports, collecting)?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_worktrees(
    w: &mut impl Write,
    reports: &[RepositoryWorktrees],
    collecting: bool,
) -> Result<()> {
    if reports.is_empty() {
        writeln!(
            w,
            "BotArmy knows no repositories yet (`botarmy repo add PATH|URL`, or run something)"
        )?;
        return Ok(());
    }
    let mut total = 0;
    for r in reports {
        let kind = if r.repository.registered {
            "repository"
        } else {
            "greenfield run"
        };
        let base = r
            .base
            .as_deref()
            .map_or_else(String::new, |b| format!(", main branch {b}"));
        writeln!(
            w,
            "{kind} {} ({}{base})",
            r.repository.name,
            r.repository.path.display()
        )?;
        if let Some(problem) = &r.problem {
            writeln!(w, "  skipped: {problem}")?;
        }
        for t in &r.worktrees {
            total += 1;
            if collecting {
                writeln!(w, "  removed {} ({})", t.path.display(), t.branch)?;
            } else {
                let merged = if t.merged { "merged" } else { "not merged" };
                writeln!(w, "  {} ({}, {merged})", t.path.display(), t.branch)?;
            }
        }
    }
    if collecting {
        writeln!(w, "{total} worktree(s) of merged run branches removed")?;
    } else {
        writeln!(w, "{total} worktree(s)")?;
    }
    Ok(())
}

/// The folders of the repositories a run names: each a registered name or a git checkout's
/// folder.
pub async fn resolve_all(config: &Config, given: &[String]) -> Result<Vec<String>> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    let store = botarmy_store::open(&config.database_url).await?;
    let cwd = std::env::current_dir().context("the current folder")?;
    resolve_repositories(store.as_ref(), given, &cwd)
        .await
        .context("--repo")
}
