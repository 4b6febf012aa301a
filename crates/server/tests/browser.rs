//! What a web page on another site can make a browser send: cross-origin and DNS-rebinding
//! requests to every state-changing route of the OpenAPI document, to `/ws` and to raw
//! artifacts are refused and change nothing; the same requests as clients that are not
//! browsers send them (no `Origin`), or from the server's own origin, go through; every
//! answer carries the security headers; CORS opens only for configured origins.

use botarmy_server::{AuthConfig, BrowserPolicy, ServerConfig};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::approvals::settled;
use crate::support::{Answer, Backend, TestServer, start, start_with};

const EVIL: &str = "http://evil.example";

/// The ids a route's path parameters are filled with.
struct Targets {
    run: String,
    project: String,
    session: String,
    artifact: String,
}

impl Targets {
    /// `path` with its parameters filled; a parameter this test does not know fails it, so a
    /// new kind of route cannot be left out.
    fn fill(&self, path: &str) -> String {
        let id = if path.starts_with("/api/runs/") {
            &self.run
        } else if path.starts_with("/api/projects/") {
            &self.project
        } else if path.starts_with("/api/sessions/") {
            &self.session
        } else {
            "unknown"
        };
        let filled = path
            .replace("{id}", id)
            .replace("{artifact_id}", &self.artifact)
            .replace("{name}", "no-such-repository")
            .replace("{tab}", "tab-1")
            .replace("{step}", "0");
        assert!(
            !filled.contains('{') && !filled.contains("unknown"),
            "the test does not know how to fill {path}"
        );
        filled
    }
}

/// Every (method, path) of the OpenAPI document, filled.
async fn routes(server: &TestServer, targets: &Targets) -> Vec<(Method, String)> {
    let doc = server.get("/api/openapi.json").await.body;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            out.push((method, targets.fill(path)));
        }
    }
    assert!(out.len() > 40, "the document lists the API: {out:?}");
    out
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What the store holds, as far as any route could change it.
async fn snapshot(server: &TestServer, run: &str) -> Value {
    let mut lists = Vec::new();
    for path in [
        "/api/runs",
        "/api/projects",
        "/api/sessions",
        "/api/repositories",
        "/api/approvals",
    ] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        lists.push(answer.body);
    }
    let log = server.stored_log(run.parse().unwrap()).await;
    json!({ "lists": lists, "log": log })
}

/// A request as the test builds it: method, path and headers.
async fn send(
    server: &TestServer,
    method: &Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut request = server
        .client
        .request(method.clone(), format!("{}{path}", server.http));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    server.answer(request).await
}

fn assert_secure(answer: &Answer, what: &str) {
    let get = |name: &str| {
        answer
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name} header ({:?})", answer.headers))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("cross-origin-resource-policy"), "same-origin", "{what}");
    let csp = get("content-security-policy");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains('*'),
        "{what}: {csp}"
    );
    let html = answer
        .headers
        .get("content-type")
        .is_some_and(|t| t.to_str().unwrap().starts_with("text/html"));
    if html {
        assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    } else {
        assert!(
            csp.contains("default-src 'none'") && csp.contains("sandbox"),
            "{what}: {csp}"
        );
    }
}

