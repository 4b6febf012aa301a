//! The read side on PostgreSQL.

use botarmy_protocol::{ArtifactId, ArtifactRef, EventRecord, ProjectId, RunId, RunStatus, Usage};
use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Fail;
use crate::projection::{
    bad_value, decode, id_range, parse_artifact_kind, parse_step_status, sql_int, wire_int,
    wire_u32,
};
use crate::{
    ArtifactRecord, AttemptRecord, LlmCallRecord, ProjectRecord, RunFilter, RunSummary, StepRecord,
    StoreError,
};

/// Usage from five consecutive columns starting at `i`.
fn usage(row: &Row, i: usize) -> Usage {
    Usage {
        input_tokens: wire_int(row.get(i)),
        output_tokens: wire_int(row.get(i + 1)),
        cached_tokens: wire_int(row.get(i + 2)),
        cost_usd: row.get(i + 3),
        calls: wire_int(row.get(i + 4)),
    }
}

/// A step's or an attempt's usage: the sum of its completed calls (`c`).
const CALL_USAGE: &str = "COALESCE(SUM(c.input_tokens), 0)::BIGINT, \
     COALESCE(SUM(c.output_tokens), 0)::BIGINT, COALESCE(SUM(c.cached_tokens), 0)::BIGINT, \
     COALESCE(SUM(c.cost_usd), 0)::DOUBLE PRECISION, COUNT(c.seq)";

const PROJECT_COLUMNS: &str = "id, tenant, name, status, created_at";

fn project(row: &Row) -> ProjectRecord {
    ProjectRecord {
        id: ProjectId(row.get(0)),
        tenant: row.get(1),
        name: row.get(2),
        status: row.get(3),
        created_at: row.get(4),
    }
}

pub(crate) async fn project_by_name(
    client: &Object,
    tenant: &str,
    name: &str,
) -> Result<Option<ProjectRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE tenant = $1 AND name = $2"
        ))
        .await?;
    Ok(client
        .query_opt(&stmt, &[&tenant, &name])
        .await?
        .as_ref()
        .map(project))
}

pub(crate) async fn project_in(
    client: &Object,
    tenant: &str,
    id: ProjectId,
) -> Result<ProjectRecord, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE tenant = $1 AND id = $2"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&tenant, &id.0])
        .await?
        .as_ref()
        .map(project)
        .ok_or_else(|| {
            Fail::Store(StoreError::NotFound {
                what: "project",
                id: id.to_string(),
            })
        })
}

/// Projects of one tenant or of all, newest first.
pub(crate) async fn list_projects(
    client: &Object,
    tenant: Option<&str>,
) -> Result<Vec<ProjectRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE $1::TEXT IS NULL OR tenant = $1
             ORDER BY created_at DESC, id DESC"
        ))
        .await?;
    Ok(client
        .query(&stmt, &[&tenant])
        .await?
        .iter()
        .map(project)
        .collect())
}

pub(crate) async fn run_tenant(client: &Object, run_id: RunId) -> Result<Option<String>, Fail> {
    let stmt = client
        .prepare_cached(
            "SELECT p.tenant FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = $1",
        )
        .await?;
    Ok(client
        .query_opt(&stmt, &[&run_id.0])
        .await?
        .map(|r| r.get(0)))
}

pub(crate) async fn read_events(
    client: &Object,
    run_id: RunId,
    since: u64,
    limit: u32,
) -> Result<Vec<EventRecord>, Fail> {
    let limit = (limit > 0).then_some(i64::from(limit));
    let stmt = client
        .prepare_cached(
            "SELECT seq, at, payload::text FROM events WHERE run_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&run_id.0, &sql_int(since), &limit])
        .await?;
    rows.iter()
        .map(|r| Ok(decode(run_id, wire_int(r.get(0)), r.get(1), r.get(2))?))
        .collect()
}

/// The run's last sequence number, `None` if there is no such run.
pub(crate) async fn last_seq(client: &Object, run_id: RunId) -> Result<Option<u64>, Fail> {
    let stmt = client
        .prepare_cached("SELECT last_seq FROM runs WHERE id = $1")
        .await?;
    Ok(client
        .query_opt(&stmt, &[&run_id.0])
        .await?
        .map(|r| wire_int(r.get(0))))
}

const RUN_COLUMNS: &str = "id, project_id, workflow, idea, status, created_at, started_at, \
     finished_at, last_seq, input_tokens, output_tokens, cached_tokens, cost_usd, calls, error";

fn run_summary(r: &Row) -> Result<RunSummary, Fail> {
    let status: &str = r.get(4);
    Ok(RunSummary {
        id: RunId(r.get(0)),
        project_id: ProjectId(r.get(1)),
        workflow: r.get(2),
        idea: r.get(3),
        status: RunStatus::parse(status)
            .ok_or_else(|| Fail::Store(bad_value("runs", "status", status)))?,
        created_at: r.get(5),
        started_at: r.get(6),
        finished_at: r.get(7),
        last_seq: wire_int(r.get(8)),
        usage: usage(r, 9),
        error: r.get(14),
    })
}

pub(crate) async fn get_run(client: &Object, run_id: RunId) -> Result<RunSummary, Fail> {
    let stmt = client
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
        .await?;
    match client.query_opt(&stmt, &[&run_id.0]).await? {
        Some(row) => run_summary(&row),
        None => Err(Fail::Store(StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        })),
    }
}

