//! The write side on PostgreSQL: one transaction per request, the run's row locked for the
//! conflict check, then every statement of the batch pipelined in one round trip.

use std::future::Future;
use std::pin::Pin;

use botarmy_protocol::{Event, ProjectId, RunId, UnixMillis};
use deadpool_postgres::{Object, Transaction};
use futures_util::future::join_all;
use uuid::Uuid;

use super::{CHANNEL, Fail};
use crate::projection::{self, Change, PreparedEvent, RunDelta, invalid, sql_int, unknown_step};
use crate::{ProjectRecord, StoreError};

/// A statement sent in a pipeline, answering its row count.
type Pipelined<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// A pipelined statement and what its row count must be.
type Op<'a> = (Pipelined<'a>, Check<'a>);

/// What a statement's row count tells.
enum Check<'a> {
    /// Nothing.
    Any,
    /// Zero rows means the event names a step the plan does not have.
    Step {
        seq: u64,
        event: &'a Event,
        step: u32,
    },
}

pub(crate) async fn ensure_project(
    client: &mut Object,
    tenant: &str,
    name: &str,
    id: ProjectId,
    at: UnixMillis,
) -> Result<ProjectRecord, Fail> {
    if let Some(found) = super::read::project_by_name(client, tenant, name).await? {
        return Ok(found);
    }
    let insert = client
        .prepare_cached(
            "INSERT INTO projects (id, tenant, name, status, created_at)
             VALUES ($1, $2, $3, 'active', $4)
             ON CONFLICT (tenant, name) DO NOTHING",
        )
        .await?;
    client
        .execute(&insert, &[&id.0, &tenant, &name, &at])
        .await?;
    super::read::project_by_name(client, tenant, name)
        .await?
        .ok_or_else(|| {
            Fail::Store(StoreError::NotFound {
                what: "project",
                id: name.to_string(),
            })
        })
}

pub(crate) async fn create_run(
    client: &mut Object,
    run_id: RunId,
    at: UnixMillis,
    created: &PreparedEvent,
    then: &[PreparedEvent],
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
    let tx = client.transaction().await?;
    // One pipeline, led by the run's row, inserted only if its project exists and the run
    // does not.
    let insert_run = tx
        .prepare_cached(
            "INSERT INTO runs (id, project_id, workflow, idea, status, created_at, last_seq)
             SELECT $1, id, $3::TEXT, $4::TEXT, 'pending', $5::BIGINT, 1
             FROM projects WHERE id = $2 ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let insert_steps = tx
        .prepare_cached(
            "INSERT INTO steps (run_id, step, project_id, key, title, phase, agent, status)
             SELECT $1, s.step, $2, s.key, s.title, s.phase, s.agent, 'pending'
             FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[])
             AS s (step, key, title, phase, agent)",
        )
        .await?;
    let insert_event = tx
        .prepare_cached(
            "INSERT INTO events (run_id, seq, at, type, payload)
             VALUES ($1, 1, $2, 'pipeline_created', $3::TEXT::JSONB)",
        )
        .await?;
    let notify = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
    let payload = format!("{run_id}:1");
    let indices: Vec<i64> = (0..plan.steps.len() as i64).collect();
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    let titles: Vec<&str> = plan.steps.iter().map(|s| s.title.as_str()).collect();
    let phases: Vec<Option<&str>> = plan.steps.iter().map(|s| s.phase.as_deref()).collect();
    let agents: Vec<&str> = plan.steps.iter().map(|s| s.agent.as_str()).collect();
    let (inserted, rest) = {
        let t = &tx;
        let ops: Vec<Pipelined<'_>> = vec![
            Box::pin(async {
                t.execute(
                    &insert_run,
                    &[
                        &run_id.0,
                        &project_id.0,
                        &plan.workflow_id,
                        &request.idea,
                        &at,
                    ],
                )
                .await
            }),
            Box::pin(async {
                t.execute(
                    &insert_steps,
                    &[
                        &run_id.0,
                        &project_id.0,
                        &indices,
                        &keys,
                        &titles,
                        &phases,
                        &agents,
                    ],
                )
                .await
            }),
            Box::pin(async {
                t.execute(&insert_event, &[&run_id.0, &at, &created.payload])
                    .await
            }),
            Box::pin(async { t.execute(&notify, &[&CHANNEL, &payload]).await }),
        ];
        let mut results = join_all(ops).await.into_iter();
        (results.next(), results.collect::<Vec<_>>())
    };
    match inserted {
        Some(Ok(1)) => {}
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(_)) | None => {
            tx.rollback().await?;
            return Err(Fail::Store(
                match super::read::last_seq(client, run_id).await? {
                    Some(actual) => StoreError::Conflict {
                        run_id,
                        expected: 0,
                        actual,
                    },
                    None => StoreError::NotFound {
                        what: "project",
                        id: project_id.to_string(),
                    },
                },
            ));
        }
    }
    for result in rest {
        result?;
    }
    if !then.is_empty() && append_in(&tx, run_id, 1, at, then).await?.is_none() {
        // Nobody else can have appended to a run this transaction is creating.
        return Err(Fail::Store(invalid(format!(
            "run {run_id}: its log moved on while it was being created"
        ))));
    }
    tx.commit().await?;
    Ok(())
}

