//! The single writer: one thread owns the write connection and group-commits whatever
//! requests are queued into one transaction, each request inside its own SAVEPOINT so a
//! failing one (a conflict, a bad batch) is undone alone while the others commit.
//!
//! Group commit is what makes many concurrent runs cheap: the cost of a commit (WAL append,
//! locking) is paid once per group instead of once per append.

use std::sync::Arc;

use botarmy_protocol::{Event, EventRecord, ProjectId, RunId, UnixMillis};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::{Fail, sql_error};
use crate::projection::{self, Change, PreparedEvent, RunDelta, invalid, sql_int, unknown_step};
use crate::watch::Watchers;
use crate::{ProjectRecord, RepositoryRecord, StoreError};

/// At most this many requests share one transaction.
const MAX_GROUP: usize = 256;

/// Where a request's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request to the writer thread.
pub(crate) enum Job {
    /// A change, done inside the group's transaction.
    Write(Write),
    /// A read on the write connection (in-memory databases, which have no other).
    Read(Box<dyn FnOnce(&Connection) + Send>),
}

/// A change to make.
pub(crate) enum Write {
    /// Find or create a project.
    Project {
        tenant: String,
        name: String,
        id: ProjectId,
        at: UnixMillis,
        reply: Reply<ProjectRecord>,
    },
    /// Create a run from its `PipelineCreated` event, then append `then`.
    Create {
        run_id: RunId,
        at: UnixMillis,
        event: PreparedEvent,
        then: Vec<PreparedEvent>,
        reply: Reply<Vec<EventRecord>>,
    },
    /// Append a batch.
    Append {
        run_id: RunId,
        expected: u64,
        at: UnixMillis,
        events: Vec<PreparedEvent>,
        reply: Reply<Vec<EventRecord>>,
    },
    /// Register a repository.
    AddRepository {
        repository: RepositoryRecord,
        reply: Reply<RepositoryRecord>,
    },
    /// Forget a repository.
    RemoveRepository {
        name: String,
        reply: Reply<RepositoryRecord>,
    },
    /// Any other change of plain rows (API tokens).
    Other(Box<dyn Op>),
}

/// A change of plain rows whose answer waits for the commit.
pub(crate) trait Op: Send {
    /// Does the change inside the transaction.
    fn execute(self: Box<Self>, conn: &Connection, location: &str) -> Box<dyn Done>;
    /// Answers without doing it.
    fn refuse(self: Box<Self>, err: StoreError);
}

/// The answer of an [`Op`], held until the commit.
pub(crate) trait Done: Send {
    fn failed(&self) -> bool;
    /// The commit failed: a success becomes `err`.
    fn fail(self: Box<Self>, err: StoreError) -> Box<dyn Done>;
    fn deliver(self: Box<Self>);
}

/// An [`Op`] made of a function and where its answer goes.
pub(crate) struct Plain<T, F> {
    pub(crate) f: F,
    pub(crate) reply: Reply<T>,
}

struct Answer<T> {
    reply: Reply<T>,
    result: Result<T, StoreError>,
}

impl<T, F> Op for Plain<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, Fail> + Send,
{
    fn execute(self: Box<Self>, conn: &Connection, location: &str) -> Box<dyn Done> {
        let result = (self.f)(conn).map_err(|e| e.into_store(location));
        Box::new(Answer {
            reply: self.reply,
            result,
        })
    }