/// A run waiting at its first gate (so approve, reject, cancel... would change it), with
/// its documents, a session with a tab, and its project.
async fn waiting_run(server: &TestServer) -> Targets {
    server.model.open();
    let created = server
        .post(
            "/api/runs",
            &json!({"idea": "a kettle timer", "options": {"gate_policy": "always", "max_parallel": 1}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let run = created.body["id"].as_str().unwrap().to_owned();
    server
        .wait_for_event(run.parse().unwrap(), "hitl_requested")
        .await;
    let shown = settled(server, &run).await;
    assert_eq!(shown["status"], "waiting");
    let artifacts = server.get(&format!("/api/runs/{run}/artifacts")).await;
    let artifact = artifacts.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = server
        .post(
            "/api/sessions",
            &json!({"name": "desk", "tabs": [{"id": "tab-1", "run_id": run}]}),
        )
        .await;
    assert_eq!(session.status, 201, "{}", session.body);
    Targets {
        project: shown["project_id"].as_str().unwrap().to_owned(),
        session: session.body["id"].as_str().unwrap().to_owned(),
        run,
        artifact,
    }
}

pub async fn pages_of_other_origins_cannot_read_or_drive_the_server(backend: Backend) {
    let mut server = start(backend).await;
    let targets = waiting_run(&server).await;
    let port = server.http.rsplit(':').next().unwrap().to_owned();
    let own = server.http.clone();
    let rebound_host = format!("evil.example:{port}");
    let rebound_origin = format!("http://evil.example:{port}");
    let routes = routes(&server, &targets).await;
    let before = snapshot(&server, &targets.run).await;

    let json_type = ("content-type", "application/json");
    let mut refused = 0;
    for (method, path) in routes.iter().filter(|(m, _)| changes_state(m)) {
        let what = format!("{method} {path}");
        // A page on another site: its origin is named in the refusal.
        let answer = send(
            &server,
            method,
            path,
            &[("origin", EVIL), json_type],
            Some("{}"),
        )
        .await;
        answer.error(403, "forbidden");
        assert!(
            answer.body["message"].as_str().unwrap().contains(EVIL),
            "{what}: {}",
            answer.body
        );
        assert_secure(&answer, &what);
        // A DNS-rebinding page: same origin as far as the browser knows, the wrong Host.
        let answer = send(
            &server,
            method,
            path,
            &[
                ("host", &rebound_host),
                ("origin", &rebound_origin),
                json_type,
            ],
            Some("{}"),
        )
        .await;
        answer.error(403, "forbidden");
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .contains("evil.example"),
            "{what}: {}",
            answer.body
        );
        // A browser's cross-site load without Origin (a form's navigation is one with it).
        let answer = send(
            &server,
            method,
            path,
            &[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "no-cors"),
                json_type,
            ],
            Some("{}"),
        )
        .await;
        answer.error(403, "forbidden");
        if *method == Method::POST {
            // What a page may post without asking first: text/plain, or no body at all.
            for headers in [&[("content-type", "text/plain")][..], &[][..]] {
                let body = (!headers.is_empty()).then_some("{}");
                let answer = send(&server, method, path, headers, body).await;
                answer.error(415, "unsupported_media_type");
                assert!(
                    answer.body["message"]
                        .as_str()
                        .unwrap()
                        .contains("application/json"),
                    "{what}: {}",
                    answer.body
                );
            }
        }
        refused += 1;
    }
    assert!(refused >= 20, "state-changing routes tried: {refused}");

    // The WebSocket, for one run and for everything.
    for query in [
        format!("run_id={}&since=0", targets.run),
        "scope=all".to_owned(),
    ] {
        let url = format!("{}/ws?{query}", server.ws);
        for headers in [
            vec![("origin", EVIL.to_owned())],
            vec![
                ("host", rebound_host.clone()),
                ("origin", rebound_origin.clone()),
            ],
        ] {
            let mut request = url.as_str().into_client_request().unwrap();
            for (name, value) in &headers {
                request.headers_mut().insert(*name, value.parse().unwrap());
            }
            let refused = server.connect_request(request, 0).await.err();
            assert_eq!(refused, Some(403), "/ws?{query} with {headers:?}");
        }
    }

    // Raw artifacts: neither another site's script or image nor a rebinding page reads
    // them; opened as a page, they are a download that runs nothing.
    let raw = format!(
        "/api/runs/{}/artifacts/{}/raw",
        targets.run, targets.artifact
    );
    for headers in [
        &[("origin", EVIL)][..],
        &[("host", rebound_host.as_str())][..],
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", "script"),
        ][..],
    ] {
        let answer = send(&server, &Method::GET, &raw, headers, None).await;
        answer.error(403, "forbidden");
        assert_secure(&answer, &format!("raw with {headers:?}"));
    }
    let opened = send(
        &server,
        &Method::GET,
        &raw,
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ],
        None,
    )
    .await;
    assert_eq!(opened.status, 200);
    let content_type = opened.headers["content-type"].to_str().unwrap();
    assert!(!content_type.contains("html"), "{content_type}");
    assert!(
        opened.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );
    assert_secure(&opened, "raw artifact");

    // Nothing of all that reached the store.
    assert_eq!(snapshot(&server, &targets.run).await, before);

    // Every route answers with the security headers, pages with their own policy; the
    // docs page runs no inline script.
    for (method, path) in routes.iter().filter(|(m, _)| !changes_state(m)) {
        let answer = send(&server, method, path, &[], None).await;
        assert!(answer.status < 500, "{method} {path}: {}", answer.status);
        assert_secure(&answer, &format!("{method} {path}"));
    }
    for path in [
        "/api/docs",
        "/api/docs.js",
        "/api/docs.css",
        "/ws",
        "/nothing",
    ] {
        let answer = send(&server, &Method::GET, path, &[], None).await;
        assert_secure(&answer, path);
    }
    let docs = server.get("/api/docs").await;
    let html = String::from_utf8(docs.bytes).unwrap();
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/").count()
    );
    assert!(!html.contains("<style"), "no inline style");
    let handlers = html
        .split(|c: char| c.is_whitespace())
        .filter(|w| w.starts_with("on") && w.contains('='))
        .count();
    assert_eq!(handlers, 0, "no inline event handler");

    // Clients that are not browsers (curl, scripts: no Origin) and the server's own pages
    // go through. First two whose effect shows: an approval without Origin lets the run
    // on; a cancellation from the server's own origin ends it.
    let run: botarmy_protocol::RunId = targets.run.parse().unwrap();
    let seq = server.store.read_events(run, 0, 0).await.unwrap().len() as u64;
    let approved = send(
        &server,
        &Method::POST,
        &format!("/api/runs/{}/approve", targets.run),
        &[json_type],
        None,
    )
    .await;
    assert_eq!(approved.status, 202, "{}", approved.body);
    server.wait_past(run, seq).await;
    let cancelled = send(
        &server,
        &Method::POST,
        &format!("/api/runs/{}/cancel", targets.run),
        &[json_type, ("origin", own.as_str())],
        None,
    )
    .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    // The WebSocket, from the server's own page and from a client that is no browser.
    let own_ws = {
        let mut request = format!("{}/ws?run_id={}&since=0", server.ws, targets.run)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert("origin", own.parse().unwrap());
        request
    };
    assert_eq!(server.connect_request(own_ws, 0).await.err(), None);
    let plain = format!("{}/ws?run_id={}&since=0", server.ws, targets.run)
        .into_client_request()
        .unwrap();
    assert_eq!(server.connect_request(plain, 0).await.err(), None);
    // Then every state-changing route reaches its handler, whatever it answers.
    let mut passed = 0;
    for origin in [None, Some(own.as_str())] {
        for (method, path) in routes.iter().filter(|(m, _)| changes_state(m)) {
            let mut headers = vec![json_type];
            if let Some(origin) = origin {
                headers.push(("origin", origin));
            }
            let answer = send(&server, method, path, &headers, Some("{}")).await;
            assert!(
                ![403, 415].contains(&answer.status) && answer.status < 500,
                "{method} {path} from {origin:?}: {} {}",
                answer.status,
                answer.body
            );
            passed += 1;
        }
    }
    assert_eq!(passed, 2 * refused);
    server.shutdown().await;
}

