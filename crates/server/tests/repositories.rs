//! `/api/repositories` over real HTTP, with git repositories made here (clones come from
//! `file://` URLs: no network).

use std::path::{Path, PathBuf};
use std::process::Command;

use botarmy_server::ServerConfig;
use serde_json::json;

use crate::support::{Backend, TestServer, start_with};

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@localhost",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A repository with one commit of `file`, by its canonical folder.
fn repository(dir: &Path, file: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "--quiet"]);
    std::fs::write(dir.join(file), "first\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "first"]);
    std::fs::canonicalize(dir).unwrap()
}

/// A server that clones into `dir/clones`.
async fn server(backend: Backend, dir: &Path) -> TestServer {
    start_with(
        backend,
        ServerConfig {
            clones: Some(dir.join("clones")),
            ..ServerConfig::default()
        },
    )
    .await
}

pub async fn repositories_are_registered_listed_read_and_removed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server(backend, dir.path()).await;
    let web = repository(&dir.path().join("web"), "index.html");
    let origin = repository(&dir.path().join("remote/lib.git"), "lib.rs");

    let added = server
        .post(
            "/api/repositories",
            &json!({ "location": web.display().to_string() }),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.headers["location"], "/api/repositories/web");
    assert_eq!(added.body["name"], "web");
    assert_eq!(added.body["path"], web.display().to_string());
    assert_eq!(added.body["location"], web.display().to_string());
    assert_eq!(added.body["cloned"], false);

    let url = format!("file://{}", origin.display());
    let cloned = server
        .post(
            "/api/repositories",
            &json!({ "location": url, "name": "core" }),
        )
        .await;
    assert_eq!(cloned.status, 201, "{}", cloned.body);
    assert_eq!(cloned.body["cloned"], true);
    assert_eq!(cloned.body["location"], url);
    let clone = std::fs::canonicalize(dir.path().join("clones/core")).unwrap();
    assert_eq!(cloned.body["path"], clone.display().to_string());
    assert!(clone.join("lib.rs").is_file());

    let list = server.get("/api/repositories").await;
    assert_eq!(list.status, 200);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["core", "web"]);
    let one = server.get("/api/repositories/web").await;
    assert_eq!((one.status, &one.body), (200, &added.body));

    // A checkout that BotArmy did not clone is never deleted; nothing is removed.
    let refused = server
        .answer_delete("/api/repositories/web?delete_clone=true")
        .await;
    refused.error(409, "conflict");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("`web` is not a clone BotArmy made"),
        "{}",
        refused.body
    );
    assert_eq!(server.get("/api/repositories/web").await.status, 200);

    let removed = server
        .answer_delete("/api/repositories/core?delete_clone=true")
        .await;
    assert_eq!((removed.status, &removed.body), (200, &cloned.body));
    assert!(!clone.exists());
    let removed = server
        .answer_delete("/api/repositories/web?delete_clone=false")
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(web.join("index.html").is_file());
    server
        .get("/api/repositories/web")
        .await
        .error(404, "not_found");
    let list = server.get("/api/repositories").await;
    assert_eq!(list.body, json!({ "items": [] }));

    let doc = server.get("/api/openapi.json").await;
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths["/api/repositories"]["get"].is_object());
    assert!(paths["/api/repositories"]["post"].is_object());
    assert!(paths["/api/repositories/{name}"]["get"].is_object());
    assert!(paths["/api/repositories/{name}"]["delete"].is_object());
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    assert!(schemas["AddRepository"]["properties"]["location"].is_object());
    server.shutdown().await;
}