    fn refuse(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

impl<T: Send + 'static> Done for Answer<T> {
    fn failed(&self) -> bool {
        self.result.is_err()
    }

    fn fail(self: Box<Self>, err: StoreError) -> Box<dyn Done> {
        match self.result {
            Ok(_) => Box::new(Answer {
                reply: self.reply,
                result: Err(err),
            }),
            Err(_) => self,
        }
    }

    fn deliver(self: Box<Self>) {
        let _ = self.reply.send(self.result);
    }
}

impl Write {
    fn refuse(self, err: StoreError) {
        // The caller may have given up waiting; then nobody listens.
        match self {
            Self::Project { reply, .. } => drop(reply.send(Err(err))),
            Self::Create { reply, .. } => drop(reply.send(Err(err))),
            Self::Append { reply, .. } => drop(reply.send(Err(err))),
            Self::AddRepository { reply, .. } | Self::RemoveRepository { reply, .. } => {
                drop(reply.send(Err(err)));
            }
            Self::Other(op) => op.refuse(err),
        }
    }
}

/// A request done inside the transaction, its answer held until the commit.
enum Outcome {
    Project(Reply<ProjectRecord>, Result<ProjectRecord, StoreError>),
    Create(
        Reply<Vec<EventRecord>>,
        Result<Vec<EventRecord>, StoreError>,
    ),
    Append(
        RunId,
        Reply<Vec<EventRecord>>,
        Result<Vec<EventRecord>, StoreError>,
    ),
    Repository(
        Reply<RepositoryRecord>,
        Result<RepositoryRecord, StoreError>,
    ),
    Other(Box<dyn Done>),
}

impl Outcome {
    /// The commit failed: every request that had succeeded gets `err`.
    fn fail(self, err: impl Fn() -> StoreError) -> Self {
        match self {
            Self::Project(r, Ok(_)) => Self::Project(r, Err(err())),
            Self::Create(r, Ok(_)) => Self::Create(r, Err(err())),
            Self::Append(id, r, Ok(_)) => Self::Append(id, r, Err(err())),
            Self::Repository(r, Ok(_)) => Self::Repository(r, Err(err())),
            Self::Other(done) => Self::Other(done.fail(err())),
            other => other,
        }
    }

    /// Answers the caller (who may have given up waiting: then nobody listens) and wakes
    /// the run's waiters.
    fn deliver(self, watchers: &Watchers) {
        match self {
            Self::Project(reply, result) => {
                let _ = reply.send(result);
            }
            Self::Repository(reply, result) => {
                let _ = reply.send(result);
            }
            Self::Other(done) => done.deliver(),
            Self::Create(reply, result) => {
                if let Ok(Some(last)) = result.as_ref().map(|r| r.last()) {
                    watchers.publish(last.run_id, last.seq);
                }
                let _ = reply.send(result);
            }
            Self::Append(run_id, reply, result) => {
                if let Ok(Some(last)) = result.as_ref().map(|r| r.last()) {
                    watchers.publish(run_id, last.seq);
                }
                let _ = reply.send(result);
            }
        }
    }
}

/// The writer thread's loop; returns when every sender is gone (the store was dropped).
pub(crate) fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    watchers: Arc<Watchers>,
    location: String,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(job) = jobs.blocking_recv() {
        group.push(job);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, &mut group, &watchers, &location);
    }
}

fn commit_group(conn: &mut Connection, group: &mut Vec<Job>, watchers: &Watchers, location: &str) {
    let mut writes = Vec::with_capacity(group.len());
    for job in group.drain(..) {
        match job {
            Job::Read(f) => f(conn),
            Job::Write(write) => writes.push(write),
        }
    }
    if writes.is_empty() {
        return;
    }
    let single = writes.len() == 1;
    let mut outcomes = Vec::with_capacity(writes.len());
    // Requests not reached when the transaction fails stay here.
    let mut pending = writes.into_iter();
    let result = (|| -> rusqlite::Result<()> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        for job in pending.by_ref() {
            // A lone request needs no savepoint: on failure the whole transaction goes.
            if !single {
                conn.prepare_cached("SAVEPOINT request")?.execute([])?;
            }
            let outcome = execute(conn, job, location);
            let failed = match &outcome {
                Outcome::Other(done) => done.failed(),
                other => matches!(
                    other,
                    Outcome::Project(_, Err(_))
                        | Outcome::Create(_, Err(_))
                        | Outcome::Append(_, _, Err(_))
                        | Outcome::Repository(_, Err(_))
                ),
            };
            if failed && !single {
                conn.prepare_cached("ROLLBACK TO request")?.execute([])?;
            }
            if !single {
                conn.prepare_cached("RELEASE request")?.execute([])?;
            }
            outcomes.push(outcome);
            if failed && single {
                conn.prepare_cached("ROLLBACK")?.execute([])?;
                return Ok(());
            }
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            for outcome in outcomes {
                outcome.deliver(watchers);
            }
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            let make = || sql_error(&e, location);
            for outcome in outcomes {
                outcome.fail(make).deliver(watchers);
            }
            // Requests not reached before the failure get the same answer.
            for write in pending {
                write.refuse(make());
            }
        }
    }
}