pub async fn the_rules_hold_with_authentication_and_cors_opens_only_for_configured_origins(
    backend: Backend,
) {
    // With API tokens on, a valid token does not make a foreign page's request acceptable.
    let app = "http://app.example:5173";
    let mut server = start_with(
        backend,
        ServerConfig {
            auth: AuthConfig {
                tokens: true,
                ..AuthConfig::default()
            },
            browser: BrowserPolicy {
                allowed_origins: vec![app.parse().unwrap()],
                allowed_hosts: vec!["botarmy.internal".into()],
            },
            ..ServerConfig::default()
        },
    )
    .await;
    let (_, secret) = botarmy_server::auth::issue_token(
        server.store.as_ref(),
        "acme",
        "test",
        None,
        botarmy_protocol::now_millis(),
    )
    .await
    .unwrap();
    let bearer = format!("Bearer {}", secret.expose());
    let json_type = ("content-type", "application/json");
    let body = r#"{"name": "from a page"}"#;
    let answer = send(
        &server,
        &Method::POST,
        "/api/projects",
        &[("authorization", &bearer), ("origin", EVIL), json_type],
        Some(body),
    )
    .await;
    answer.error(403, "forbidden");
    assert!(answer.headers.get("access-control-allow-origin").is_none());
    // The configured origin: preflight answered for it, and its request carries CORS.
    let preflight = send(
        &server,
        &Method::OPTIONS,
        "/api/projects",
        &[
            ("origin", app),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        None,
    )
    .await;
    assert_eq!(preflight.status, 204, "{}", preflight.body);
    let header =
        |a: &Answer, name: &str| a.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        header(&preflight, "access-control-allow-origin").as_deref(),
        Some(app)
    );
    let allowed = header(&preflight, "access-control-allow-headers").unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(
        header(&preflight, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(header(&preflight, "access-control-allow-credentials"), None);
    let created = send(
        &server,
        &Method::POST,
        "/api/projects",
        &[("authorization", &bearer), ("origin", app), json_type],
        Some(body),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        header(&created, "access-control-allow-origin").as_deref(),
        Some(app)
    );
    // Another origin's preflight is refused; so is a request without a token from the
    // allowed one (authentication still applies).
    let other = send(
        &server,
        &Method::OPTIONS,
        "/api/projects",
        &[
            ("origin", "http://app.example:5174"),
            ("access-control-request-method", "POST"),
        ],
        None,
    )
    .await;
    other.error(403, "forbidden");
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    send(
        &server,
        &Method::GET,
        "/api/projects",
        &[("origin", app)],
        None,
    )
    .await
    .error(401, "unauthorized");
    // A configured host name is accepted (a proxy's), others are not.
    let via_proxy = send(
        &server,
        &Method::GET,
        "/api/projects",
        &[("authorization", &bearer), ("host", "botarmy.internal")],
        None,
    )
    .await;
    assert_eq!(via_proxy.status, 200, "{}", via_proxy.body);
    let listed = via_proxy.body["items"].as_array().unwrap();
    assert_eq!(
        listed.len(),
        1,
        "one project was created, by the allowed origin"
    );
    send(
        &server,
        &Method::GET,
        "/api/projects",
        &[
            ("authorization", &bearer),
            ("host", "botarmy.internal.evil.example"),
        ],
        None,
    )
    .await
    .error(403, "forbidden");
    server.shutdown().await;

    // Without configured origins, CORS stays closed: no preflight is answered and no
    // answer names an origin.
    let mut closed = start(backend).await;
    let preflight = send(
        &closed,
        &Method::OPTIONS,
        "/api/projects",
        &[("origin", app), ("access-control-request-method", "POST")],
        None,
    )
    .await;
    preflight.error(403, "forbidden");
    let own = closed.http.clone();
    let same = send(
        &closed,
        &Method::GET,
        "/api/projects",
        &[("origin", own.as_str())],
        None,
    )
    .await;
    assert_eq!(same.status, 200);
    assert_eq!(header(&same, "access-control-allow-origin"), None);
    closed.shutdown().await;
}
