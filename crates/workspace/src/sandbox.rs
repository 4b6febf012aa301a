//! The `bash` tool's runner: a command in the worktree, with a scrubbed environment, a time
//! limit and an output cap; inside bubblewrap where it is installed (the file system
//! read-only except the worktree, other worktrees and the home folder hidden, no network),
//! and only on explicit opt-in where it is not. The host's toolchains ([`Toolchains`]) are
//! shown read-only, so `cargo test`, `python3` or `npm test` work inside.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::toolchain::Toolchains;

/// How commands are confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Inside bubblewrap (`bwrap` at this path).
    Bubblewrap(PathBuf),
    /// Directly, with only the scrubbed environment and the limits: the user chose this
    /// where bubblewrap is missing.
    Unsandboxed,
}

/// Why a command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Bubblewrap is missing and the user has not opted in to running commands without it.
    #[error(
        "bubblewrap (`bwrap`, Debian package `bubblewrap`) is not installed, so shell commands cannot be sandboxed; install it, or allow unsandboxed commands explicitly"
    )]
    NoSandbox,
    /// The process could not be started.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// What was started.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code (`None`: killed, e.g. at the time limit).
    pub code: Option<i32>,
    /// Standard output, at most the cap.
    pub stdout: String,
    /// Standard error, at most the cap.
    pub stderr: String,
    /// Whether output beyond the cap was dropped.
    pub truncated: bool,
    /// Whether the time limit stopped it.
    pub timed_out: bool,
}

/// Runs commands in one worktree.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
    hidden: Vec<PathBuf>,
    toolchains: Toolchains,
    isolation: Isolation,
    /// Time limit per command.
    pub timeout: Duration,
    /// Bytes kept of each of stdout and stderr.
    pub output_cap: usize,
    /// Whether commands reach the network (only a setup command a human confirmed does;
    /// agents' commands never).
    pub network: bool,
    /// The repository folders git needs inside, when the worktree's git runs here.
    git: Option<GitAccess>,
}

/// What of a repository git in the sandbox sees: its `.git` read-only, and writable only
/// what committing on the run's branch writes (new objects, `refs/heads/botarmy/`, their
/// logs, the worktree's own folder under `.git/worktrees/`).
#[derive(Debug, Clone)]
struct GitAccess {
    common: PathBuf,
    writable: Vec<PathBuf>,
}

/// Settings every git command in a sandbox gets: no hooks, no fsmonitor, no automatic
/// maintenance, BotArmy's identity, no prompts.
pub const GIT_SAFE_CONFIG: &[(&str, &str)] = &[
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("commit.gpgSign", "false"),
    ("user.name", "BotArmy"),
    ("user.email", "botarmy@localhost"),
];

/// `args` after `-c` settings for each of [`GIT_SAFE_CONFIG`], for `git`.
pub fn safe_git_args(args: &[&str]) -> Vec<String> {
    let mut argv = Vec::with_capacity(GIT_SAFE_CONFIG.len() * 2 + args.len());
    for (key, value) in GIT_SAFE_CONFIG {
        argv.push("-c".to_string());
        argv.push(format!("{key}={value}"));
    }
    argv.extend(args.iter().map(|a| (*a).to_string()));
    argv
}

/// The hidden folders that exist and lie in no other one, parents first. One inside
/// another is hidden by its parent already; hiding it again would mount over a folder the
/// parent's empty mount has covered, and bubblewrap could not make that read-only (the
/// default data folder lies in the home folder).
fn outermost(hidden: &[PathBuf]) -> Vec<&PathBuf> {
    let mut dirs: Vec<&PathBuf> = hidden.iter().filter(|d| d.is_dir()).collect();
    dirs.sort_by_key(|d| d.components().count());
    let mut out: Vec<&PathBuf> = Vec::with_capacity(dirs.len());
    for d in dirs {
        if !out.iter().any(|o| d.starts_with(o)) {
            out.push(d);
        }
    }
    out
}

/// Variables a command keeps; everything else (API keys above all) is dropped.
const KEPT_VARS: &[&str] = &["PATH", "LANG", "LC_ALL", "TERM", "TZ"];

impl Sandbox {
    /// Commands in `root`, inside bubblewrap if it is installed; otherwise
    /// [`SandboxError::NoSandbox`] unless `allow_unsandboxed`. `hidden` folders (the parent of
    /// all worktrees, the home folder) are made empty inside the sandbox, then the folders of
    /// `toolchains` are shown in them read-only.
    pub fn new(
        root: impl Into<PathBuf>,
        hidden: Vec<PathBuf>,
        toolchains: Toolchains,
        allow_unsandboxed: bool,
    ) -> Result<Self, SandboxError> {
        let isolation = match find_bwrap() {
            Some(path) => Isolation::Bubblewrap(path),
            None if allow_unsandboxed => Isolation::Unsandboxed,
            None => return Err(SandboxError::NoSandbox),
        };
        Ok(Self {
            root: root.into(),
            hidden,
            toolchains,
            isolation,
            timeout: Duration::from_secs(120),
            output_cap: 64 * 1024,
            network: false,
            git: None,
        })
    }