fn execute(conn: &Connection, job: Write, location: &str) -> Outcome {
    match job {
        Write::Project {
            tenant,
            name,
            id,
            at,
            reply,
        } => {
            let r =
                ensure_project(conn, &tenant, &name, id, at).map_err(|e| e.into_store(location));
            Outcome::Project(reply, r)
        }
        Write::Create {
            run_id,
            at,
            event,
            then,
            reply,
        } => {
            let r = create_run(conn, run_id, at, &event)
                .and_then(|()| {
                    if then.is_empty() {
                        Ok(())
                    } else {
                        append(conn, run_id, 1, at, &then).map(drop)
                    }
                })
                .map(|()| {
                    let mut records = vec![EventRecord {
                        run_id,
                        seq: 1,
                        at,
                        event: event.event,
                    }];
                    records.extend(projection::records(run_id, 2, at, then));
                    records
                })
                .map_err(|e| e.into_store(location));
            Outcome::Create(reply, r)
        }
        Write::Append {
            run_id,
            expected,
            at,
            events,
            reply,
        } => {
            let r = append(conn, run_id, expected, at, &events)
                .map(|first| projection::records(run_id, first, at, events))
                .map_err(|e| e.into_store(location));
            Outcome::Append(run_id, reply, r)
        }
        Write::AddRepository { repository, reply } => {
            let r = super::repositories::add(conn, &repository)
                .map(|()| repository)
                .map_err(|e| e.into_store(location));
            Outcome::Repository(reply, r)
        }
        Write::RemoveRepository { name, reply } => {
            let r = super::repositories::remove(conn, &name).map_err(|e| e.into_store(location));
            Outcome::Repository(reply, r)
        }
        Write::Other(op) => Outcome::Other(op.execute(conn, location)),
    }
}

fn ensure_project(
    conn: &Connection,
    tenant: &str,
    name: &str,
    id: ProjectId,
    at: UnixMillis,
) -> Result<ProjectRecord, Fail> {
    conn.prepare_cached(
        "INSERT INTO projects (id, tenant, name, status, created_at)
         VALUES (?1, ?2, ?3, 'active', ?4)
         ON CONFLICT (tenant, name) DO NOTHING",
    )?
    .execute(params![id.0.to_string(), tenant, name, at])?;
    super::read::project_by_name(conn, tenant, name)?.ok_or_else(|| {
        Fail::Store(StoreError::NotFound {
            what: "project",
            id: name.to_string(),
        })
    })
}

fn create_run(
    conn: &Connection,
    run_id: RunId,
    at: UnixMillis,
    created: &PreparedEvent,
) -> Result<(), Fail> {
    let Event::PipelineCreated {
        project_id,
        request,
        plan,
    } = &created.event
    else {
        return Err(Fail::Store(invalid(format!(
            "run {run_id}: a run starts with pipeline_created, not {}",
            created.event.name()
        ))));
    };
    let run = run_id.0.to_string();
    let project = project_id.0.to_string();
    let known: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM projects WHERE id = ?1")?
        .query_row([&project], |r| r.get(0))
        .optional()?;
    if known.is_none() {
        return Err(Fail::Store(StoreError::NotFound {
            what: "project",
            id: project,
        }));
    }
    let existing: Option<i64> = conn
        .prepare_cached("SELECT last_seq FROM runs WHERE id = ?1")?
        .query_row([&run], |r| r.get(0))
        .optional()?;
    if let Some(actual) = existing {
        return Err(Fail::Store(StoreError::Conflict {
            run_id,
            expected: 0,
            actual: projection::wire_int(actual),
        }));
    }
    conn.prepare_cached(
        "INSERT INTO runs (id, project_id, workflow, idea, status, created_at, last_seq)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, 1)",
    )?
    .execute(params![run, project, plan.workflow_id, request.idea, at])?;
    let mut insert_step = conn.prepare_cached(
        "INSERT INTO steps (run_id, step, project_id, key, title, phase, agent, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
    )?;
    for (i, step) in plan.steps.iter().enumerate() {
        insert_step.execute(params![
            run, i as i64, project, step.key, step.title, step.phase, step.agent
        ])?;
    }
    conn.prepare_cached(
        "INSERT INTO events (run_id, seq, at, type, payload) VALUES (?1, 1, ?2, ?3, ?4)",
    )?
    .execute(params![run, at, created.event.name(), created.payload])?;
    Ok(())
}

