//! Authentication and tenants over real HTTP and WebSocket: API tokens (valid, unknown,
//! revoked), per-token rate limits, JWTs of an issuer whose keys a local server publishes,
//! and that no tenant reaches another's projects, runs, events, artifacts or streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use botarmy_protocol::{ProjectId, RunId};
use botarmy_server::{AuthConfig, OidcConfig, ServerConfig};
use botarmy_store::RateLimit;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Answer, Backend, TestServer, start_with};

fn tokens_on() -> ServerConfig {
    ServerConfig {
        auth: AuthConfig {
            tokens: true,
            ..AuthConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// A token for `tenant` made the way `botarmy token create` makes one.
async fn token(server: &TestServer, tenant: &str, limit: Option<RateLimit>) -> (String, String) {
    let (record, secret) = botarmy_server::auth::issue_token(
        server.store.as_ref(),
        tenant,
        "test",
        limit,
        botarmy_protocol::now_millis(),
    )
    .await
    .unwrap();
    (record.id, secret.expose().to_owned())
}

fn unauthorized(answer: &Answer) {
    answer.error(401, "unauthorized");
    assert_eq!(
        answer.headers["www-authenticate"].to_str().unwrap(),
        "Bearer"
    );
}

/// The body a missing `what` of this id gets: another tenant's must get the same.
fn missing(what: &str, id: impl std::fmt::Display) -> Value {
    json!({"code": "not_found", "message": format!("{what} `{id}` not found"), "details": []})
}

pub async fn requests_without_a_valid_token_are_refused(backend: Backend) {
    let mut server = start_with(backend, tokens_on()).await;
    // Open routes.
    for path in ["/health", "/ready", "/api/openapi.json"] {
        assert_eq!(server.get(path).await.status, 200, "{path}");
    }
    let doc = server.get("/api/openapi.json").await.body;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([{}]));

    // No token, a malformed header, an unknown token, a JWT-looking one with no issuer.
    for path in ["/api/runs", "/api/projects", "/api/version", "/api/nothing"] {
        unauthorized(&server.get(path).await);
    }
    let basic = server
        .answer(
            server
                .client
                .get(format!("{}/api/runs", server.http))
                .header("authorization", "Basic dXNlcjpwYXNz"),
        )
        .await;
    unauthorized(&basic);
    let guessed = format!("bat_{}", "0".repeat(64));
    let refused = server.get_as(&guessed, "/api/runs").await;
    unauthorized(&refused);
    assert!(
        !String::from_utf8_lossy(&refused.bytes).contains(&guessed),
        "a refused token is not echoed"
    );
    unauthorized(&server.get_as("eyJhbGciOi.x.y", "/api/runs").await);
    unauthorized(&server.post("/api/projects", &json!({"name": "x"})).await);

    // A valid token works, and its use is recorded.
    let (id, secret) = token(&server, "acme", None).await;
    let ok = server.get_as(&secret, "/api/runs").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let stored = server.store.list_tokens(Some("acme")).await.unwrap();
    assert!(stored[0].last_used_at.is_some());
    assert_ne!(stored[0].hash, secret, "only a hash is stored");
    assert!(!stored[0].hash.contains(&secret[4..]));

    // A WebSocket needs a token too.
    let run = RunId::new();
    let url = format!("{}/ws?run_id={run}", server.ws);
    let refused = server
        .connect_request(url.clone().into_client_request().unwrap(), 0)
        .await;
    assert_eq!(refused.err(), Some(401));

    // Revoked: refused from then on.
    server.store.revoke_token(&id, 1).await.unwrap();
    unauthorized(&server.get_as(&secret, "/api/runs").await);
    let with_query = format!("{url}&token={secret}");
    let refused = server
        .connect_request(with_query.into_client_request().unwrap(), 0)
        .await;
    assert_eq!(refused.err(), Some(401));
    server.shutdown().await;
}

/// Creates a run as `token` with every model call let through, and waits until it is done;
/// returns the run and its project.
async fn finished_run(server: &TestServer, token: &str, project: &str) -> (RunId, ProjectId) {
    let created = server
        .post_as(
            token,
            "/api/runs",
            &json!({"idea": "a todo app", "project": project, "options": {"gate_policy": "auto"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let run: RunId = created.body["id"].as_str().unwrap().parse().unwrap();
    let project = created.body["project_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    server.wait_for_event(run, "pipeline_completed").await;
    (run, project)
}

pub async fn no_tenant_reaches_another_tenants_things(backend: Backend) {
    let mut server = start_with(backend, tokens_on()).await;
    server.model.open();
    let (_, acme) = token(&server, "acme", None).await;
    let (_, globex) = token(&server, "globex", None).await;
    let (run_b, project_b) = finished_run(&server, &globex, "web").await;
    // The same project name in the other tenant is another project.
    let (run_a, project_a) = finished_run(&server, &acme, "web").await;
    assert_ne!(project_a, project_b);

    let artifacts = server
        .get_as(&globex, &format!("/api/runs/{run_b}/artifacts"))
        .await;
    assert_eq!(artifacts.status, 200);
    let artifact = artifacts.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = server
        .get_as(
            &globex,
            &format!("/api/runs/{run_b}/artifacts/{artifact}/raw"),
        )
        .await;
    assert_eq!(raw.status, 200, "its owner reads it");
    let before = server.stored_log(run_b).await;

    // Every route about B's things answers A exactly as for a thing that does not exist.
    let reads = [
        format!("/api/runs/{run_b}"),
        format!("/api/runs/{run_b}/events"),
        format!("/api/runs/{run_b}/usage"),
        format!("/api/runs/{run_b}/gates"),
        format!("/api/runs/{run_b}/artifacts"),
        format!("/api/runs/{run_b}/artifacts/{artifact}"),
        format!("/api/runs/{run_b}/artifacts/{artifact}/raw"),
        format!("/api/runs/{run_b}/artifacts/{artifact}/versions"),
    ];
    for path in &reads {
        let answer = server.get_as(&acme, path).await;
        assert_eq!(
            (answer.status, &answer.body),
            (404, &missing("run", run_b)),
            "{path}"
        );
    }
    let ghost = RunId::new();
    let for_ghost = server.get_as(&acme, &format!("/api/runs/{ghost}")).await;
    assert_eq!(
        (for_ghost.status, for_ghost.body),
        (404, missing("run", ghost))
    );
    let project = server
        .get_as(&acme, &format!("/api/projects/{project_b}"))
        .await;
    assert_eq!(
        (project.status, project.body),
        (404, missing("project", project_b))
    );
    for (action, body) in [
        ("pause", Value::Null),
        ("resume", Value::Null),
        ("cancel", json!({"reason": "not yours"})),
        ("answer", json!({"answer": "yes"})),
        ("approve", Value::Null),
        ("reject", json!({"feedback": "not yours"})),
        ("amend", json!({"content": "not yours"})),
        ("steps/0/restart", json!({"feedback": "not yours"})),
    ] {
        let answer = server
            .post_as(&acme, &format!("/api/runs/{run_b}/{action}"), &body)
            .await;
        assert_eq!(
            (answer.status, &answer.body),
            (404, &missing("run", run_b)),
            "{action}"
        );
    }
    // Deleting B's run, deleting or changing B's project: missing for A.
    let as_acme = |request: reqwest::RequestBuilder| request.bearer_auth(&acme);
    let deleted = server
        .answer(as_acme(
            server
                .client
                .delete(format!("{}/api/runs/{run_b}", server.http)),
        ))
        .await;
    assert_eq!((deleted.status, deleted.body), (404, missing("run", run_b)));
    for request in [
        server.client.delete(format!(
            "{}/api/projects/{project_b}?force=true",
            server.http
        )),
        server
            .client
            .patch(format!("{}/api/projects/{project_b}", server.http))
            .header("content-type", "application/json")
            .body(json!({"name": "mine"}).to_string()),
    ] {
        let answer = server.answer(as_acme(request)).await;
        assert_eq!(
            (answer.status, answer.body),
            (404, missing("project", project_b))
        );
    }
    let b_project = server
        .get_as(&globex, &format!("/api/projects/{project_b}"))
        .await;
    assert_eq!(b_project.body["name"], "web");
    assert_eq!(server.stored_log(run_b).await, before, "nothing changed");
    let b_view = server.get_as(&globex, &format!("/api/runs/{run_b}")).await;
    assert_eq!(b_view.body["status"], "succeeded");

    // A run in B's project by id: the project is not A's.
    let crossed = server
        .post_as(
            &acme,
            "/api/runs",
            &json!({"idea": "x", "project_id": project_b}),
        )
        .await;
    assert_eq!(crossed.error(422, "validation_failed"), ["project_id"]);

    // Lists hold only the caller's own.
    let runs = server.get_as(&acme, "/api/runs").await;
    let ids: Vec<&str> = runs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [run_a.to_string()]);
    let filtered = server
        .get_as(&acme, &format!("/api/runs?project_id={project_b}"))
        .await;
    assert_eq!(filtered.body["items"], json!([]));
    let projects = server.get_as(&acme, "/api/projects").await;
    let names: Vec<(&str, &str)> = projects.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [(project_a.to_string().as_str(), "web")]);

    // B's client session: missing for A on every route; A's own cannot name B's run.
    let created = server
        .post_as(
            &globex,
            "/api/sessions",
            &json!({"name": "b", "tabs": [{"id": "t", "run_id": run_b}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sid = created.body["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/api/sessions/{sid}"),
        format!("/api/sessions/{sid}/restore"),
    ] {
        let answer = server.get_as(&acme, &path).await;
        assert_eq!(
            (answer.status, answer.body),
            (404, missing("session", &sid)),
            "{path}"
        );
    }
    for (path, body) in [
        (format!("/api/sessions/{sid}/tabs"), json!({"title": "x"})),
        (format!("/api/sessions/{sid}/ack"), json!({"acks": []})),
    ] {
        let answer = server.post_as(&acme, &path, &body).await;
        assert_eq!(
            (answer.status, answer.body),
            (404, missing("session", &sid)),
            "{path}"
        );
    }
    for request in [
        server
            .client
            .patch(format!("{}/api/sessions/{sid}", server.http))
            .header("content-type", "application/json")
            .body(json!({"name": "mine"}).to_string()),
        server
            .client
            .patch(format!("{}/api/sessions/{sid}/tabs/t", server.http))
            .header("content-type", "application/json")
            .body(json!({"title": "mine"}).to_string()),
        server
            .client
            .delete(format!("{}/api/sessions/{sid}/tabs/t", server.http)),
        server
            .client
            .delete(format!("{}/api/sessions/{sid}", server.http)),
    ] {
        let answer = server.answer(as_acme(request)).await;
        assert_eq!(
            (answer.status, answer.body),
            (404, missing("session", &sid))
        );
    }
    let naming_b = server
        .post_as(
            &acme,
            "/api/sessions",
            &json!({"name": "a", "tabs": [{"run_id": run_b}, {"project_id": project_b}]}),
        )
        .await;
    assert_eq!(
        naming_b.error(422, "validation_failed"),
        ["tabs[0].run_id", "tabs[1].project_id"]
    );
    let own = server
        .post_as(&acme, "/api/sessions", &json!({"name": "a"}))
        .await;
    let own_id = own.body["id"].as_str().unwrap().to_owned();
    let acked = server
        .post_as(
            &acme,
            &format!("/api/sessions/{own_id}/ack"),
            &json!({"acks": [{"run_id": run_b, "seq": 1}]}),
        )
        .await;
    assert_eq!(acked.error(422, "validation_failed"), ["acks[0].run_id"]);
    let listed = server.get_as(&acme, "/api/sessions").await;
    let names: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
    let b_session = server
        .get_as(&globex, &format!("/api/sessions/{sid}"))
        .await;
    assert_eq!(
        b_session.body["tabs"][0]["id"], "t",
        "B's session unchanged"
    );
    let mut to_b = format!("{}/ws?session_id={sid}", server.ws)
        .into_client_request()
        .unwrap();
    to_b.headers_mut()
        .insert("authorization", format!("Bearer {acme}").parse().unwrap());
    assert!(matches!(
        tokio_tungstenite::connect_async(to_b).await,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 404
    ));

    // A's WebSocket to B's run: 404, whichever way the token comes.
    let url = format!("{}/ws?run_id={run_b}", server.ws);
    let mut by_header = url.clone().into_client_request().unwrap();
    by_header
        .headers_mut()
        .insert("authorization", format!("Bearer {acme}").parse().unwrap());
    assert_eq!(server.connect_request(by_header, 0).await.err(), Some(404));
    let by_query = format!("{url}&token={acme}");
    assert_eq!(
        server
            .connect_request(by_query.into_client_request().unwrap(), 0)
            .await
            .err(),
        Some(404)
    );
    // B's own stream works with the token as a subprotocol, and as a query parameter.
    let mut by_protocol = url.clone().into_client_request().unwrap();
    by_protocol.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {globex}").parse().unwrap(),
    );
    let mut ws = server.connect_request(by_protocol, 0).await.unwrap();
    let received = ws.read_to_end().await;
    assert_eq!(received.events.len(), before.len());
    let by_query = format!("{url}&token={globex}");
    let mut ws = server
        .connect_request(by_query.into_client_request().unwrap(), 0)
        .await
        .unwrap();
    assert_eq!(ws.read_to_end().await.events.len(), before.len());

    // The method's definitions are the same for all; metrics cover every tenant, so only
    // admin tenants read them.
    assert_eq!(server.get_as(&acme, "/api/definitions").await.status, 200);
    server
        .get_as(&acme, "/metrics")
        .await
        .error(403, "forbidden");
    unauthorized(&server.get("/metrics").await);

    // Repositories are server-wide: readable by all, changed only by admin tenants.
    assert_eq!(server.get_as(&acme, "/api/repositories").await.status, 200);
    let add = server
        .post_as(&acme, "/api/repositories", &json!({"location": "/tmp"}))
        .await;
    add.error(403, "forbidden");
    server.shutdown().await;
}

pub async fn a_token_over_its_rate_limit_gets_429(backend: Backend) {
    let mut config = tokens_on();
    // The server's default: one a minute.
    config.auth.rate_limit = Some(RateLimit {
        requests: 1,
        per_secs: 60,
    });
    let mut server = start_with(backend, config).await;
    let (_, limited) = token(
        &server,
        "acme",
        Some(RateLimit {
            requests: 2,
            per_secs: 60,
        }),
    )
    .await;
    let (_, plain) = token(&server, "acme", None).await;
    assert_eq!(server.get_as(&limited, "/api/runs").await.status, 200);
    assert_eq!(server.get_as(&limited, "/api/projects").await.status, 200);
    let third = server.get_as(&limited, "/api/runs").await;
    third.error(429, "rate_limited");
    let retry: u64 = third.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry), "one request per 30 s: {retry}");
    // Another token has its own bucket, at the server's default.
    assert_eq!(server.get_as(&plain, "/api/runs").await.status, 200);
    let second = server.get_as(&plain, "/api/runs").await;
    second.error(429, "rate_limited");
    assert!(second.headers.contains_key("retry-after"));
    // Open routes are not counted.
    assert_eq!(server.get("/health").await.status, 200);
    server.shutdown().await;
}

/// A local issuer: its JWKS on `/jwks.json`, counting fetches.
struct Issuer {
    url: String,
    fetches: Arc<AtomicUsize>,
}

async fn issuer() -> Issuer {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    [("content-type", "application/json")],
                    include_str!("fixtures/jwt/jwks.json"),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer {
        url: format!("http://{addr}"),
        fetches,
    }
}

const AUDIENCE: &str = "https://botarmy.test/api";

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub async fn jwts_of_the_issuer_are_accepted_and_others_refused(backend: Backend) {
    let idp = issuer().await;
    let iss = format!("{}/", idp.url);
    let mut config = tokens_on();
    config.auth.oidc = Some(OidcConfig::new(
        iss.clone(),
        AUDIENCE.into(),
        format!("{}/jwks.json", idp.url),
        "org_id".into(),
    ));
    let mut server = start_with(backend, config).await;
    let rsa = EncodingKey::from_rsa_der(include_bytes!("fixtures/jwt/rsa_signer.der"));
    let ec = EncodingKey::from_ec_der(include_bytes!("fixtures/jwt/ec_signer.der"));
    let stranger = EncodingKey::from_rsa_der(include_bytes!("fixtures/jwt/rsa_stranger.der"));
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |changes: Value| {
        let mut c = json!({
            "iss": iss, "aud": AUDIENCE, "sub": "auth0|ada", "org_id": "acme",
            "iat": now, "nbf": now - 10, "exp": now + 3600,
        });
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };

    // RS256 and ES256 tokens of the issuer: the caller is the tenant the claim names.
    let good = sign(Algorithm::RS256, "rsa-1", &rsa, &claims(json!({})));
    let created = server
        .post_as(&good, "/api/projects", &json!({"name": "site"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let acme = server.store.list_projects_in("acme").await.unwrap();
    assert_eq!(acme.len(), 1);
    assert_eq!(acme[0].name, "site");
    let es = sign(Algorithm::ES256, "ec-1", &ec, &claims(json!({})));
    let listed = server.get_as(&es, "/api/projects").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["items"][0]["name"], "site");
    let other_org = sign(
        Algorithm::RS256,
        "rsa-1",
        &rsa,
        &claims(json!({"org_id": "globex"})),
    );
    let theirs = server.get_as(&other_org, "/api/projects").await;
    assert_eq!(
        theirs.body["items"],
        json!([]),
        "another org sees none of it"
    );
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "the keys are cached");

    let refusals = [
        (
            sign(
                Algorithm::RS256,
                "rsa-1",
                &rsa,
                &claims(json!({"exp": now - 3600})),
            ),
            "expired",
        ),
        (
            sign(
                Algorithm::RS256,
                "rsa-1",
                &rsa,
                &claims(json!({"aud": "someone-else"})),
            ),
            "audience",
        ),
        (
            sign(
                Algorithm::RS256,
                "rsa-1",
                &rsa,
                &claims(json!({"iss": "https://evil.test/"})),
            ),
            "issuer",
        ),
        (
            sign(
                Algorithm::RS256,
                "rsa-1",
                &rsa,
                &claims(json!({"nbf": now + 3600})),
            ),
            "not valid yet",
        ),
        (
            sign(Algorithm::RS256, "rsa-1", &stranger, &claims(json!({}))),
            "signature",
        ),
        (
            sign(
                Algorithm::RS256,
                "rsa-1",
                &rsa,
                &claims(json!({"org_id": null})),
            ),
            "org_id",
        ),
        (
            sign(
                Algorithm::HS256,
                "rsa-1",
                &EncodingKey::from_secret(b"guess"),
                &claims(json!({})),
            ),
            "HS256",
        ),
    ];
    for (jwt, why) in &refusals {
        let answer = server.get_as(jwt, "/api/projects").await;
        unauthorized(&answer);
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(why), "{why}: {message}");
        assert!(!message.contains(jwt.as_str()));
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    // A key the issuer does not publish: the keys are fetched again once (a rotation), not
    // for every such token.
    let unknown = sign(Algorithm::RS256, "rsa-2", &stranger, &claims(json!({})));
    let answer = server.get_as(&unknown, "/api/projects").await;
    unauthorized(&answer);
    assert!(answer.body["message"].as_str().unwrap().contains("key"));
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    unauthorized(&server.get_as(&unknown, "/api/projects").await);
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        2,
        "refetches are bounded"
    );
    // API tokens still work beside JWTs.
    let (_, secret) = token(&server, "acme", None).await;
    assert_eq!(server.get_as(&secret, "/api/projects").await.status, 200);
    server.shutdown().await;
}
