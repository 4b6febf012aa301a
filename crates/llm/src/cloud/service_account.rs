//! Google service account authorisation for Vertex AI: a JWT signed with the account's RSA
//! key (RS256) is exchanged at the account's `token_uri` for an access token, which is cached
//! and refreshed shortly before it expires (or when Vertex rejects it).
//!
//! Signing uses aws-lc-rs, the cryptography the workspace's TLS stack already builds.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::failure::{self, Limits};
use crate::LlmError;

/// The OAuth scope that covers Vertex AI.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long a signed assertion is valid (the most Google accepts).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A token this close to its expiry is replaced before use.
pub(super) const REFRESH_MARGIN: Duration = Duration::from_secs(120);

/// The fields of a service account JSON key that matter here.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default = "default_token_uri")]
    token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

/// A loaded service account: who it is, its key, where tokens come from.
pub(super) struct ServiceAccount {
    email: String,
    key_id: Option<String>,
    token_uri: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl ServiceAccount {
    /// Reads and checks the JSON key at `path`; the error names the file and what is wrong.
    pub(super) fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("service account key {shown}: cannot read it: {e}"))?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| {
            format!("service account key {shown}: not a service account JSON key: {e}")
        })?;
        if let Some(kind) = &file.kind
            && kind != "service_account"
        {
            return Err(format!(
                "service account key {shown}: `type` is `{kind}`, expected `service_account`"
            ));
        }
        let der = PrivatePkcs8KeyDer::from_pem_slice(file.private_key.as_bytes()).map_err(|e| {
            format!(
                "service account key {shown}: `private_key` is not a PKCS#8 PEM key ({e}); expected `-----BEGIN PRIVATE KEY-----`"
            )
        })?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| {
            format!("service account key {shown}: `private_key` is not a usable RSA key: {e}")
        })?;
        reqwest::Url::parse(&file.token_uri).map_err(|e| {
            format!(
                "service account key {shown}: `token_uri` `{}` is not a URL: {e}",
                file.token_uri
            )
        })?;
        Ok(Self {
            email: file.client_email,
            key_id: file.private_key_id,
            token_uri: file.token_uri,
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Where tokens are exchanged.
    pub(super) fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The account's address.
    pub(super) fn email(&self) -> &str {
        &self.email
    }

    /// A signed assertion (RS256 JWT) asking for a `cloud-platform` token, issued at `now`.
    pub(super) fn assertion(&self, now: SystemTime) -> Result<String, String> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the system clock is before 1970".to_owned())?
            .as_secs();
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the token request failed".to_owned())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// An access token and when it stops being usable.
#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Access tokens for one service account, fetched once and shared by all calls until they
/// near expiry.
pub(super) struct TokenSource {
    account: ServiceAccount,
    http: reqwest::Client,
    provider: String,
    limits: Limits,
    current: Mutex<Option<Token>>,
}

impl TokenSource {
    pub(super) fn new(
        account: ServiceAccount,
        http: reqwest::Client,
        provider: String,
        limits: Limits,
    ) -> Self {
        Self {
            account,
            http,
            provider,
            limits,
            current: Mutex::new(None),
        }
    }

    /// The account.
    pub(super) fn account(&self) -> &ServiceAccount {
        &self.account
    }

    /// A token valid for at least [`REFRESH_MARGIN`], exchanging a new assertion when the
    /// cached one is missing, about to expire, or equal to `rejected` (a token Vertex just
    /// refused). Concurrent callers wait for one exchange.
    pub(super) async fn token(&self, rejected: Option<&str>) -> Result<String, LlmError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && rejected != Some(token.value.as_str())
            && token.expires > Instant::now() + REFRESH_MARGIN
        {
            return Ok(token.value.clone());
        }
        let fresh = self.exchange().await?;
        let value = fresh.value.clone();
        *current = Some(fresh);
        Ok(value)
    }

    /// Signs an assertion and trades it for an access token at the `token_uri`.
    async fn exchange(&self) -> Result<Token, LlmError> {
        let fatal = |message: String| LlmError::Fatal {
            provider: self.provider.clone(),
            message,
        };
        let assertion = self.account.assertion(SystemTime::now()).map_err(fatal)?;
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let started = Instant::now();
        let send = self
            .http
            .post(&self.account.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send();
        let response = tokio::time::timeout(self.limits.first_byte, send)
            .await
            .map_err(|_| LlmError::Timeout {
                provider: self.provider.clone(),
                during: "exchanging the service account token",
                after: self.limits.first_byte,
            })?
            .map_err(|e| failure::from_reqwest(&self.provider, &e, &self.limits))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = tokio::time::timeout(self.limits.chunk, response.text())
            .await
            .map_err(|_| LlmError::Timeout {
                provider: self.provider.clone(),
                during: "reading the service account token",
                after: self.limits.chunk,
            })?
            .map_err(|e| failure::from_reqwest(&self.provider, &e, &self.limits))?;
        if !(200..300).contains(&status) {
            // `invalid_grant` and friends come as 400/401: the key or account is wrong.
            let message = format!(
                "token exchange at {} for {} refused: {}",
                self.account.token_uri,
                self.account.email,
                token_error(&text, status)
            );
            return Err(match status {
                400 | 401 | 403 => LlmError::Unauthorized {
                    provider: self.provider.clone(),
                    status,
                    message,
                },
                _ => match failure::from_status(&self.provider, status, &headers, &text) {
                    LlmError::Http {
                        provider,
                        status,
                        retry_after,
                        ..
                    } => LlmError::Http {
                        provider,
                        status,
                        message,
                        retry_after,
                    },
                    other => other,
                },
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&text).map_err(|e| LlmError::Transient {
            provider: self.provider.clone(),
            message: format!(
                "the token endpoint {} answered without an access token: {e}",
                self.account.token_uri
            ),
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        Ok(Token {
            value: answer.access_token,
            expires: started + lifetime,
        })
    }
}

/// The OAuth error of a token endpoint (`invalid_grant: Invalid JWT Signature.`).
fn token_error(body: &str, status: u16) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_str::<OAuthError>(body) {
        Ok(OAuthError {
            error,
            error_description: Some(d),
        }) => format!("{error}: {d}"),
        Ok(OAuthError { error, .. }) => error,
        Err(_) => failure::error_message(body, status),
    }
}
