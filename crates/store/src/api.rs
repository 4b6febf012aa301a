use std::time::Duration;

use async_trait::async_trait;
use botarmy_protocol::{
    ArtifactId, ArtifactRef, Event, EventRecord, ProjectId, RunId, RunStatus, SessionId,
    StepStatus, UnixMillis, Usage,
};
use serde::{Deserialize, Serialize};

use crate::{ModelStats, ProjectUsage, StatsFilter, StoreTotals, UsageRow};

/// Errors of a store, by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{what} `{id}` not found")]
    NotFound {
        /// Kind of thing (`run`, `artifact`, `project`).
        what: &'static str,
        /// The id or prefix looked up.
        id: String,
    },
    /// Something with this unique name exists already (a registered repository).
    #[error("{what} `{id}` already exists")]
    AlreadyExists {
        /// Kind of thing (`repository`).
        what: &'static str,
        /// The name taken.
        id: String,
    },
    /// A run id prefix matches more than one run.
    #[error("run id prefix `{prefix}` is ambiguous: it matches {count} runs; give more characters")]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// How many runs match.
        count: usize,
    },
    /// Someone else appended to the run's log first (optimistic concurrency).
    #[error("run {run_id}: expected the log to end at {expected}, but it ends at {actual}")]
    Conflict {
        /// The run.
        run_id: RunId,
        /// The sequence number the caller believed was last.
        expected: u64,
        /// The actual last sequence number.
        actual: u64,
    },
    /// The request itself is malformed: a batch whose `ArtifactCreated` event has no body,
    /// an event about a step that is not in the run's plan, a `PipelineCreated` event
    /// appended to an existing run, a run id prefix that is not hex. A bug of the caller;
    /// nothing was written.
    #[error("invalid request: {detail}")]
    InvalidInput {
        /// What is wrong, naming the event or field.
        detail: String,
    },
    /// The database is locked by another process for longer than the busy timeout.
    #[error("the database {location} is locked by another process; try again when it is done")]
    Locked {
        /// Path or URL (without credentials).
        location: String,
    },
    /// The database file is not a BotArmy database or is damaged.
    #[error("the database {location} is unreadable: {detail}")]
    Corrupt {
        /// Path or URL (without credentials).
        location: String,
        /// What the database engine reported.
        detail: String,
    },
    /// The database URL is not one we understand.
    #[error("DATABASE_URL `{url}` is not supported: {reason}")]
    BadUrl {
        /// The URL, with any password removed.
        url: String,
        /// What was expected.
        reason: String,
    },
    /// The database schema is newer than this binary.
    #[error(
        "the database {location} has schema version {found}, newer than this botarmy ({supported}); upgrade botarmy"
    )]
    SchemaTooNew {
        /// Path or URL (without credentials).
        location: String,
        /// Version in the database.
        found: i64,
        /// Highest version this binary knows.
        supported: i64,
    },
    /// Could not connect or open.
    #[error("cannot open the database {location}: {source}")]
    Open {
        /// Path or URL (without credentials).
        location: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other database failure.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The thing cannot be deleted now because of its runs: runs that are not finished
    /// (cancel them first), or finished runs that go with it only when asked to. Nothing
    /// was deleted.
    #[error("{what} `{id}` {reason}")]
    InUse {
        /// Kind of thing (`run`, `project`).
        what: &'static str,
        /// Its id.
        id: String,
        /// Why, naming the runs in the way.
        reason: String,
        /// The runs in the way.
        runs: Vec<RunId>,
    },
    /// A stored event could not be decoded (written by a newer or broken binary).
    #[error("run {run_id} event {seq} cannot be decoded: {detail}")]
    Decode {
        /// The run.
        run_id: RunId,
        /// The sequence number.
        seq: u64,
        /// What was wrong.
        detail: String,
    },
}

/// The tenant of everything made without one: runs started by the CLI, projects that
/// existed before tenants, every request of a server without authentication.
pub const DEFAULT_TENANT: &str = "default";

/// Longest tenant name accepted.
pub const MAX_TENANT: usize = 128;

/// Checks a tenant name: 1 to [`MAX_TENANT`] characters, no control characters or spaces.
/// The error says what is wrong.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() {
        return Err("must not be empty".into());
    }
    if tenant.chars().count() > MAX_TENANT {
        return Err(format!("must be at most {MAX_TENANT} characters"));
    }
    if let Some(bad) = tenant.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "must not contain spaces or control characters, found {bad:?}"
        ));
    }
    Ok(())
}

