//! Managing what is stored: projects renamed, archived and deleted, runs deleted once
//! finished, an artifact's versions, the method's definitions and the metrics.

use botarmy_protocol::RunId;
use serde_json::{Value, json};

use crate::approvals::settled;
use crate::support::{Answer, Backend, TestServer, start};

impl TestServer {
    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.answer(
            self.client
                .patch(format!("{}{path}", self.http))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }
}

/// A run of `project` that went through every gate; returns it once settled.
async fn finished_run(server: &TestServer, project: &str) -> RunId {
    let created = server
        .post(
            "/api/runs",
            &json!({"idea": "a todo app", "project_id": project, "options": {"gate_policy": "auto"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let run = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(settled(server, &run).await["status"], "succeeded");
    run.parse().unwrap()
}

fn message(answer: &Answer) -> &str {
    answer.body["message"].as_str().unwrap()
}

pub async fn projects_are_updated_and_deleted(backend: Backend) {
    let mut server = start(backend).await;
    server.model.open();
    let mut ids = Vec::new();
    for name in ["alpha", "beta"] {
        let created = server.post("/api/projects", &json!({ "name": name })).await;
        assert_eq!(created.status, 201, "{}", created.body);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let (alpha, beta) = (&ids[0], &ids[1]);
    let path = format!("/api/projects/{alpha}");

    let renamed = server.patch(&path, &json!({"name": "gamma"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        (&renamed.body["name"], &renamed.body["status"]),
        (&json!("gamma"), &json!("active"))
    );
    assert_eq!(server.get(&path).await.body["name"], "gamma");

    // A taken name, an unknown field, a bad status, nothing to change: refused, nothing
    // changes.
    let taken = server.patch(&path, &json!({"name": "beta"})).await;
    assert_eq!(taken.error(409, "conflict"), ["name"]);
    let unknown = server
        .patch(&path, &json!({"name": "delta", "colour": "red"}))
        .await;
    assert_eq!(unknown.error(400, "invalid_request"), ["colour"]);
    let bad = server.patch(&path, &json!({"status": "gone"})).await;
    assert_eq!(bad.error(422, "validation_failed"), ["status"]);
    let blank = server.patch(&path, &json!({"name": " "})).await;
    assert_eq!(blank.error(422, "validation_failed"), ["name"]);
    server
        .patch(&path, &json!({}))
        .await
        .error(422, "validation_failed");
    assert_eq!(server.get(&path).await.body["name"], "gamma");
    let missing = server
        .patch(
            &format!("/api/projects/{}", RunId::new()),
            &json!({"name": "x"}),
        )
        .await;
    missing.error(404, "not_found");

    let archived = server.patch(&path, &json!({"status": "archived"})).await;
    assert_eq!(archived.status, 200, "{}", archived.body);
    assert_eq!(
        (&archived.body["name"], &archived.body["status"]),
        (&json!("gamma"), &json!("archived"))
    );

    // A project with a finished run: deleted only with force, with the run.
    let run = finished_run(&server, alpha).await;
    let refused = server.answer_delete(&path).await;
    refused.error(409, "conflict");
    assert!(
        message(&refused).contains(&run.to_string()),
        "{}",
        refused.body
    );
    assert!(message(&refused).contains("force"), "{}", refused.body);
    server
        .answer_delete(&format!("{path}?force=yes"))
        .await
        .error(400, "invalid_request");
    assert_eq!(server.get(&format!("/api/runs/{run}")).await.status, 200);

    let deleted = server.answer_delete(&format!("{path}?force=true")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["project"]["name"], "gamma");
    assert_eq!(deleted.body["deleted_runs"], json!([run.to_string()]));
    server.get(&path).await.error(404, "not_found");
    server
        .get(&format!("/api/runs/{run}"))
        .await
        .error(404, "not_found");
    assert!(
        server
            .store
            .read_events(run, 0, 0)
            .await
            .unwrap()
            .is_empty()
    );
    server.answer_delete(&path).await.error(404, "not_found");

    // A project without runs goes without force; its name is free again.
    let plain = server.answer_delete(&format!("/api/projects/{beta}")).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(plain.body["deleted_runs"], json!([]));
    let again = server.post("/api/projects", &json!({"name": "beta"})).await;
    assert_eq!(again.status, 201, "{}", again.body);
    server.shutdown().await;
}

pub async fn a_run_is_deleted_once_finished_and_its_versions_listed(backend: Backend) {
    let mut server = start(backend).await;
    server.model.open();
    let created = server
        .post(
            "/api/runs",
            &json!({"idea": "a kettle timer", "project": "kettles",
                    "options": {"gate_policy": "always", "max_parallel": 1}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let run = created.body["id"].as_str().unwrap().to_owned();
    let project = created.body["project_id"].as_str().unwrap().to_owned();
    let id: RunId = run.parse().unwrap();
    server.wait_for_event(id, "hitl_requested").await;
    assert_eq!(settled(&server, &run).await["status"], "waiting");

    let artifacts = server.get(&format!("/api/runs/{run}/artifacts")).await;
    let first = artifacts.body["items"][0].clone();
    let first_id = first["id"].as_str().unwrap();
    let versions = server
        .get(&format!("/api/runs/{run}/artifacts/{first_id}/versions"))
        .await;
    assert_eq!(versions.status, 200, "{}", versions.body);
    assert_eq!(versions.body["items"], json!([first]), "one version so far");

    // Feedback at the gate runs the phase's steps again: a second version of each document.
    let rejected = server
        .post(
            &format!("/api/runs/{run}/reject"),
            &json!({"feedback": "Name the alarm sounds."}),
        )
        .await;
    assert_eq!(rejected.status, 202, "{}", rejected.body);
    assert_eq!(settled(&server, &run).await["status"], "waiting");
    let versions = server
        .get(&format!("/api/runs/{run}/artifacts/{first_id}/versions"))
        .await;
    let items = versions.body["items"].as_array().unwrap();
    let numbers: Vec<&Value> = items.iter().map(|v| &v["version"]).collect();
    assert_eq!(numbers, [1, 2], "{}", versions.body);
    assert_eq!(items[0], first);
    assert_eq!(items[1]["name"], first["name"]);
    assert_ne!(items[1]["id"], first["id"]);
    for item in items {
        for field in ["sha256", "bytes", "step", "created_at", "kind"] {
            assert!(!item[field].is_null(), "{field} in {item}");
        }
    }
    // Asked by the id of either version, the same list.
    let second_id = items[1]["id"].as_str().unwrap();
    let by_second = server
        .get(&format!("/api/runs/{run}/artifacts/{second_id}/versions"))
        .await;
    assert_eq!(by_second.body, versions.body);
    server
        .get(&format!(
            "/api/runs/{run}/artifacts/{}/versions",
            RunId::new()
        ))
        .await
        .error(404, "not_found");

    // Waiting is not finished: neither the run nor its project may be deleted.
    let before = server.stored_log(id).await;
    let refused = server.answer_delete(&format!("/api/runs/{run}")).await;
    refused.error(409, "conflict");
    assert!(message(&refused).contains("cancel"), "{}", refused.body);
    let project_refused = server
        .answer_delete(&format!("/api/projects/{project}?force=true"))
        .await;
    project_refused.error(409, "conflict");
    assert!(
        message(&project_refused).contains(&run),
        "{}",
        project_refused.body
    );
    assert_eq!(server.stored_log(id).await, before, "nothing deleted");

    // Cancelled, it goes, and everything of it.
    let cancelled = server
        .post(&format!("/api/runs/{run}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let deleted = server.answer_delete(&format!("/api/runs/{run}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        (&deleted.body["id"], &deleted.body["status"]),
        (&json!(run), &json!("cancelled"))
    );
    for path in [
        format!("/api/runs/{run}"),
        format!("/api/runs/{run}/events"),
        format!("/api/runs/{run}/artifacts"),
        format!("/api/runs/{run}/artifacts/{first_id}/raw"),
        format!("/api/runs/{run}/artifacts/{first_id}/versions"),
    ] {
        server.get(&path).await.error(404, "not_found");
    }
    assert!(server.store.read_events(id, 0, 0).await.unwrap().is_empty());
    assert!(server.store.artifacts(id).await.unwrap().is_empty());
    assert!(server.store.llm_calls(id).await.unwrap().is_empty());
    server
        .answer_delete(&format!("/api/runs/{run}"))
        .await
        .error(404, "not_found");
    // Its project is left, empty.
    let empty = server
        .answer_delete(&format!("/api/projects/{project}"))
        .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    server.shutdown().await;
}

pub async fn definitions_of_the_builtin_method(backend: Backend) {
    let mut server = start(backend).await;
    let defs = server.get("/api/definitions").await;
    assert_eq!(defs.status, 200, "{}", defs.body);
    assert_eq!(defs.body["method"], "builtin");
    let agents: Vec<&str> = defs.body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    for agent in ["analyst", "architect", "coder", "tester", "deployer"] {
        assert!(agents.contains(&agent), "{agent} in {agents:?}");
    }
    assert!(defs.body["agents"][0]["title"].as_str().is_some());
    assert!(defs.body["agents"][0]["tools"].is_array());
    let default = defs.body["default_workflow"].as_str().unwrap();
    let workflows = defs.body["workflows"].as_array().unwrap();
    let sdlc = workflows
        .iter()
        .find(|w| w["id"] == default)
        .expect("the default workflow is listed");
    assert!(sdlc["type"].is_string());
    let steps = sdlc["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["agent"] == "analyst"), "{sdlc}");
    let templates = defs.body["templates"].as_array().unwrap();
    assert!(!templates.is_empty());
    assert!(
        templates
            .iter()
            .all(|t| t["id"].is_string() && !t["sections"].as_array().unwrap().is_empty()),
        "every template has sections"
    );
    assert!(defs.body["checklists"].is_array());
    assert_eq!(
        server.get("/api/definitions?method=builtin").await.body,
        defs.body
    );
    let folder = server.get("/api/definitions?method=/etc").await;
    assert_eq!(folder.error(400, "invalid_request"), ["method"]);
    let unknown = server.get("/api/definitions?workflow=sdlc").await;
    assert_eq!(unknown.error(400, "invalid_request"), ["workflow"]);
    server.shutdown().await;
}

/// The value of the metric line that starts with `series` (name and labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

pub async fn metrics_are_exposed_and_move(backend: Backend) {
    let mut server = start(backend).await;
    server.model.open();
    let scraped = server.get("/metrics").await;
    assert_eq!(scraped.status, 200);
    assert!(
        scraped.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(scraped.bytes).unwrap();
    for name in [
        "botarmy_build_info",
        "botarmy_http_request_duration_seconds",
        "botarmy_runs",
        "botarmy_steps",
        "botarmy_llm_calls_total",
        "botarmy_llm_tokens_total",
        "botarmy_llm_cost_usd_total",
        "botarmy_drives_active",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} in\n{text}"
        );
    }
    assert_eq!(
        metric(&text, "botarmy_runs{status=\"succeeded\"}"),
        Some(0.0)
    );
    assert_eq!(metric(&text, "botarmy_drives_active"), Some(0.0));

    let series = "botarmy_http_request_duration_seconds_count{method=\"GET\",route=\"/api/runs/{id}\",status=\"404\"}";
    assert_eq!(metric(&text, series), None);
    for _ in 0..2 {
        server
            .get(&format!("/api/runs/{}", RunId::new()))
            .await
            .error(404, "not_found");
    }
    let default = server
        .post("/api/projects", &json!({"name": "metered"}))
        .await;
    let project = default.body["id"].as_str().unwrap().to_owned();
    finished_run(&server, &project).await;

    let text = String::from_utf8(server.get("/metrics").await.bytes).unwrap();
    assert_eq!(
        metric(&text, series),
        Some(2.0),
        "by route template:\n{text}"
    );
    assert_eq!(
        metric(&text, "botarmy_runs{status=\"succeeded\"}"),
        Some(1.0)
    );
    let calls = "botarmy_llm_calls_total{provider=\"gated\",model=\"gated-1\",outcome=\"ok\"}";
    let made = server.model.calls.load(std::sync::atomic::Ordering::SeqCst) as f64;
    assert_eq!(metric(&text, calls), Some(made), "{text}");
    let input = "botarmy_llm_tokens_total{provider=\"gated\",model=\"gated-1\",kind=\"input\"}";
    assert_eq!(metric(&text, input), Some(made * 50.0));
    assert!(metric(&text, "botarmy_steps{status=\"succeeded\"}").unwrap() > 0.0);
    assert!(
        text.contains("route=\"/metrics\""),
        "the first scrape is counted"
    );
    server.shutdown().await;
}
