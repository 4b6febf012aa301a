//! Bad input: one error shape, the field named, the right status.

use serde_json::json;

use crate::support::{Backend, start, start_with};

pub async fn bad_bodies_name_the_field(backend: Backend) {
    let mut server = start(backend).await;
    let cases = [
        (
            json!({"idea": "x", "colour": "red"}),
            400,
            "invalid_request",
            "colour",
        ),
        (
            json!({"idea": "x", "options": {"max_paralel": 2}}),
            400,
            "invalid_request",
            "options.max_paralel",
        ),
        (
            json!({"idea": "x", "options": {"budget": {"dollars": 1}}}),
            400,
            "invalid_request",
            "options.budget.dollars",
        ),
        (json!({"idea": 5}), 400, "invalid_request", "idea"),
        (json!({"workflow": "sdlc"}), 400, "invalid_request", ""),
        (
            json!({"idea": "x", "project_id": "nope"}),
            400,
            "invalid_request",
            "project_id",
        ),
        (json!({"idea": "  "}), 422, "validation_failed", "idea"),
        (
            json!({"idea": "x", "options": {"max_parallel": 0}}),
            422,
            "validation_failed",
            "options.max_parallel",
        ),
        (
            json!({"idea": "x", "options": {"budget": {"usd": -1.0}}}),
            422,
            "validation_failed",
            "options.budget.usd",
        ),
        (
            json!({"idea": "x", "workflow": "no-such-flow"}),
            422,
            "validation_failed",
            "workflow",
        ),
        (
            json!({"idea": "x", "method": "/etc"}),
            422,
            "validation_failed",
            "method",
        ),
        (
            json!({"idea": "x", "project_id": botarmy_protocol::ProjectId::new()}),
            422,
            "validation_failed",
            "project_id",
        ),
    ];
    for (body, status, code, path) in cases {
        let answer = server.post("/api/runs", &body).await;
        let paths = answer.error(status, code);
        assert_eq!(
            paths.first().map(String::as_str),
            Some(path),
            "{body} → {}",
            answer.body
        );
        if path == "colour" {
            assert!(answer.body["message"].as_str().unwrap().contains("colour"));
        }
    }
    // Several problems at once are all listed.
    let many = server
        .post(
            "/api/runs",
            &json!({"idea": "", "options": {"max_attempts": 99}, "workflow": "nope"}),
        )
        .await;
    let mut paths = many.error(422, "validation_failed");
    paths.sort();
    assert_eq!(paths, ["idea", "options.max_attempts", "workflow"]);

    // Nothing was created by any of them.
    let runs = server.get("/api/runs").await;
    assert_eq!(runs.body["items"], json!([]));

    let malformed = server
        .post_raw("/api/runs", "application/json", "{\"idea\": ".into())
        .await;
    malformed.error(400, "invalid_request");
    let empty = server
        .post_raw("/api/runs", "application/json", String::new())
        .await;
    empty.error(400, "invalid_request");
    let project = server
        .post("/api/projects", &json!({"name": "a", "owner": "me"}))
        .await;
    assert_eq!(project.error(400, "invalid_request"), ["owner"]);
    let unnamed = server
        .post("/api/projects", &json!({"name": "\u{7}"}))
        .await;
    assert_eq!(unnamed.error(422, "validation_failed"), ["name"]);
    server.shutdown().await;
}

pub async fn bad_ids_queries_and_missing_things(backend: Backend) {
    let mut server = start(backend).await;
    let missing = botarmy_protocol::RunId::new();
    assert_eq!(
        server
            .get("/api/runs/not-a-uuid")
            .await
            .error(400, "invalid_id"),
        ["id"]
    );
    assert_eq!(
        server
            .get("/api/projects/123")
            .await
            .error(400, "invalid_id"),
        ["id"]
    );
    for path in [
        format!("/api/runs/{missing}"),
        format!("/api/runs/{missing}/events"),
        format!("/api/runs/{missing}/usage"),
        format!("/api/runs/{missing}/artifacts"),
        format!(
            "/api/runs/{missing}/artifacts/{}",
            botarmy_protocol::ArtifactId::new()
        ),
        format!("/api/projects/{}", botarmy_protocol::ProjectId::new()),
        "/api/nothing-here".to_owned(),
        format!("/ws?run_id={missing}"),
    ] {
        let answer = server.get(&path).await;
        answer.error(404, "not_found");
        if path.contains(&missing.to_string()) {
            assert!(
                answer.body["message"]
                    .as_str()
                    .unwrap()
                    .contains(&missing.to_string())
            );
        }
    }
    for post in ["pause", "resume", "cancel"] {
        server
            .post_empty(&format!("/api/runs/{missing}/{post}"))
            .await
            .error(404, "not_found");
    }
    server.model.open();
    let run = server.create_run("ids").await;
    assert_eq!(
        server
            .get(&format!("/api/runs/{run}/artifacts/xyz"))
            .await
            .error(400, "invalid_id"),
        ["artifact_id"]
    );
    assert_eq!(
        server
            .get(&format!("/api/runs/{run}/events?since=-1"))
            .await
            .error(400, "invalid_request"),
        ["since"]
    );
    assert_eq!(
        server
            .get(&format!("/api/runs/{run}/events?limit=0"))
            .await
            .error(400, "invalid_request"),
        ["limit"]
    );
    assert_eq!(
        server
            .get("/api/runs?status=sleeping")
            .await
            .error(400, "invalid_request"),
        ["status"]
    );
    assert_eq!(
        server
            .get("/api/runs?colour=red")
            .await
            .error(400, "invalid_request"),
        ["colour"]
    );
    assert_eq!(
        server.get("/ws").await.error(400, "invalid_request"),
        ["run_id"]
    );
    assert_eq!(
        server
            .get("/ws?run_id=abc")
            .await
            .error(400, "invalid_request"),
        ["run_id"]
    );
    // A plain GET of an existing run's stream is not a WebSocket.
    server
        .get(&format!("/ws?run_id={run}"))
        .await
        .error(400, "invalid_request");
    server.wait_for_event(run, "pipeline_completed").await;
    server.shutdown().await;
}

pub async fn limits_and_media_types(backend: Backend) {
    let config = botarmy_server::ServerConfig {
        max_body_bytes: 4096,
        ..botarmy_server::ServerConfig::default()
    };
    let mut server = start_with(backend, config).await;
    let big = json!({"idea": "y".repeat(10_000)}).to_string();
    server
        .post_raw("/api/runs", "application/json", big)
        .await
        .error(413, "payload_too_large");
    server
        .post_raw("/api/runs", "text/plain", json!({"idea": "x"}).to_string())
        .await
        .error(415, "unsupported_media_type");
    let wrong = server.answer_delete("/api/runs").await;
    wrong.error(405, "method_not_allowed");
    server.shutdown().await;
}
