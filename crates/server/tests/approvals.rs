//! Gates through the API: what waits is listed across runs, a rejection with feedback
//! restarts the phase's steps, approvals let the run through, and bad decisions are refused
//! with the field named.

use serde_json::json;

use crate::support::{Backend, PATIENCE, TestServer, start};

/// The run once this server has stopped driving it (it waits, or it has finished).
pub async fn settled(server: &TestServer, run: &str) -> serde_json::Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let shown = server.get(&format!("/api/runs/{run}")).await.body;
            if shown["driven_here"] == false {
                return shown;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap()
}

pub async fn a_gate_is_rejected_with_feedback_then_approved_over_the_api(backend: Backend) {
    let server = start(backend).await;
    server.model.open();
    let created = server
        .post(
            "/api/runs",
            &json!({"idea": "a kettle timer", "options": {"gate_policy": "always", "max_parallel": 1}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let run = created.body["id"].as_str().unwrap().to_owned();
    let id = run.parse().unwrap();
    server.wait_for_event(id, "hitl_requested").await;
    assert_eq!(settled(&server, &run).await["status"], "waiting");

    // Listed across runs, with what the gate covers and why it asks.
    let pending = server.get("/api/approvals").await;
    assert_eq!(pending.status, 200, "{}", pending.body);
    let items = pending.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", pending.body);
    assert_eq!(items[0]["run_id"], run.as_str());
    let gate = &items[0]["gate"];
    assert_eq!(gate["key"], "phase:discovery");
    assert_eq!(gate["policy"], "always");
    assert_eq!(gate["waiting"]["question"], "Approve the Discovery phase?");
    let gates = server.get(&format!("/api/runs/{run}/gates")).await;
    let keys: Vec<&str> = gates.body["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "phase:discovery",
            "phase:plan",
            "phase:design",
            "phase:build",
            "phase:validate",
            "validate/risk-cards",
            "phase:launch"
        ]
    );

    // Bad decisions are refused before anything changes.
    server
        .post(
            &format!("/api/runs/{run}/reject"),
            &json!({"feedback": "  "}),
        )
        .await
        .error(422, "validation_failed");
    let unknown = server
        .post(
            &format!("/api/runs/{run}/approve"),
            &json!({"step": "no-such-step"}),
        )
        .await;
    assert_eq!(unknown.error(422, "validation_failed"), ["step"]);
    server
        .post(&format!("/api/runs/{run}/approve"), &json!({"who": "me"}))
        .await
        .error(400, "invalid_request");

    // Rejected with feedback: the phase's steps run again, then the gate asks again.
    let rejected = server
        .post(
            &format!("/api/runs/{run}/reject"),
            &json!({"feedback": "Cover the users who cannot hear the alarm.", "by": "ines"}),
        )
        .await;
    assert_eq!(rejected.status, 202, "{}", rejected.body);
    assert_eq!(settled(&server, &run).await["status"], "waiting");
    let log = server.stored_log(id).await;
    assert_eq!(
        log.iter().filter(|e| e["type"] == "hitl_requested").count(),
        2
    );
    let resolved: Vec<_> = log
        .iter()
        .filter(|e| e["type"] == "hitl_resolved")
        .collect();
    assert_eq!(resolved[0]["decision"], "rejected");
    assert_eq!(resolved[0]["by"], "ines");
    let restarted: Vec<u64> = log
        .iter()
        .filter(|e| e["type"] == "step_restarted")
        .map(|e| e["step"].as_u64().unwrap())
        .collect();
    assert_eq!(restarted, [0, 1, 2], "every step of the Discovery phase");
    assert!(
        log.iter()
            .filter(|e| e["type"] == "step_restarted")
            .all(|e| e["feedback"] == "Cover the users who cannot hear the alarm.")
    );

    // The first gate, approved; at the Plan gate (two documents) a human amends one.
    let approved = server
        .post(&format!("/api/runs/{run}/approve"), &json!({"by": "ines"}))
        .await;
    assert_eq!(approved.status, 202, "{}", approved.body);
    assert_eq!(settled(&server, &run).await["status"], "waiting");
    let ambiguous = server
        .post(
            &format!("/api/runs/{run}/amend"),
            &json!({"content": "# Features\n"}),
        )
        .await;
    ambiguous.error(422, "validation_failed");
    assert!(
        ambiguous.body.to_string().contains("several documents"),
        "{}",
        ambiguous.body
    );
    let amended = server
        .post(
            &format!("/api/runs/{run}/amend"),
            &json!({"content": "# Features\n\nEdited by a person.\n", "step": "feature-breakdown", "by": "ines"}),
        )
        .await;
    assert_eq!(amended.status, 202, "{}", amended.body);
    let artifacts = server.get(&format!("/api/runs/{run}/artifacts")).await;
    let versions: Vec<u64> = artifacts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "feature-breakdown.md")
        .map(|a| a["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2], "{}", artifacts.body);

    // Approving every gate lets the run finish.
    loop {
        let shown = settled(&server, &run).await;
        match shown["status"].as_str().unwrap() {
            "succeeded" => break,
            "waiting" => {
                let approved = server
                    .post(&format!("/api/runs/{run}/approve"), &json!({"by": "ines"}))
                    .await;
                assert_eq!(approved.status, 202, "{}", approved.body);
            }
            other => {
                let log: Vec<String> = server
                    .stored_log(id)
                    .await
                    .iter()
                    .map(|e| format!("{} {}", e["seq"], e["type"]))
                    .collect();
                panic!("run ended {other}: {log:?}")
            }
        }
    }
    // A finished run has nothing to approve.
    server
        .post_empty(&format!("/api/runs/{run}/approve"))
        .await
        .error(409, "conflict");
    let log = server.stored_log(id).await;
    let approvals = log
        .iter()
        .filter(|e| e["type"] == "hitl_resolved" && e["decision"] == "approved")
        .count();
    assert_eq!(
        approvals, 6,
        "one per gate (six phases, the risk review) but the amended one"
    );
    assert!(
        log.iter().any(|e| e["type"] == "hitl_resolved"
            && e["decision"] == "amended"
            && e["by"] == "ines")
    );
}

pub async fn a_conflict_mediation_cannot_settle_is_decided_over_the_api(backend: Backend) {
    let server = start(backend).await;
    server
        .model
        .conflict
        .store(true, std::sync::atomic::Ordering::SeqCst);
    server.model.open();
    let id = server.create_run("a kettle timer").await;
    let run = id.to_string();
    server.wait_for_event(id, "conflict_escalated").await;
    assert_eq!(settled(&server, &run).await["status"], "waiting");

    // Listed with what waits across runs, both positions in the question.
    let pending = server.get("/api/approvals").await;
    let items = pending.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", pending.body);
    assert_eq!(items[0]["kind"], "conflict");
    let question = items[0]["question"].as_str().unwrap();
    assert!(
        question.contains("[1] analyst in project-plan.md: It is a web app")
            && question.contains("[2] analyst in user-requirements.md: It runs in a terminal"),
        "{question}"
    );
    let conflicts = server.get(&format!("/api/runs/{run}/conflicts")).await;
    assert_eq!(conflicts.status, 200, "{}", conflicts.body);
    let c = &conflicts.body["conflicts"][0];
    assert_eq!(c["status"], "escalated");
    assert_eq!(c["step_key"], "discovery/conflict-check");
    assert_eq!(c["rounds"].as_array().unwrap().len(), 3);
    assert_eq!(c["rounds"][2]["score"], 0.4);

    // An empty answer is refused; `accept` takes the best proposal, and the run goes on.
    server
        .post(&format!("/api/runs/{run}/answer"), &json!({"answer": " "}))
        .await
        .error(422, "validation_failed");
    let answered = server
        .post(
            &format!("/api/runs/{run}/answer"),
            &json!({"answer": "accept", "by": "grace"}),
        )
        .await;
    assert!(answered.status < 300, "{}", answered.body);
    server.wait_for_event(id, "pipeline_completed").await;
    let conflicts = server.get(&format!("/api/runs/{run}/conflicts")).await;
    let c = &conflicts.body["conflicts"][0];
    assert_eq!(c["status"], "settled");
    assert_eq!(
        c["resolution"]["resolution"],
        "Ship the terminal version first."
    );
    assert_eq!(c["resolution"]["by"], "grace");

    // The project keeps it for its later runs.
    let project = server.get(&format!("/api/runs/{run}")).await.body["project_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = server
        .get(&format!("/api/projects/{project}/conflicts"))
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    let items = kept.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["run_id"], run.as_str());
    assert_eq!(items[0]["conflict"]["severity"], "high");
    assert_eq!(items[0]["resolution"]["by"], "grace");
    server
        .get("/api/projects/00000000-0000-0000-0000-000000000000/conflicts")
        .await
        .error(404, "not_found");
}