/// A project: runs belong to one, and it belongs to a tenant. Runs, their events and
/// artifacts reach their tenant through their project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// Id.
    pub id: ProjectId,
    /// The tenant that owns it.
    pub tenant: String,
    /// Name, unique within its tenant.
    pub name: String,
    /// `active` or `archived`.
    pub status: String,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// What may change of a project; a field left `None` stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectChange {
    /// A new name, unique within the project's tenant.
    pub name: Option<String>,
    /// A new status: one of [`PROJECT_STATUSES`].
    pub status: Option<String>,
}

/// The statuses a project may have.
pub const PROJECT_STATUSES: [&str; 2] = ["active", "archived"];

/// What [`Store::delete_project_in`] deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedProject {
    /// The project as it was.
    pub project: ProjectRecord,
    /// Its runs, deleted with it (with their events, steps, artifacts and LLM calls).
    pub runs: Vec<RunId>,
}

/// A repository registered with BotArmy: runs name it to work in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryRecord {
    /// Unique name (see [`check_repository_name`]).
    pub name: String,
    /// Where it came from, as registered: a URL, or the checkout's folder.
    pub location: String,
    /// The local checkout BotArmy uses (absolute).
    pub path: String,
    /// When it was registered.
    pub added_at: UnixMillis,
}

/// Longest repository name accepted.
pub const MAX_REPOSITORY_NAME: usize = 100;

/// Checks a repository name: 1 to [`MAX_REPOSITORY_NAME`] characters of `A-Z a-z 0-9 . _ -`,
/// not `.` or `..` (it names a folder). The error says what is wrong.
pub fn check_repository_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_REPOSITORY_NAME {
        return Err(format!(
            "must be at most {MAX_REPOSITORY_NAME} characters, not {}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "may only contain letters, digits, `.`, `_` and `-`, not {bad:?}"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("must not be `{name}`"));
    }
    Ok(())
}

/// The body of an artifact version, stored beside its `ArtifactCreated` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactBody {
    /// Must equal the `artifact.id` of an `ArtifactCreated` event in the same batch.
    pub id: ArtifactId,
    /// The content.
    pub content: Vec<u8>,
}

/// Events to append in one transaction, with the artifact contents they reference.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    /// Events, in order.
    pub events: Vec<Event>,
    /// Contents of the artifacts created by `ArtifactCreated` events of this batch.
    pub artifacts: Vec<ArtifactBody>,
}

/// Filters for [`Store::list_runs`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs of this tenant's projects.
    pub tenant: Option<String>,
    /// Only runs of this project.
    pub project: Option<ProjectId>,
    /// Only runs in this state.
    pub status: Option<RunStatus>,
    /// At most this many, newest first (0: no limit).
    pub limit: u32,
    /// Skip this many.
    pub offset: u32,
}

/// One row of the runs table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Id.
    pub id: RunId,
    /// Project.
    pub project_id: ProjectId,
    /// Workflow id.
    pub workflow: String,
    /// The idea, as given.
    pub idea: String,
    /// Current state.
    pub status: RunStatus,
    /// Creation time.
    pub created_at: UnixMillis,
    /// When execution began.
    pub started_at: Option<UnixMillis>,
    /// When it reached a terminal state.
    pub finished_at: Option<UnixMillis>,
    /// Last sequence number of its log.
    pub last_seq: u64,
    /// Totals of all LLM calls.
    pub usage: Usage,
    /// The failure message, for failed runs.
    pub error: Option<String>,
}

/// One step of a run, as the projection keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Index in the plan.
    pub step: u32,
    /// Plan key.
    pub key: String,
    /// Title.
    pub title: String,
    /// Phase, if any.
    pub phase: Option<String>,
    /// Agent id.
    pub agent: String,
    /// Current state.
    pub status: StepStatus,
    /// Latest attempt number (0: never started).
    pub attempt: u32,
    /// Start of the latest attempt.
    pub started_at: Option<UnixMillis>,
    /// End of the latest attempt.
    pub finished_at: Option<UnixMillis>,
    /// Totals over all attempts.
    pub usage: Usage,
    /// Last failure message.
    pub error: Option<String>,
}