    /// The worktree commands run in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The toolchains commands see.
    pub fn toolchains(&self) -> &Toolchains {
        &self.toolchains
    }

    /// How commands are confined.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// Lets git work inside: `worktree_gitdir` (the worktree's folder under
    /// `<repo>/.git/worktrees/`) and what a commit on a `botarmy/` branch writes become
    /// writable, the rest of `<repo>/.git` readable. (Its objects folder is writable, so
    /// commands could add or remove objects of the repository; they cannot change its
    /// configuration, hooks or other branches.)
    pub fn with_git(mut self, repo: &Path, worktree_gitdir: &Path) -> std::io::Result<Self> {
        let common = repo.join(".git");
        let branches = [
            common.join("refs/heads/botarmy"),
            common.join("logs/refs/heads/botarmy"),
        ];
        for dir in &branches {
            std::fs::create_dir_all(dir)?;
        }
        let mut writable = vec![common.join("objects")];
        writable.extend(branches);
        writable.push(worktree_gitdir.to_path_buf());
        self.git = Some(GitAccess { common, writable });
        Ok(self)
    }

    /// Runs `git args…` in the worktree, with [`GIT_SAFE_CONFIG`] (needs [`Sandbox::with_git`]
    /// to commit).
    pub async fn git(&self, args: &[&str]) -> Result<CommandOutput, SandboxError> {
        let mut argv: Vec<String> = vec!["git".into()];
        argv.extend(safe_git_args(args));
        self.exec(&argv).await
    }

    /// Runs `command` with `sh -c` in the worktree.
    pub async fn run(&self, command: &str) -> Result<CommandOutput, SandboxError> {
        self.exec(&["sh".to_string(), "-c".to_string(), command.to_string()])
            .await
    }

    async fn exec(&self, argv: &[String]) -> Result<CommandOutput, SandboxError> {
        let mut cmd = match &self.isolation {
            Isolation::Bubblewrap(bwrap) => {
                let mut c = tokio::process::Command::new(bwrap);
                c.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
                c.args(["--tmpfs", "/tmp"]);
                // Hidden folders become empty and read-only; the toolchains' folders are
                // shown read-only in them, and the worktree (which may lie inside one) is
                // bound writable on top.
                let hidden = outermost(&self.hidden);
                for dir in &hidden {
                    c.arg("--tmpfs").arg(dir);
                }
                for bind in self.toolchains.binds().filter(|b| b.source.is_dir()) {
                    c.arg("--ro-bind").arg(&bind.source).arg(&bind.target);
                }
                if let Some(git) = &self.git {
                    c.arg("--ro-bind").arg(&git.common).arg(&git.common);
                    for dir in git.writable.iter().filter(|d| d.is_dir()) {
                        c.arg("--bind").arg(dir).arg(dir);
                    }
                }
                c.arg("--bind").arg(&self.root).arg(&self.root);
                for dir in &hidden {
                    c.arg("--remount-ro").arg(dir);
                }
                c.arg("--chdir").arg(&self.root);
                if !self.network {
                    c.arg("--unshare-net");
                }
                c.args(["--unshare-pid", "--die-with-parent", "--new-session"]);
                c.args(argv);
                c
            }
            Isolation::Unsandboxed => {
                let mut c = tokio::process::Command::new(&argv[0]);
                c.args(&argv[1..]).current_dir(&self.root);
                c
            }
        };
        cmd.env_clear();
        for var in KEPT_VARS {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        match &self.isolation {
            Isolation::Bubblewrap(_) => cmd.envs(self.toolchains.env()),
            Isolation::Unsandboxed => cmd.envs(self.toolchains.direct_env()),
        };
        cmd.env("HOME", &self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let program = match &self.isolation {
            Isolation::Bubblewrap(p) => p.display().to_string(),
            Isolation::Unsandboxed => argv[0].clone(),
        };
        let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn {
            program: program.clone(),
            source,
        })?;
        let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(SandboxError::Spawn {
                program,
                source: std::io::Error::other("its output could not be captured"),
            });
        };
        let cap = self.output_cap;
        let read_out = async move { read_capped(&mut out, cap).await };
        let read_err = async move { read_capped(&mut err, cap).await };
        let work = async {
            let ((stdout, t1), (stderr, t2)) = tokio::join!(read_out, read_err);
            let status = child.wait().await;
            (stdout, stderr, t1 || t2, status)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok((stdout, stderr, truncated, status)) => Ok(CommandOutput {
                code: status.ok().and_then(|s| s.code()),
                stdout,
                stderr,
                truncated,
                timed_out: false,
            }),
            // The child is killed when it is dropped, as this returns (kill_on_drop).
            Err(_) => Ok(CommandOutput {
                code: None,
                stdout: String::new(),
                stderr: format!("stopped after {}s (the time limit)", self.timeout.as_secs()),
                truncated: false,
                timed_out: true,
            }),
        }
    }
}

/// Reads everything, keeping the first `cap` bytes (the rest is drained so the process is
/// not blocked on a full pipe).
async fn read_capped(r: &mut (impl AsyncReadExt + Unpin), cap: usize) -> (String, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), truncated)
}

fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bwrap"))
        .find(|p| Path::new(p).is_file())
}
