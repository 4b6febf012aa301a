//! The REST API on well-formed requests.

use serde_json::{Value, json};

use crate::support::{Backend, start};

pub async fn health_ready_version_and_openapi(backend: Backend) {
    let mut server = start(backend).await;
    let health = server.get("/health").await;
    assert_eq!(
        (health.status, &health.body),
        (200, &json!({"status": "ok"}))
    );
    let ready = server.get("/ready").await;
    assert_eq!(
        (ready.status, &ready.body),
        (200, &json!({"status": "ready"}))
    );
    let version = server.get("/api/version").await;
    assert_eq!(version.status, 200);
    assert_eq!(version.body["name"], "botarmy");
    assert_eq!(version.body["version"], env!("CARGO_PKG_VERSION"));

    let doc = server.get("/api/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with('3'));
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/api/projects",
        "/api/projects/{id}",
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/pause",
        "/api/runs/{id}/resume",
        "/api/runs/{id}/cancel",
        "/api/runs/{id}/events",
        "/api/runs/{id}/usage",
        "/api/runs/{id}/artifacts",
        "/api/runs/{id}/artifacts/{artifact_id}",
        "/api/runs/{id}/artifacts/{artifact_id}/raw",
        "/api/runs/{id}/artifacts/{artifact_id}/versions",
        "/api/runs/{id}/conflicts",
        "/api/projects/{id}/conflicts",
        "/api/definitions",
        "/metrics",
        "/health",
        "/ready",
    ] {
        assert!(paths.contains_key(path), "the document describes {path}");
    }
    for (path, method) in [
        ("/api/projects/{id}", "patch"),
        ("/api/projects/{id}", "delete"),
        ("/api/runs/{id}", "delete"),
    ] {
        assert!(
            doc.body["paths"][path][method].is_object(),
            "the document describes {method} {path}"
        );
    }
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("ErrorBody") && schemas.contains_key("RunDetail"));
    // The body of a run's creation is described with its fields.
    let create = &schemas["CreateRun"]["properties"];
    assert!(create["idea"].is_object() && create["options"].is_object());

    // The same document for people: a page that renders it, with nothing from elsewhere.
    let docs = server.get("/api/docs").await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8(docs.bytes).unwrap();
    assert!(page.contains("<script src=\"/api/docs.js\">"), "{page}");
    assert!(page.contains("href=\"/api/docs.css\""), "{page}");
    let script = server.get("/api/docs.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let script = String::from_utf8(script.bytes).unwrap();
    assert!(script.contains("fetch(\"/api/openapi.json\")"));
    let style = server.get("/api/docs.css").await;
    assert!(
        style.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    for text in [&page, &script, &String::from_utf8(style.bytes).unwrap()] {
        assert!(
            !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
            "the page loads nothing from elsewhere"
        );
    }
    server.shutdown().await;
}

pub async fn projects_are_created_listed_and_read(backend: Backend) {
    let mut server = start(backend).await;
    let mut ids = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let created = server.post("/api/projects", &json!({ "name": name })).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["name"], name);
        assert_eq!(created.body["status"], "active");
        let id = created.body["id"].as_str().unwrap().to_owned();
        assert_eq!(
            created.headers["location"].to_str().unwrap(),
            format!("/api/projects/{id}")
        );
        ids.push(id);
    }
    let taken = server
        .post("/api/projects", &json!({ "name": "beta" }))
        .await;
    assert_eq!(taken.error(409, "conflict"), ["name"]);

    let one = server.get(&format!("/api/projects/{}", ids[1])).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["name"], "beta");

    let page = server.get("/api/projects?limit=2").await;
    assert_eq!(page.status, 200);
    let names: Vec<&Value> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, ["gamma", "beta"], "newest first");
    assert_eq!(page.body["next_offset"], 2);
    let rest = server.get("/api/projects?limit=2&offset=2").await;
    let names: Vec<&Value> = rest.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, ["alpha"]);
    assert_eq!(rest.body["next_offset"], Value::Null);

    // Runs of a project, by id.
    server.model.open();
    let run = server
        .post(
            "/api/runs",
            &json!({ "idea": "a kite", "project_id": ids[0] }),
        )
        .await;
    assert_eq!(run.status, 201, "{}", run.body);
    assert_eq!(run.body["project_id"], ids[0].as_str());
    let other = server
        .post(
            "/api/runs",
            &json!({ "idea": "a boat", "project": "beta", "options": {"gate_policy": "auto"} }),
        )
        .await;
    assert_eq!(other.body["project_id"], ids[1].as_str());
    let listed = server
        .get(&format!("/api/runs?project_id={}", ids[0]))
        .await;
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["idea"], "a kite");
    server.shutdown().await;
}

