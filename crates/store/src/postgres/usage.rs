//! Usage queries on PostgreSQL: a run's breakdown, project totals, per agent/model
//! statistics.

use botarmy_protocol::{ProjectId, RunId, RunStatus, Usage};
use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Fail;
use super::read::last_seq;
use crate::projection::{bad_value, parse_step_status, wire_int};
use crate::usage::{self, CallSample};
use crate::{LlmTotals, ModelStats, ProjectUsage, StatsFilter, StoreError, StoreTotals, UsageRow};

/// Usage from five consecutive columns starting at `i` (tokens, cost, completed calls).
fn sums(row: &Row, i: usize) -> Usage {
    Usage {
        input_tokens: wire_int(row.get(i)),
        output_tokens: wire_int(row.get(i + 1)),
        cached_tokens: wire_int(row.get(i + 2)),
        cost_usd: row.get(i + 3),
        calls: wire_int(row.get(i + 4)),
    }
}

/// Sums over the completed calls `c` (failed calls carry no usage), then how many.
const CALL_SUMS: &str = "COALESCE(SUM(c.input_tokens), 0)::BIGINT, \
     COALESCE(SUM(c.output_tokens), 0)::BIGINT, COALESCE(SUM(c.cached_tokens), 0)::BIGINT, \
     COALESCE(SUM(c.cost_usd), 0)::DOUBLE PRECISION, \
     COUNT(*) FILTER (WHERE c.status = 'ok')";

pub(crate) async fn usage_breakdown(client: &Object, run_id: RunId) -> Result<Vec<UsageRow>, Fail> {
    if last_seq(client, run_id).await?.is_none() {
        return Err(Fail::Store(StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        }));
    }
    let stmt = client
        .prepare_cached(&format!(
            "SELECT s.phase, c.agent, c.provider, c.model, COUNT(*), {CALL_SUMS}
             FROM llm_calls c JOIN steps s ON s.run_id = c.run_id AND s.step = c.step
             WHERE c.run_id = $1
             GROUP BY s.phase, c.agent, c.provider, c.model
             ORDER BY MIN(c.step), c.agent, c.provider, c.model"
        ))
        .await?;
    Ok(client
        .query(&stmt, &[&run_id.0])
        .await?
        .iter()
        .map(|r| {
            let calls = wire_int(r.get(4));
            let usage = sums(r, 5);
            UsageRow {
                phase: r.get(0),
                agent: r.get(1),
                provider: r.get(2),
                model: r.get(3),
                calls,
                failed_calls: calls.saturating_sub(usage.calls),
                usage,
            }
        })
        .collect())
}

pub(crate) async fn project_usage(
    client: &Object,
    project: Option<ProjectId>,
) -> Result<Vec<ProjectUsage>, Fail> {
    let id = project.map(|p| p.0);
    let stmt = client
        .prepare_cached(
            "SELECT p.id, p.name, COUNT(r.id), COALESCE(SUM(r.input_tokens), 0)::BIGINT,
             COALESCE(SUM(r.output_tokens), 0)::BIGINT, COALESCE(SUM(r.cached_tokens), 0)::BIGINT,
             COALESCE(SUM(r.cost_usd), 0)::DOUBLE PRECISION, COALESCE(SUM(r.calls), 0)::BIGINT
             FROM projects p LEFT JOIN runs r ON r.project_id = p.id
             WHERE $1::UUID IS NULL OR p.id = $1
             GROUP BY p.id, p.name ORDER BY p.name",
        )
        .await?;
    let rows: Vec<ProjectUsage> = client
        .query(&stmt, &[&id])
        .await?
        .iter()
        .map(|r| ProjectUsage {
            project_id: ProjectId(r.get(0)),
            name: r.get(1),
            runs: wire_int(r.get(2)),
            usage: sums(r, 3),
        })
        .collect();
    if let Some(p) = project
        && rows.is_empty()
    {
        return Err(Fail::Store(StoreError::NotFound {
            what: "project",
            id: p.to_string(),
        }));
    }
    Ok(rows)
}

pub(crate) async fn model_stats(
    client: &Object,
    filter: &StatsFilter,
) -> Result<Vec<ModelStats>, Fail> {
    let project = filter.project.map(|p| p.0);
    let mut sql = "SELECT c.agent, c.provider, c.model, c.status = 'ok', c.latency_ms,
         c.input_tokens, c.output_tokens, c.cached_tokens, c.cost_usd
         FROM llm_calls c"
        .to_string();
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(3);
    let mut wheres = Vec::new();
    if let Some(project) = &project {
        sql.push_str(" JOIN runs r ON r.id = c.run_id");
        args.push(project);
        wheres.push(format!("r.project_id = ${}", args.len()));
    }
    if let Some(since) = &filter.since {
        args.push(since);
        wheres.push(format!("c.created_at >= ${}", args.len()));
    }
    if let Some(agent) = &filter.agent {
        args.push(agent);
        wheres.push(format!("c.agent = ${}", args.len()));
    }
    if !wheres.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&wheres.join(" AND "));
    }
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &args).await?;
    Ok(usage::model_stats(rows.iter().map(|r| CallSample {
        agent: r.get(0),
        provider: r.get(1),
        model: r.get(2),
        ok: r.get(3),
        latency_ms: wire_int(r.get(4)),
        usage: Usage {
            input_tokens: wire_int(r.get(5)),
            output_tokens: wire_int(r.get(6)),
            cached_tokens: wire_int(r.get(7)),
            cost_usd: r.get(8),
            calls: 0,
        },
    })))
}

pub(crate) async fn totals(client: &Object) -> Result<StoreTotals, Fail> {
    let mut totals = StoreTotals::default();
    let stmt = client
        .prepare_cached("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
        .await?;
    for row in client.query(&stmt, &[]).await? {
        let status: String = row.get(0);
        let parsed =
            RunStatus::parse(&status).ok_or_else(|| bad_value("runs", "status", &status))?;
        totals.runs.push((parsed, wire_int(row.get(1))));
    }
    let stmt = client
        .prepare_cached("SELECT status, COUNT(*) FROM steps GROUP BY status ORDER BY status")
        .await?;
    for row in client.query(&stmt, &[]).await? {
        let status: String = row.get(0);
        let parsed =
            parse_step_status(&status).ok_or_else(|| bad_value("steps", "status", &status))?;
        totals.steps.push((parsed, wire_int(row.get(1))));
    }
    let stmt = client
        .prepare_cached(&format!(
            "SELECT c.provider, c.model, COUNT(*), {CALL_SUMS}
             FROM llm_calls c GROUP BY c.provider, c.model ORDER BY c.provider, c.model"
        ))
        .await?;
    for row in client.query(&stmt, &[]).await? {
        let calls = wire_int(row.get(2));
        let usage = sums(&row, 3);
        totals.llm.push(LlmTotals {
            provider: row.get(0),
            model: row.get(1),
            calls,
            failed_calls: calls.saturating_sub(usage.calls),
            usage,
        });
    }
    Ok(totals)
}
