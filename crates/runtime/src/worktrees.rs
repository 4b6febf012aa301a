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
    Git, Sandbox, Toolchains, Worktree, branch_for, detect_setup, init_repository,
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
        hidden.push(self.worktrees());
        Sandbox::new(
            worktree,
            hidden,
            self.toolchains.clone(),
            self.allow_unsandboxed,
        )
        .map_err(|e| ErrorInfo::new(ErrorKind::InvalidInput, e.to_string()))
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
        init_repository(&source.path).await.map_err(failed)?;
        std::fs::write(source.path.join(".gitignore"), GITIGNORE).map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Fatal,
                format!(
                    "cannot write {}: {e}",
                    source.path.join(".gitignore").display()
                ),
            )
        })?;
        let git = Git::new(&source.path);
        git.run(&["add", ".gitignore"]).await.map_err(failed)?;
        git.run(&["commit", "--quiet", "-m", "Ignore build output (BotArmy)"])
            .await
            .map_err(failed)?;
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
pub(crate) async fn clean(worktrees: &[WorktreeInfo]) -> Result<Vec<String>, ErrorInfo> {
    let mut removed = Vec::with_capacity(worktrees.len());
    for w in worktrees {
        let path = PathBuf::from(&w.path);
        if path.join(".git").exists() {
            let git = Git::new(&path);
            let failed = |e: botarmy_workspace::GitError| {
                ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!("cannot clean the worktree of `{}`: {e}", w.repository),
                )
            };
            git.run(&["add", "-A"]).await.map_err(failed)?;
            let staged = git
                .run(&["diff", "--cached", "--name-only"])
                .await
                .map_err(failed)?;
            if !staged.is_empty() {
                git.run(&[
                    "commit",
                    "--quiet",
                    "--no-verify",
                    "-m",
                    "Work left in the worktree when the run ended (BotArmy)",
                ])
                .await
                .map_err(failed)?;
            }
            let tree = Worktree {
                repo: PathBuf::from(&w.repo_path),
                path: path.clone(),
                branch: w.branch.clone(),
            };
            tree.remove().await.map_err(failed)?;
        }
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