/// Appends after checking the log ends at `expected`; returns the first new sequence number.
///
/// The run's row is updated first, by one `UPDATE … WHERE last_seq = expected` that is at
/// once the conflict check and every change the batch makes to the row (see `RunDelta`).
fn append(
    conn: &Connection,
    run_id: RunId,
    expected: u64,
    at: UnixMillis,
    events: &[PreparedEvent],
) -> Result<u64, Fail> {
    let run = run_id.0.to_string();
    let first = expected + 1;
    let changes: Vec<Change<'_>> = events
        .iter()
        .map(|ev| projection::change(&ev.event))
        .collect();
    let mut delta = RunDelta::default();
    for change in &changes {
        delta.add(change);
    }
    let u = &delta.usage;
    let project: Option<String> = if events.is_empty() {
        conn.prepare_cached("SELECT project_id FROM runs WHERE id = ?1 AND last_seq = ?2")?
            .query_row(params![run, sql_int(expected)], |r| r.get(0))
            .optional()?
    } else {
        conn.prepare_cached(
            "UPDATE runs SET last_seq = ?2, status = COALESCE(?3, status),
             started_at = CASE WHEN ?4 THEN COALESCE(started_at, ?5) ELSE started_at END,
             finished_at = CASE ?6 WHEN 0 THEN finished_at WHEN 1 THEN NULL ELSE ?5 END,
             error = CASE ?6 WHEN 0 THEN error WHEN 1 THEN NULL ELSE ?7 END,
             input_tokens = input_tokens + ?8, output_tokens = output_tokens + ?9,
             cached_tokens = cached_tokens + ?10, cost_usd = cost_usd + ?11, calls = calls + ?12
             WHERE id = ?1 AND last_seq = ?13 RETURNING project_id",
        )?
        .query_row(
            params![
                run,
                sql_int(expected + events.len() as u64),
                delta.status.map(|s| s.as_str()),
                delta.start,
                at,
                delta.finish_code(),
                delta.error,
                sql_int(u.input_tokens),
                sql_int(u.output_tokens),
                sql_int(u.cached_tokens),
                u.cost_usd,
                sql_int(u.calls),
                sql_int(expected)
            ],
            |r| r.get(0),
        )
        .optional()?
    };
    let Some(project) = project else {
        return Err(Fail::Store(moved_on(conn, run_id, expected)?));
    };
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (run_id, seq, at, type, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for ((ev, change), seq) in events.iter().zip(changes).zip(first..) {
        insert.execute(params![run, sql_int(seq), at, ev.event.name(), ev.payload])?;
        let at_event = Ctx {
            run_id,
            run: &run,
            project: &project,
            at,
            seq,
            event: &ev.event,
        };
        apply(&at_event, conn, ev, change).map_err(|e| match e {
            Fail::Sql(sql) if is_constraint(&sql) => Fail::Store(invalid(format!(
                "run {run_id} event {seq} ({}): {sql}",
                ev.event.name()
            ))),
            other => other,
        })?;
    }
    Ok(first)
}

/// Why an append expecting `expected` found no row to update: no such run, or a conflict.
fn moved_on(conn: &Connection, run_id: RunId, expected: u64) -> Result<StoreError, Fail> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT last_seq FROM runs WHERE id = ?1")?
        .query_row([run_id.0.to_string()], |r| r.get(0))
        .optional()?;
    Ok(match last {
        None => StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        },
        Some(last) => StoreError::Conflict {
            run_id,
            expected,
            actual: projection::wire_int(last),
        },
    })
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// Where an event is being applied.
struct Ctx<'a> {
    run_id: RunId,
    run: &'a str,
    project: &'a str,
    at: UnixMillis,
    seq: u64,
    event: &'a Event,
}

