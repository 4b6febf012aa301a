//! Where the tokens and the money went: `cost` (one run, by phase, agent and provider/model)
//! and `stats` (per agent and model across runs: success rate, latency, tokens, cost).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use botarmy_protocol::{Usage, format_millis, now_millis};
use botarmy_store::{ModelStats, StatsFilter, UsageRow};
use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::inspect::{cost, out};

/// Calls and usage summed over some [`UsageRow`]s.
#[derive(Debug, Clone, Default, Serialize)]
struct Total {
    /// What the rows were grouped by (`phase`, `agent`, `provider`, `provider/model`).
    key: String,
    /// Calls recorded, completed and failed.
    calls: u64,
    /// Failed calls.
    failed_calls: u64,
    /// Sums over the completed calls.
    usage: Usage,
}

impl Total {
    fn add(&mut self, row: &UsageRow) {
        self.calls += row.calls;
        self.failed_calls += row.failed_calls;
        self.usage += row.usage;
    }
}

/// The rows summed per `key`, in the order each key first appears.
fn group_by(rows: &[UsageRow], key: impl Fn(&UsageRow) -> String) -> Vec<Total> {
    let mut order: Vec<Total> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows {
        let k = key(row);
        let i = *index.entry(k.clone()).or_insert_with(|| {
            order.push(Total {
                key: k,
                ..Total::default()
            });
            order.len() - 1
        });
        if let Some(total) = order.get_mut(i) {
            total.add(row);
        }
    }
    order
}

fn phase_of(row: &UsageRow) -> String {
    row.phase.clone().unwrap_or_else(|| "(no phase)".to_owned())
}

/// `botarmy cost RUN`: the run's tokens and cost by phase, agent, provider/model and total.
pub async fn cost_report(config: &Config, run: &str, json: bool) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let run_id = store.resolve_run(run).await?;
    let summary = store.get_run(run_id).await?;
    let rows = store.usage_breakdown(run_id).await?;
    let by_phase = group_by(&rows, phase_of);
    let by_agent = group_by(&rows, |r| r.agent.clone());
    let by_provider = group_by(&rows, |r| r.provider.clone());
    let by_model = group_by(&rows, |r| format!("{}/{}", r.provider, r.model));
    let mut total = Total {
        key: "total".to_owned(),
        ..Total::default()
    };
    for row in &rows {
        total.add(row);
    }
    let mut w = out();
    if json {
        let value = json!({
            "run_id": run_id, "status": summary.status, "workflow": summary.workflow,
            "total": total, "by_phase": by_phase, "by_agent": by_agent,
            "by_provider": by_provider, "by_model": by_model, "rows": rows,
        });
        serde_json::to_writer_pretty(&mut w, &value)?;
        writeln!(w)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        w,
        "run {} ({}, {})",
        run_id, summary.status, summary.workflow
    )?;
    if rows.is_empty() {
        writeln!(w, "no LLM calls recorded yet")?;
        return Ok(ExitCode::SUCCESS);
    }
    for (title, totals) in [
        ("phase", &by_phase),
        ("agent", &by_agent),
        ("provider/model", &by_model),
    ] {
        writeln!(w)?;
        header(&mut w, title)?;
        for t in totals.iter() {
            line(&mut w, t)?;
        }
    }
    writeln!(w)?;
    line(&mut w, &total)?;
    Ok(ExitCode::SUCCESS)
}

fn header(w: &mut impl Write, title: &str) -> std::io::Result<()> {
    writeln!(
        w,
        "{:<32} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        title.to_uppercase(),
        "CALLS",
        "FAILED",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "COST"
    )
}

fn line(w: &mut impl Write, t: &Total) -> std::io::Result<()> {
    writeln!(
        w,
        "{:<32} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        t.key,
        t.calls,
        t.failed_calls,
        t.usage.input_tokens,
        t.usage.cached_tokens,
        t.usage.output_tokens,
        cost(&t.usage)
    )
}

/// Parses a span of time such as `7d`, `24h`, `90m`, `1d12h` (units `w`, `d`, `h`, `m`,
/// `s`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64> {
    let expected = "expected a number and a unit, like 7d, 24h, 30m, 1d12h (units w, d, h, m, s)";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("--since {text:?}: {expected}");
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit_ms: i64 = match c {
            'w' => 7 * 86_400_000,
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1_000,
            _ => bail!("--since {text:?}: unknown unit `{c}`; {expected}"),
        };
        let n: i64 = digits
            .parse()
            .with_context(|| format!("--since {text:?}: {expected}"))?;
        digits.clear();
        total = n
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .with_context(|| format!("--since {text:?}: too long"))?;
    }
    if !digits.is_empty() {
        bail!("--since {text:?}: `{digits}` has no unit; {expected}");
    }
    Ok(total)
}