pub async fn a_finished_run_reads_back_whole(backend: Backend) {
    let mut server = start(backend).await;
    server.model.open();
    let created = server
        .post(
            "/api/runs",
            &json!({
                "idea": "a todo app",
                "workflow": "sdlc",
                "options": { "max_parallel": 2, "budget": { "usd": 5.0 }, "gate_policy": "auto" }
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["workflow"], "sdlc");
    let id: botarmy_protocol::RunId = created.body["id"].as_str().unwrap().parse().unwrap();
    server.wait_for_event(id, "pipeline_completed").await;

    let run = server.get(&format!("/api/runs/{id}")).await;
    assert_eq!(run.status, 200);
    assert_eq!(run.body["status"], "succeeded");
    assert!(run.body["driven_here"].is_boolean());
    let steps = run.body["steps"].as_array().unwrap();
    assert!(steps.len() >= 6);
    for step in steps {
        let status = step["status"].as_str().unwrap();
        assert!(matches!(status, "succeeded" | "skipped"), "{step}");
        if status == "succeeded" {
            let attempts = step["attempts"].as_array().unwrap();
            assert_eq!(attempts.len(), 1);
            assert_eq!(attempts[0]["status"], "succeeded");
        }
    }
    let phases = run.body["phases"].as_array().unwrap();
    let in_phases: usize = phases
        .iter()
        .map(|p| p["steps"].as_array().unwrap().len())
        .sum();
    assert_eq!(in_phases, steps.len(), "every step is in one phase");
    assert!(phases.len() > 1);

    let listed = server.get("/api/runs?status=succeeded").await;
    assert_eq!(listed.body["items"][0]["id"], id.to_string());
    let none = server.get("/api/runs?status=failed").await;
    assert_eq!(none.body["items"], json!([]));

    // Usage: the calls the model answered, priced at nothing.
    let usage = server.get(&format!("/api/runs/{id}/usage")).await;
    assert_eq!(usage.status, 200);
    let calls = server.model.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(usage.body["total"]["calls"], calls);
    assert_eq!(usage.body["total"]["input_tokens"], calls * 50);
    let row_calls: u64 = usage.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["usage"]["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(row_calls, calls);

    // Artifacts: listed, read one by one, downloaded as stored.
    let artifacts = server.get(&format!("/api/runs/{id}/artifacts")).await;
    let items = artifacts.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        let artifact_id = item["id"].as_str().unwrap();
        let one = server
            .get(&format!("/api/runs/{id}/artifacts/{artifact_id}"))
            .await;
        assert_eq!(&one.body, item);
        let raw = server
            .get(&format!("/api/runs/{id}/artifacts/{artifact_id}/raw"))
            .await;
        assert_eq!(raw.status, 200);
        assert_eq!(raw.bytes.len() as u64, item["bytes"].as_u64().unwrap());
        let stored = server
            .store
            .artifact_content(artifact_id.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(raw.bytes, stored);
        if item["kind"] == "document" {
            assert!(
                raw.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/markdown")
            );
        }
        assert!(
            raw.headers["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
    }
    server.shutdown().await;
}

pub async fn events_are_paged(backend: Backend) {
    let mut server = start(backend).await;
    server.model.open();
    let id = server.create_run("paging").await;
    server.wait_for_event(id, "pipeline_completed").await;
    let log = server.stored_log(id).await;
    assert!(log.len() > 12);

    let mut since = 0;
    let mut pages = 0;
    let mut paged = Vec::new();
    loop {
        let page = server
            .get(&format!("/api/runs/{id}/events?since={since}&limit=5"))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let events = page.body["events"].as_array().unwrap();
        assert!(events.len() <= 5);
        paged.extend(events.iter().cloned());
        assert_eq!(page.body["last_seq"], log.len());
        pages += 1;
        since = page.body["next_since"].as_u64().unwrap();
        if !page.body["has_more"].as_bool().unwrap() {
            break;
        }
        assert_eq!(events.len(), 5, "only the last page is short");
    }
    assert_eq!(pages, log.len().div_ceil(5));
    assert_eq!(paged, log, "the pages are the log, in order, once");
    // Each event names itself with the event's type tag.
    assert_eq!(paged[0]["type"], "pipeline_created");
    assert_eq!(paged.last().unwrap()["type"], "pipeline_completed");

    let past = server
        .get(&format!("/api/runs/{id}/events?since={}", log.len() + 10))
        .await;
    assert_eq!(past.body["events"], json!([]));
    assert_eq!(past.body["has_more"], false);
    let default = server.get(&format!("/api/runs/{id}/events")).await;
    assert_eq!(
        default.body["events"].as_array().unwrap().len(),
        log.len().min(100)
    );
    server.shutdown().await;
}
