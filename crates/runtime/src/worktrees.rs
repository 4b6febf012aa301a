//! A run's worktrees: made when its first step that works in code needs them (a fresh
//! repository for a greenfield run, or a worktree of each repository the run names), set up
//! after a human confirmed the setup command, and removed when the run ends — after what
//! was left in them is committed, so the run's branch keeps everything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use botarmy_core::engine::RunState;
use botarmy_protocol::{ErrorInfo, ErrorKind, Event, RunId, WorktreeInfo};
use botarmy_tools::{
    MCP_ENTRY_PREFIX, McpServer, Toolbox, WorktreeTools, select_tools, worktree_tools,
};
use botarmy_workspace::{
    Git, Sandbox, Toolchains, Worktree, branch_for, check_link, detect_setup, init_repository,
    safe_git_args,
};
use tokio::sync::mpsc;

use crate::step::StepMsg;

/// The decision a run waits for before it runs a repository's setup command.
pub(crate) const SETUP_INPUT: &str = "worktree_setup";
const SETUP_RUN: &str = "run";
const SETUP_SKIP: &str = "skip";

/// What the binary decides about worktrees.
#[derive(Debug, Clone)]
pub struct WorkspaceSettings {
    /// Folder holding `repos/` (fresh repositories of greenfield runs) and `worktrees/`.
    pub root: PathBuf,
    /// Folders made invisible to commands (the home folder, BotArmy's data folder); the
    /// worktrees folder is always hidden, the run's own worktree is bound back in.
    pub hidden: Vec<PathBuf>,
    /// Run commands without bubblewrap where it is not installed (the user opted in).
    pub allow_unsandboxed: bool,
    /// The host's toolchains (cargo, python, node, go) commands may use, read-only.
    pub toolchains: Toolchains,
}

impl WorkspaceSettings {
    /// Worktrees under `root`, nothing else hidden, sandbox required.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            hidden: Vec::new(),
            allow_unsandboxed: false,
            toolchains: Toolchains::none(),
        }
    }

    fn worktrees(&self) -> PathBuf {
        self.root.join("worktrees")
    }

    /// A run's sandbox for commands in `worktree`.
    pub(crate) fn sandbox(&self, worktree: &Path) -> Result<Sandbox, ErrorInfo> {
        let mut hidden = self.hidden.clone();
        // Every run's repositories and worktrees (this one's is bound back in).
        hidden.push(self.root.clone());
        Sandbox::new(
            worktree,
            hidden,
            self.toolchains.clone(),
            self.allow_unsandboxed,
        )
        .map_err(|e| ErrorInfo::new(ErrorKind::InvalidInput, e.to_string()))
    }
}

/// git in a run's worktree as BotArmy itself runs it (a step's commit, the commit of what
/// is left at the end): after checking the worktree still leads to its repository, inside
/// the sandbox like the agents' commands (hooks, filters or settings they planted run, if
/// at all, there), with hooks and fsmonitor off. Without bubblewrap (only steps without
/// tools then touched the worktree, through the file tools) git runs directly with the
/// same settings.
#[derive(Debug)]
pub(crate) struct WorktreeGit {
    sandbox: Option<Sandbox>,
    direct: Git,
}

