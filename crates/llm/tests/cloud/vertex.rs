//! Gemini on Vertex AI with a service account: one local server plays both Google's token
//! endpoint (checking the signed JWT with the account's public key) and Vertex.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use botarmy_llm::{CloudConfig, CloudKind, CloudProvider, LlmError, Provider, VertexConfig};
use serde_json::{Value, json};

use super::server::{MockServer, Recorded, Reply};
use super::{answer, failure, request};

const TEXT: &str = include_str!("fixtures/gemini_text.sse");
const EMAIL: &str = "botarmy-runner@acme-dev.iam.gserviceaccount.com";
const VERTEX_PATH: &str = "/v1/projects/acme-dev/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse";

/// A service account key file written for a fresh RSA key; returns the key file's directory
/// (kept alive by the caller) and the public key that verifies its signatures.
fn key_file(token_uri: &str) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&key).unwrap();
    let encoded = STANDARD.encode(pkcs8.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let file = json!({
        "type": "service_account",
        "project_id": "acme-dev",
        "private_key_id": "4f1c0d2e9b7a",
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "104729384756102938475",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service-account.json");
    std::fs::write(&path, file.to_string()).unwrap();
    (dir, path, key.public_key().as_ref().to_vec())
}

/// What the token endpoint found wrong with an assertion, if anything.
fn check_assertion(request: &Recorded, public_key: &[u8], token_uri: &str) -> Result<(), String> {
    if request.header("content-type") != Some("application/x-www-form-urlencoded") {
        return Err(format!("content-type {:?}", request.header("content-type")));
    }
    let form = request.text();
    let mut grant = None;
    let mut assertion = None;
    for pair in form.split('&') {
        match pair.split_once('=') {
            Some(("grant_type", v)) => grant = Some(v.to_owned()),
            Some(("assertion", v)) => assertion = Some(v.to_owned()),
            _ => {}
        }
    }
    if grant.as_deref() != Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
        return Err(format!("grant_type {grant:?}"));
    }
    let assertion = assertion.ok_or("no assertion")?;
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(format!("{} parts", parts.len()));
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.".to_owned())?;
    let decode = |part: &str| -> Result<Value, String> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    };
    let header = decode(header)?;
    let claims = decode(claims)?;
    if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != "4f1c0d2e9b7a" {
        return Err(format!("header {header}"));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iat = claims["iat"].as_u64().ok_or("no iat")?;
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    if claims["iss"] != EMAIL
        || claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
        || claims["aud"] != token_uri
        || exp != iat + 3600
        || iat.abs_diff(now) > 60
    {
        return Err(format!("claims {claims}"));
    }
    Ok(())
}

/// The shared state of one test's server.
#[derive(Default)]
struct Seen {
    /// Each assertion check, in order.
    assertions: Vec<Result<(), String>>,
    /// The bearer token of each Vertex call.
    bearers: Vec<String>,
}

/// A server playing the token endpoint (tokens `ya29.token-1`, `-2`, ... valid for
/// `expires_in` seconds, signatures checked with `public_key`) and Vertex (answering with
/// `vertex(bearer, call index)`).
async fn google(
    expires_in: u64,
    vertex: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
) -> (MockServer, Arc<Mutex<Seen>>, Arc<Mutex<Vec<u8>>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let public_key = Arc::new(Mutex::new(Vec::new()));
    let (state, key) = (seen.clone(), public_key.clone());
    let token_uri = Arc::new(Mutex::new(String::new()));
    let uri = token_uri.clone();
    let server = MockServer::start(move |request, _| {
        let mut seen = state.lock().unwrap();
        if request.target == "/token" {
            let check = check_assertion(request, &key.lock().unwrap(), &uri.lock().unwrap());
            seen.assertions.push(check.clone());
            return match check {
                Ok(()) => Reply::json(
                    200,
                    &json!({
                        "access_token": format!("ya29.token-{}", seen.assertions.len()),
                        "expires_in": expires_in,
                        "token_type": "Bearer"
                    })
                    .to_string(),
                ),
                Err(why) => Reply::json(
                    400,
                    &json!({"error": "invalid_grant", "error_description": why}).to_string(),
                ),
            };
        }
        if request.target != VERTEX_PATH {
            return Reply::json(
                404,
                r#"{"error":{"code":404,"message":"not here","status":"NOT_FOUND"}}"#,
            );
        }
        let bearer = request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        seen.bearers.push(bearer.clone());
        vertex(&bearer, seen.bearers.len() - 1)
    })
    .await;
    *token_uri.lock().unwrap() = format!("{}/token", server.base);
    (server, seen, public_key)
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

const UNAUTHENTICATED: &str = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.","status":"UNAUTHENTICATED"}}"#;

#[tokio::test]
async fn one_token_exchange_serves_two_calls() {
    let (server, seen, public_key) = google(3599, |_, _| Reply::sse(TEXT)).await;
    let (_dir, path, key) = key_file(&format!("{}/token", server.base));
    *public_key.lock().unwrap() = key;
    let vertex = vertex_provider(&server, path);

    let (first, pieces) = answer(&vertex, &request()).await;
    let (second, _) = answer(&vertex, &request()).await;

    assert_eq!(pieces, ["Discovery, then", " design."]);
    assert_eq!(first.provider, "vertex");
    assert_eq!(first.model, "gemini-2.5-flash");
    assert_eq!(first.usage.input_tokens, 812);
    assert_eq!(first.usage.cached_tokens, 512);
    assert_eq!(second.text, first.text);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.assertions,
        [Ok(())],
        "one token request, with a valid JWT"
    );
    assert_eq!(seen.bearers, ["ya29.token-1", "ya29.token-1"]);
    let calls: Vec<_> = server.requests();
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
    let (server, seen, public_key) = google(60, |_, _| Reply::sse(TEXT)).await;
    let (_dir, path, key) = key_file(&format!("{}/token", server.base));
    *public_key.lock().unwrap() = key;
    let vertex = vertex_provider(&server, path);

    answer(&vertex, &request()).await;
    answer(&vertex, &request()).await;

    let seen = seen.lock().unwrap();
    assert_eq!(seen.assertions, [Ok(()), Ok(())]);
    assert_eq!(seen.bearers, ["ya29.token-1", "ya29.token-2"]);
}

#[tokio::test]
async fn a_rejected_token_is_replaced_once() {
    let (server, seen, public_key) = google(3599, |bearer, _| {
        if bearer == "ya29.token-1" {
            Reply::json(401, UNAUTHENTICATED)
        } else {
            Reply::sse(TEXT)
        }
    })
    .await;
    let (_dir, path, key) = key_file(&format!("{}/token", server.base));
    *public_key.lock().unwrap() = key;
    let vertex = vertex_provider(&server, path);

    let (response, _) = answer(&vertex, &request()).await;

    assert_eq!(response.text, "Discovery, then design.");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.assertions.len(), 2);
    assert_eq!(seen.bearers, ["ya29.token-1", "ya29.token-2"]);
}