/// One attempt of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Step index.
    pub step: u32,
    /// Attempt number.
    pub attempt: u32,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub status: String,
    /// Start.
    pub started_at: UnixMillis,
    /// End.
    pub finished_at: Option<UnixMillis>,
    /// Tokens and cost.
    pub usage: Usage,
    /// Failure message.
    pub error: Option<String>,
}

/// A stored artifact version with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Metadata.
    #[serde(flatten)]
    pub artifact: ArtifactRef,
    /// Run.
    pub run_id: RunId,
    /// Project.
    pub project_id: ProjectId,
    /// Step index.
    pub step: u32,
    /// When stored.
    pub created_at: UnixMillis,
}

/// One LLM call as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmCallRecord {
    /// Run.
    pub run_id: RunId,
    /// Step index.
    pub step: u32,
    /// Attempt.
    pub attempt: u32,
    /// Call number within the attempt.
    pub call: u32,
    /// Agent that made it.
    pub agent: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// `ok` or `error`.
    pub status: String,
    /// Tokens and cost.
    pub usage: Usage,
    /// Wall time.
    pub latency_ms: u64,
    /// Failure message.
    pub error: Option<String>,
    /// When recorded.
    pub created_at: UnixMillis,
}

/// How many requests a caller may make per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests per period (at least 1).
    pub requests: u32,
    /// The period, in seconds (at least 1).
    pub per_secs: u32,
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per_secs {
            1 => write!(f, "{}/s", self.requests),
            60 => write!(f, "{}/min", self.requests),
            3600 => write!(f, "{}/h", self.requests),
            secs => write!(f, "{}/{secs}s", self.requests),
        }
    }
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// `N/s`, `N/min`, `N/h` (also `N/second`, `N/minute`, `N/hour`, `N/Ks` for K seconds).
    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "`{text}` is not a rate: expected N/s, N/min or N/h (N a positive whole number)"
            )
        };
        let (count, period) = text.trim().split_once('/').ok_or_else(expected)?;
        let requests: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(expected)?;
        let per_secs = match period.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            other => other
                .strip_suffix('s')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(expected)?,
        };
        Ok(Self { requests, per_secs })
    }
}

/// An API token as stored: its secret only as a hash, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    /// Id, shown in lists and used to revoke it.
    pub id: String,
    /// The tenant whose data the token reaches.
    pub tenant: String,
    /// What it is for, as its creator named it.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret.
    pub hash: String,
    /// When created.
    pub created_at: UnixMillis,
    /// When last used (recorded at most about once a minute).
    pub last_used_at: Option<UnixMillis>,
    /// When revoked; a revoked token is refused.
    pub revoked_at: Option<UnixMillis>,
    /// Its own rate limit, over the server's default.
    pub rate_limit: Option<RateLimit>,
}

/// A client's session (a dashboard's, a script's): its tabs and UI state, and how far it
/// has read each run, kept across reconnects and server restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Id, given to `/ws?session_id=` to reconnect.
    pub id: SessionId,
    /// The tenant it belongs to.
    pub tenant: String,
    /// What the client calls it.
    pub name: String,
    /// Whatever the client keeps (a JSON object: layout, filters, theme).
    pub ui_state: serde_json::Value,
    /// Open tabs, in order.
    pub tabs: Vec<SessionTab>,
    /// Per run, the last event the client acknowledged.
    pub acked: std::collections::BTreeMap<RunId, u64>,
    /// When created.
    pub created_at: UnixMillis,
    /// When its name, UI state or tabs last changed.
    pub updated_at: UnixMillis,
    /// When a client last connected or disconnected with it.
    pub last_seen_at: Option<UnixMillis>,
}

/// One tab of a [`SessionRecord`]: a run, a project, or a page of the client's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionTab {
    /// The client's id for it, unique within the session.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The run it shows; its events are streamed to the session.
    pub run_id: Option<RunId>,
    /// The project it shows; its runs' events are streamed to the session.
    pub project_id: Option<ProjectId>,
    /// Whether it is the one in front.
    pub active: bool,
    /// Whatever the client keeps for it (scroll position, open step).
    pub state: serde_json::Value,
}

/// A change of a session, applied to the stored one inside a transaction (so two changes
/// at once both take effect). Its id, tenant and times are the store's to keep.
pub type SessionEdit = Box<dyn FnOnce(&mut SessionRecord) -> Result<(), StoreError> + Send>;

