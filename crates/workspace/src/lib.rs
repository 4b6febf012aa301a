//! Where a run's code work happens: a git worktree of each repository on a branch of the
//! run's own (`botarmy/<run-id>`), the project's setup command detected from its files, and
//! paths that cannot leave the worktree. Everything goes through the `git` command line, as
//! a user would type it, so what BotArmy does to a repository is plain to see.
//!
//! - [`Git`]: runs `git` in a folder; failures name the command and what git said.
//! - [`Worktree::create`] / [`Worktree::remove`] and [`gc`]: worktrees per run, removed
//!   when the run ends (the branch stays), and collected once their branch is merged.
//! - [`detect_setup`]: what to run to make a checkout ready (Cargo, npm, Python, Go, Make).
//! - [`resolve_inside`]: the one way tools turn a path they were given into a file.
//! - [`Sandbox`]: the `bash` tool's runner (bubblewrap, scrubbed environment, limits), with
//!   the host's [`Toolchains`] shown read-only inside.
//! - [`Files`]: the file tools' work (read, write, exact edit, list, search) inside one
//!   worktree.

mod files;
mod git;
mod paths;
mod sandbox;
mod setup;
mod toolchain;
mod worktree;

pub use files::{
    ChangeKind, Entry, FileChange, FileError, Files, MAX_FILE_BYTES, MAX_MATCHES, Match,
};
pub use git::{Git, GitError};
pub use paths::{PathError, resolve_inside};
pub use sandbox::{
    CommandOutput, GIT_SAFE_CONFIG, Isolation, Sandbox, SandboxError, safe_git_args,
};
pub use setup::{SetupCommand, detect_setup};
pub use toolchain::{Bind, HostEnv, Toolchain, Toolchains};
pub use worktree::{MergedWorktree, Worktree, branch_for, check_link, gc, init_repository};
