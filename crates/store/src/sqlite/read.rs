//! The read side of the SQLite store: plain queries on a reader connection.

use botarmy_protocol::{
    ArtifactId, ArtifactRef, EventRecord, ProjectId, RunId, RunStatus, UnixMillis, Usage,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::Fail;
use crate::projection::{
    bad_value, decode, id_range, parse_artifact_kind, parse_step_status, sql_int, wire_int,
    wire_u32,
};
use crate::{
    ArtifactRecord, AttemptRecord, LlmCallRecord, ProjectRecord, RunFilter, RunSummary, StepRecord,
    StoreError,
};

fn uuid(table: &str, column: &str, text: &str) -> Result<Uuid, Fail> {
    Uuid::parse_str(text).map_err(|_| Fail::Store(bad_value(table, column, text)))
}

/// Usage from five consecutive columns starting at `i`.
fn usage(row: &Row<'_>, i: usize) -> rusqlite::Result<Usage> {
    Ok(Usage {
        input_tokens: wire_int(row.get(i)?),
        output_tokens: wire_int(row.get(i + 1)?),
        cached_tokens: wire_int(row.get(i + 2)?),
        cost_usd: row.get(i + 3)?,
        calls: wire_int(row.get(i + 4)?),
    })
}

/// A step's or an attempt's usage: the sum of its completed calls (`c`).
const CALL_USAGE: &str = "COALESCE(SUM(c.input_tokens), 0), COALESCE(SUM(c.output_tokens), 0), \
     COALESCE(SUM(c.cached_tokens), 0), COALESCE(SUM(c.cost_usd), 0.0), COUNT(c.seq)";

const PROJECT_COLUMNS: &str = "id, tenant, name, status, created_at";

type ProjectRow = (String, String, String, String, i64);

fn project_row(r: &Row<'_>) -> rusqlite::Result<ProjectRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn project((id, tenant, name, status, created_at): ProjectRow) -> Result<ProjectRecord, Fail> {
    Ok(ProjectRecord {
        id: ProjectId(uuid("projects", "id", &id)?),
        tenant,
        name,
        status,
        created_at,
    })
}

pub(crate) fn project_by_name(
    conn: &Connection,
    tenant: &str,
    name: &str,
) -> Result<Option<ProjectRecord>, Fail> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE tenant = ?1 AND name = ?2"
        ))?
        .query_row([tenant, name], project_row)
        .optional()?;
    row.map(project).transpose()
}

pub(crate) fn project_in(
    conn: &Connection,
    tenant: &str,
    id: ProjectId,
) -> Result<ProjectRecord, Fail> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE tenant = ?1 AND id = ?2"
        ))?
        .query_row(params![tenant, id.0.to_string()], project_row)
        .optional()?;
    match row {
        Some(row) => project(row),
        None => Err(Fail::Store(StoreError::NotFound {
            what: "project",
            id: id.to_string(),
        })),
    }
}

/// Projects of one tenant or of all, newest first.
pub(crate) fn list_projects(
    conn: &Connection,
    tenant: Option<&str>,
) -> Result<Vec<ProjectRecord>, Fail> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects WHERE ?1 IS NULL OR tenant = ?1
         ORDER BY created_at DESC, id DESC"
    ))?;
    let rows = stmt
        .query_map([tenant], project_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(project).collect()
}

pub(crate) fn run_tenant(conn: &Connection, run_id: RunId) -> Result<Option<String>, Fail> {
    Ok(conn
        .prepare_cached(
            "SELECT p.tenant FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = ?1",
        )?
        .query_row([run_id.0.to_string()], |r| r.get(0))
        .optional()?)
}

pub(crate) fn read_events(
    conn: &Connection,
    run_id: RunId,
    since: u64,
    limit: u32,
) -> Result<Vec<EventRecord>, Fail> {
    let limit = if limit == 0 { -1 } else { i64::from(limit) };
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, payload FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![run_id.0.to_string(), sql_int(since), limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let seq = wire_int(row.get(0)?);
        let at: UnixMillis = row.get(1)?;
        let payload = row.get_ref(2)?.as_str().map_err(|e| {
            Fail::Store(StoreError::Decode {
                run_id,
                seq,
                detail: e.to_string(),
            })
        })?;
        out.push(decode(run_id, seq, at, payload)?);
    }
    Ok(out)
}

/// The run's last sequence number, `None` if there is no such run.
pub(crate) fn last_seq(conn: &Connection, run_id: RunId) -> Result<Option<u64>, Fail> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT last_seq FROM runs WHERE id = ?1")?
        .query_row([run_id.0.to_string()], |r| r.get(0))
        .optional()?;
    Ok(last.map(wire_int))
}