/// `botarmy stats`: per agent and model, calls, success rate, latency, tokens and cost; then,
/// unless `--since` or `--agent` narrows the calls, the totals of each project (`projects`
/// is `null` in JSON then).
pub async fn stats(config: &Config, args: &crate::StatsArgs) -> Result<ExitCode> {
    let (project, agent) = (args.project.as_deref(), args.agent.as_deref());
    let (since, json) = (args.since.as_deref(), args.json);
    let since_ms = since
        .map(|s| parse_duration_ms(s).map(|d| now_millis().saturating_sub(d)))
        .transpose()?;
    let store = botarmy_store::open(&config.database_url).await?;
    let project_id = match project {
        None => None,
        Some(name) => {
            let projects = store.list_projects().await?;
            match projects.iter().find(|p| p.name == name) {
                Some(p) => Some(p.id),
                None => {
                    let mut names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
                    names.sort_unstable();
                    bail!(
                        "--project {name:?}: no such project; the projects are: {}",
                        if names.is_empty() {
                            "(none yet)".to_owned()
                        } else {
                            names.join(", ")
                        }
                    );
                }
            }
        }
    };
    let filter = StatsFilter {
        project: project_id,
        since: since_ms,
        agent: agent.map(str::to_owned),
    };
    let models = store.model_stats(&filter).await?;
    // Project totals are of all runs and agents: shown only when no call filter applies.
    let projects = if since_ms.is_none() && agent.is_none() {
        Some(store.project_usage(project_id).await?)
    } else {
        None
    };
    let mut w = out();
    if json {
        let value = json!({
            "filter": { "project": project, "agent": agent, "since": since_ms },
            "models": models, "projects": projects,
        });
        serde_json::to_writer_pretty(&mut w, &value)?;
        writeln!(w)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(ms) = since_ms {
        writeln!(w, "LLM calls since {}", format_millis(ms))?;
    }
    if models.is_empty() {
        writeln!(
            w,
            "no LLM calls recorded{}",
            if filter == StatsFilter::default() {
                ""
            } else {
                " that match"
            }
        )?;
    } else {
        writeln!(
            w,
            "{:<14} {:<34} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10}",
            "AGENT", "PROVIDER/MODEL", "CALLS", "SUCCESS", "P50", "P90", "INPUT", "OUTPUT", "COST"
        )?;
        for m in &models {
            model_line(&mut w, m)?;
        }
    }
    if let Some(projects) = projects.filter(|p| !p.is_empty()) {
        writeln!(w)?;
        writeln!(
            w,
            "{:<24} {:>6} {:>8} {:>10} {:>10} {:>10}",
            "PROJECT", "RUNS", "CALLS", "INPUT", "OUTPUT", "COST"
        )?;
        for p in &projects {
            writeln!(
                w,
                "{:<24} {:>6} {:>8} {:>10} {:>10} {:>10}",
                p.name,
                p.runs,
                p.usage.calls,
                p.usage.input_tokens,
                p.usage.output_tokens,
                cost(&p.usage)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn model_line(w: &mut impl Write, m: &ModelStats) -> std::io::Result<()> {
    let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}ms"));
    writeln!(
        w,
        "{:<14} {:<34} {:>6} {:>7.1}% {:>8} {:>8} {:>10} {:>10} {:>10}",
        m.agent,
        format!("{}/{}", m.provider, m.model),
        m.calls,
        m.success_rate * 100.0,
        ms(m.latency_p50_ms),
        ms(m.latency_p90_ms),
        m.usage.input_tokens,
        m.usage.output_tokens,
        cost(&m.usage)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration_ms("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(parse_duration_ms("24h").unwrap(), 86_400_000);
        assert_eq!(parse_duration_ms(" 1d12h ").unwrap(), 36 * 3_600_000);
        assert_eq!(parse_duration_ms("2w").unwrap(), 14 * 86_400_000);
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("30m").unwrap(), 1_800_000);
        for bad in ["", "7", "d", "7x", "1.5h", "-3d", "99999999999999999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn rows_group_in_order_of_appearance() {
        let row = |phase: &str, agent: &str, calls: u64, input: u64| UsageRow {
            phase: Some(phase.into()),
            agent: agent.into(),
            provider: "p".into(),
            model: "m".into(),
            calls,
            failed_calls: 1,
            usage: Usage {
                input_tokens: input,
                calls: calls - 1,
                ..Usage::default()
            },
        };
        let rows = [
            row("plan", "pm", 2, 10),
            row("build", "coder", 3, 20),
            row("plan", "analyst", 4, 30),
        ];
        let phases = group_by(&rows, phase_of);
        let keys: Vec<(&str, u64, u64, u64)> = phases
            .iter()
            .map(|t| {
                (
                    t.key.as_str(),
                    t.calls,
                    t.failed_calls,
                    t.usage.input_tokens,
                )
            })
            .collect();
        assert_eq!(keys, vec![("plan", 6, 2, 40), ("build", 3, 1, 20)]);
        assert_eq!(group_by(&rows, |r| r.agent.clone()).len(), 3);
    }
}