pub async fn bad_repository_requests_name_the_field(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server(backend, dir.path()).await;
    let web = repository(&dir.path().join("web"), "index.html");
    let add = |body: serde_json::Value| {
        let server = &server;
        async move { server.post("/api/repositories", &body).await }
    };
    assert_eq!(
        add(json!({ "location": web.display().to_string() }))
            .await
            .status,
        201
    );

    // A run names registered repositories only.
    let unknown = server
        .post(
            "/api/runs",
            &json!({"idea": "x", "options": {"repositories": ["web", "nope"]}}),
        )
        .await;
    assert_eq!(
        unknown.error(422, "validation_failed"),
        ["options.repositories[1]"]
    );
    assert!(
        unknown.body["message"]
            .as_str()
            .unwrap()
            .contains("no repository `nope` is registered"),
        "{}",
        unknown.body
    );

    let taken = add(json!({ "location": web.display().to_string() })).await;
    assert_eq!(taken.error(409, "conflict"), ["name"]);
    assert!(
        taken.body["message"]
            .as_str()
            .unwrap()
            .contains("a repository named `web` is registered already"),
        "{}",
        taken.body
    );
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let not_checkout = add(json!({ "location": plain.display().to_string() })).await;
    assert_eq!(not_checkout.error(422, "validation_failed"), ["location"]);
    assert!(
        not_checkout.body["message"]
            .as_str()
            .unwrap()
            .contains("is not a git checkout"),
        "{}",
        not_checkout.body
    );
    let relative = add(json!({ "location": "web" })).await;
    assert_eq!(relative.error(422, "validation_failed"), ["location"]);
    let ftp = add(json!({ "location": "ftp://example.com/x.git" })).await;
    assert_eq!(ftp.error(422, "validation_failed"), ["location"]);
    let bad_name = add(json!({ "location": web.display().to_string(), "name": "a/b" })).await;
    assert_eq!(bad_name.error(422, "validation_failed"), ["name"]);
    let failed_clone = add(json!({
        "location": format!("file://{}", dir.path().join("nowhere").display()),
    }))
    .await;
    assert_eq!(failed_clone.error(422, "validation_failed"), ["location"]);
    assert!(
        failed_clone.body["message"]
            .as_str()
            .unwrap()
            .contains("failed: fatal:"),
        "git's own words: {}",
        failed_clone.body
    );
    assert!(!dir.path().join("clones/nowhere").exists());
    let unknown = add(json!({ "location": "/x", "path": "/y" })).await;
    unknown.error(400, "invalid_request");

    server
        .get("/api/repositories/nosuch")
        .await
        .error(404, "not_found");
    server
        .answer_delete("/api/repositories/nosuch")
        .await
        .error(404, "not_found");
    let bad_flag = server
        .answer_delete("/api/repositories/web?delete_clone=maybe")
        .await;
    assert_eq!(bad_flag.error(400, "invalid_request"), ["delete_clone"]);
    let bad_query = server.get("/api/repositories?limit=3").await;
    assert_eq!(bad_query.error(400, "invalid_request"), ["limit"]);
    // Nothing of it was stored.
    let list = server.get("/api/repositories").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    server.shutdown().await;

    // A server without a folder for clones registers checkouts only.
    let mut bare = start_with(backend, ServerConfig::default()).await;
    let url = bare
        .post(
            "/api/repositories",
            &json!({ "location": "https://example.com/app.git" }),
        )
        .await;
    assert_eq!(url.error(422, "validation_failed"), ["location"]);
    let local = bare
        .post(
            "/api/repositories",
            &json!({ "location": web.display().to_string() }),
        )
        .await;
    assert_eq!(local.status, 201, "{}", local.body);
    bare.shutdown().await;
}

/// A run in a registered repository with a setup command waits for a human's decision;
/// the decision is given over the API (refused when it is not an option) and the run goes
/// on.
pub async fn a_run_waiting_on_its_setup_is_answered_over_the_api(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = server(backend, dir.path()).await;
    // A Makefile proposes `make` as the setup.
    let tool = repository(&dir.path().join("tool"), "Makefile");
    let added = server
        .post(
            "/api/repositories",
            &json!({ "location": tool.display().to_string() }),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let created = server
        .post(
            "/api/runs",
            &json!({"idea": "x", "options": {"repositories": ["tool"], "gate_policy": "auto"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let run: botarmy_protocol::RunId = created.body["id"].as_str().unwrap().parse().unwrap();
    server.model.open();
    server.wait_for_event(run, "pipeline_needs_input").await;
    // The drive ends once the question is stored; the run is then answerable here.
    tokio::time::timeout(crate::support::PATIENCE, async {
        while server.get(&format!("/api/runs/{run}")).await.body["driven_here"] != false {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        server.get(&format!("/api/runs/{run}")).await.body["status"],
        "waiting"
    );

    let wrong = server
        .post(
            &format!("/api/runs/{run}/answer"),
            &json!({"answer": "maybe"}),
        )
        .await;
    assert_eq!(wrong.error(422, "validation_failed"), ["answer"]);
    assert!(
        wrong.body["message"]
            .as_str()
            .unwrap()
            .contains("expected one of: run, skip"),
        "{}",
        wrong.body
    );
    let answered = server
        .post(
            &format!("/api/runs/{run}/answer"),
            &json!({"answer": "skip", "by": "ada"}),
        )
        .await;
    assert_eq!(answered.status, 202, "{}", answered.body);
    server.wait_for_event(run, "pipeline_completed").await;
    let log = server.stored_log(run).await;
    let provided: Vec<_> = log
        .iter()
        .filter(|e| e["type"] == "input_provided")
        .collect();
    assert_eq!(provided.len(), 1);
    assert_eq!(provided[0]["answer"], "skip");
    assert!(!log.iter().any(|e| e["type"] == "worktree_setup_started"));
}
