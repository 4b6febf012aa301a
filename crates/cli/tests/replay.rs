use std::collections::BTreeMap;

use crate::support::*;

const IDEA: &str = "a command-line todo app in Rust";

fn artifacts_by_name(show: &serde_json::Value) -> BTreeMap<String, String> {
    show["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_sdlc_lifecycle_replays_end_to_end() {
    let s = Sandbox::new();
    let cassette = cassette("sdlc-todo.jsonl");
    let out = s.out("out");
    let o = ok(s
        .replay(&cassette)
        .args([
            "run",
            IDEA,
            "--max-tokens",
            "48",
            "--yes",
            "--json",
            "--out",
        ])
        .arg(&out));
    let summary = json(&o);
    assert_eq!(summary["status"], "succeeded");
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    // The summary times each phase: in plan order, every one finished, none working for
    // longer than the run took.
    let phases: Vec<&str> = summary["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["attempts"].as_u64().unwrap() >= 1, "{p}");
            assert!(
                p["finished_at"].as_i64().unwrap() >= p["started_at"].as_i64().unwrap(),
                "{p}"
            );
            assert!(
                p["busy_ms"].as_u64().unwrap() <= summary["duration_ms"].as_u64().unwrap(),
                "{p}"
            );
            p["phase"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        phases,
        ["Discovery", "Plan", "Design", "Build", "Validate", "Launch"]
    );

    // Every phase's documents are on disk.
    for name in [
        "project-plan.md",
        "user-requirements.md",
        "success-criteria.md",
        "feature-breakdown.md",
        "acceptance-criteria.md",
        "technical-architecture.md",
        "api-specification.md",
        "data-models.md",
        "source-code.md",
        "unit-tests.md",
        "documentation.md",
        "test-results.md",
        "quality-report.md",
        "performance-metrics.md",
        "deployment-plan.md",
        "environment-config.md",
        "monitoring-setup.md",
        "risk-cards.md",
    ] {
        let text =
            std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            text.starts_with("# "),
            "{name} starts with its title: {text}"
        );
    }

    // The store agrees: 18 steps and a conflict check after each phase, each document
    // scored for its gate; every recorded exchange was one LLM call (a document per step,
    // the checklist batches that measure quality, the checks); tokens as recorded in the
    // cassette.
    let show = json(&ok(s.cmd().args(["show", &run_id[..8], "--json"])));
    let steps = show["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 24);
    assert!(
        steps.iter().all(|st| st["status"] == "succeeded"),
        "{steps:?}"
    );
    let recorded: Vec<serde_json::Value> = std::fs::read_to_string(&cassette)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let calls = show["llm_calls"].as_array().unwrap();
    assert_eq!(calls.len(), recorded.len());
    assert!(
        calls.len() > 18,
        "checklists were executed: {}",
        calls.len()
    );
    for (step, st) in steps.iter().enumerate() {
        let key = st["key"].as_str().unwrap();
        let scored = &show["assessments"][step.to_string()];
        if let Some(phase) = key.strip_suffix("/conflict-check") {
            // A check is not scored; its report is its document.
            assert!(scored.is_null(), "{key}: {scored}");
            let report = std::fs::read_to_string(out.join(format!("conflicts-{phase}.md")))
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(report.starts_with("# Conflict check: the "), "{report}");
            assert!(report.contains("Documents compared: "), "{report}");
            continue;
        }
        assert!(
            scored["quality"]["value"].is_number(),
            "step {step}: {scored}"
        );
    }
    assert!(show["conflicts"].is_array());
    // `--yes` approved every gate that asked, and the log says so.
    let log = stdout(&ok(s.cmd().args(["events", &run_id])));
    let asked = log.matches("\"type\":\"hitl_requested\"").count();
    let approved = log.matches("auto-approve (--yes)").count();
    assert!(
        asked > 0,
        "the tiny model is not sure enough for every gate"
    );
    assert_eq!(asked, approved);
    let recorded_out: u64 = recorded
        .iter()
        .map(|e| e["response"]["usage"]["output_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(
        show["run"]["usage"]["output_tokens"].as_u64().unwrap(),
        recorded_out
    );

    // The event log is gap-free, starts with the plan and ends with completion.
    let events = stdout(&ok(s.cmd().args(["events", &run_id])));
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"].as_u64().unwrap(), i as u64 + 1);
    }
    assert_eq!(events.first().unwrap()["type"], "pipeline_created");
    assert_eq!(events.last().unwrap()["type"], "pipeline_completed");
    let since = stdout(&ok(s.cmd().args(["events", &run_id, "--since", "5"])));
    assert_eq!(since.lines().count(), events.len() - 5);
    assert!(since.lines().next().unwrap().contains("\"seq\":6"));

    // `runs` lists it.
    let runs = json(&ok(s.cmd().args(["runs", "--json"])));
    assert_eq!(runs[0]["id"], run_id.as_str());
    assert_eq!(runs[0]["status"], "succeeded");

    // Replaying again reproduces every artifact byte for byte; at a terminal, the summary
    // says how long each phase worked.
    let o = ok(s
        .replay(&cassette)
        .args(["run", IDEA, "--max-tokens", "48", "--yes"]));
    let text = stderr(&o);
    let times = text
        .split("phases (time working; waits at gates not counted):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no phase times in:\n{text}"));
    let named: Vec<&str> = times
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(named, phases, "{text}");
    let runs = json(&ok(s.cmd().args(["runs", "--json"])));
    let second = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .find(|id| *id != run_id)
        .unwrap();
    let again = json(&ok(s.cmd().args(["show", &second, "--json"])));
    assert_eq!(artifacts_by_name(&show), artifacts_by_name(&again));
}

#[test]
fn a_real_bmad_workflow_runs_from_the_fixtures() {
    let s = Sandbox::new();
    let cassette = cassette("bmad-greenfield-service.jsonl");
    let o = ok(s
        .replay(&cassette)
        .args([
            "run",
            "a REST API for a bookshop",
            "--max-tokens",
            "48",
            "--yes",
            "--json",
            "--workflow",
            "greenfield-service",
            "--method",
        ])
        .arg(fixtures()));
    let summary = json(&o);
    assert_eq!(summary["status"], "succeeded");
    let show = json(&ok(s.cmd().args([
        "show",
        summary["run_id"].as_str().unwrap(),
        "--json",
    ])));
    let steps = show["steps"].as_array().unwrap();
    let by_title: Vec<(String, String, String)> = steps
        .iter()
        .map(|st| {
            (
                st["agent"].as_str().unwrap().into(),
                st["title"].as_str().unwrap().into(),
                st["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    // The workflow's own agents did the work, in its order.
    assert_eq!(by_title[0].0, "analyst");
    assert_eq!(by_title[1].0, "pm");
    assert_eq!(by_title[2].0, "architect");
    for (agent, title, status) in &by_title {
        assert!(
            status == "succeeded" || status == "skipped",
            "{agent} {title} ended {status}"
        );
    }
    let made: Vec<&str> = show["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in ["project-brief.md", "prd.md", "architecture.md"] {
        assert!(made.contains(&name), "{name} in {made:?}");
    }
}
