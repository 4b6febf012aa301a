//! Usage queries on SQLite: a run's breakdown, project totals, per agent/model statistics.

use botarmy_protocol::{ProjectId, RunId, RunStatus, Usage};
use rusqlite::{Connection, Row};
use uuid::Uuid;

use super::Fail;
use super::read::last_seq;
use crate::projection::{bad_value, parse_step_status, wire_int};
use crate::usage::{self, CallSample};
use crate::{LlmTotals, ModelStats, ProjectUsage, StatsFilter, StoreError, StoreTotals, UsageRow};

/// Usage from five consecutive columns starting at `i` (tokens, cost, completed calls).
fn sums(row: &Row<'_>, i: usize) -> rusqlite::Result<Usage> {
    Ok(Usage {
        input_tokens: wire_int(row.get(i)?),
        output_tokens: wire_int(row.get(i + 1)?),
        cached_tokens: wire_int(row.get(i + 2)?),
        cost_usd: row.get(i + 3)?,
        calls: wire_int(row.get(i + 4)?),
    })
}

/// Sums over the completed calls `c` (failed calls carry no usage), then how many.
const CALL_SUMS: &str = "COALESCE(SUM(c.input_tokens), 0), COALESCE(SUM(c.output_tokens), 0), \
     COALESCE(SUM(c.cached_tokens), 0), COALESCE(SUM(c.cost_usd), 0.0), \
     COALESCE(SUM(c.status = 'ok'), 0)";

pub(crate) fn usage_breakdown(conn: &Connection, run_id: RunId) -> Result<Vec<UsageRow>, Fail> {
    if last_seq(conn, run_id)?.is_none() {
        return Err(Fail::Store(StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        }));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT s.phase, c.agent, c.provider, c.model, COUNT(*), {CALL_SUMS}
         FROM llm_calls c JOIN steps s ON s.run_id = c.run_id AND s.step = c.step
         WHERE c.run_id = ?1
         GROUP BY s.phase, c.agent, c.provider, c.model
         ORDER BY MIN(c.step), c.agent, c.provider, c.model"
    ))?;
    let rows = stmt
        .query_map([run_id.0.to_string()], |r| {
            let calls = wire_int(r.get(4)?);
            let usage = sums(r, 5)?;
            Ok(UsageRow {
                phase: r.get(0)?,
                agent: r.get(1)?,
                provider: r.get(2)?,
                model: r.get(3)?,
                calls,
                failed_calls: calls.saturating_sub(usage.calls),
                usage,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn project_usage(
    conn: &Connection,
    project: Option<ProjectId>,
) -> Result<Vec<ProjectUsage>, Fail> {
    let mut sql = "SELECT p.id, p.name, COUNT(r.id), COALESCE(SUM(r.input_tokens), 0),
         COALESCE(SUM(r.output_tokens), 0), COALESCE(SUM(r.cached_tokens), 0),
         COALESCE(SUM(r.cost_usd), 0.0), COALESCE(SUM(r.calls), 0)
         FROM projects p LEFT JOIN runs r ON r.project_id = p.id"
        .to_string();
    let mut args = Vec::new();
    if let Some(p) = project {
        args.push(p.0.to_string());
        sql.push_str(" WHERE p.id = ?1");
    }
    sql.push_str(" GROUP BY p.id, p.name ORDER BY p.name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                wire_int(r.get(2)?),
                sums(r, 3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if let Some(p) = project
        && rows.is_empty()
    {
        return Err(Fail::Store(StoreError::NotFound {
            what: "project",
            id: p.to_string(),
        }));
    }
    rows.into_iter()
        .map(|(id, name, runs, usage)| {
            Ok(ProjectUsage {
                project_id: ProjectId(
                    Uuid::parse_str(&id)
                        .map_err(|_| Fail::Store(bad_value("projects", "id", &id)))?,
                ),
                name,
                runs,
                usage,
            })
        })
        .collect()
}

pub(crate) fn model_stats(
    conn: &Connection,
    filter: &StatsFilter,
) -> Result<Vec<ModelStats>, Fail> {
    let mut sql = "SELECT c.agent, c.provider, c.model, c.status = 'ok', c.latency_ms,
         c.input_tokens, c.output_tokens, c.cached_tokens, c.cost_usd
         FROM llm_calls c"
        .to_string();
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    let mut wheres = Vec::new();
    if let Some(project) = filter.project {
        sql.push_str(" JOIN runs r ON r.id = c.run_id");
        args.push(Box::new(project.0.to_string()));
        wheres.push(format!("r.project_id = ?{}", args.len()));
    }
    if let Some(since) = filter.since {
        args.push(Box::new(since));
        wheres.push(format!("c.created_at >= ?{}", args.len()));
    }
    if let Some(agent) = &filter.agent {
        args.push(Box::new(agent.clone()));
        wheres.push(format!("c.agent = ?{}", args.len()));
    }
    if !wheres.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&wheres.join(" AND "));
    }
    let mut stmt = conn.prepare_cached(&sql)?;
    let samples = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(CallSample {
                agent: r.get(0)?,
                provider: r.get(1)?,
                model: r.get(2)?,
                ok: r.get(3)?,
                latency_ms: wire_int(r.get(4)?),
                usage: Usage {
                    input_tokens: wire_int(r.get(5)?),
                    output_tokens: wire_int(r.get(6)?),
                    cached_tokens: wire_int(r.get(7)?),
                    cost_usd: r.get(8)?,
                    calls: 0,
                },
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(usage::model_stats(samples))
}

pub(crate) fn totals(conn: &Connection) -> Result<StoreTotals, Fail> {
    let mut runs = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (status, count) = row?;
        let parsed =
            RunStatus::parse(&status).ok_or_else(|| bad_value("runs", "status", &status))?;
        runs.push((parsed, wire_int(count)));
    }
    let mut steps = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT status, COUNT(*) FROM steps GROUP BY status ORDER BY status")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (status, count) = row?;
        let parsed =
            parse_step_status(&status).ok_or_else(|| bad_value("steps", "status", &status))?;
        steps.push((parsed, wire_int(count)));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT c.provider, c.model, COUNT(*), {CALL_SUMS}
         FROM llm_calls c GROUP BY c.provider, c.model ORDER BY c.provider, c.model"
    ))?;
    let llm = stmt
        .query_map([], |r| {
            let calls = wire_int(r.get(2)?);
            let usage = sums(r, 3)?;
            Ok(LlmTotals {
                provider: r.get(0)?,
                model: r.get(1)?,
                calls,
                failed_calls: calls.saturating_sub(usage.calls),
                usage,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(StoreTotals { runs, steps, llm })
}