const RUN_COLUMNS: &str = "id, project_id, workflow, idea, status, created_at, started_at, \
     finished_at, last_seq, input_tokens, output_tokens, cached_tokens, cost_usd, calls, error";

struct RunRow {
    id: String,
    project_id: String,
    workflow: String,
    idea: String,
    status: String,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    last_seq: i64,
    usage: Usage,
    error: Option<String>,
}

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        project_id: r.get(1)?,
        workflow: r.get(2)?,
        idea: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
        started_at: r.get(6)?,
        finished_at: r.get(7)?,
        last_seq: r.get(8)?,
        usage: usage(r, 9)?,
        error: r.get(14)?,
    })
}

fn run_summary(row: RunRow) -> Result<RunSummary, Fail> {
    Ok(RunSummary {
        id: RunId(uuid("runs", "id", &row.id)?),
        project_id: ProjectId(uuid("runs", "project_id", &row.project_id)?),
        workflow: row.workflow,
        idea: row.idea,
        status: RunStatus::parse(&row.status)
            .ok_or_else(|| Fail::Store(bad_value("runs", "status", &row.status)))?,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        last_seq: wire_int(row.last_seq),
        usage: row.usage,
        error: row.error,
    })
}

pub(crate) fn get_run(conn: &Connection, run_id: RunId) -> Result<RunSummary, Fail> {
    let row = conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([run_id.0.to_string()], run_row)
        .optional()?;
    match row {
        Some(row) => run_summary(row),
        None => Err(Fail::Store(StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        })),
    }
}

