//! Fresh databases for each test, and event builders.

use std::path::PathBuf;
use std::sync::Arc;

use botarmy_protocol::{
    ArtifactId, ArtifactKind, ArtifactRef, ErrorInfo, ErrorKind, Event, Plan, PlanStep, ProjectId,
    RunId, RunOptions, RunRequest, Usage,
};
use botarmy_store::{AppendBatch, ArtifactBody, Store};

/// The PostgreSQL that CI guarantees: trust auth, a `test` database to connect to.
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store on a database of its own, removed at the end.
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub url: String,
    pub backend: Backend,
}

pub enum Backend {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        db: PgDb,
    },
}

impl Ctx {
    /// Another store instance on the same database (as another process would have).
    pub async fn reopen(&self) -> Arc<dyn Store> {
        botarmy_store::open(&self.url).await.unwrap()
    }

    /// Runs SQL on the database directly, bypassing the store.
    pub async fn raw_execute(&self, sql: &str) {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Backend::Postgres { db } => {
                let client = pg_connect(&db.url).await;
                client.batch_execute(sql).await.unwrap();
            }
        }
    }
}

/// A SQLite file in a temporary folder (a folder below it, to test that parents are made).
pub async fn sqlite() -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("botarmy.db");
    let url = format!("sqlite://{}", path.display());
    let store = botarmy_store::open(&url).await.unwrap();
    Ctx {
        store,
        url,
        backend: Backend::Sqlite { path, _dir: dir },
    }
}

/// A fresh PostgreSQL database `botarmy_test_<random>`, dropped at the end. Fails (does not
/// skip) when PostgreSQL is not reachable.
pub async fn postgres() -> Ctx {
    let db = PgDb::create().await;
    let store = botarmy_store::open(&db.url).await.unwrap();
    Ctx {
        store,
        url: db.url.clone(),
        backend: Backend::Postgres { db },
    }
}

pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} is not reachable ({e}); the store tests need it")
        });
    tokio::spawn(connection);
    client
}

/// A test database, dropped (with its connections) when this is dropped, also on failure.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create() -> Self {
        let name = format!("botarmy_test_{}", uuid::Uuid::now_v7().simple());
        let admin = pg_connect(PG_ADMIN).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self { name, url }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let admin = pg_connect(PG_ADMIN).await;
                admin.batch_execute(&sql).await
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop the test database: {e}");
        }
    }
}

/// A plan of `n` steps over three agents.
pub fn plan(n: usize) -> Plan {
    let agents = ["analyst", "architect", "coder"];
    Plan {
        workflow_id: "sdlc".into(),
        workflow_name: "Software lifecycle".into(),
        cycle_type: "greenfield".into(),
        method_digest: "abc".into(),
        steps: (0..n)
            .map(|i| PlanStep {
                key: format!("phase/step-{i}"),
                title: format!("Step {i}"),
                phase: Some(format!("phase-{}", i / 2)),
                agent: agents[i % agents.len()].into(),
                creates: Some(format!("doc-{i}.md")),
                template: None,
                requires: vec![],
                depends_on: if i == 0 { vec![] } else { vec![(i - 1) as u32] },
                optional: false,
                condition: None,
                instruction: None,
                notes: None,
                tools: Vec::new(),
                max_turns: None,
                kind: Default::default(),
            })
            .collect(),
        gates: Vec::new(),
    }
}

pub fn created(project_id: ProjectId, idea: &str, steps: usize) -> Event {
    Event::PipelineCreated {
        project_id,
        request: RunRequest {
            idea: idea.into(),
            workflow: "sdlc".into(),
            method: "builtin".into(),
            options: RunOptions::default(),
        },
        plan: plan(steps),
    }
}

/// A project `name` and a new run in it with `steps` steps; returns the run.
pub async fn new_run(store: &Arc<dyn Store>, project: &str, steps: usize) -> RunId {
    new_run_at(store, project, steps, RunId::new(), 1_000).await
}

pub async fn new_run_at(
    store: &Arc<dyn Store>,
    project: &str,
    steps: usize,
    run_id: RunId,
    at: i64,
) -> RunId {
    let project = store.ensure_project(project).await.unwrap();
    store
        .create_run(run_id, created(project.id, "a todo app", steps), at)
        .await
        .unwrap();
    run_id
}

pub fn batch(events: Vec<Event>) -> AppendBatch {
    AppendBatch {
        events,
        artifacts: vec![],
    }
}

pub fn started() -> Event {
    Event::PipelineStarted {
        cycle_type: "greenfield".into(),
        workflow: "sdlc".into(),
    }
}

pub fn waiting(reason: impl Into<String>) -> Event {
    Event::PipelineWaiting {
        reason: reason.into(),
    }
}

pub fn step_started(step: u32, attempt: u32, agent: &str) -> Event {
    Event::StepStarted {
        step,
        attempt,
        agent: agent.into(),
    }
}

pub fn usage(input: u64, output: u64, cost: f64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_tokens: input / 10,
        cost_usd: cost,
        calls: 1,
    }
}

pub fn llm_ok(step: u32, attempt: u32, call: u32, usage: Usage) -> Event {
    Event::LlmCallCompleted {
        step,
        attempt,
        call,
        provider: "local".into(),
        model: "smollm2".into(),
        request_hash: format!("h{step}{attempt}{call}"),
        response: "a response".into(),
        tool_calls: Vec::new(),
        usage,
        latency_ms: 40,
    }
}

pub fn llm_failed(step: u32, attempt: u32, call: u32) -> Event {
    Event::LlmCallFailed {
        step,
        attempt,
        call,
        provider: "openai".into(),
        model: "gpt-x".into(),
        error: ErrorInfo::new(ErrorKind::Transient, "rate limited"),
        latency_ms: 7,
    }
}

pub fn step_completed(step: u32, attempt: u32) -> Event {
    Event::StepCompleted {
        step,
        attempt,
        usage: Usage::default(),
        duration_ms: 5,
        assessment: None,
    }
}

pub fn step_failed(step: u32, attempt: u32, message: &str) -> Event {
    Event::StepFailed {
        step,
        attempt,
        error: ErrorInfo::new(ErrorKind::Transient, message),
    }
}

/// An `ArtifactCreated` event and its body.
pub fn artifact(step: u32, name: &str, version: u32, content: &str) -> (Event, ArtifactBody) {
    let id = ArtifactId::new();
    let event = Event::ArtifactCreated {
        step,
        artifact: ArtifactRef {
            id,
            name: name.into(),
            kind: if name.starts_with("code/") {
                ArtifactKind::Code
            } else {
                ArtifactKind::Document
            },
            version,
            sha256: format!("{:064x}", content.len()),
            bytes: content.len() as u64,
        },
    };
    (
        event,
        ArtifactBody {
            id,
            content: content.as_bytes().to_vec(),
        },
    )
}