#[tokio::test]
async fn a_token_rejected_twice_is_unauthorized() {
    let (server, seen, public_key) = google(3599, |_, _| Reply::json(401, UNAUTHENTICATED)).await;
    let (_dir, path, key) = key_file(&format!("{}/token", server.base));
    *public_key.lock().unwrap() = key;
    let vertex = vertex_provider(&server, path);

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
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.bearers.len(),
        2,
        "one retry with a fresh token, no more"
    );
}

#[tokio::test]
async fn a_key_the_token_endpoint_does_not_trust_is_unauthorized() {
    let (server, seen, public_key) = google(3599, |_, _| Reply::sse(TEXT)).await;
    let (_dir, path, _) = key_file(&format!("{}/token", server.base));
    // The endpoint knows another key of the account.
    let (_other_dir, _, other_key) = key_file(&format!("{}/token", server.base));
    *public_key.lock().unwrap() = other_key;
    let vertex = vertex_provider(&server, path);

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
    assert!(
        seen.lock().unwrap().bearers.is_empty(),
        "Vertex was never called"
    );
}

#[tokio::test]
async fn ping_exchanges_a_token() {
    let (server, seen, public_key) = google(3599, |_, _| Reply::sse(TEXT)).await;
    let (_dir, path, key) = key_file(&format!("{}/token", server.base));
    *public_key.lock().unwrap() = key;
    let vertex = vertex_provider(&server, path);

    let said = vertex.ping().await.unwrap();

    assert!(said.contains(EMAIL) && said.contains("/token"), "{said}");
    assert_eq!(seen.lock().unwrap().assertions, [Ok(())]);
}
