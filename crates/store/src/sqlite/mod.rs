//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go to one writer thread that group-commits them ([`writer`]); reads run on a small
//! pool of reader connections on tokio's blocking threads, which WAL lets read while the
//! writer writes. WAL checkpoints run mostly on a thread of their own ([`checkpoint`]).
//! Waiters are woken by this process's commits at once and by other processes' commits
//! through a poller of `PRAGMA data_version` ([`poll`]).
//!
//! Durability: `synchronous=NORMAL` in WAL mode. A commit is in the WAL (the operating
//! system's page cache) before `append` returns, so killing the process at any moment loses
//! nothing that was acknowledged. A power loss or kernel crash can lose the last commits
//! before the next checkpoint (they are never half-applied: the database stays consistent).
//! That is SQLite's recommended trade-off for WAL; `synchronous=FULL` would add an `fsync`
//! per commit group.

mod checkpoint;
mod poll;
mod read;
mod removal;
mod repositories;
mod schema;
mod sessions;
mod tokens;
mod usage;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use botarmy_protocol::{ArtifactId, Event, EventRecord, ProjectId, RunId, SessionId, UnixMillis};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::projection::{self, PreparedEvent};
use crate::target::SqliteTarget;
use crate::watch::{self, Watchers, lock};
use crate::{
    ApiTokenRecord, AppendBatch, ArtifactRecord, AttemptRecord, DeletedProject, LlmCallRecord,
    ModelStats, ProjectChange, ProjectRecord, ProjectUsage, RepositoryRecord, RunFilter,
    RunSummary, SessionEdit, SessionRecord, StatsFilter, StepRecord, Store, StoreError,
    StoreTotals, UsageRow,
};
use writer::{Job, Plain, Write};

/// Reader connections kept open.
const READERS: usize = 4;
/// Requests that may queue for the writer before callers wait.
const QUEUE: usize = 1024;
/// How often the poller looks for other processes' commits while someone waits.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often a waiter asks the database itself, should a wake-up ever be missed.
const RECHECK: Duration = Duration::from_secs(2);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// An error inside the SQLite code: from SQLite, or already a [`StoreError`].
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Fail {
    /// The error a caller sees, naming the database file.
    pub(crate) fn into_store(self, location: &str) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::Sql(e) => match classify(&e) {
                Class::Other => StoreError::Backend(Box::new(e)),
                _ => sql_error(&e, location),
            },
        }
    }
}

enum Class {
    Locked,
    Corrupt,
    CannotOpen,
    Constraint,
    Other,
}

fn classify(e: &rusqlite::Error) -> Class {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Class::Locked,
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Class::Corrupt,
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            Class::CannotOpen
        }
        Some(ErrorCode::ConstraintViolation) => Class::Constraint,
        _ => Class::Other,
    }
}

