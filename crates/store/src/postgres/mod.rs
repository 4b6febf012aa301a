//! The scale-out store: PostgreSQL through a small pool of `tokio-postgres` connections.
//!
//! An append locks the run's row (`SELECT … FOR NO KEY UPDATE`), checks the expected last
//! sequence number, then sends every insert and update of the batch as one pipeline and
//! commits; the commit also delivers a `NOTIFY botarmy_events, 'RUN:SEQ'` that wakes waiters
//! in every process ([`listen`]).

mod listen;
mod read;
mod removal;
mod repositories;
mod schema;
mod sessions;
mod tokens;
mod usage;
mod write;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use botarmy_protocol::{ArtifactId, Event, EventRecord, ProjectId, RunId, SessionId, UnixMillis};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::projection::{self, PreparedEvent};
use crate::watch::{self, Watchers};
use crate::{
    ApiTokenRecord, AppendBatch, ArtifactRecord, AttemptRecord, DeletedProject, LlmCallRecord,
    ModelStats, ProjectChange, ProjectRecord, ProjectUsage, RepositoryRecord, RunFilter,
    RunSummary, SessionEdit, SessionRecord, StatsFilter, StepRecord, Store, StoreError,
    StoreTotals, UsageRow,
};

/// Connections in the pool.
const POOL_SIZE: usize = 16;
/// How often a waiter asks the database itself, should a notification ever be missed
/// (while the listening connection reconnects).
const RECHECK: Duration = Duration::from_secs(2);
/// The notification channel.
pub(crate) const CHANNEL: &str = "botarmy_events";

/// An error inside the PostgreSQL code.
pub(crate) enum Fail {
    Pg(tokio_postgres::Error),
    Pool(PoolError),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Pg(e)
    }
}

impl From<PoolError> for Fail {
    fn from(e: PoolError) -> Self {
        Self::Pool(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Fail {
    /// The error a caller sees, naming the database (without password).
    pub(crate) fn into_store(self, location: &str) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::Pg(e) => pg_error(e, location),
            Self::Pool(PoolError::Backend(e)) => {
                if e.as_db_error().is_some() {
                    pg_error(e, location)
                } else {
                    StoreError::Open {
                        location: location.to_string(),
                        source: Box::new(e),
                    }
                }
            }
            Self::Pool(e @ PoolError::Timeout(_)) => StoreError::Open {
                location: location.to_string(),
                source: Box::new(e),
            },
            Self::Pool(e) => StoreError::Backend(Box::new(e)),
        }
    }
}

fn pg_error(e: tokio_postgres::Error, location: &str) -> StoreError {
    let location = location.to_string();
    let Some(db) = e.as_db_error() else {
        return if e.is_closed() {
            StoreError::Open {
                location,
                source: Box::new(e),
            }
        } else {
            StoreError::Backend(Box::new(e))
        };
    };
    let code = db.code();
    if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        StoreError::Locked { location }
    } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        StoreError::Corrupt {
            location,
            detail: db.message().to_string(),
        }
    } else if code.code().starts_with("23") {
        // Integrity constraint violations: the request broke a rule of the schema.
        let detail = match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        };
        StoreError::InvalidInput { detail }
    } else if code.code().starts_with("08")
        || code.code().starts_with("57P")
        || code.code().starts_with("28")
        || *code == SqlState::INVALID_CATALOG_NAME
    {
        StoreError::Open {
            location,
            source: Box::new(e),
        }
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// The PostgreSQL [`Store`].
pub(crate) struct PgStore {
    location: String,
    config: tokio_postgres::Config,
    pool: Pool,
    watchers: Arc<Watchers>,
    listener: tokio::sync::OnceCell<listen::Listener>,
}

impl PgStore {
    /// Connects and migrates.
    pub(crate) async fn open(
        config: tokio_postgres::Config,
        location: String,
    ) -> Result<Self, StoreError> {
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Open {
                location: location.clone(),
                source: Box::new(e),
            })?;
        let store = Self {
            location,
            config,
            pool,
            watchers: Arc::new(Watchers::default()),
            listener: tokio::sync::OnceCell::new(),
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client, &store.location, botarmy_protocol::now_millis())
            .await
            .map_err(|e| e.into_store(&store.location))?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| Fail::Pool(e).into_store(&self.location))
    }

    /// Runs `f` with a pooled connection, mapping its errors.
    async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&mut deadpool_postgres::Object) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        let mut client = self.client().await?;
        f(&mut client)
            .await
            .map_err(|e| e.into_store(&self.location))
    }
}