pub(crate) async fn resolve_run(client: &Object, input: &str) -> Result<RunId, Fail> {
    let range = id_range(input)?;
    let stmt = client
        .prepare_cached("SELECT id FROM runs WHERE id BETWEEN $1 AND $2 ORDER BY id LIMIT 2")
        .await?;
    let rows = client.query(&stmt, &[&range.lo, &range.hi]).await?;
    match rows.as_slice() {
        [] => Err(Fail::Store(StoreError::NotFound {
            what: "run",
            id: input.to_string(),
        })),
        [one] => Ok(RunId(one.get(0))),
        _ => {
            let count = client
                .prepare_cached("SELECT COUNT(*) FROM runs WHERE id BETWEEN $1 AND $2")
                .await?;
            let count: i64 = client
                .query_one(&count, &[&range.lo, &range.hi])
                .await?
                .get(0);
            Err(Fail::Store(StoreError::Ambiguous {
                prefix: input.to_string(),
                count: usize::try_from(count).unwrap_or(usize::MAX),
            }))
        }
    }
}

pub(crate) async fn list_runs(
    client: &Object,
    filter: &RunFilter,
) -> Result<Vec<RunSummary>, Fail> {
    let project = filter.project.map(|p| p.0);
    let status = filter.status.map(RunStatus::as_str);
    let limit = (filter.limit > 0).then_some(i64::from(filter.limit));
    let offset = i64::from(filter.offset);
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE TRUE");
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(5);
    if let Some(tenant) = &filter.tenant {
        args.push(tenant);
        sql.push_str(&format!(
            " AND project_id IN (SELECT id FROM projects WHERE tenant = ${})",
            args.len()
        ));
    }
    if let Some(project) = &project {
        args.push(project);
        sql.push_str(&format!(" AND project_id = ${}", args.len()));
    }
    if let Some(status) = &status {
        args.push(status);
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    args.push(&limit);
    args.push(&offset);
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
        args.len() - 1,
        args.len()
    ));
    let stmt = client.prepare_cached(&sql).await?;
    client
        .query(&stmt, &args)
        .await?
        .iter()
        .map(run_summary)
        .collect()
}

pub(crate) async fn steps(client: &Object, run_id: RunId) -> Result<Vec<StepRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT s.step, s.key, s.title, s.phase, s.agent, s.status, s.attempt, s.started_at,
             s.finished_at, {CALL_USAGE}, s.error
             FROM steps s LEFT JOIN llm_calls c ON c.run_id = s.run_id AND c.step = s.step
             AND c.status = 'ok'
             WHERE s.run_id = $1 GROUP BY s.run_id, s.step ORDER BY s.step"
        ))
        .await?;
    client
        .query(&stmt, &[&run_id.0])
        .await?
        .iter()
        .map(|r| {
            let status: &str = r.get(5);
            Ok(StepRecord {
                step: wire_u32(r.get(0)),
                key: r.get(1),
                title: r.get(2),
                phase: r.get(3),
                agent: r.get(4),
                status: parse_step_status(status)
                    .ok_or_else(|| Fail::Store(bad_value("steps", "status", status)))?,
                attempt: wire_u32(r.get(6)),
                started_at: r.get(7),
                finished_at: r.get(8),
                usage: usage(r, 9),
                error: r.get(14),
            })
        })
        .collect()
}