/// Appends after checking the log ends at `expected`; returns the first new sequence number.
///
/// Everything goes in one pipeline, led by the `UPDATE … WHERE last_seq = expected` of the
/// run's row: it is the conflict check (a concurrent append holds the row lock until it
/// commits, then the condition fails) and every change of the row at once. If it matched
/// nothing, the transaction is rolled back and the run's state asked for the error.
pub(crate) async fn append(
    client: &mut Object,
    run_id: RunId,
    expected: u64,
    at: UnixMillis,
    events: &[PreparedEvent],
) -> Result<u64, Fail> {
    let first = expected + 1;
    if events.is_empty() {
        return match super::read::last_seq(client, run_id).await? {
            Some(last) if last == expected => Ok(first),
            Some(last) => Err(Fail::Store(StoreError::Conflict {
                run_id,
                expected,
                actual: last,
            })),
            None => Err(Fail::Store(StoreError::NotFound {
                what: "run",
                id: run_id.to_string(),
            })),
        };
    }
    let tx = client.transaction().await?;
    if let Some(first) = append_in(&tx, run_id, expected, at, events).await? {
        tx.commit().await?;
        return Ok(first);
    }
    // The log has moved on, or there is no such run.
    tx.rollback().await?;
    let err = match super::read::last_seq(client, run_id).await? {
        None => StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        },
        Some(actual) => StoreError::Conflict {
            run_id,
            expected,
            actual,
        },
    };
    Err(Fail::Store(err))
}

/// The work of [`append`] inside `tx`, for a non-empty batch: the first new sequence number,
/// or `None` (the transaction must be rolled back) if the log does not end at `expected`.
async fn append_in(
    tx: &Transaction<'_>,
    run_id: RunId,
    expected: u64,
    at: UnixMillis,
    events: &[PreparedEvent],
) -> Result<Option<u64>, Fail> {
    let first = expected + 1;
    let new_last = expected + events.len() as u64;
    let payload = format!("{run_id}:{new_last}");
    let changes: Vec<Change<'_>> = events
        .iter()
        .map(|ev| projection::change(&ev.event))
        .collect();
    let mut delta = RunDelta::default();
    for change in &changes {
        delta.add(change);
    }
    let st = Statements::prepare(tx).await?;
    let cx = Ctx {
        tx,
        st: &st,
        run: run_id.0,
        at,
    };
    let mut ops: Vec<Op<'_>> = Vec::with_capacity(events.len() * 3 + 2);
    {
        let update_run = &st.update_run;
        let status = delta.status.map(|s| s.as_str());
        let (start, finish, error) = (delta.start, delta.finish_code(), delta.error);
        let u = delta.usage;
        ops.push((
            Box::pin(async move {
                tx.execute(
                    update_run,
                    &[
                        &run_id.0,
                        &sql_int(new_last),
                        &status,
                        &start,
                        &at,
                        &finish,
                        &error,
                        &sql_int(u.input_tokens),
                        &sql_int(u.output_tokens),
                        &sql_int(u.cached_tokens),
                        &u.cost_usd,
                        &sql_int(u.calls),
                        &sql_int(expected),
                    ],
                )
                .await
            }),
            Check::Any,
        ));
    }
    {
        // All the events in one statement.
        let insert = &st.insert_events;
        let seqs: Vec<i64> = (first..=new_last).map(sql_int).collect();
        let names: Vec<&str> = events.iter().map(|ev| ev.event.name()).collect();
        let payloads: Vec<&str> = events.iter().map(|ev| ev.payload.as_str()).collect();
        ops.push((
            Box::pin(async move {
                tx.execute(insert, &[&run_id.0, &at, &seqs, &names, &payloads])
                    .await
            }),
            Check::Any,
        ));
    }
    for ((ev, change), seq) in events.iter().zip(changes).zip(first..) {
        cx.project(ev, seq, change, &mut ops)?;
    }
    {
        let (notify, payload) = (&st.notify, &payload);
        ops.push((
            Box::pin(async move { tx.execute(notify, &[&CHANNEL, payload]).await }),
            Check::Any,
        ));
    }
    let (futures, checks): (Vec<_>, Vec<_>) = ops.into_iter().unzip();
    let mut results = join_all(futures).await.into_iter();
    match results.next() {
        Some(Ok(1)) => {}
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(_)) | None => return Ok(None),
    }
    for (result, check) in results.zip(checks.into_iter().skip(1)) {
        let rows = result?;
        if let Check::Step { seq, event, step } = check
            && rows == 0
        {
            return Err(Fail::Store(unknown_step(run_id, seq, event, step)));
        }
    }
    Ok(Some(first))
}

