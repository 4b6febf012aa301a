//! The driver of one run: folds its log, performs the engine's actions, and is the only
//! writer of the run's log while it drives.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use botarmy_core::engine::{Action, RunState};
use botarmy_llm::Router;
use botarmy_protocol::{
    ArtifactId, ArtifactKind, ArtifactRef, Assessment, ErrorInfo, ErrorKind, Event, EventRecord,
    HitlDecision, LiveEvent, PlanStep, ProjectId, RunId, RunRequest, RunStatus, StepKind,
    StepStatus, UnixMillis, Usage, now_millis,
};
use botarmy_store::{AppendBatch, ArtifactBody, ProjectRecord, Store, StoreError};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::RuntimeError;
use crate::agent_loop::{DEFAULT_MAX_TURNS, StepWorkspace};
use crate::files::{absolute, prepare_out_dir, write_under};
use crate::hitl::AUTO_APPROVER;
use crate::limits::{Limits, Slots};
use crate::method::{MethodCache, MethodHandle};
use crate::step::{Produced, StepJob, StepMsg, StepOutput, execute};
use crate::worktrees::{self, PrepareState, Prepared, WorkspaceSettings, WorktreeGit};
use botarmy_core::budget::Ledger;
use botarmy_core::engine::WorkspaceState;
use botarmy_tools::{McpServer, WorktreeTools};

/// Settings of the runtime, decided once by the binary.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Folder under which each run gets `<run-id>/` unless the run names its own.
    pub out_root: PathBuf,
    /// Sampling temperature for document generation.
    pub temperature: f32,
    /// Where runs' repositories and worktrees live and how commands are confined (default:
    /// `.worktrees/` under `out_root`, sandbox required).
    pub workspace: Option<WorkspaceSettings>,
    /// How many attempts, LLM calls and tool processes may run at once in this process.
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            out_root: PathBuf::from("botarmy-out"),
            temperature: 0.7,
            workspace: None,
            limits: Limits::default(),
        }
    }
}

impl Settings {
    fn workspace(&self) -> WorkspaceSettings {
        self.workspace.clone().unwrap_or_else(|| {
            let mut settings = WorkspaceSettings::new(self.out_root.join(".worktrees"));
            // Other runs' artifacts are not the agents' to read.
            settings.hidden.push(self.out_root.clone());
            settings
        })
    }
}