/// BotArmy's durable state. Implementations: SQLite (embedded default) and PostgreSQL.
///
/// Every method is safe to call from many tasks and processes at once. All writes about
/// runs go through [`Store::create_run`] and [`Store::append`]; the read tables are
/// projections of the event log maintained in the same transaction. Projects and
/// registered repositories are plain rows beside them.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Where the data lives, for messages (never contains a password).
    fn location(&self) -> String;

    /// Returns the [`DEFAULT_TENANT`]'s project with this name, creating it if needed.
    async fn ensure_project(&self, name: &str) -> Result<ProjectRecord, StoreError> {
        self.ensure_project_in(DEFAULT_TENANT, name).await
    }

    /// Returns the tenant's project with this name, creating it if needed.
    async fn ensure_project_in(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ProjectRecord, StoreError>;

    /// All projects of every tenant, newest first.
    async fn list_projects(&self) -> Result<Vec<ProjectRecord>, StoreError>;

    /// The tenant's projects, newest first.
    async fn list_projects_in(&self, tenant: &str) -> Result<Vec<ProjectRecord>, StoreError>;

    /// The project with this id if it belongs to the tenant; [`StoreError::NotFound`] if it
    /// does not exist or belongs to another (the two are not told apart).
    async fn get_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
    ) -> Result<ProjectRecord, StoreError>;

    /// Renames the tenant's project and/or changes its status, and returns it as it is
    /// now. [`StoreError::NotFound`] if it does not exist or belongs to another tenant,
    /// [`StoreError::AlreadyExists`] if another project of the tenant has the new name,
    /// [`StoreError::InvalidInput`] for a status not in [`PROJECT_STATUSES`]; nothing
    /// changes then.
    async fn update_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
        change: &ProjectChange,
    ) -> Result<ProjectRecord, StoreError>;

    /// Deletes the tenant's project and, in the same transaction, its runs with their
    /// events, steps, attempts, artifacts and LLM calls.
    ///
    /// [`StoreError::NotFound`] if it does not exist or belongs to another tenant;
    /// [`StoreError::InUse`] (nothing deleted) if any of its runs is not finished
    /// (succeeded, failed or cancelled), or if it has finished runs and
    /// `with_finished_runs` is false.
    async fn delete_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
        with_finished_runs: bool,
    ) -> Result<DeletedProject, StoreError>;

    /// Deletes the tenant's run with its events, steps, attempts, artifacts and LLM calls,
    /// in one transaction. [`StoreError::NotFound`] if it does not exist or belongs to
    /// another tenant; [`StoreError::InUse`] (nothing deleted) if it is not finished.
    async fn delete_run_in(&self, tenant: &str, run_id: RunId) -> Result<(), StoreError>;

    /// Counts and sums over everything stored, every tenant's (for metrics).
    async fn totals(&self) -> Result<StoreTotals, StoreError>;

    /// The tenant of the run (its project's); `None` if there is no such run.
    async fn run_tenant(&self, run_id: RunId) -> Result<Option<String>, StoreError>;

    /// The run if it belongs to the tenant; [`StoreError::NotFound`] if it does not exist
    /// or belongs to another (the two are not told apart).
    async fn get_run_in(&self, tenant: &str, run_id: RunId) -> Result<RunSummary, StoreError> {
        match self.run_tenant(run_id).await? {
            Some(owner) if owner == tenant => self.get_run(run_id).await,
            _ => Err(StoreError::NotFound {
                what: "run",
                id: run_id.to_string(),
            }),
        }
    }

    /// Stores a new API token. [`StoreError::InvalidInput`] for a bad tenant or a hash that
    /// is stored already (nothing is written then).
    async fn create_token(&self, token: ApiTokenRecord) -> Result<(), StoreError>;

    /// Tokens of one tenant (or of all), oldest first.
    async fn list_tokens(&self, tenant: Option<&str>) -> Result<Vec<ApiTokenRecord>, StoreError>;

    /// The token whose secret hashes to `hash`, revoked or not; `None` if none does.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiTokenRecord>, StoreError>;

    /// Revokes a token (a revoked one keeps its first revocation time) and returns it;
    /// [`StoreError::NotFound`] if no token has this id.
    async fn revoke_token(&self, id: &str, at: UnixMillis) -> Result<ApiTokenRecord, StoreError>;

    /// Records that the token was used at `at`.
    async fn touch_token(&self, id: &str, at: UnixMillis) -> Result<(), StoreError>;

    /// Stores a new client session (its `acked` are ignored: a new one has none).
    /// [`StoreError::InvalidInput`] for a bad tenant.
    async fn create_session(&self, session: SessionRecord) -> Result<(), StoreError>;

    /// The tenant's session with this id; [`StoreError::NotFound`] if it has none.
    async fn get_session_in(
        &self,
        tenant: &str,
        id: SessionId,
    ) -> Result<SessionRecord, StoreError>;

    /// The tenant's sessions, most recently seen first.
    async fn list_sessions_in(&self, tenant: &str) -> Result<Vec<SessionRecord>, StoreError>;

    /// Applies `edit` to the stored session and stores the result with `updated_at = at`;
    /// an error of `edit` writes nothing and is returned.
    async fn update_session_in(
        &self,
        tenant: &str,
        id: SessionId,
        at: UnixMillis,
        edit: SessionEdit,
    ) -> Result<SessionRecord, StoreError>;

    /// Records that the client has read each run up to its sequence number (a position
    /// never moves back); returns every position of the session afterwards.
    async fn ack_session_in(
        &self,
        tenant: &str,
        id: SessionId,
        acks: Vec<(RunId, u64)>,
        at: UnixMillis,
    ) -> Result<std::collections::BTreeMap<RunId, u64>, StoreError>;

    /// Records that a client was connected with the session at `at`.
    async fn touch_session(&self, id: SessionId, at: UnixMillis) -> Result<(), StoreError>;

    /// Deletes a session; [`StoreError::NotFound`] if the tenant has none with this id.
    async fn delete_session_in(&self, tenant: &str, id: SessionId) -> Result<(), StoreError>;

    /// Deletes the sessions last seen (or, never seen, last changed) before `before`;
    /// returns how many.
    async fn expire_sessions(&self, before: UnixMillis) -> Result<u64, StoreError>;

    /// Registers a repository. [`StoreError::AlreadyExists`] if its name is taken,
    /// [`StoreError::InvalidInput`] if the name breaks [`check_repository_name`]; nothing is
    /// written then.
    async fn add_repository(
        &self,
        repository: RepositoryRecord,
    ) -> Result<RepositoryRecord, StoreError>;

    /// Every registered repository, by name.
    async fn list_repositories(&self) -> Result<Vec<RepositoryRecord>, StoreError>;

    /// The repository with this name; [`StoreError::NotFound`] if none.
    async fn get_repository(&self, name: &str) -> Result<RepositoryRecord, StoreError>;

    /// Forgets a repository (its folder is left alone) and returns what was registered;
    /// [`StoreError::NotFound`] if none has this name.
    async fn remove_repository(&self, name: &str) -> Result<RepositoryRecord, StoreError>;

    /// Creates a run from its `PipelineCreated` event (sequence number 1) in one
    /// transaction, with one `pending` step row per plan step.
    ///
    /// [`StoreError::InvalidInput`] if `event` is not `PipelineCreated`,
    /// [`StoreError::NotFound`] if its project does not exist, [`StoreError::Conflict`]
    /// (expected 0) if the run exists.
    async fn create_run(
        &self,
        run_id: RunId,
        event: Event,
        at: UnixMillis,
    ) -> Result<EventRecord, StoreError> {
        let records = self
            .create_run_with(run_id, event, AppendBatch::default(), at)
            .await?;
        records
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound {
                what: "run",
                id: run_id.to_string(),
            })
    }

    /// [`Store::create_run`] and, in the same transaction, [`Store::append`] of `then` after
    /// it (sequence numbers from 2): a run that starts at once is created with its first
    /// events, and either all of it is stored or nothing. Returns every stored record, the
    /// `PipelineCreated` one first.
    async fn create_run_with(
        &self,
        run_id: RunId,
        event: Event,
        then: AppendBatch,
        at: UnixMillis,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Appends `batch` after `expected_last` (the caller's last known sequence number) and
    /// updates the projections, all in one transaction. Returns the stored records.
    /// [`StoreError::Conflict`] if the log has moved on; nothing is written then.
    ///
    /// [`StoreError::InvalidInput`] (nothing written) for a batch that contains
    /// `PipelineCreated`, an `ArtifactCreated` without its body (or a body without its event,
    /// or of another length than the event says), an event about a step the plan does not
    /// have, or an artifact version that already exists. An empty batch writes nothing but
    /// still checks `expected_last`.
    ///
    /// Projections, per event: the run's status, `started_at` (first start only),
    /// `finished_at` and `error`; the step's status, attempt, times and error, and an attempt
    /// row per `StepStarted`; an `llm_calls` row per `LlmCallCompleted`/`LlmCallFailed` (its
    /// agent is the step's); an `artifacts` row per `ArtifactCreated`. Usage totals (run,
    /// step, attempt) are sums of the completed LLM calls; the usage carried by
    /// `StepCompleted` and `PipelineCompleted` stays in the log only, so calls reused by a
    /// resumed attempt are not counted twice.
    ///
    /// If the returned future is dropped before it finishes, the append may or may not have
    /// been committed: read the log to know.
    async fn append(
        &self,
        run_id: RunId,
        expected_last: u64,
        at: UnixMillis,
        batch: AppendBatch,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Events with sequence number greater than `since`, in order, at most `limit`
    /// (0: no limit). Empty for a run that does not exist.
    async fn read_events(
        &self,
        run_id: RunId,
        since: u64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Waits until the run's log holds an event after `after`, or `timeout` passes.
    /// Returns whether there is one. Appends from this process wake it at once; appends
    /// from other processes are noticed within a short poll interval (SQLite) or through
    /// notifications (PostgreSQL). [`StoreError::NotFound`] if the run does not exist.
    async fn wait_for_events(
        &self,
        run_id: RunId,
        after: u64,
        timeout: Duration,
    ) -> Result<bool, StoreError>;

    /// The run with this id.
    async fn get_run(&self, run_id: RunId) -> Result<RunSummary, StoreError>;

    /// Resolves a full id or a unique prefix of one (at least 4 hex digits; dashes and case
    /// are ignored). [`StoreError::Ambiguous`] if several runs match,
    /// [`StoreError::NotFound`] if none does, [`StoreError::InvalidInput`] if it is not hex.
    async fn resolve_run(&self, id_or_prefix: &str) -> Result<RunId, StoreError>;

    /// Runs matching `filter`, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError>;

    /// The run's steps in plan order.
    async fn steps(&self, run_id: RunId) -> Result<Vec<StepRecord>, StoreError>;

    /// Every attempt of every step of the run.
    async fn attempts(&self, run_id: RunId) -> Result<Vec<AttemptRecord>, StoreError>;

    /// The run's artifacts, every version, in creation order.
    async fn artifacts(&self, run_id: RunId) -> Result<Vec<ArtifactRecord>, StoreError>;

    /// The content of one artifact version.
    async fn artifact_content(&self, id: ArtifactId) -> Result<Vec<u8>, StoreError>;

    /// The run's LLM calls in order.
    async fn llm_calls(&self, run_id: RunId) -> Result<Vec<LlmCallRecord>, StoreError>;

    /// The conflicts settled in the project's runs, oldest run first (each conflict as its
    /// check found it, with how it was settled): what mediation shows of earlier decisions.
    async fn settled_conflicts(
        &self,
        project: ProjectId,
    ) -> Result<Vec<botarmy_protocol::SettledConflict>, StoreError>;

    /// The run's calls summed per (phase, agent, provider, model), in plan order of the
    /// first step that made each; the caller totals them per run, phase, agent or provider.
    /// The sum of all rows' `usage` is the run's [`RunSummary::usage`]. Empty for a run
    /// without calls; [`StoreError::NotFound`] for no such run.
    async fn usage_breakdown(&self, run_id: RunId) -> Result<Vec<UsageRow>, StoreError>;

    /// Runs and usage totals of every project (`None`), in name order, or of one. Sums of
    /// the runs' [`RunSummary::usage`].
    /// [`StoreError::NotFound`] for a project that does not exist.
    async fn project_usage(
        &self,
        project: Option<ProjectId>,
    ) -> Result<Vec<ProjectUsage>, StoreError>;

    /// Calls, success rate, latency percentiles (of completed calls), tokens and cost per
    /// agent and provider/model, over the calls `filter` selects, ordered by agent,
    /// provider, model.
    async fn model_stats(&self, filter: &StatsFilter) -> Result<Vec<ModelStats>, StoreError>;
}