/// The statements an append may need, prepared (once per connection) before the pipeline.
struct Statements {
    insert_events: tokio_postgres::Statement,
    update_run: tokio_postgres::Statement,
    notify: tokio_postgres::Statement,
    step_started: tokio_postgres::Statement,
    attempt_started: tokio_postgres::Statement,
    step_end: tokio_postgres::Statement,
    attempt_end: tokio_postgres::Statement,
    llm_call: tokio_postgres::Statement,
    artifact: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(tx: &Transaction<'_>) -> Result<Self, Fail> {
        Ok(Self {
            insert_events: tx
                .prepare_cached(
                    "INSERT INTO events (run_id, seq, at, type, payload)
                     SELECT $1, e.seq, $2, e.type, e.payload::jsonb
                     FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::TEXT[]) AS e (seq, type, payload)",
                )
                .await?,
            update_run: tx
                .prepare_cached(
                    "UPDATE runs SET last_seq = $2, status = COALESCE($3::TEXT, status),
                     started_at = CASE WHEN $4::BOOLEAN THEN COALESCE(started_at, $5::BIGINT)
                                  ELSE started_at END,
                     finished_at = CASE $6::BIGINT WHEN 0 THEN finished_at WHEN 1 THEN NULL
                                   ELSE $5::BIGINT END,
                     error = CASE $6::BIGINT WHEN 0 THEN error WHEN 1 THEN NULL ELSE $7::TEXT END,
                     input_tokens = input_tokens + $8, output_tokens = output_tokens + $9,
                     cached_tokens = cached_tokens + $10, cost_usd = cost_usd + $11,
                     calls = calls + $12
                     WHERE id = $1 AND last_seq = $13",
                )
                .await?,
            notify: tx.prepare_cached("SELECT pg_notify($1, $2)").await?,
            step_started: tx
                .prepare_cached(
                    "UPDATE steps SET status = 'running', attempt = $3, agent = $4, started_at = $5,
                     finished_at = NULL, error = NULL WHERE run_id = $1 AND step = $2",
                )
                .await?,
            attempt_started: tx
                .prepare_cached(
                    "INSERT INTO step_attempts (run_id, step, attempt, status, started_at)
                     VALUES ($1, $2, $3, 'running', $4)
                     ON CONFLICT (run_id, step, attempt) DO UPDATE SET status = 'running',
                     started_at = EXCLUDED.started_at, finished_at = NULL, error = NULL",
                )
                .await?,
            step_end: tx
                .prepare_cached(
                    "UPDATE steps SET status = $3, finished_at = $4, error = $5
                     WHERE run_id = $1 AND step = $2",
                )
                .await?,
            attempt_end: tx
                .prepare_cached(
                    "UPDATE step_attempts SET status = $4, finished_at = $5, error = $6
                     WHERE run_id = $1 AND step = $2 AND attempt = $3",
                )
                .await?,
            llm_call: tx
                .prepare_cached(
                    "INSERT INTO llm_calls (run_id, step, attempt, call, agent, provider, model,
                     status, input_tokens, output_tokens, cached_tokens, cost_usd, latency_ms,
                     request_hash, error, created_at, seq)
                     SELECT $1, $2, $3::BIGINT, $4::BIGINT, agent, $5::TEXT, $6::TEXT, $7::TEXT,
                     $8::BIGINT, $9::BIGINT, $10::BIGINT, $11::DOUBLE PRECISION, $12::BIGINT,
                     $13::TEXT, $14::TEXT, $15::BIGINT, $16::BIGINT
                     FROM steps WHERE run_id = $1 AND step = $2",
                )
                .await?,
            artifact: tx
                .prepare_cached(
                    "INSERT INTO artifacts (id, run_id, project_id, step, seq, name, kind, version,
                     sha256, bytes, created_at, content)
                     SELECT $1::UUID, $2, project_id, $3::BIGINT, $4::BIGINT, $5::TEXT, $6::TEXT,
                     $7::BIGINT, $8::TEXT, $9::BIGINT, $10::BIGINT, $11::BYTEA
                     FROM runs WHERE id = $2",
                )
                .await?,
        })
    }
}