#[async_trait]
impl Store for PgStore {
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
        let id = ProjectId::new();
        let at = botarmy_protocol::now_millis();
        self.with(async |c| write::ensure_project(c, tenant, name, id, at).await)
            .await
    }

    async fn list_projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        self.with(async |c| read::list_projects(c, None).await)
            .await
    }

    async fn list_projects_in(&self, tenant: &str) -> Result<Vec<ProjectRecord>, StoreError> {
        self.with(async |c| read::list_projects(c, Some(tenant)).await)
            .await
    }

    async fn get_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
    ) -> Result<ProjectRecord, StoreError> {
        self.with(async |c| read::project_in(c, tenant, id).await)
            .await
    }

    async fn update_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
        change: &ProjectChange,
    ) -> Result<ProjectRecord, StoreError> {
        self.with(async |c| removal::update_project(c, tenant, id, change).await)
            .await
    }

    async fn delete_project_in(
        &self,
        tenant: &str,
        id: ProjectId,
        with_finished_runs: bool,
    ) -> Result<DeletedProject, StoreError> {
        self.with(async |c| removal::delete_project(c, tenant, id, with_finished_runs).await)
            .await
    }

    async fn delete_run_in(&self, tenant: &str, run_id: RunId) -> Result<(), StoreError> {
        self.with(async |c| removal::delete_run(c, tenant, run_id).await)
            .await
    }

    async fn totals(&self) -> Result<StoreTotals, StoreError> {
        self.with(async |c| usage::totals(c).await).await
    }

    async fn run_tenant(&self, run_id: RunId) -> Result<Option<String>, StoreError> {
        self.with(async |c| read::run_tenant(c, run_id).await).await
    }

    async fn create_token(&self, token: ApiTokenRecord) -> Result<(), StoreError> {
        crate::check_tenant(&token.tenant).map_err(|problem| {
            projection::invalid(format!("tenant `{}` {problem}", token.tenant))
        })?;
        self.with(async |c| tokens::create(c, &token).await).await
    }

    async fn list_tokens(&self, tenant: Option<&str>) -> Result<Vec<ApiTokenRecord>, StoreError> {
        self.with(async |c| tokens::list(c, tenant).await).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        self.with(async |c| tokens::by_hash(c, hash).await).await
    }

    async fn revoke_token(&self, id: &str, at: UnixMillis) -> Result<ApiTokenRecord, StoreError> {
        self.with(async |c| tokens::revoke(c, id, at).await).await
    }

    async fn touch_token(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        self.with(async |c| tokens::touch(c, id, at).await).await
    }

    async fn create_session(&self, session: SessionRecord) -> Result<(), StoreError> {
        crate::check_tenant(&session.tenant).map_err(|problem| {
            projection::invalid(format!("tenant `{}` {problem}", session.tenant))
        })?;
        self.with(async |c| sessions::create(c, &session).await)
            .await
    }

    async fn get_session_in(
        &self,
        tenant: &str,
        id: SessionId,
    ) -> Result<SessionRecord, StoreError> {
        self.with(async |c| sessions::get(c, tenant, id).await)
            .await
    }

    async fn list_sessions_in(&self, tenant: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.with(async |c| sessions::list(c, tenant).await).await
    }

    async fn update_session_in(
        &self,
        tenant: &str,
        id: SessionId,
        at: UnixMillis,
        edit: SessionEdit,
    ) -> Result<SessionRecord, StoreError> {
        self.with(async |c| sessions::update(c, tenant, id, at, edit).await)
            .await
    }

    async fn ack_session_in(
        &self,
        tenant: &str,
        id: SessionId,
        acks: Vec<(RunId, u64)>,
        at: UnixMillis,
    ) -> Result<std::collections::BTreeMap<RunId, u64>, StoreError> {
        self.with(async |c| sessions::ack(c, tenant, id, &acks, at).await)
            .await
    }

    async fn touch_session(&self, id: SessionId, at: UnixMillis) -> Result<(), StoreError> {
        self.with(async |c| sessions::touch(c, id, at).await).await
    }

    async fn delete_session_in(&self, tenant: &str, id: SessionId) -> Result<(), StoreError> {
        self.with(async |c| sessions::delete(c, tenant, id).await)
            .await
    }

    async fn expire_sessions(&self, before: UnixMillis) -> Result<u64, StoreError> {
        self.with(async |c| sessions::expire(c, before).await).await
    }

    async fn add_repository(
        &self,
        repository: RepositoryRecord,
    ) -> Result<RepositoryRecord, StoreError> {
        crate::check_repository_name(&repository.name).map_err(|problem| {
            projection::invalid(format!("repository name `{}` {problem}", repository.name))
        })?;
        self.with(async |c| repositories::add(c, &repository).await)
            .await?;
        Ok(repository)
    }

    async fn list_repositories(&self) -> Result<Vec<RepositoryRecord>, StoreError> {
        self.with(async |c| repositories::list(c).await).await
    }

    async fn get_repository(&self, name: &str) -> Result<RepositoryRecord, StoreError> {
        self.with(async |c| repositories::get(c, name).await).await
    }

    async fn remove_repository(&self, name: &str) -> Result<RepositoryRecord, StoreError> {
        self.with(async |c| repositories::remove(c, name).await)
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
        let prepared = PreparedEvent {
            payload: projection::encode(&event)?,
            event,
            body: None,
        };
        let then = projection::prepare_batch(run_id, then)?;
        self.with(async |c| write::create_run(c, run_id, at, &prepared, &then).await)
            .await?;
        let mut records = vec![EventRecord {
            run_id,
            seq: 1,
            at,
            event: prepared.event,
        }];
        records.extend(projection::records(run_id, 2, at, then));
        if let Some(last) = records.last() {
            self.watchers.publish(run_id, last.seq);
        }
        Ok(records)
    }

    async fn append(
        &self,
        run_id: RunId,
        expected_last: u64,
        at: UnixMillis,
        batch: AppendBatch,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let events = projection::prepare_batch(run_id, batch)?;
        let first = self
            .with(async |c| write::append(c, run_id, expected_last, at, &events).await)
            .await?;
        let records = projection::records(run_id, first, at, events);
        if let Some(last) = records.last() {
            self.watchers.publish(run_id, last.seq);
        }
        Ok(records)
    }

    async fn read_events(
        &self,
        run_id: RunId,
        since: u64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.with(async |c| read::read_events(c, run_id, since, limit).await)
            .await
    }

    async fn wait_for_events(
        &self,
        run_id: RunId,
        after: u64,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.listener
            .get_or_try_init(|| {
                listen::Listener::start(
                    self.config.clone(),
                    Arc::clone(&self.watchers),
                    self.location.clone(),
                )
            })
            .await?;
        watch::wait_for(
            &self.watchers,
            run_id,
            after,
            timeout,
            RECHECK,
            || async move {
                self.with(async |c| read::last_seq(c, run_id).await)
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
        self.with(async |c| read::get_run(c, run_id).await).await
    }

    async fn resolve_run(&self, id_or_prefix: &str) -> Result<RunId, StoreError> {
        self.with(async |c| read::resolve_run(c, id_or_prefix).await)
            .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        self.with(async |c| read::list_runs(c, filter).await).await
    }

    async fn steps(&self, run_id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        self.with(async |c| read::steps(c, run_id).await).await
    }

    async fn attempts(&self, run_id: RunId) -> Result<Vec<AttemptRecord>, StoreError> {
        self.with(async |c| read::attempts(c, run_id).await).await
    }

    async fn artifacts(&self, run_id: RunId) -> Result<Vec<ArtifactRecord>, StoreError> {
        self.with(async |c| read::artifacts(c, run_id).await).await
    }

    async fn artifact_content(&self, id: ArtifactId) -> Result<Vec<u8>, StoreError> {
        self.with(async |c| read::artifact_content(c, id).await)
            .await
    }

    async fn llm_calls(&self, run_id: RunId) -> Result<Vec<LlmCallRecord>, StoreError> {
        self.with(async |c| read::llm_calls(c, run_id).await).await
    }

    async fn settled_conflicts(
        &self,
        project: ProjectId,
    ) -> Result<Vec<botarmy_protocol::SettledConflict>, StoreError> {
        self.with(async |c| read::settled_conflicts(c, project).await)
            .await
    }

    async fn usage_breakdown(&self, run_id: RunId) -> Result<Vec<UsageRow>, StoreError> {
        self.with(async |c| usage::usage_breakdown(c, run_id).await)
            .await
    }

    async fn project_usage(
        &self,
        project: Option<ProjectId>,
    ) -> Result<Vec<ProjectUsage>, StoreError> {
        self.with(async |c| usage::project_usage(c, project).await)
            .await
    }

    async fn model_stats(&self, filter: &StatsFilter) -> Result<Vec<ModelStats>, StoreError> {
        self.with(async |c| usage::model_stats(c, filter).await)
            .await
    }
}
