//! `botarmy cost` and `botarmy stats` over replayed runs, checked against what `show` reads
//! from the store.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::*;

const IDEA: &str = "a command-line todo app in Rust";

/// Replays the SDLC lifecycle in `project`; returns the run id.
fn replayed_run(s: &Sandbox, project: &str) -> String {
    let o = ok(s.replay(&cassette("sdlc-todo.jsonl")).args([
        "run",
        IDEA,
        "--max-tokens",
        "48",
        "--yes",
        "--json",
        "--project",
        project,
    ]));
    let summary = json(&o);
    assert_eq!(summary["status"], "succeeded");
    summary["run_id"].as_str().unwrap().to_string()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// Input, output and cached tokens, completed calls, and cost of a `Usage` in JSON.
fn usage_of(v: &Value) -> (u64, u64, u64, u64, f64) {
    (
        u(v, "input_tokens"),
        u(v, "output_tokens"),
        u(v, "cached_tokens"),
        u(v, "calls"),
        v["cost_usd"].as_f64().unwrap(),
    )
}

/// Nearest-rank percentile, as `stats` defines it.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

#[test]
fn cost_breaks_a_run_down_and_adds_up_to_its_totals() {
    let s = Sandbox::new();
    let run_id = replayed_run(&s, "default");
    let show = json(&ok(s.cmd().args(["show", &run_id, "--json"])));
    let calls = show["llm_calls"].as_array().unwrap();
    let steps = show["steps"].as_array().unwrap();

    let cost = json(&ok(s.cmd().args(["cost", &run_id[..8], "--json"])));
    assert_eq!(cost["run_id"], run_id.as_str());
    let total = &cost["total"];
    assert_eq!(usage_of(&total["usage"]), usage_of(&show["run"]["usage"]));
    assert_eq!(u(total, "calls"), calls.len() as u64);
    assert_eq!(u(total, "failed_calls"), 0);
    assert!(u(&total["usage"], "output_tokens") > 0);

    // By phase: the plan's phases in order, each with the tokens of its steps' calls.
    let mut phase_order: Vec<String> = Vec::new();
    let mut step_phase = BTreeMap::new();
    for st in steps {
        let phase = st["phase"].as_str().unwrap().to_string();
        if !phase_order.contains(&phase) {
            phase_order.push(phase.clone());
        }
        step_phase.insert(u(st, "step"), phase);
    }
    let mut expected_out: BTreeMap<String, u64> = BTreeMap::new();
    for c in calls {
        *expected_out
            .entry(step_phase[&u(c, "step")].clone())
            .or_default() += u(&c["usage"], "output_tokens");
    }
    let by_phase = cost["by_phase"].as_array().unwrap();
    let phases: Vec<&str> = by_phase
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(phases, phase_order);
    assert!(phases.len() >= 5, "{phases:?}");
    for p in by_phase {
        let key = p["key"].as_str().unwrap();
        assert_eq!(u(&p["usage"], "output_tokens"), expected_out[key], "{key}");
    }

    // By agent and by provider/model: every call once.
    for group in ["by_agent", "by_provider", "by_model", "rows"] {
        let n: u64 = cost[group]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| u(g, "calls"))
            .sum();
        assert_eq!(n, calls.len() as u64, "{group}");
    }
    let agents: Vec<&str> = cost["by_agent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    for st in steps {
        assert!(
            agents.contains(&st["agent"].as_str().unwrap()),
            "{agents:?}"
        );
    }
    let model = format!(
        "{}/{}",
        calls[0]["provider"].as_str().unwrap(),
        calls[0]["model"].as_str().unwrap()
    );
    assert_eq!(cost["by_model"][0]["key"], model.as_str());

    // The table shows the same figures.
    let table = stdout(&ok(s.cmd().args(["cost", &run_id])));
    assert!(
        table.starts_with(&format!("run {run_id} (succeeded")),
        "{table}"
    );
    for header in ["PHASE", "AGENT", "PROVIDER/MODEL"] {
        assert!(table.contains(header), "{table}");
    }
    for phase in &phase_order {
        assert!(table.contains(phase.as_str()), "{phase} in {table}");
    }
    let total_line = table
        .lines()
        .find(|l| l.starts_with("total "))
        .unwrap_or_else(|| panic!("no total line in {table}"));
    let figures: Vec<String> = total_line
        .split_whitespace()
        .skip(1)
        .take(5)
        .map(str::to_string)
        .collect();
    assert_eq!(
        figures,
        vec![
            calls.len().to_string(),
            "0".to_string(),
            u(&show["run"]["usage"], "input_tokens").to_string(),
            u(&show["run"]["usage"], "cached_tokens").to_string(),
            u(&show["run"]["usage"], "output_tokens").to_string(),
        ]
    );

    // A run that does not exist is an error that says so.
    let o = run(s.cmd().args(["cost", "ffffffff"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
}

#[test]
fn stats_report_each_agent_and_model_across_runs() {
    let s = Sandbox::new();
    let first = replayed_run(&s, "default");
    let second = replayed_run(&s, "side-project");
    let mut all_calls = Vec::new();
    for run_id in [&first, &second] {
        let show = json(&ok(s.cmd().args(["show", run_id, "--json"])));
        all_calls.extend(show["llm_calls"].as_array().unwrap().iter().cloned());
    }

    let stats = json(&ok(s.cmd().args(["stats", "--json"])));
    let models = stats["models"].as_array().unwrap();
    // One row per agent and model, covering every call of both runs.
    let mut per_agent: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for c in &all_calls {
        per_agent
            .entry(c["agent"].as_str().unwrap().to_string())
            .or_default()
            .push(u(c, "latency_ms"));
    }
    assert_eq!(models.len(), per_agent.len(), "{models:?}");
    for m in models {
        let agent = m["agent"].as_str().unwrap();
        let mut latencies = per_agent[agent].clone();
        latencies.sort_unstable();
        assert_eq!(u(m, "calls"), latencies.len() as u64, "{agent}");
        assert_eq!(u(m, "successes"), latencies.len() as u64, "{agent}");
        assert_eq!(m["success_rate"].as_f64(), Some(1.0));
        assert_eq!(
            u(m, "latency_p50_ms"),
            percentile(&latencies, 50),
            "{agent}"
        );
        assert_eq!(
            u(m, "latency_p90_ms"),
            percentile(&latencies, 90),
            "{agent}"
        );
        assert_eq!(
            u(m, "latency_p99_ms"),
            percentile(&latencies, 99),
            "{agent}"
        );
    }
    let out_tokens: u64 = models.iter().map(|m| u(&m["usage"], "output_tokens")).sum();
    let recorded: u64 = all_calls
        .iter()
        .map(|c| u(&c["usage"], "output_tokens"))
        .sum();
    assert_eq!(out_tokens, recorded);

    // Project totals: one run each.
    let projects = stats["projects"].as_array().unwrap();
    let names: Vec<(&str, u64)> = projects
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), u(p, "runs")))
        .collect();
    assert_eq!(names, vec![("default", 1), ("side-project", 1)]);
    assert_eq!(
        u(&projects[0]["usage"], "calls") + u(&projects[1]["usage"], "calls"),
        all_calls.len() as u64
    );

    // Filters: one project halves every count; an agent keeps its own row; a window that
    // covers the runs keeps everything.
    let side = json(&ok(s.cmd().args([
        "stats",
        "--project",
        "side-project",
        "--json",
    ])));
    let side_calls: u64 = side["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| u(m, "calls"))
        .sum();
    assert_eq!(side_calls * 2, all_calls.len() as u64);
    assert_eq!(side["projects"].as_array().unwrap().len(), 1);
    let analyst = json(&ok(s.cmd().args(["stats", "--agent", "analyst", "--json"])));
    let rows = analyst["models"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        analyst["projects"].is_null(),
        "project totals are not per agent"
    );
    assert_eq!(u(&rows[0], "calls"), per_agent["analyst"].len() as u64);
    let recent = json(&ok(s.cmd().args(["stats", "--since", "1h", "--json"])));
    assert_eq!(recent["models"], stats["models"]);
    assert!(recent["filter"]["since"].as_i64().unwrap() > 0);

    // The table lists every agent with its figures.
    let table = stdout(&ok(s.cmd().args(["stats"])));
    assert!(table.starts_with("AGENT "), "{table}");
    for (agent, latencies) in &per_agent {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(agent.as_str()))
            .unwrap_or_else(|| panic!("no {agent} line in {table}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[2], latencies.len().to_string(), "{line}");
        assert_eq!(cols[3], "100.0%", "{line}");
    }
    assert!(table.contains("side-project"), "{table}");

    // Bad filters are refused with what was expected.
    let o = run(s.cmd().args(["stats", "--since", "7 parsecs"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("expected a number and a unit"),
        "{}",
        stderr(&o)
    );
    let o = run(s.cmd().args(["stats", "--project", "nope"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no such project; the projects are: default, side-project"),
        "{}",
        stderr(&o)
    );
}