/// Where events are being applied.
struct Ctx<'a> {
    tx: &'a Transaction<'a>,
    st: &'a Statements,
    run: Uuid,
    at: UnixMillis,
}

impl<'a> Ctx<'a> {
    /// Queues the projection of one event (see [`crate::projection`]).
    fn project(
        &self,
        ev: &'a PreparedEvent,
        seq: u64,
        change: Change<'a>,
        ops: &mut Vec<Op<'a>>,
    ) -> Result<(), Fail> {
        let Ctx { tx, st, run, at } = *self;
        let step_check = |step: u32| Check::Step {
            seq,
            event: &ev.event,
            step,
        };
        match change {
            // Folded into the run's single UPDATE (see `RunDelta`).
            Change::None | Change::Run(_) => {}
            Change::StepStarted {
                step,
                attempt,
                agent,
            } => {
                let (s, a) = (i64::from(step), i64::from(attempt));
                ops.push((
                    Box::pin(async move {
                        tx.execute(&st.step_started, &[&run, &s, &a, &agent, &at])
                            .await
                    }),
                    step_check(step),
                ));
                ops.push((
                    Box::pin(
                        async move { tx.execute(&st.attempt_started, &[&run, &s, &a, &at]).await },
                    ),
                    Check::Any,
                ));
            }
            Change::Step(end) => {
                let s = i64::from(end.step);
                let finished = end.finished.then_some(at);
                let (status, error) = (end.status.as_str(), end.error);
                ops.push((
                    Box::pin(async move {
                        tx.execute(&st.step_end, &[&run, &s, &status, &finished, &error])
                            .await
                    }),
                    step_check(end.step),
                ));
                if let Some((attempt, status)) = end.attempt {
                    let a = i64::from(attempt);
                    ops.push((
                        Box::pin(async move {
                            tx.execute(&st.attempt_end, &[&run, &s, &a, &status, &finished, &error])
                                .await
                        }),
                        Check::Any,
                    ));
                }
            }
            Change::LlmCall(c) => {
                let (s, a) = (i64::from(c.step), i64::from(c.attempt));
                let u = c.usage;
                let (i, o, k) = (
                    sql_int(u.input_tokens),
                    sql_int(u.output_tokens),
                    sql_int(u.cached_tokens),
                );
                let cost = u.cost_usd;
                ops.push((
                    Box::pin(async move {
                        tx.execute(
                            &st.llm_call,
                            &[
                                &run,
                                &s,
                                &a,
                                &i64::from(c.call),
                                &c.provider,
                                &c.model,
                                &c.status,
                                &i,
                                &o,
                                &k,
                                &cost,
                                &sql_int(c.latency_ms),
                                &c.request_hash,
                                &c.error,
                                &at,
                                &sql_int(seq),
                            ],
                        )
                        .await
                    }),
                    step_check(c.step),
                ));
                // The step's and the attempt's usage are sums over llm_calls, made when
                // read; the run's total is in the run's UPDATE.
            }
            Change::Artifact { step, artifact } => {
                let Some(content) = &ev.body else {
                    return Err(Fail::Store(invalid(format!(
                        "artifact `{}` v{} has no body",
                        artifact.name, artifact.version
                    ))));
                };
                let s = i64::from(step);
                ops.push((
                    Box::pin(async move {
                        tx.execute(
                            &st.artifact,
                            &[
                                &artifact.id.0,
                                &run,
                                &s,
                                &sql_int(seq),
                                &artifact.name,
                                &artifact.kind.as_str(),
                                &i64::from(artifact.version),
                                &artifact.sha256,
                                &sql_int(artifact.bytes),
                                &at,
                                &content.as_slice(),
                            ],
                        )
                        .await
                    }),
                    Check::Any,
                ));
            }
        }
        Ok(())
    }
}