pub(crate) async fn attempts(client: &Object, run_id: RunId) -> Result<Vec<AttemptRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT a.step, a.attempt, a.status, a.started_at, a.finished_at, {CALL_USAGE},
             a.error FROM step_attempts a LEFT JOIN llm_calls c ON c.run_id = a.run_id
             AND c.step = a.step AND c.attempt = a.attempt AND c.status = 'ok'
             WHERE a.run_id = $1 GROUP BY a.run_id, a.step, a.attempt ORDER BY a.step, a.attempt"
        ))
        .await?;
    Ok(client
        .query(&stmt, &[&run_id.0])
        .await?
        .iter()
        .map(|r| AttemptRecord {
            step: wire_u32(r.get(0)),
            attempt: wire_u32(r.get(1)),
            status: r.get(2),
            started_at: r.get(3),
            finished_at: r.get(4),
            usage: usage(r, 5),
            error: r.get(10),
        })
        .collect())
}

pub(crate) async fn artifacts(client: &Object, run_id: RunId) -> Result<Vec<ArtifactRecord>, Fail> {
    let stmt = client
        .prepare_cached(
            "SELECT id, project_id, step, name, kind, version, sha256, bytes, created_at
             FROM artifacts WHERE run_id = $1 ORDER BY seq",
        )
        .await?;
    client
        .query(&stmt, &[&run_id.0])
        .await?
        .iter()
        .map(|r| {
            let kind: &str = r.get(4);
            Ok(ArtifactRecord {
                artifact: ArtifactRef {
                    id: ArtifactId(r.get(0)),
                    name: r.get(3),
                    kind: parse_artifact_kind(kind)
                        .ok_or_else(|| Fail::Store(bad_value("artifacts", "kind", kind)))?,
                    version: wire_u32(r.get(5)),
                    sha256: r.get(6),
                    bytes: wire_int(r.get(7)),
                },
                run_id,
                project_id: ProjectId(r.get(1)),
                step: wire_u32(r.get(2)),
                created_at: r.get(8),
            })
        })
        .collect()
}

pub(crate) async fn artifact_content(client: &Object, id: ArtifactId) -> Result<Vec<u8>, Fail> {
    let stmt = client
        .prepare_cached("SELECT content FROM artifacts WHERE id = $1")
        .await?;
    client
        .query_opt(&stmt, &[&id.0])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            Fail::Store(StoreError::NotFound {
                what: "artifact",
                id: id.to_string(),
            })
        })
}

pub(crate) async fn llm_calls(client: &Object, run_id: RunId) -> Result<Vec<LlmCallRecord>, Fail> {
    let stmt = client
        .prepare_cached(
            "SELECT step, attempt, call, agent, provider, model, status, input_tokens,
             output_tokens, cached_tokens, cost_usd, latency_ms, error, created_at
             FROM llm_calls WHERE run_id = $1 ORDER BY seq",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&run_id.0])
        .await?
        .iter()
        .map(|r| {
            let status: String = r.get(6);
            LlmCallRecord {
                run_id,
                step: wire_u32(r.get(0)),
                attempt: wire_u32(r.get(1)),
                call: wire_u32(r.get(2)),
                agent: r.get(3),
                provider: r.get(4),
                model: r.get(5),
                usage: Usage {
                    input_tokens: wire_int(r.get(7)),
                    output_tokens: wire_int(r.get(8)),
                    cached_tokens: wire_int(r.get(9)),
                    cost_usd: r.get(10),
                    calls: u64::from(status == "ok"),
                },
                status,
                latency_ms: wire_int(r.get(11)),
                error: r.get(12),
                created_at: r.get(13),
            }
        })
        .collect())
}

/// See [`crate::Store::settled_conflicts`].
pub(crate) async fn settled_conflicts(
    client: &Object,
    project: ProjectId,
) -> Result<Vec<botarmy_protocol::SettledConflict>, Fail> {
    let stmt = client
        .prepare_cached(
            "SELECT e.run_id, e.seq, e.at, e.payload::text FROM runs r
             JOIN events e ON e.run_id = r.id
             WHERE r.project_id = $1 AND e.type IN ('conflict_detected', 'conflict_resolved')
             ORDER BY r.created_at, r.id, e.seq",
        )
        .await?;
    let mut records = Vec::new();
    for r in client.query(&stmt, &[&project.0]).await? {
        let payload: &str = r.get(3);
        records.push(crate::projection::decode(
            RunId(r.get(0)),
            wire_int(r.get(1)),
            r.get(2),
            payload,
        )?);
    }
    Ok(crate::projection::settled_conflicts(records))
}