pub(crate) fn resolve_run(conn: &Connection, input: &str) -> Result<RunId, Fail> {
    let range = id_range(input)?;
    let (lo, hi) = (range.lo.to_string(), range.hi.to_string());
    let ids: Vec<String> = conn
        .prepare_cached("SELECT id FROM runs WHERE id BETWEEN ?1 AND ?2 ORDER BY id LIMIT 2")?
        .query_map([&lo, &hi], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    match ids.as_slice() {
        [] => Err(Fail::Store(StoreError::NotFound {
            what: "run",
            id: input.to_string(),
        })),
        [one] => Ok(RunId(uuid("runs", "id", one)?)),
        _ => {
            let count: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM runs WHERE id BETWEEN ?1 AND ?2")?
                .query_row([&lo, &hi], |r| r.get(0))?;
            Err(Fail::Store(StoreError::Ambiguous {
                prefix: input.to_string(),
                count: usize::try_from(count).unwrap_or(usize::MAX),
            }))
        }
    }
}

pub(crate) fn list_runs(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunSummary>, Fail> {
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    if let Some(tenant) = &filter.tenant {
        args.push(Box::new(tenant.clone()));
        sql.push_str(&format!(
            " AND project_id IN (SELECT id FROM projects WHERE tenant = ?{})",
            args.len()
        ));
    }
    if let Some(project) = filter.project {
        args.push(Box::new(project.0.to_string()));
        sql.push_str(&format!(" AND project_id = ?{}", args.len()));
    }
    if let Some(status) = filter.status {
        args.push(Box::new(status.as_str()));
        sql.push_str(&format!(" AND status = ?{}", args.len()));
    }
    args.push(Box::new(if filter.limit == 0 {
        -1
    } else {
        i64::from(filter.limit)
    }));
    args.push(Box::new(i64::from(filter.offset)));
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT ?{} OFFSET ?{}",
        args.len() - 1,
        args.len()
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), run_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(run_summary).collect()
}

pub(crate) fn steps(conn: &Connection, run_id: RunId) -> Result<Vec<StepRecord>, Fail> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT s.step, s.key, s.title, s.phase, s.agent, s.status, s.attempt, s.started_at,
         s.finished_at, {CALL_USAGE}, s.error
         FROM steps s LEFT JOIN llm_calls c ON c.run_id = s.run_id AND c.step = s.step
         AND c.status = 'ok'
         WHERE s.run_id = ?1 GROUP BY s.run_id, s.step ORDER BY s.step"
    ))?;
    let rows = stmt
        .query_map([run_id.0.to_string()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, Option<i64>>(8)?,
                usage(r, 9)?,
                r.get::<_, Option<String>>(14)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(
            |(
                step,
                key,
                title,
                phase,
                agent,
                status,
                attempt,
                started_at,
                finished_at,
                usage,
                error,
            )| {
                Ok(StepRecord {
                    step: wire_u32(step),
                    key,
                    title,
                    phase,
                    agent,
                    status: parse_step_status(&status)
                        .ok_or_else(|| Fail::Store(bad_value("steps", "status", &status)))?,
                    attempt: wire_u32(attempt),
                    started_at,
                    finished_at,
                    usage,
                    error,
                })
            },
        )
        .collect()
}

pub(crate) fn attempts(conn: &Connection, run_id: RunId) -> Result<Vec<AttemptRecord>, Fail> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT a.step, a.attempt, a.status, a.started_at, a.finished_at, {CALL_USAGE}, a.error
         FROM step_attempts a LEFT JOIN llm_calls c ON c.run_id = a.run_id AND c.step = a.step
         AND c.attempt = a.attempt AND c.status = 'ok'
         WHERE a.run_id = ?1 GROUP BY a.run_id, a.step, a.attempt ORDER BY a.step, a.attempt"
    ))?;
    let rows = stmt
        .query_map([run_id.0.to_string()], |r| {
            Ok(AttemptRecord {
                step: wire_u32(r.get(0)?),
                attempt: wire_u32(r.get(1)?),
                status: r.get(2)?,
                started_at: r.get(3)?,
                finished_at: r.get(4)?,
                usage: usage(r, 5)?,
                error: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn artifacts(conn: &Connection, run_id: RunId) -> Result<Vec<ArtifactRecord>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, project_id, step, name, kind, version, sha256, bytes, created_at
         FROM artifacts WHERE run_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([run_id.0.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(
            |(id, project, step, name, kind, version, sha256, bytes, created_at)| {
                Ok(ArtifactRecord {
                    artifact: ArtifactRef {
                        id: ArtifactId(uuid("artifacts", "id", &id)?),
                        name,
                        kind: parse_artifact_kind(&kind)
                            .ok_or_else(|| Fail::Store(bad_value("artifacts", "kind", &kind)))?,
                        version: wire_u32(version),
                        sha256,
                        bytes: wire_int(bytes),
                    },
                    run_id,
                    project_id: ProjectId(uuid("artifacts", "project_id", &project)?),
                    step: wire_u32(step),
                    created_at,
                })
            },
        )
        .collect()
}

pub(crate) fn artifact_content(conn: &Connection, id: ArtifactId) -> Result<Vec<u8>, Fail> {
    conn.prepare_cached("SELECT content FROM artifacts WHERE id = ?1")?
        .query_row([id.0.to_string()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| {
            Fail::Store(StoreError::NotFound {
                what: "artifact",
                id: id.to_string(),
            })
        })
}

pub(crate) fn llm_calls(conn: &Connection, run_id: RunId) -> Result<Vec<LlmCallRecord>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT step, attempt, call, agent, provider, model, status, input_tokens,
         output_tokens, cached_tokens, cost_usd, latency_ms, error, created_at
         FROM llm_calls WHERE run_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([run_id.0.to_string()], |r| {
            let status: String = r.get(6)?;
            Ok(LlmCallRecord {
                run_id,
                step: wire_u32(r.get(0)?),
                attempt: wire_u32(r.get(1)?),
                call: wire_u32(r.get(2)?),
                agent: r.get(3)?,
                provider: r.get(4)?,
                model: r.get(5)?,
                usage: Usage {
                    input_tokens: wire_int(r.get(7)?),
                    output_tokens: wire_int(r.get(8)?),
                    cached_tokens: wire_int(r.get(9)?),
                    cost_usd: r.get(10)?,
                    calls: u64::from(status == "ok"),
                },
                status,
                latency_ms: wire_int(r.get(11)?),
                error: r.get(12)?,
                created_at: r.get(13)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// See [`crate::Store::settled_conflicts`].
pub(crate) fn settled_conflicts(
    conn: &Connection,
    project: ProjectId,
) -> Result<Vec<botarmy_protocol::SettledConflict>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.run_id, e.seq, e.at, e.payload FROM runs r JOIN events e ON e.run_id = r.id
         WHERE r.project_id = ?1 AND e.type IN ('conflict_detected', 'conflict_resolved')
         ORDER BY r.created_at, r.id, e.seq",
    )?;
    let rows = stmt
        .query_map([project.0.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut records = Vec::with_capacity(rows.len());
    for (run, seq, at, payload) in rows {
        let run_id = RunId(uuid("events", "run_id", &run)?);
        records.push(crate::projection::decode(
            run_id,
            wire_int(seq),
            at,
            &payload,
        )?);
    }
    Ok(crate::projection::settled_conflicts(records))
}
