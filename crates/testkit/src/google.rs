//! Google's side of Vertex AI: a service account (a fresh RSA key and its JSON key file), the
//! OAuth token endpoint that trades a signed JWT for an access token (checking the signature
//! with the account's public key, and the claims), and a server playing both that endpoint
//! and Vertex.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::responder::Responder;
use crate::server::{MockServer, Recorded, Reply, lock};

/// The account's e-mail, the JWT's issuer.
pub const EMAIL: &str = "botarmy-runner@acme-dev.iam.gserviceaccount.com";
/// The key's id, the JWT header's `kid`.
pub const KEY_ID: &str = "4f1c0d2e9b7a";
/// The account's project.
pub const PROJECT: &str = "acme-dev";
/// The scope BotArmy asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// What Vertex says to a bearer token it does not know.
pub const UNAUTHENTICATED: &str = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.","status":"UNAUTHENTICATED"}}"#;

/// A service account with a fresh 2048-bit RSA key.
pub struct ServiceAccount {
    pem: String,
    public_key: Vec<u8>,
}

impl ServiceAccount {
    /// A new account key.
    #[allow(
        clippy::expect_used,
        reason = "test support: key generation does not fail on a working machine"
    )]
    pub fn generate() -> Self {
        let key = KeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
        let pkcs8 = AsDer::<Pkcs8V1Der<'static>>::as_der(&key).expect("the key as PKCS#8");
        let encoded = STANDARD.encode(pkcs8.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Self {
            pem,
            public_key: key.public_key().as_ref().to_vec(),
        }
    }

    /// The JSON key file Google issues for the account, sending token requests to
    /// `token_uri`.
    pub fn key_file(&self, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": self.pem,
            "client_email": EMAIL,
            "client_id": "104729384756102938475",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string()
    }

    /// Writes the key file into `dir` and returns its path.
    pub fn write_key_file(&self, dir: &Path, token_uri: &str) -> std::io::Result<PathBuf> {
        let path = dir.join("service-account.json");
        std::fs::write(&path, self.key_file(token_uri))?;
        Ok(path)
    }

    /// What the token endpoint at `token_uri` finds wrong with a token request signed by
    /// this account's key, if anything.
    pub fn check_assertion(&self, request: &Recorded, token_uri: &str) -> Result<(), String> {
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
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key)
            .verify(format!("{header}.{claims}").as_bytes(), &signature)
            .map_err(|_| "Invalid JWT Signature.".to_owned())?;
        let decode = |part: &str| -> Result<Value, String> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())
        };
        let header = decode(header)?;
        let claims = decode(claims)?;
        if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != KEY_ID {
            return Err(format!("header {header}"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let iat = claims["iat"].as_u64().ok_or("no iat")?;
        let exp = claims["exp"].as_u64().ok_or("no exp")?;
        if claims["iss"] != EMAIL
            || claims["scope"] != SCOPE
            || claims["aud"] != token_uri
            || exp != iat + 3600
            || iat.abs_diff(now) > 60
        {
            return Err(format!("claims {claims}"));
        }
        Ok(())
    }
}

/// Google's OAuth token endpoint for one trusted account key: a valid assertion gets the
/// access token `ya29.token-<n>` (n counting every check from 1), valid for `expires_in`
/// seconds; an invalid one gets 400 `invalid_grant` with the reason.
#[derive(Clone)]
pub struct TokenEndpoint {
    trusted: Arc<ServiceAccount>,
    token_uri: String,
    expires_in: u64,
    checks: Arc<Mutex<Vec<Result<(), String>>>>,
}

impl TokenEndpoint {
    /// The endpoint at `token_uri` (the address the JWT's audience must name), trusting
    /// `trusted`'s key.
    pub fn new(trusted: Arc<ServiceAccount>, token_uri: &str, expires_in: u64) -> Self {
        Self {
            trusted,
            token_uri: token_uri.to_owned(),
            expires_in,
            checks: Arc::default(),
        }
    }

    /// Where it answers.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// Every assertion check so far, in order.
    pub fn checks(&self) -> Vec<Result<(), String>> {
        lock(&self.checks).clone()
    }

    /// Whether `token` is one this endpoint issued.
    pub fn issued(&self, token: &str) -> bool {
        let checks = lock(&self.checks);
        token
            .strip_prefix("ya29.token-")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= 1 && checks.get(n - 1).is_some_and(Result::is_ok))
    }

    /// The answer to a token request.
    pub fn reply(&self, request: &Recorded) -> Reply {
        let check = self.trusted.check_assertion(request, &self.token_uri);
        let mut checks = lock(&self.checks);
        checks.push(check.clone());
        match check {
            Ok(()) => Reply::json(
                200,
                &json!({
                    "access_token": format!("ya29.token-{}", checks.len()),
                    "expires_in": self.expires_in,
                    "token_type": "Bearer"
                })
                .to_string(),
            ),
            Err(why) => Reply::json(
                400,
                &json!({"error": "invalid_grant", "error_description": why}).to_string(),
            ),
        }
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(request: &Recorded) -> Option<&str> {
    request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
}

/// One server playing Google's token endpoint at `/token` (trusting `account`, tokens valid
/// for an hour) and Vertex AI, answered by `vertex` for requests bearing a token the endpoint
/// issued (401 `UNAUTHENTICATED` otherwise).
pub async fn vertex_server(
    account: Arc<ServiceAccount>,
    vertex: Responder,
) -> (MockServer, TokenEndpoint) {
    let bound = MockServer::bind().await;
    let token = TokenEndpoint::new(account, &format!("{}/token", bound.base), 3599);
    let endpoint = token.clone();
    let server = bound.serve(move |request, _| {
        if request.path() == "/token" {
            endpoint.reply(request)
        } else if bearer(request).is_some_and(|b| endpoint.issued(b)) {
            vertex.reply(request)
        } else {
            Reply::json(401, UNAUTHENTICATED)
        }
    });
    (server, token)
}