impl WorktreeGit {
    pub fn open(settings: &WorkspaceSettings, w: &WorktreeInfo) -> Result<Self, ErrorInfo> {
        let (path, repo) = (Path::new(&w.path), Path::new(&w.repo_path));
        let gitdir = check_link(path, repo).map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Fatal,
                format!("worktree of `{}`: {e}", w.repository),
            )
        })?;
        // A git killed mid-write (the run was paused) leaves its lock; nothing else uses
        // the worktree now.
        let _ = std::fs::remove_file(gitdir.join("index.lock"));
        let sandbox = match settings.sandbox(path) {
            Ok(sandbox) => Some(sandbox.with_git(repo, &gitdir).map_err(|e| {
                ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!("cannot prepare {} for git: {e}", repo.display()),
                )
            })?),
            Err(_) => None,
        };
        Ok(Self {
            sandbox,
            direct: Git::new(path),
        })
    }

    /// The sandbox the worktree's commands run in, when there is one.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// Stages everything and commits it with `message`; the paths committed (none: there
    /// was nothing to commit, and no commit is made).
    pub async fn commit_all(&self, message: &str) -> Result<Vec<String>, String> {
        self.run(&["add", "-A"]).await?;
        let staged = self
            .run(&["diff", "--cached", "--name-only", "--no-renames", "-z"])
            .await?;
        let paths = nul_separated(&staged);
        if !paths.is_empty() {
            self.run(&["commit", "--quiet", "--no-verify", "-m", message])
                .await?;
        }
        Ok(paths)
    }

    /// Runs `git args…`; its standard output (trimmed at the end) or what went wrong.
    pub async fn run(&self, args: &[&str]) -> Result<String, String> {
        match &self.sandbox {
            Some(sandbox) => {
                let out = sandbox.git(args).await.map_err(|e| e.to_string())?;
                if out.code == Some(0) {
                    Ok(out.stdout.trim_end().to_string())
                } else {
                    Err(format!(
                        "`git {}` failed ({}): {}",
                        args.join(" "),
                        out.code
                            .map_or("stopped".to_string(), |c| format!("exit code {c}")),
                        out.stderr.trim()
                    ))
                }
            }
            None => {
                let argv = safe_git_args(args);
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                self.direct.run(&argv).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// How preparing ended.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// Every worktree is ready (`WorktreeSessionReady` was sent).
    Ready,
    /// A human must decide (`PipelineNeedsInput` was sent).
    NeedsInput,
}

/// Makes the run's worktrees, sending each event to the driver as it happens.
pub(crate) async fn prepare(
    settings: WorkspaceSettings,
    run_id: RunId,
    repositories: Vec<String>,
    state: PrepareState,
    tx: mpsc::Sender<StepMsg>,
) -> Result<Prepared, ErrorInfo> {
    let send = |event: Event| {
        let tx = tx.clone();
        async move {
            tx.send(StepMsg::Record(event))
                .await
                .map_err(|_| crate::step::cancelled())
        }
    };
    let sources = sources(&settings, run_id, &repositories)?;
    if !state.creating {
        send(Event::WorktreeSessionCreating {
            repositories: sources.iter().map(|s| s.name.clone()).collect(),
        })
        .await?;
    }
    let mut worktrees = Vec::with_capacity(sources.len());
    for source in &sources {
        let path = settings
            .worktrees()
            .join(run_id.to_string())
            .join(&source.name);
        let info = WorktreeInfo {
            repository: source.name.clone(),
            repo_path: source.path.display().to_string(),
            path: path.display().to_string(),
            branch: branch_for(&run_id.to_string()),
        };
        if !(state.made.contains(&info) && path.join(".git").exists()) {
            make_worktree(source, run_id, &path).await?;
            send(Event::WorktreeRepoCreated {
                worktree: info.clone(),
            })
            .await?;
        }
        worktrees.push(info);
    }
    let setups: Vec<(String, PathBuf, Vec<String>)> = worktrees
        .iter()
        .map(|w| {
            let path = PathBuf::from(&w.path);
            let commands = detect_setup(&path).iter().map(|c| c.display()).collect();
            (w.repository.clone(), path, commands)
        })
        .filter(|(_, _, commands): &(String, PathBuf, Vec<String>)| !commands.is_empty())
        .collect();
    if !setups.is_empty() {
        let answer = state
            .setup_answer
            .or_else(|| state.auto_approve.then(|| SETUP_RUN.to_string()));
        match answer.as_deref() {
            None => {
                let list = setups
                    .iter()
                    .map(|(repo, _, commands)| format!("{repo}: {}", commands.join(" && ")))
                    .collect::<Vec<_>>()
                    .join("; ");
                send(Event::PipelineNeedsInput {
                    kind: SETUP_INPUT.into(),
                    question: format!(
                        "run the setup of the run's repositories ({list})? `botarmy resume {run_id} --answer run` runs it, `--answer skip` goes on without it"
                    ),
                    options: vec![SETUP_RUN.into(), SETUP_SKIP.into()],
                })
                .await?;
                return Ok(Prepared::NeedsInput);
            }
            Some(SETUP_RUN) => {
                for (repository, path, commands) in &setups {
                    // Setup downloads dependencies: the network is open, the file system
                    // is confined as for any command; a longer time limit.
                    let mut sandbox = settings.sandbox(path)?;
                    sandbox.network = true;
                    sandbox.timeout = std::time::Duration::from_secs(900);
                    for command in commands {
                        send(Event::WorktreeSetupStarted {
                            repository: repository.clone(),
                            command: command.clone(),
                        })
                        .await?;
                        let output = sandbox
                            .run(command)
                            .await
                            .map_err(|e| ErrorInfo::new(ErrorKind::Fatal, e.to_string()))?;
                        let mut text = output.stdout;
                        text.push_str(&output.stderr);
                        let tail = tail(&text, 2_000);
                        send(Event::WorktreeSetupCompleted {
                            repository: repository.clone(),
                            command: command.clone(),
                            exit_code: output.code,
                            output: tail.clone(),
                        })
                        .await?;
                        if output.code != Some(0) {
                            return Err(ErrorInfo::new(
                                ErrorKind::Fatal,
                                format!(
                                    "the setup of `{repository}` failed: `{command}` ended with {}: {tail}",
                                    output
                                        .code
                                        .map_or("no exit code (stopped)".to_string(), |c| format!(
                                            "exit code {c}"
                                        ))
                                ),
                            ));
                        }
                    }
                }
            }
            Some(_) => {}
        }
    }
    send(Event::WorktreeSessionReady { worktrees }).await?;
    Ok(Prepared::Ready)
}

/// What preparing needs of the run's state.
#[derive(Debug, Clone)]
pub(crate) struct PrepareState {
    creating: bool,
    made: Vec<WorktreeInfo>,
    setup_answer: Option<String>,
    auto_approve: bool,
}

impl PrepareState {
    pub fn of(state: &RunState) -> Self {
        Self {
            creating: matches!(
                state.workspace,
                botarmy_core::engine::WorkspaceState::Creating(_)
            ),
            made: state.workspace.worktrees().to_vec(),
            setup_answer: state.answers.get(SETUP_INPUT).cloned(),
            auto_approve: state
                .request
                .as_ref()
                .is_some_and(|r| r.options.auto_approve),
        }
    }
}

/// A repository a run works in.
struct Source {
    name: String,
    path: PathBuf,
    /// A fresh repository made for the run.
    fresh: bool,
}

fn sources(
    settings: &WorkspaceSettings,
    run_id: RunId,
    repositories: &[String],
) -> Result<Vec<Source>, ErrorInfo> {
    if repositories.is_empty() {
        // The same name in every run, so prompts that mention it do not depend on the run.
        return Ok(vec![Source {
            path: settings.root.join("repos").join(run_id.to_string()),
            name: GREENFIELD.to_string(),
            fresh: true,
        }]);
    }
    let mut sources: Vec<Source> = Vec::new();
    for repo in repositories {
        let path = PathBuf::from(repo);
        if !path.join(".git").exists() {
            return Err(ErrorInfo::new(
                ErrorKind::InvalidInput,
                format!("repository `{repo}` is not a git checkout (no .git in it)"),
            ));
        }
        let base = path
            .file_name()
            .map_or_else(|| "repo".to_string(), |n| n.to_string_lossy().into_owned());
        let mut name = base.clone();
        let mut n = 2;
        while sources.iter().any(|s| s.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        sources.push(Source {
            name,
            path,
            fresh: false,
        });
    }
    Ok(sources)
}

async fn make_worktree(source: &Source, run_id: RunId, path: &Path) -> Result<(), ErrorInfo> {
    let failed = |e: botarmy_workspace::GitError| {
        ErrorInfo::new(
            ErrorKind::Fatal,
            format!("cannot make the worktree of `{}`: {e}", source.name),
        )
    };
    if source.fresh && !source.path.join(".git").exists() {
        // Made aside and moved into place, so a process stopped halfway leaves no
        // repository without its first commits.
        let io = |what: &Path, e: std::io::Error| {
            ErrorInfo::new(ErrorKind::Fatal, format!("{}: {e}", what.display()))
        };
        let aside = source.path.with_extension("making");
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|e| io(&aside, e))?;
        }
        init_repository(&aside).await.map_err(failed)?;
        std::fs::write(aside.join(".gitignore"), GITIGNORE).map_err(|e| io(&aside, e))?;
        let git = Git::new(&aside);
        git.run(&["add", ".gitignore"]).await.map_err(failed)?;
        git.run(&["commit", "--quiet", "-m", "Ignore build output (BotArmy)"])
            .await
            .map_err(failed)?;
        if source.path.exists() {
            std::fs::remove_dir_all(&source.path).map_err(|e| io(&source.path, e))?;
        }
        std::fs::rename(&aside, &source.path).map_err(|e| io(&source.path, e))?;
    }
    if path.exists() {
        // Left by a process that stopped while making it: start it again.
        let _ = Git::new(&source.path)
            .run(&["worktree", "remove", "--force", &path.display().to_string()])
            .await;
        let _ = std::fs::remove_dir_all(path);
        let _ = Git::new(&source.path).run(&["worktree", "prune"]).await;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Fatal,
                format!("cannot create {}: {e}", parent.display()),
            )
        })?;
    }
    Worktree::create(&source.path, &run_id.to_string(), path, None)
        .await
        .map_err(failed)?;
    Ok(())
}

