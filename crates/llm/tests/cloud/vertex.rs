//! Gemini on Vertex AI with a service account: one local server plays both Google's token
//! endpoint (checking the signed JWT with the account's public key) and Vertex.

use std::sync::{Arc, Mutex};

use botarmy_llm::{CloudConfig, CloudKind, CloudProvider, LlmError, Provider, VertexConfig};
use botarmy_testkit::google::{EMAIL, ServiceAccount, TokenEndpoint, UNAUTHENTICATED, bearer};
use botarmy_testkit::{MockServer, Reply};

use super::{answer, failure, request};

const TEXT: &str = include_str!("fixtures/gemini_text.sse");
const VERTEX_PATH: &str = "/v1/projects/acme-dev/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse";

/// One test's Google: its server, token endpoint, the bearer token of each Vertex call, and
/// the service account key file the provider signs with.
struct Google {
    server: MockServer,
    token: TokenEndpoint,
    bearers: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    key_path: std::path::PathBuf,
}

/// A server playing the token endpoint (trusting `trusted`'s key, tokens valid for
/// `expires_in` seconds) and Vertex (answering with `vertex(bearer, call index)`), and a key
/// file of `signer` whose token requests go to that endpoint.
async fn google(
    trusted: Arc<ServiceAccount>,
    signer: &ServiceAccount,
    expires_in: u64,
    vertex: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
) -> Google {
    let bound = MockServer::bind().await;
    let token = TokenEndpoint::new(trusted, &format!("{}/token", bound.base), expires_in);
    let bearers = Arc::new(Mutex::new(Vec::new()));
    let (endpoint, seen) = (token.clone(), bearers.clone());
    let server = bound.serve(move |request, _| {
        if request.target == "/token" {
            return endpoint.reply(request);
        }
        if request.target != VERTEX_PATH {
            return Reply::json(
                404,
                r#"{"error":{"code":404,"message":"not here","status":"NOT_FOUND"}}"#,
            );
        }
        let mut seen = seen.lock().unwrap();
        seen.push(bearer(request).unwrap_or_default().to_owned());
        vertex(&seen[seen.len() - 1], seen.len() - 1)
    });
    let dir = tempfile::tempdir().unwrap();
    let key_path = signer
        .write_key_file(dir.path(), token.token_uri())
        .unwrap();
    Google {
        server,
        token,
        bearers,
        _dir: dir,
        key_path,
    }
}

/// A Google trusting the key it signs with.
async fn trusting(
    expires_in: u64,
    vertex: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
) -> Google {
    let account = Arc::new(ServiceAccount::generate());
    google(account.clone(), &account, expires_in, vertex).await
}

impl Google {
    fn bearers(&self) -> Vec<String> {
        self.bearers.lock().unwrap().clone()
    }

    fn provider(&self) -> CloudProvider {
        vertex_provider(&self.server, self.key_path.clone())
    }
}

fn vertex_provider(server: &MockServer, key_path: std::path::PathBuf) -> CloudProvider {
    CloudProvider::new(CloudConfig {
        base_url: Some(server.base.clone()),
        vertex: Some(VertexConfig {
            project: "acme-dev".to_owned(),
            region: "europe-west4".to_owned(),
            credentials_path: key_path,
        }),
        ..CloudConfig::new(CloudKind::Vertex, "gemini-2.5-flash")
    })
    .unwrap()
}

#[tokio::test]
async fn one_token_exchange_serves_two_calls() {
    let google = trusting(3599, |_, _| Reply::sse(TEXT)).await;
    let vertex = google.provider();

    let (first, pieces) = answer(&vertex, &request()).await;
    let (second, _) = answer(&vertex, &request()).await;

    assert_eq!(pieces, ["Discovery, then", " design."]);
    assert_eq!(first.provider, "vertex");
    assert_eq!(first.model, "gemini-2.5-flash");
    assert_eq!(first.usage.input_tokens, 812);
    assert_eq!(first.usage.cached_tokens, 512);
    assert_eq!(second.text, first.text);
    assert_eq!(
        google.token.checks(),
        [Ok(())],
        "one token request, with a valid JWT"
    );
    assert_eq!(google.bearers(), ["ya29.token-1", "ya29.token-1"]);
    let calls: Vec<_> = google.server.requests();
    assert_eq!(calls[0].target, "/token");
    assert_eq!(calls[1].method, "POST");
    let body = calls[1].json();
    assert_eq!(
        body["systemInstruction"]["parts"][0]["text"],
        "You are the analyst."
    );
    assert_eq!(body["contents"][0]["role"], "user");
    assert_eq!(calls[1].header("x-goog-api-key"), None);
}

#[tokio::test]
async fn a_token_near_its_expiry_is_replaced() {
    // 60 s left is inside the refresh margin: every call needs a fresh token.
    let google = trusting(60, |_, _| Reply::sse(TEXT)).await;
    let vertex = google.provider();

    answer(&vertex, &request()).await;
    answer(&vertex, &request()).await;

    assert_eq!(google.token.checks(), [Ok(()), Ok(())]);
    assert_eq!(google.bearers(), ["ya29.token-1", "ya29.token-2"]);
}

#[tokio::test]
async fn a_rejected_token_is_replaced_once() {
    let google = trusting(3599, |bearer, _| {
        if bearer == "ya29.token-1" {
            Reply::json(401, UNAUTHENTICATED)
        } else {
            Reply::sse(TEXT)
        }
    })
    .await;
    let vertex = google.provider();

    let (response, _) = answer(&vertex, &request()).await;

    assert_eq!(response.text, "Discovery, then design.");
    assert_eq!(google.token.checks().len(), 2);
    assert_eq!(google.bearers(), ["ya29.token-1", "ya29.token-2"]);
}

#[tokio::test]
async fn a_token_rejected_twice_is_unauthorized() {
    let google = trusting(3599, |_, _| Reply::json(401, UNAUTHENTICATED)).await;
    let vertex = google.provider();

    let error = failure(&vertex, &request()).await;

    match &error {
        LlmError::Unauthorized {
            status, message, ..
        } => {
            assert_eq!(*status, 401);
            assert!(
                message.starts_with("UNAUTHENTICATED: Request had invalid authentication"),
                "{message}"
            );
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert_eq!(
        google.bearers().len(),
        2,
        "one retry with a fresh token, no more"
    );
}

#[tokio::test]
async fn a_key_the_token_endpoint_does_not_trust_is_unauthorized() {
    // The endpoint knows another key of the account.
    let trusted = Arc::new(ServiceAccount::generate());
    let google = google(trusted, &ServiceAccount::generate(), 3599, |_, _| {
        Reply::sse(TEXT)
    })
    .await;
    let vertex = google.provider();

    let error = failure(&vertex, &request()).await;

    match &error {
        LlmError::Unauthorized {
            status, message, ..
        } => {
            assert_eq!(*status, 400);
            assert!(
                message.contains("invalid_grant: Invalid JWT Signature."),
                "{message}"
            );
            assert!(message.contains(EMAIL), "{message}");
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert_eq!(
        google.token.checks(),
        [Err("Invalid JWT Signature.".to_owned())]
    );
    assert!(google.bearers().is_empty(), "Vertex was never called");
}

#[tokio::test]
async fn ping_exchanges_a_token() {
    let google = trusting(3599, |_, _| Reply::sse(TEXT)).await;
    let vertex = google.provider();

    let said = vertex.ping().await.unwrap();

    assert!(said.contains(EMAIL) && said.contains("/token"), "{said}");
    assert_eq!(google.token.checks(), [Ok(())]);
}