/// The project a new run goes into.
#[derive(Clone, Copy)]
enum ProjectChoice<'a> {
    /// The default tenant's project of this name, created if needed.
    Named(&'a str),
    /// A project the caller resolved.
    Known(&'a ProjectRecord),
}

/// Drives runs: creates them, executes their steps through the models, and appends every
/// outcome to the store. Cheap to share (`Arc`); any number of runs may be driven at once.
pub struct Runtime {
    store: Arc<dyn Store>,
    models: Arc<Router>,
    methods: MethodCache,
    live: Arc<crate::streams::Live>,
    settings: Settings,
    /// Project ids by name, as [`Store::ensure_project`] gave them.
    projects: Mutex<HashMap<String, ProjectId>>,
    /// MCP servers whose tools agents may list (`mcp:<server>`), connected by the binary.
    mcp: Vec<McpServer>,
    /// The process's shared slots.
    slots: Slots,
}

impl Runtime {
    /// A runtime over this store and these models.
    pub fn new(store: Arc<dyn Store>, models: Arc<Router>, settings: Settings) -> Self {
        let slots = Slots::new(settings.limits);
        Self {
            slots,
            store,
            models,
            methods: MethodCache::default(),
            live: crate::streams::Live::new(4_096),
            settings,
            projects: Mutex::default(),
            mcp: Vec::new(),
        }
    }

    /// Gives agents the tools of these MCP servers (an agent lists `mcp:<server>` or
    /// `mcp:<server>/<tool>`). The runtime keeps the connections for its lifetime.
    pub fn with_mcp(mut self, servers: Vec<McpServer>) -> Self {
        self.mcp.extend(servers);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Live events of every run this runtime drives: stored events as they are appended,
    /// and streamed tokens. A slow receiver misses messages (it is told it lagged); the
    /// durable log in the store has everything.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.bus().subscribe()
    }

    /// The text that models of the run are streaming now.
    pub fn streaming(&self, run_id: RunId) -> Vec<crate::Streaming> {
        self.live.streaming(run_id)
    }

    /// [`Runtime::subscribe`], with the text that models of the run are streaming now
    /// (each of its tokens is either in this snapshot or on the receiver, never in both).
    pub fn subscribe_streaming(
        &self,
        run_id: RunId,
    ) -> (broadcast::Receiver<Arc<LiveEvent>>, Vec<crate::Streaming>) {
        self.live.subscribe(run_id)
    }

    /// How full this process's slots are: attempts of steps, LLM calls and tool processes
    /// in use, and the attempts queued for one.
    pub fn queue_depth(&self) -> crate::QueueDepth {
        self.slots.depth()
    }

    /// Loads (once) and checks the method a run names.
    pub fn method(&self, source: &str) -> Result<MethodHandle, RuntimeError> {
        self.methods.get(source)
    }

    /// Creates a run: resolves its plan, prepares its output folder and stores its first
    /// event. Nothing is stored if any of that fails. [`Runtime::drive`] starts it.
    pub async fn create_run(
        &self,
        project: &str,
        request: RunRequest,
    ) -> Result<RunId, RuntimeError> {
        self.create_run_in(ProjectChoice::Named(project), request)
            .await
    }

    /// [`Runtime::create_run`] in a project the caller has already resolved (a tenant's,
    /// found or made with [`Store::ensure_project_in`]).
    pub async fn create_run_in_project(
        &self,
        project: &ProjectRecord,
        request: RunRequest,
    ) -> Result<RunId, RuntimeError> {
        self.create_run_in(ProjectChoice::Known(project), request)
            .await
    }

    async fn create_run_in(
        &self,
        project: ProjectChoice<'_>,
        request: RunRequest,
    ) -> Result<RunId, RuntimeError> {
        let (run_id, created) = self.prepare_run(project, request).await?;
        let record = match self
            .store
            .create_run(run_id, created.event.clone(), created.at)
            .await
        {
            Ok(record) => record,
            Err(e) => return Err(self.abandon(created, e)),
        };
        let _ = self.live.bus().send(Arc::new(LiveEvent::Event(record)));
        Ok(run_id)
    }

    /// Creates a run and drives it at once, as [`Runtime::create_run`] then
    /// [`Runtime::drive`] do, except that the run is stored together with its start (one
    /// transaction instead of two, and no read of what was just written). `on_created`
    /// learns the run's id before anything else happens.
    pub async fn start_run(
        &self,
        project: &str,
        request: RunRequest,
        on_created: impl FnOnce(RunId),
        cancel: CancellationToken,
    ) -> Result<RunState, RuntimeError> {
        let (run_id, created) = self
            .prepare_run(ProjectChoice::Named(project), request)
            .await?;
        on_created(run_id);
        let state = RunState::from_events(
            run_id,
            &[EventRecord {
                run_id,
                seq: 1,
                at: created.at,
                event: created.event.clone(),
            }],
        )?;
        let mut driver = Driver::new(self, state)?;
        driver.committed = 0;
        driver.batch_at = Some(created.at);
        driver.uncreated = Some(created);
        driver.run(cancel).await
    }

    /// Everything [`Runtime::create_run`] does before storing: the plan, the output folder
    /// with its manifest, the project, and the `PipelineCreated` event.
    async fn prepare_run(
        &self,
        choice: ProjectChoice<'_>,
        mut request: RunRequest,
    ) -> Result<(RunId, Created), RuntimeError> {
        let project = match choice {
            ProjectChoice::Named(name) => name,
            ProjectChoice::Known(p) => p.name.as_str(),
        };
        let method = self.method(&request.method)?;
        let plan = method.plan(&request.workflow)?;
        let run_id = RunId::new();
        let out = match &request.options.out_dir {
            Some(dir) => absolute(Path::new(dir)),
            None => absolute(&self.settings.out_root.join(run_id.to_string())),
        };
        let manifest = serde_json::json!({
            "run_id": run_id,
            "project": project,
            "workflow": request.workflow,
            "method": request.method,
            "idea": request.idea,
        });
        prepare_out_dir(&out, &manifest).map_err(|source| RuntimeError::OutDir {
            path: out.clone(),
            source,
        })?;
        request.options.out_dir = Some(out.display().to_string());
        let resolved = match choice {
            ProjectChoice::Named(name) => self.project_id(name).await,
            ProjectChoice::Known(p) => Ok(p.id),
        };
        let project_id = match resolved {
            Ok(id) => id,
            Err(e) => {
                let _ = std::fs::remove_file(out.join("run.json"));
                return Err(e);
            }
        };
        let event = Event::PipelineCreated {
            project_id,
            request,
            plan,
        };
        Ok((
            run_id,
            Created {
                event,
                at: now_millis(),
                manifest: out.join("run.json"),
                project: project.to_owned(),
            },
        ))
    }

    /// Storing a new run failed: it does not exist, and its manifest must not say otherwise.
    /// A project deleted since it was remembered is forgotten, so the next run recreates it.
    fn abandon(&self, created: Created, error: StoreError) -> RuntimeError {
        let _ = std::fs::remove_file(&created.manifest);
        if matches!(
            error,
            StoreError::NotFound {
                what: "project",
                ..
            }
        ) {
            lock(&self.projects).remove(&created.project);
        }
        error.into()
    }

    /// The id of the project named `name`, created if needed; remembered, since every run
    /// asks.
    async fn project_id(&self, name: &str) -> Result<ProjectId, RuntimeError> {
        if let Some(id) = lock(&self.projects).get(name) {
            return Ok(*id);
        }
        let project = self.store.ensure_project(name).await?;
        lock(&self.projects).insert(name.to_owned(), project.id);
        Ok(project.id)
    }

    /// Folds a run's log into its state.
    pub async fn load(&self, run_id: RunId) -> Result<RunState, RuntimeError> {
        let records = self.store.read_events(run_id, 0, 0).await?;
        if records.is_empty() {
            return Err(StoreError::NotFound {
                what: "run",
                id: run_id.to_string(),
            }
            .into());
        }
        Ok(RunState::from_events(run_id, &records)?)
    }

    /// Drives a run that has not started (or is running in this process's care) until it
    /// ends, pauses, or waits. `cancel` pauses it: running steps are interrupted, their
    /// completed LLM calls kept, and `resume` continues.
    pub async fn drive(
        &self,
        run_id: RunId,
        cancel: CancellationToken,
    ) -> Result<RunState, RuntimeError> {
        let state = self.load(run_id).await?;
        if state.running_steps().next().is_some() {
            return Err(RuntimeError::NotResumable {
                run_id,
                status: state.status,
                hint: "it has steps that were running when it stopped; use `botarmy resume`",
            });
        }
        Driver::new(self, state)?.run(cancel).await
    }

    /// Continues a run that was interrupted (crash, Ctrl-C), paused, or waiting.
    pub async fn resume(
        &self,
        run_id: RunId,
        cancel: CancellationToken,
    ) -> Result<RunState, RuntimeError> {
        let state = self.load(run_id).await?;
        if state.status.is_terminal() {
            return Err(RuntimeError::NotResumable {
                run_id,
                status: state.status,
                hint: "it has finished; start a new run instead",
            });
        }
        let mut driver = Driver::new(self, state)?;
        if driver.state.status != RunStatus::Pending {
            let mut events = interrupt_running(&driver.state);
            events.push(Event::PipelineResumed {});
            driver.stage(events, Vec::new())?;
        }
        driver.run(cancel).await
    }

    /// Replaces a run's spending limits (to let a run waiting on its budget continue with
    /// [`Runtime::resume`]). Refused for a finished run; a run being driven elsewhere at the
    /// same moment makes this fail with [`RuntimeError::Contended`] rather than race it.
    pub async fn set_budget(
        &self,
        run_id: RunId,
        budget: botarmy_protocol::Budget,
    ) -> Result<RunState, RuntimeError> {
        self.append_outside(
            run_id,
            "it has finished; its budget no longer matters",
            |_| Ok(Event::BudgetChanged { budget }),
        )
        .await
    }

    /// Answers what a waiting run asks: an agent's question (`clarification_requested`;
    /// recorded with who answered) or a decision (`pipeline_needs_input`). The answer must
    /// be one of the question's options when it has some. [`Runtime::resume`] then
    /// continues the run.
    pub async fn answer(
        &self,
        run_id: RunId,
        answer: &str,
        by: &str,
    ) -> Result<RunState, RuntimeError> {
        self.append_outside(
            run_id,
            "it has finished; nothing waits for an answer",
            |state| {
                let problem = |problem: String| RuntimeError::Answer { run_id, problem };
                let Some(asked) = state.question() else {
                    return Err(problem("it does not wait for an answer".into()));
                };
                if let Some(gate) = asked.gate {
                    return match answer.trim() {
                        "approve" | "approved" | "yes" => Ok(Event::HitlResolved {
                            gate,
                            decision: botarmy_protocol::HitlDecision::Approved,
                            feedback: None,
                            by: by.to_owned(),
                        }),
                        _ => Err(problem(format!(
                            "it waits for approval ({}): answer `approve`, or send it back with `botarmy reject {run_id} --feedback TEXT`",
                            asked.question
                        ))),
                    };
                }
                if let Some(wrong) = botarmy_core::engine::check_answer(answer, asked.options) {
                    return Err(problem(format!(
                        "{wrong} to \"{}\"; expected one of: {}",
                        asked.question,
                        asked.options.join(", ")
                    )));
                }
                Ok(match asked.asker {
                    None => Event::InputProvided {
                        kind: asked.kind.to_owned(),
                        answer: answer.to_owned(),
                    },
                    Some(asker) => Event::ClarificationAnswered {
                        step: asker.step,
                        call: asker.call,
                        answer: answer.to_owned(),
                        by: by.to_owned(),
                    },
                })
            },
        )
        .await
    }

    /// Cancels a run for good: appends `PipelineCancelled` (steps still marked running are
    /// interrupted by it). Pause a run this process drives first (its `cancel` token); a
    /// run being driven elsewhere at the same moment makes this fail with
    /// [`RuntimeError::Contended`], and its driver stops at its next append. Refused for a
    /// finished run.
    pub async fn cancel(&self, run_id: RunId, reason: &str) -> Result<RunState, RuntimeError> {
        self.append_outside(
            run_id,
            "it has finished; there is nothing to cancel",
            |_| {
                Ok(Event::PipelineCancelled {
                    reason: reason.to_owned(),
                })
            },
        )
        .await
    }

    /// Appends one event to a run that no driver of this call holds (a change made from
    /// outside: a budget, an answer, a cancellation), checked against the engine first.
    pub(crate) async fn append_outside(
        &self,
        run_id: RunId,
        finished_hint: &'static str,
        event: impl FnOnce(&RunState) -> Result<Event, RuntimeError>,
    ) -> Result<RunState, RuntimeError> {
        self.append_all_outside(run_id, finished_hint, |state| Ok(vec![event(state)?]))
            .await
    }

    /// [`Runtime::append_outside`] for several events, stored in one transaction.
    pub(crate) async fn append_all_outside(
        &self,
        run_id: RunId,
        finished_hint: &'static str,
        events: impl FnOnce(&RunState) -> Result<Vec<Event>, RuntimeError>,
    ) -> Result<RunState, RuntimeError> {
        self.append_batch_outside(run_id, finished_hint, |state| {
            Ok(AppendBatch {
                events: events(state)?,
                artifacts: Vec::new(),
            })
        })
        .await
    }

    /// [`Runtime::append_outside`] for a batch of events with artifact contents.
    pub(crate) async fn append_batch_outside(
        &self,
        run_id: RunId,
        finished_hint: &'static str,
        batch: impl FnOnce(&RunState) -> Result<AppendBatch, RuntimeError>,
    ) -> Result<RunState, RuntimeError> {
        let mut state = self.load(run_id).await?;
        if state.status.is_terminal() {
            return Err(RuntimeError::NotResumable {
                run_id,
                status: state.status,
                hint: finished_hint,
            });
        }
        let batch = batch(&state)?;
        let before = state.last_seq;
        let at = now_millis();
        for event in &batch.events {
            state.apply_event(at, event)?;
        }
        let records = self
            .store
            .append(run_id, before, at, batch)
            .await
            .map_err(|e| appending(run_id, e))?;
        for record in records {
            let _ = self.live.bus().send(Arc::new(LiveEvent::Event(record)));
        }
        Ok(state)
    }

    /// The folder a run writes its artifacts to.
    pub fn out_dir(&self, state: &RunState) -> PathBuf {
        state
            .request
            .as_ref()
            .and_then(|r| r.options.out_dir.as_deref())
            .map(PathBuf::from)
            .unwrap_or_else(|| self.settings.out_root.join(state.run_id.to_string()))
    }
}

/// An append's failure: a log that moved on means another process drives the run.
fn appending(run_id: RunId, error: StoreError) -> RuntimeError {
    match error {
        StoreError::Conflict { .. } => RuntimeError::Contended { run_id },
        other => RuntimeError::Store(other),
    }
}

/// A run's `PipelineCreated` event, made but not yet stored.
struct Created {
    event: Event,
    at: UnixMillis,
    /// The manifest written in the run's output folder.
    manifest: PathBuf,
    /// The project's name.
    project: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `StepInterrupted` for every step the state shows running: nothing executes them any more
/// (the process that did stopped, or is pausing the run).
fn interrupt_running(state: &RunState) -> Vec<Event> {
    state
        .running_steps()
        .map(|step| Event::StepInterrupted {
            step,
            attempt: state.steps[step as usize].attempt,
        })
        .collect()
}

/// Drives one run. Events are *staged* (checked against the engine and folded into the
/// state at once) and *flushed* to the store in one transaction whenever the driver is about
/// to wait, so what happens in one instant (a step's last LLM call, its artifacts, its
/// completion and the start of the next step) commits together.
struct Driver<'a> {
    rt: &'a Runtime,
    state: RunState,
    request: RunRequest,
    method: MethodHandle,
    out_dir: PathBuf,
    /// The attempts under way, polled by the driver itself: a step that finishes at once
    /// (an answer reused from the log, a skipped condition, a fast model) is seen without a
    /// thread hop and shares the next commit; a slow one waits on its model, not on us.
    /// (In a `Mutex` only to make the driver `Sync`, as its `&self` methods are held across
    /// awaits; it is reached through `get_mut`, never locked.)
    steps: Mutex<FuturesUnordered<StepFuture>>,
    in_flight: HashMap<u32, u32>,
    tx: mpsc::Sender<StepMsg>,
    rx: mpsc::Receiver<StepMsg>,
    /// Last sequence number known to be in the store.
    committed: u64,
    /// The run's `PipelineCreated` event when the run is not stored yet: the first flush
    /// creates it ([`Runtime::start_run`]).
    uncreated: Option<Created>,
    /// The time of the staged batch: every event of a batch is stored with one time, and
    /// the state folds them with that same time, so it equals a fold of the stored log.
    batch_at: Option<UnixMillis>,
    /// Events staged but not yet in the store, with the artifact bodies they reference.
    pending: AppendBatch,
    /// The run's spending limits and what it spent.
    ledger: Arc<Ledger>,
    /// Contents of the artifacts this driver produced, so later steps read them without a
    /// round trip (and before they are flushed).
    produced: HashMap<ArtifactId, String>,
    /// Whether the run's worktrees are being made (by a future among `steps`).
    preparing: bool,
    /// The built-in tools of the run's worktree, once it is ready and an agent calls tools.
    worktree_tools: Option<Arc<WorktreeTools>>,
}

/// The input that carries what earlier conflict checks settled into later steps.
const SETTLED_CONFLICTS: &str = "settled-conflicts.md";

/// One attempt of a step, as the driver polls it.
type StepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl<'a> Driver<'a> {
    fn steps(&mut self) -> &mut FuturesUnordered<StepFuture> {
        self.steps
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn new(rt: &'a Runtime, state: RunState) -> Result<Self, RuntimeError> {
        let request = state.request.clone().ok_or_else(|| RuntimeError::Method {
            source_name: "log".into(),
            message: format!("run {} has no PipelineCreated event", state.run_id),
        })?;
        let method = rt.method(&request.method)?;
        let out_dir = rt.out_dir(&state);
        let (tx, rx) = mpsc::channel(64);
        let committed = state.last_seq;
        let ledger = Arc::new(Ledger::new(&state));
        Ok(Self {
            ledger,
            rt,
            state,
            request,
            method,
            out_dir,
            steps: Mutex::new(FuturesUnordered::new()),
            in_flight: HashMap::new(),
            tx,
            rx,
            committed,
            uncreated: None,
            batch_at: None,
            pending: AppendBatch::default(),
            produced: HashMap::new(),
            preparing: false,
            worktree_tools: None,
        })
    }

    async fn run(mut self, cancel: CancellationToken) -> Result<RunState, RuntimeError> {
        let result = self.run_inner(&cancel).await;
        // Dropping an attempt cancels it (the run ended, failed or paused).
        self.steps().clear();
        result.map(|()| self.state)
    }

    async fn run_inner(&mut self, cancel: &CancellationToken) -> Result<(), RuntimeError> {
        loop {
            let actions = self.state.next_actions();
            let mut acted = false;
            for action in actions {
                acted |= self.perform(action).await?;
            }
            if acted {
                continue;
            }
            // Take whatever the steps have already reported before committing.
            if let Ok(msg) = self.rx.try_recv() {
                self.handle(msg).await?;
                continue;
            }
            // Before committing, let the steps run as far as they can without waiting: one
            // that finishes at once reports now and shares this commit.
            if let Some(Some(())) = self.steps().next().now_or_never() {
                continue;
            }
            self.flush().await?;
            if self.in_flight.is_empty() && !self.preparing {
                return Ok(());
            }
            let steps = self
                .steps
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tokio::select! {
                msg = self.rx.recv() => {
                    // The driver holds a sender, so the channel cannot close while it runs.
                    if let Some(msg) = msg {
                        self.handle(msg).await?;
                    }
                }
                // Drives the attempts; what they report arrives on the channel.
                Some(()) = steps.next(), if !steps.is_empty() => {}
                () = cancel.cancelled() => return self.pause("interrupted by the user").await,
            }
        }
    }

    /// Stops the running steps, keeps everything they finished, and pauses the run.
    async fn pause(&mut self, reason: &str) -> Result<(), RuntimeError> {
        self.steps().clear();
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(msg).await?;
        }
        let mut events = interrupt_running(&self.state);
        events.push(Event::PipelinePaused {
            reason: format!(
                "{reason}; `botarmy resume {}` continues it",
                self.state.run_id
            ),
        });
        self.in_flight.clear();
        self.preparing = false;
        self.stage(events, Vec::new())?;
        self.flush().await
    }

    /// Performs an action; `false` when it was already under way (nothing happened).
    async fn perform(&mut self, action: Action) -> Result<bool, RuntimeError> {
        match action {
            Action::PrepareWorkspace { repositories, .. } => {
                if self.preparing {
                    return Ok(false);
                }
                self.preparing = true;
                let job = worktrees::prepare(
                    self.rt.settings.workspace(),
                    self.state.run_id,
                    repositories,
                    PrepareState::of(&self.state),
                    self.tx.clone(),
                );
                let tx = self.tx.clone();
                self.steps().push(Box::pin(async move {
                    let outcome = job.await;
                    let _ = tx.send(StepMsg::Prepared(outcome)).await;
                }));
                return Ok(true);
            }
            // The run is about to end, but its worktrees are still being made: let that
            // finish first (its events must land before the end).
            Action::CleanWorkspace { .. } | Action::CompleteRun { .. } | Action::FailRun { .. }
                if self.preparing =>
            {
                return Ok(false);
            }
            Action::CleanWorkspace { worktrees } => {
                // Nothing else runs now: the run is about to end.
                self.flush().await?;
                let event = match worktrees::clean(&self.rt.settings.workspace(), &worktrees).await
                {
                    Ok(removed) => Event::WorktreeSessionCleaned { removed },
                    Err(error) => Event::PipelineFailed { error, step: None },
                };
                self.worktree_tools = None;
                self.stage(vec![event], Vec::new())?;
                return Ok(true);
            }
            other => self.perform_step_action(other).await?,
        }
        Ok(true)
    }

    async fn perform_step_action(&mut self, action: Action) -> Result<(), RuntimeError> {
        match action {
            Action::PrepareWorkspace { .. } | Action::CleanWorkspace { .. } => Ok(()),
            Action::StartRun => {
                let plan = self.state.plan.as_ref();
                let event = Event::PipelineStarted {
                    cycle_type: plan.map(|p| p.cycle_type.clone()).unwrap_or_default(),
                    workflow: plan.map(|p| p.workflow_id.clone()).unwrap_or_default(),
                };
                self.stage(vec![event], Vec::new())
            }
            Action::StartStep {
                step,
                attempt,
                resume,
            } => self.start_step(step, attempt, resume).await,
            Action::SkipStep { step, reason } => {
                self.stage(vec![Event::StepSkipped { step, reason }], Vec::new())
            }
            Action::CompleteRun { usage } => {
                let duration_ms = self
                    .state
                    .started_at
                    .map_or(0, |started| (now_millis() - started).max(0) as u64);
                self.stage(
                    vec![Event::PipelineCompleted { usage, duration_ms }],
                    Vec::new(),
                )
            }
            Action::FailRun { error, step } => {
                self.stage(vec![Event::PipelineFailed { error, step }], Vec::new())
            }
            Action::RequestApproval {
                gate,
                title,
                steps,
                reasons,
                confidence,
                quality,
            } => {
                let mut events = vec![Event::HitlRequested {
                    gate,
                    kind: "approval".into(),
                    title,
                    steps,
                    reasons,
                    confidence,
                    quality,
                }];
                // `--yes`: approved on the spot, and the log says so.
                if self.request.options.auto_approve {
                    events.push(Event::HitlResolved {
                        gate,
                        decision: HitlDecision::Approved,
                        feedback: None,
                        by: AUTO_APPROVER.into(),
                    });
                }
                self.stage(events, Vec::new())
            }
        }
    }

    async fn start_step(
        &mut self,
        step: u32,
        attempt: u32,
        resume: bool,
    ) -> Result<(), RuntimeError> {
        let Some(plan_step) = self
            .state
            .plan
            .as_ref()
            .and_then(|p| p.steps.get(step as usize))
            .cloned()
        else {
            return Ok(());
        };
        let agent = plan_step.agent.clone();
        let plan_step_max_turns = plan_step.max_turns.unwrap_or(DEFAULT_MAX_TURNS).max(1);
        self.stage(
            vec![Event::StepStarted {
                step,
                attempt,
                agent: agent.clone(),
            }],
            Vec::new(),
        )?;
        let inputs = self.inputs_for(&plan_step).await?;
        let conflicts = self.conflicts_known(step, &plan_step).await?;
        let model = self.rt.models.route(&agent).model.clone();
        let tool_calling = self.rt.models.supports_tools(&agent);
        let workspace = match self.step_workspace(&plan_step, tool_calling) {
            Ok(ws) => ws,
            Err(error) => {
                return self.stage(
                    vec![Event::StepFailed {
                        step,
                        attempt,
                        error,
                    }],
                    Vec::new(),
                );
            }
        };
        let job = StepJob {
            run_id: self.state.run_id,
            step,
            attempt,
            plan_step,
            idea: self.request.idea.clone(),
            method: self.method.clone(),
            recorded: self.state.steps[step as usize].calls.clone(),
            recorded_tools: self.state.steps[step as usize].tool_calls.clone(),
            answers: self.state.steps[step as usize].answers.clone(),
            feedback: self.state.steps[step as usize].feedback.clone(),
            conflicts,
            gate: self.state.plan.as_ref().and_then(|plan| {
                let g = plan.gates.iter().position(|g| g.steps.contains(&step))?;
                Some(plan.gate_policy(g, &self.request.options))
            }),
            workspace,
            tool_calling,
            max_turns: plan_step_max_turns,
            // A new attempt after a failed one starts from the branch's last commit, not
            // from what the failed one left.
            discard_changes: attempt > 1 && !resume,
            slots: self.rt.slots.clone(),
            inputs,
            options: self.request.options.clone(),
            models: Arc::clone(&self.rt.models),
            model,
            ledger: Arc::clone(&self.ledger),
            temperature: self.rt.settings.temperature,
            live: Arc::clone(&self.rt.live),
            tx: self.tx.clone(),
        };
        self.in_flight.insert(step, attempt);
        self.steps().push(Box::pin(execute(job)));
        Ok(())
    }

    /// The worktree a step works in, with the tools its agent may call there (only when
    /// its model calls tools; otherwise the files of its answer are written there).
    fn step_workspace(
        &mut self,
        plan_step: &PlanStep,
        tool_calling: bool,
    ) -> Result<Option<Arc<StepWorkspace>>, ErrorInfo> {
        if !plan_step.needs_worktree() {
            return Ok(None);
        }
        let WorkspaceState::Ready(worktrees) = &self.state.workspace else {
            return Ok(None);
        };
        let Some(worktree) = worktrees.first().cloned() else {
            return Ok(None);
        };
        let settings = self.rt.settings.workspace();
        let git = WorktreeGit::open(&settings, &worktree)?;
        let mut tools = botarmy_tools::Toolbox::new();
        if tool_calling && !plan_step.tools.is_empty() {
            let builtin = match &self.worktree_tools {
                Some(t) => Arc::clone(t),
                None => {
                    // Commands need the sandbox (or the user's opt-out of it).
                    let sandbox = match git.sandbox() {
                        Some(sandbox) => sandbox.clone(),
                        None => settings.sandbox(Path::new(&worktree.path))?,
                    };
                    let t = Arc::new(
                        WorktreeTools::new(&worktree.path, sandbox)
                            .with_repository(&worktree.repo_path),
                    );
                    self.worktree_tools = Some(Arc::clone(&t));
                    t
                }
            };
            tools = worktrees::toolbox_for(&plan_step.tools, &builtin, &self.rt.mcp).map_err(
                |problem| {
                    ErrorInfo::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "step `{}` (agent `{}`): {problem}",
                            plan_step.key, plan_step.agent
                        ),
                    )
                },
            )?;
        }
        Ok(Some(Arc::new(StepWorkspace::new(worktree, tools, git))))
    }

    /// The contents of the artifacts a step reads: those it names, or (when it names none
    /// that exist, as BMAD's `all_artifacts_in_project` does) every document so far.
    /// What a conflict check needs besides its inputs: its conflicts the log holds, the
    /// authors of the documents it compares, and the project's settled conflicts (nothing
    /// for other steps).
    async fn conflicts_known(
        &self,
        step: u32,
        plan_step: &PlanStep,
    ) -> Result<crate::conflicts::Known, RuntimeError> {
        if plan_step.kind != StepKind::ConflictCheck {
            return Ok(crate::conflicts::Known::default());
        }
        let plan_steps = self.state.plan.as_ref().map_or(&[][..], |p| &p.steps[..]);
        let authors = plan_step
            .requires
            .iter()
            .filter_map(|name| {
                let author = plan_steps
                    .iter()
                    .find(|s| s.creates.as_deref() == Some(name.as_str()))?;
                Some((
                    name.clone(),
                    author.agent.clone(),
                    author.phase == plan_step.phase,
                ))
            })
            .collect();
        let settled = match self.state.project_id {
            Some(project) => self.rt.store.settled_conflicts(project).await?,
            None => Vec::new(),
        };
        Ok(crate::conflicts::Known {
            found: self.state.steps[step as usize].conflicts.clone(),
            authors,
            settled: Arc::new(settled),
        })
    }

    async fn inputs_for(
        &self,
        plan_step: &PlanStep,
    ) -> Result<Vec<(String, String)>, RuntimeError> {
        let mut chosen: Vec<&ArtifactRef> = plan_step
            .requires
            .iter()
            .filter_map(|name| self.state.artifacts.get(name))
            .collect();
        if chosen.is_empty() && !plan_step.requires.is_empty() {
            chosen = self
                .state
                .artifacts
                .values()
                .filter(|a| a.kind == ArtifactKind::Document)
                .collect();
        }
        let mut inputs = Vec::with_capacity(chosen.len());
        for artifact in chosen {
            let content = match self.produced.get(&artifact.id) {
                Some(text) => text.clone(),
                None => {
                    String::from_utf8_lossy(&self.rt.store.artifact_content(artifact.id).await?)
                        .into_owned()
                }
            };
            inputs.push((artifact.name.clone(), content));
        }
        // What earlier conflict checks settled holds over the documents they compared.
        if plan_step.kind == StepKind::Work {
            let settled = self.state.settled_conflicts();
            if !settled.is_empty() {
                inputs.push((
                    SETTLED_CONFLICTS.to_owned(),
                    botarmy_core::conflict::settled_context(&settled),
                ));
            }
        }
        Ok(inputs)
    }

    async fn handle(&mut self, msg: StepMsg) -> Result<(), RuntimeError> {
        match msg {
            StepMsg::Record(event) => {
                let live = match event.step() {
                    Some(s) => self.in_flight.contains_key(&s),
                    // Events of the worktree session, while it is being made.
                    None => self.preparing,
                };
                if live {
                    self.stage(vec![event], Vec::new())?;
                }
                Ok(())
            }
            StepMsg::Prepared(outcome) => {
                if !std::mem::replace(&mut self.preparing, false) {
                    return Ok(());
                }
                match outcome {
                    Ok(Prepared::Ready | Prepared::NeedsInput) => Ok(()),
                    Err(error) => {
                        // Steps that work without the worktree stop too: the run has failed.
                        self.steps().clear();
                        self.in_flight.clear();
                        let mut events = interrupt_running(&self.state);
                        // What was made of the worktrees goes (the run ends here).
                        let made = self.state.workspace.worktrees().to_vec();
                        if !made.is_empty() {
                            let settings = self.rt.settings.workspace();
                            if let Ok(removed) = worktrees::clean(&settings, &made).await {
                                events.push(Event::WorktreeSessionCleaned { removed });
                            }
                        }
                        events.push(Event::PipelineFailed {
                            error: ErrorInfo::new(
                                error.kind,
                                format!("the run's worktrees could not be made: {}", error.message),
                            ),
                            step: None,
                        });
                        self.stage(events, Vec::new())
                    }
                }
            }
            StepMsg::Done {
                step,
                attempt,
                records,
                outcome,
                duration_ms,
            } => {
                if self.in_flight.get(&step) != Some(&attempt) {
                    return Ok(());
                }
                self.stage(records, Vec::new())?;
                self.in_flight.remove(&step);
                match outcome {
                    Ok(StepOutput::Produced(produced, assessment)) => {
                        self.complete(step, attempt, produced, assessment, duration_ms)
                    }
                    Ok(StepOutput::Skipped(reason)) => {
                        self.stage(vec![Event::StepSkipped { step, reason }], Vec::new())
                    }
                    // A question for a human (recorded already): the step stops where it
                    // is; the answer continues it.
                    Err(error) if error.kind == ErrorKind::NeedsInput => {
                        self.stage(vec![Event::StepInterrupted { step, attempt }], Vec::new())
                    }
                    // Over budget: the step stops where it is (its finished calls are kept)
                    // and the run waits for a larger budget.
                    Err(error) if error.kind == ErrorKind::Budget => {
                        let mut events = vec![Event::StepInterrupted { step, attempt }];
                        if self.state.status == RunStatus::Running {
                            events.push(Event::PipelineWaiting {
                                reason: format!(
                                    "budget: {}; raise it to continue (`botarmy resume {} --budget-usd N` or `--budget-tokens N`)",
                                    error.message, self.state.run_id
                                ),
                            });
                        }
                        self.stage(events, Vec::new())
                    }
                    Err(error) => self.stage(
                        vec![Event::StepFailed {
                            step,
                            attempt,
                            error,
                        }],
                        Vec::new(),
                    ),
                }
            }
        }
    }

    fn complete(
        &mut self,
        step: u32,
        attempt: u32,
        produced: Vec<Produced>,
        assessment: Option<Assessment>,
        duration_ms: u64,
    ) -> Result<(), RuntimeError> {
        let mut events = Vec::with_capacity(produced.len() + 1);
        let mut bodies = Vec::with_capacity(produced.len());
        for item in produced {
            if let Err(source) = write_under(&self.out_dir, &item.name, item.content.as_bytes()) {
                let error = ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!(
                        "cannot write {}: {source}",
                        self.out_dir.join(&item.name).display()
                    ),
                );
                return self.stage(
                    vec![Event::StepFailed {
                        step,
                        attempt,
                        error,
                    }],
                    Vec::new(),
                );
            }
            let version = self
                .state
                .artifacts
                .get(&item.name)
                .map_or(1, |a| a.version + 1);
            let id = ArtifactId::new();
            let sha256 = hex::encode(Sha256::digest(item.content.as_bytes()));
            events.push(Event::ArtifactCreated {
                step,
                artifact: ArtifactRef {
                    id,
                    name: item.name,
                    kind: item.kind,
                    version,
                    sha256,
                    bytes: item.content.len() as u64,
                },
            });
            bodies.push(ArtifactBody {
                id,
                content: item.content.as_bytes().to_vec(),
            });
            self.produced.insert(id, item.content);
        }
        let mut usage = Usage::default();
        for call in &self.state.steps[step as usize].calls {
            usage += call.usage;
            usage.calls += 1;
        }
        events.push(Event::StepCompleted {
            step,
            attempt,
            usage,
            duration_ms,
            assessment,
        });
        self.stage(events, bodies)
    }

    /// Checks events against the engine and folds them into the state; they reach the
    /// store at the next [`Driver::flush`]. An event the engine rejects is a bug of the
    /// driver: it ends the drive (the events staged so far are not stored; the state they
    /// were folded into is dropped with the driver).
    fn stage(
        &mut self,
        events: Vec<Event>,
        artifacts: Vec<ArtifactBody>,
    ) -> Result<(), RuntimeError> {
        let at = *self.batch_at.get_or_insert_with(now_millis);
        for event in &events {
            self.state.apply_event(at, event)?;
        }
        self.pending.events.extend(events);
        self.pending.artifacts.extend(artifacts);
        for (step, s) in self.state.steps.iter().enumerate() {
            if s.status != StepStatus::Running {
                self.in_flight.remove(&(step as u32));
            }
        }
        Ok(())
    }

    /// Appends the staged events in one transaction and tells live watchers.
    async fn flush(&mut self) -> Result<(), RuntimeError> {
        if self.pending.events.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let at = self.batch_at.take().unwrap_or_else(now_millis);
        let run_id = self.state.run_id;
        let stored = match self.uncreated.take() {
            Some(created) => {
                let event = created.event.clone();
                match self
                    .rt
                    .store
                    .create_run_with(run_id, event, batch, at)
                    .await
                {
                    Ok(records) => Ok(records),
                    Err(e) => return Err(self.rt.abandon(created, e)),
                }
            }
            None => {
                self.rt
                    .store
                    .append(run_id, self.committed, at, batch)
                    .await
            }
        };
        let records = stored.map_err(|e| appending(run_id, e))?;
        if let Some(last) = records.last() {
            self.committed = last.seq;
        }
        for record in records {
            let _ = self.rt.live.bus().send(Arc::new(LiveEvent::Event(record)));
        }
        Ok(())
    }
}