/// The name of a greenfield run's fresh repository.
const GREENFIELD: &str = "project";

/// Build output and dependencies a fresh repository never commits.
const GITIGNORE: &str = "target/\nnode_modules/\n__pycache__/\n.pytest_cache/\n.venv/\n";

/// Commits what is left in each worktree and removes them; the folders removed.
pub(crate) async fn clean(
    settings: &WorkspaceSettings,
    worktrees: &[WorktreeInfo],
) -> Result<Vec<String>, ErrorInfo> {
    let mut removed = Vec::with_capacity(worktrees.len());
    for w in worktrees {
        let path = PathBuf::from(&w.path);
        // What is left is committed only where the worktree still leads to its repository
        // (its `.git` could have been replaced by the agents' commands); it is removed in
        // any case.
        if path.join(".git").exists()
            && let Ok(git) = WorktreeGit::open(settings, w)
        {
            let failed = |e: String| {
                ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!(
                        "cannot commit what is left in the worktree of `{}`: {e}",
                        w.repository
                    ),
                )
            };
            git.commit_all("Work left in the worktree when the run ended (BotArmy)")
                .await
                .map_err(failed)?;
        }
        // The folder goes, then git forgets it (`worktree prune` looks at its own records
        // only, nothing the worktree holds).
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| {
                ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!("cannot remove the worktree {}: {e}", path.display()),
                )
            })?;
        }
        Git::new(&w.repo_path)
            .run(&["worktree", "prune"])
            .await
            .map_err(|e| {
                ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!("cannot remove the worktree of `{}`: {e}", w.repository),
                )
            })?;
        removed.push(w.path.clone());
    }
    Ok(removed)
}

/// The tools a step's agent may use in the run's worktree: its `tools` list names built-in
/// tools, and MCP servers' tools as `mcp:<server>` or `mcp:<server>/<tool>`. An unknown
/// name is an error naming what exists.
pub(crate) fn toolbox_for(
    wanted: &[String],
    builtin: &Arc<WorktreeTools>,
    mcp: &[McpServer],
) -> Result<Toolbox, String> {
    let mut available = Toolbox::new();
    for tool in worktree_tools(Arc::clone(builtin)) {
        available.insert(tool);
    }
    let mut chosen = Toolbox::new();
    for tool in select_tools(mcp, wanted).map_err(|e| e.to_string())? {
        chosen.insert(tool);
    }
    for name in wanted.iter().filter(|n| !n.starts_with(MCP_ENTRY_PREFIX)) {
        match available.get(name) {
            Some(tool) => chosen.insert(Arc::clone(tool)),
            None => {
                return Err(format!(
                    "there is no tool `{name}`; tools are: {}",
                    available.names().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    Ok(chosen)
}

/// The last `max` bytes of `text`, on a character boundary.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// The entries of git's `-z` output.
pub(crate) fn nul_separated(text: &str) -> Vec<String> {
    text.split('\0')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}