/// Maps a SQLite error to what the caller can do about it.
pub(crate) fn sql_error(e: &rusqlite::Error, location: &str) -> StoreError {
    let location = location.to_string();
    match classify(e) {
        Class::Locked => StoreError::Locked { location },
        Class::Corrupt => StoreError::Corrupt {
            location,
            detail: e.to_string(),
        },
        Class::CannotOpen => StoreError::Open {
            location,
            source: e.to_string().into(),
        },
        Class::Constraint => StoreError::InvalidInput {
            detail: e.to_string(),
        },
        Class::Other => StoreError::Backend(e.to_string().into()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The one connection that writes.
    Writer,
    /// A connection that only reads.
    Reader,
    /// The connection that copies the WAL back into the database.
    Checkpointer,
}

/// Opens and configures one connection.
fn connect(target: &SqliteTarget, role: Role) -> Result<Connection, Fail> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match &target.path {
        Some(path) => Connection::open_with_flags(path, flags)?,
        None => Connection::open_in_memory()?,
    };
    conn.busy_timeout(target.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    match role {
        Role::Writer => {
            // Also the first read of the file: a file that is not a database fails here.
            let _mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", true)?;
            // Savepoints (one per request of a group) journal pages; keep that in memory.
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.pragma_update(None, "cache_size", -16_384)?;
            // After a burst has grown the WAL file, give the space back (down to 64 MiB).
            conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        }
        Role::Reader => conn.pragma_update(None, "query_only", true)?,
        Role::Checkpointer => {
            // A connection learns that the file is in WAL mode on its first read; until then
            // it cannot checkpoint.
            let _tables: i64 =
                conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
        }
    }
    Ok(conn)
}

/// Idle reader connections, at most [`READERS`] in use at once.
struct Readers {
    target: SqliteTarget,
    location: String,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

enum Reads {
    /// A file database: reader connections.
    Pool(Arc<Readers>),
    /// An in-memory database: reads run on the writer thread.
    Writer,
}

/// The SQLite [`Store`].
pub(crate) struct SqliteStore {
    location: String,
    jobs: mpsc::Sender<Job>,
    reads: Reads,
    watchers: Arc<Watchers>,
}

/// The writer connection, in WAL mode and migrated. Processes opening a new file at the same
/// moment can get SQLITE_BUSY at once where SQLite does not wait (switching a fresh file to
/// WAL): that is retried, with short pauses, until the busy timeout has passed.
fn open_writer(target: &SqliteTarget, location: &str) -> Result<Connection, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let attempt = connect(target, Role::Writer).and_then(|mut conn| {
            schema::migrate(&mut conn, location, botarmy_protocol::now_millis())?;
            Ok(conn)
        });
        match attempt.map_err(|e| e.into_store(location)) {
            Err(StoreError::Locked { .. }) if started.elapsed() < target.busy_timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database. Blocking.
    pub(crate) fn open(target: SqliteTarget) -> Result<Self, StoreError> {
        let location = target.location();
        if let Some(dir) = target.path.as_deref().and_then(Path::parent)
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                location: location.clone(),
                source: format!("cannot create the folder {}: {e}", dir.display()).into(),
            })?;
        }
        let mut conn = open_writer(&target, &location)?;
        if target.path.is_some() {
            checkpoint::install(&mut conn, &target, &location)?;
        }

        let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel(1);
        let watchers = Arc::new(Watchers::with_wake(wake_tx));
        let (jobs, rx) = mpsc::channel(QUEUE);
        {
            let watchers = Arc::clone(&watchers);
            let loc = location.clone();
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || writer::run(conn, rx, watchers, loc))
                .map_err(|e| StoreError::Open {
                    location: location.clone(),
                    source: Box::new(e),
                })?;
        }
        let reads = match &target.path {
            Some(_) => {
                poll::spawn(
                    target.clone(),
                    Arc::downgrade(&watchers),
                    wake_rx,
                    POLL_INTERVAL,
                )
                .map_err(|e| StoreError::Open {
                    location: location.clone(),
                    source: Box::new(e),
                })?;
                Reads::Pool(Arc::new(Readers {
                    target,
                    location: location.clone(),
                    idle: Mutex::new(Vec::with_capacity(READERS)),
                    permits: Semaphore::new(READERS),
                }))
            }
            None => Reads::Writer,
        };
        Ok(Self {
            location,
            jobs,
            reads,
            watchers,
        })
    }

    /// Runs `f` on a reader connection.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Fail> + Send + 'static,
    {
        match &self.reads {
            Reads::Pool(readers) => {
                let _permit = readers
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| StoreError::Backend(Box::new(e)))?;
                let readers = Arc::clone(readers);
                tokio::task::spawn_blocking(move || {
                    let popped = lock(&readers.idle).pop();
                    let conn = match popped {
                        Some(conn) => conn,
                        None => connect(&readers.target, Role::Reader)
                            .map_err(|e| e.into_store(&readers.location))?,
                    };
                    let result = f(&conn).map_err(|e| e.into_store(&readers.location));
                    lock(&readers.idle).push(conn);
                    result
                })
                .await
                .map_err(|e| StoreError::Backend(Box::new(e)))?
            }
            Reads::Writer => {
                let (tx, rx) = oneshot::channel();
                let location = self.location.clone();
                let job = Job::Read(Box::new(move |conn: &Connection| {
                    let _ = tx.send(f(conn).map_err(|e| e.into_store(&location)));
                }));
                self.jobs.send(job).await.map_err(|_| self.writer_gone())?;
                rx.await.map_err(|_| self.writer_gone())?
            }
        }
    }

    /// Sends a change to the writer and waits for its answer.
    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Write(make(tx)))
            .await
            .map_err(|_| self.writer_gone())?;
        rx.await.map_err(|_| self.writer_gone())?
    }

    /// Sends a change of plain rows to the writer and waits for its answer.
    async fn change<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Fail> + Send + 'static,
    {
        self.write(|reply| Write::Other(Box::new(Plain { f, reply })))
            .await
    }

    fn writer_gone(&self) -> StoreError {
        StoreError::Backend(format!("the writer of {} stopped", self.location).into())
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn ensure_project_in(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ProjectRecord, StoreError> {
        crate::check_tenant(tenant)
            .map_err(|problem| projection::invalid(format!("tenant `{tenant}` {problem}")))?;
        let (t, n) = (tenant.to_string(), name.to_string());
        if let Some(found) = self.read(move |c| read::project_by_name(c, &t, &n)).await? {
            return Ok(found);
        }
        let (tenant, name, id, at) = (
            tenant.to_string(),
            name.to_string(),
            ProjectId::new(),
            botarmy_protocol::now_millis(),
        );
        self.write(|reply| Write::Project {
            tenant,
            name,
            id,
            at,
            reply,
        })
        .await
    }

    async fn list_projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        self.read(|c| read::list_projects(c, None)).await
    }

    async fn list_projects_in(&self, tenant: &str) -> Result<Vec<ProjectRecord>, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| read::list_projects(c, Some(&tenant)))
            .await
    }

    async fn get_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
    ) -> Result<ProjectRecord, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| read::project_in(c, &tenant, id)).await
    }

    async fn update_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
        change: &ProjectChange,
    ) -> Result<ProjectRecord, StoreError> {
        let (tenant, change) = (tenant.to_string(), change.clone());
        self.change(move |c| removal::update_project(c, &tenant, id, &change))
            .await
    }

    async fn delete_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
        with_finished_runs: bool,
    ) -> Result<DeletedProject, StoreError> {
        let tenant = tenant.to_string();
        self.change(move |c| removal::delete_project(c, &tenant, id, with_finished_runs))
            .await
    }

    async fn delete_run_in(&self, tenant: &str, run_id: RunId) -> Result<(), StoreError> {
        let tenant = tenant.to_string();
        self.change(move |c| removal::delete_run(c, &tenant, run_id))
            .await
    }

    async fn totals(&self) -> Result<StoreTotals, StoreError> {
        self.read(usage::totals).await
    }

    async fn run_tenant(&self, run_id: RunId) -> Result<Option<String>, StoreError> {
        self.read(move |c| read::run_tenant(c, run_id)).await
    }

    async fn create_token(&self, token: ApiTokenRecord) -> Result<(), StoreError> {
        crate::check_tenant(&token.tenant).map_err(|problem| {
            projection::invalid(format!("tenant `{}` {problem}", token.tenant))
        })?;
        self.change(move |c| tokens::create(c, &token)).await
    }

    async fn list_tokens(&self, tenant: Option<&str>) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let tenant = tenant.map(str::to_string);
        self.read(move |c| tokens::list(c, tenant.as_deref())).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        let hash = hash.to_string();
        self.read(move |c| tokens::by_hash(c, &hash)).await
    }

    async fn revoke_token(&self, id: &str, at: UnixMillis) -> Result<ApiTokenRecord, StoreError> {
        let id = id.to_string();
        self.change(move |c| tokens::revoke(c, &id, at)).await
    }

    async fn touch_token(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        let id = id.to_string();
        self.change(move |c| tokens::touch(c, &id, at)).await
    }

    async fn create_session(&self, session: SessionRecord) -> Result<(), StoreError> {
        crate::check_tenant(&session.tenant).map_err(|problem| {
            projection::invalid(format!("tenant `{}` {problem}", session.tenant))
        })?;
        self.change(move |c| sessions::create(c, &session)).await
    }

    async fn get_session_in(
        &self,
        tenant: &str,
        id: SessionId,
    ) -> Result<SessionRecord, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| sessions::get(c, &tenant, id)).await
    }

    async fn list_sessions_in(&self, tenant: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| sessions::list(c, &tenant)).await
    }

    async fn update_session_in(
        &self,
        tenant: &str,
        id: SessionId,
        at: UnixMillis,
        edit: SessionEdit,
    ) -> Result<SessionRecord, StoreError> {
        let tenant = tenant.to_string();
        self.change(move |c| sessions::update(c, &tenant, id, at, edit))
            .await
    }

    async fn ack_session_in(
        &self,
        tenant: &str,
        id: SessionId,
        acks: Vec<(RunId, u64)>,
        at: UnixMillis,
    ) -> Result<std::collections::BTreeMap<RunId, u64>, StoreError> {
        let tenant = tenant.to_string();
        self.change(move |c| sessions::ack(c, &tenant, id, &acks, at))
            .await
    }

    async fn touch_session(&self, id: SessionId, at: UnixMillis) -> Result<(), StoreError> {
        self.change(move |c| sessions::touch(c, id, at)).await
    }

    async fn delete_session_in(&self, tenant: &str, id: SessionId) -> Result<(), StoreError> {
        let tenant = tenant.to_string();
        self.change(move |c| sessions::delete(c, &tenant, id)).await
    }

    async fn expire_sessions(&self, before: UnixMillis) -> Result<u64, StoreError> {
        self.change(move |c| sessions::expire(c, before)).await
    }

    async fn add_repository(
        &self,
        repository: RepositoryRecord,
    ) -> Result<RepositoryRecord, StoreError> {
        crate::check_repository_name(&repository.name).map_err(|problem| {
            projection::invalid(format!("repository name `{}` {problem}", repository.name))
        })?;
        self.write(|reply| Write::AddRepository { repository, reply })
            .await
    }

    async fn list_repositories(&self) -> Result<Vec<RepositoryRecord>, StoreError> {
        self.read(repositories::list).await
    }

    async fn get_repository(&self, name: &str) -> Result<RepositoryRecord, StoreError> {
        let name = name.to_string();
        self.read(move |c| repositories::get(c, &name)).await
    }

    async fn remove_repository(&self, name: &str) -> Result<RepositoryRecord, StoreError> {
        let name = name.to_string();
        self.write(|reply| Write::RemoveRepository { name, reply })
            .await
    }

    async fn create_run_with(
        &self,
        run_id: RunId,
        event: Event,
        then: AppendBatch,
        at: UnixMillis,
    ) -> Result<Vec<EventRecord>, StoreError> {
        if !matches!(event, Event::PipelineCreated { .. }) {
            return Err(projection::invalid(format!(
                "run {run_id}: a run starts with pipeline_created, not {}",
                event.name()
            )));
        }
        let event = PreparedEvent {
            payload: projection::encode(&event)?,
            event,
            body: None,
        };
        let then = projection::prepare_batch(run_id, then)?;
        self.write(|reply| Write::Create {
            run_id,
            at,
            event,
            then,
            reply,
        })
        .await
    }

    async fn append(
        &self,
        run_id: RunId,
        expected_last: u64,
        at: UnixMillis,
        batch: AppendBatch,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let events = projection::prepare_batch(run_id, batch)?;
        self.write(|reply| Write::Append {
            run_id,
            expected: expected_last,
            at,
            events,
            reply,
        })
        .await
    }

    async fn read_events(
        &self,
        run_id: RunId,
        since: u64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.read(move |c| read::read_events(c, run_id, since, limit))
            .await
    }

    async fn wait_for_events(
        &self,
        run_id: RunId,
        after: u64,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        watch::wait_for(
            &self.watchers,
            run_id,
            after,
            timeout,
            RECHECK,
            || async move {
                self.read(move |c| read::last_seq(c, run_id))
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        what: "run",
                        id: run_id.to_string(),
                    })
            },
        )
        .await
    }

    async fn get_run(&self, run_id: RunId) -> Result<RunSummary, StoreError> {
        self.read(move |c| read::get_run(c, run_id)).await
    }

    async fn resolve_run(&self, id_or_prefix: &str) -> Result<RunId, StoreError> {
        let input = id_or_prefix.to_string();
        self.read(move |c| read::resolve_run(c, &input)).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let filter = filter.clone();
        self.read(move |c| read::list_runs(c, &filter)).await
    }

    async fn steps(&self, run_id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        self.read(move |c| read::steps(c, run_id)).await
    }

    async fn attempts(&self, run_id: RunId) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(move |c| read::attempts(c, run_id)).await
    }

    async fn artifacts(&self, run_id: RunId) -> Result<Vec<ArtifactRecord>, StoreError> {
        self.read(move |c| read::artifacts(c, run_id)).await
    }

    async fn artifact_content(&self, id: ArtifactId) -> Result<Vec<u8>, StoreError> {
        self.read(move |c| read::artifact_content(c, id)).await
    }

    async fn llm_calls(&self, run_id: RunId) -> Result<Vec<LlmCallRecord>, StoreError> {
        self.read(move |c| read::llm_calls(c, run_id)).await
    }

    async fn settled_conflicts(
        &self,
        project: ProjectId,
    ) -> Result<Vec<botarmy_protocol::SettledConflict>, StoreError> {
        self.read(move |c| read::settled_conflicts(c, project))
            .await
    }

    async fn usage_breakdown(&self, run_id: RunId) -> Result<Vec<UsageRow>, StoreError> {
        self.read(move |c| usage::usage_breakdown(c, run_id)).await
    }

    async fn project_usage(
        &self,
        project: Option<ProjectId>,
    ) -> Result<Vec<ProjectUsage>, StoreError> {
        self.read(move |c| usage::project_usage(c, project)).await
    }

    async fn model_stats(&self, filter: &StatsFilter) -> Result<Vec<ModelStats>, StoreError> {
        let filter = filter.clone();
        self.read(move |c| usage::model_stats(c, &filter)).await
    }
}