/// The projection of one event (see [`crate::projection`]).
fn apply(
    cx: &Ctx<'_>,
    conn: &Connection,
    ev: &PreparedEvent,
    change: Change<'_>,
) -> Result<(), Fail> {
    let (run, project, at) = (cx.run, cx.project, cx.at);
    let no_step = |step: u32| Fail::Store(unknown_step(cx.run_id, cx.seq, cx.event, step));
    match change {
        // Folded into the run's single UPDATE (see `RunDelta`).
        Change::None | Change::Run(_) => {}
        Change::StepStarted {
            step,
            attempt,
            agent,
        } => {
            let n = conn
                .prepare_cached(
                    "UPDATE steps SET status = 'running', attempt = ?3, agent = ?4, started_at = ?5,
                     finished_at = NULL, error = NULL WHERE run_id = ?1 AND step = ?2",
                )?
                .execute(params![run, step, attempt, agent, at])?;
            if n == 0 {
                return Err(no_step(step));
            }
            conn.prepare_cached(
                "INSERT INTO step_attempts (run_id, step, attempt, status, started_at)
                 VALUES (?1, ?2, ?3, 'running', ?4)
                 ON CONFLICT (run_id, step, attempt) DO UPDATE SET status = 'running',
                 started_at = excluded.started_at, finished_at = NULL, error = NULL",
            )?
            .execute(params![run, step, attempt, at])?;
        }
        Change::Step(end) => {
            let finished = end.finished.then_some(at);
            let n = conn
                .prepare_cached(
                    "UPDATE steps SET status = ?3, finished_at = ?4, error = ?5
                     WHERE run_id = ?1 AND step = ?2",
                )?
                .execute(params![
                    run,
                    end.step,
                    end.status.as_str(),
                    finished,
                    end.error
                ])?;
            if n == 0 {
                return Err(no_step(end.step));
            }
            if let Some((attempt, status)) = end.attempt {
                conn.prepare_cached(
                    "UPDATE step_attempts SET status = ?4, finished_at = ?5, error = ?6
                     WHERE run_id = ?1 AND step = ?2 AND attempt = ?3",
                )?
                .execute(params![run, end.step, attempt, status, finished, end.error])?;
            }
        }
        Change::LlmCall(c) => {
            let u = &c.usage;
            let n = conn
                .prepare_cached(
                    "INSERT INTO llm_calls (run_id, step, attempt, call, agent, provider, model,
                     status, input_tokens, output_tokens, cached_tokens, cost_usd, latency_ms,
                     request_hash, error, created_at, seq)
                     SELECT ?1, ?2, ?3, ?4, agent, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                     ?16 FROM steps WHERE run_id = ?1 AND step = ?2",
                )?
                .execute(params![
                    run,
                    c.step,
                    c.attempt,
                    c.call,
                    c.provider,
                    c.model,
                    c.status,
                    sql_int(u.input_tokens),
                    sql_int(u.output_tokens),
                    sql_int(u.cached_tokens),
                    u.cost_usd,
                    sql_int(c.latency_ms),
                    c.request_hash,
                    c.error,
                    at,
                    sql_int(cx.seq)
                ])?;
            if n == 0 {
                return Err(no_step(c.step));
            }
            // The step's and the attempt's usage are sums over llm_calls, made when read;
            // the run's total is in the run's UPDATE.
        }
        Change::Artifact { step, artifact } => {
            let Some(content) = &ev.body else {
                return Err(Fail::Store(invalid(format!(
                    "artifact `{}` v{} has no body",
                    artifact.name, artifact.version
                ))));
            };
            conn.prepare_cached(
                "INSERT INTO artifacts (id, run_id, project_id, step, seq, name, kind, version,
                 sha256, bytes, created_at, content)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                artifact.id.0.to_string(),
                run,
                project,
                step,
                sql_int(cx.seq),
                artifact.name,
                artifact.kind.as_str(),
                artifact.version,
                artifact.sha256,
                sql_int(artifact.bytes),
                at,
                content
            ])?;
        }
    }
    Ok(())
}
