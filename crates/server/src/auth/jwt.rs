//! OIDC/JWT bearer tokens: verified against the keys (JWKS) an issuer publishes, the way
//! Auth0, Okta, Keycloak and other OpenID providers sign access tokens.
//!
//! A token is accepted when it is signed with RS256/384/512, PS256/384/512 or ES256/384 by
//! a key of the JWKS whose `kid` it names, and its `iss`, `aud`, `exp` and `nbf` hold (with
//! a minute of leeway for clocks). The JWKS is fetched with a timeout and cached; a token
//! naming a key the cache does not have makes it fetch again (a key rotation), at most once
//! per [`OidcConfig::refetch_every`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Where JWTs come from and what they must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The `iss` every token must carry (for Auth0 `https://TENANT.auth0.com/`, with the
    /// trailing slash).
    pub issuer: String,
    /// The `aud` every token must include (the API's identifier).
    pub audience: String,
    /// Where the issuer publishes its keys (`https://TENANT.auth0.com/.well-known/jwks.json`).
    pub jwks_url: String,
    /// The claim whose string value names the caller's tenant (`org_id`, or a namespaced
    /// custom claim such as `https://botarmy.example/tenant`).
    pub tenant_claim: String,
    /// How long one fetch of the JWKS may take.
    pub fetch_timeout: Duration,
    /// How long fetched keys are used before they are fetched again.
    pub cache_for: Duration,
    /// The least time between two fetches caused by unknown key ids.
    pub refetch_every: Duration,
}

impl OidcConfig {
    /// A configuration with the usual timings (10 s fetch timeout, keys cached 10 minutes,
    /// unknown key ids refetched at most every 30 s).
    pub fn new(issuer: String, audience: String, jwks_url: String, tenant_claim: String) -> Self {
        Self {
            issuer,
            audience,
            jwks_url,
            tenant_claim,
            fetch_timeout: Duration::from_secs(10),
            cache_for: Duration::from_secs(600),
            refetch_every: Duration::from_secs(30),
        }
    }
}

/// Algorithms accepted: public-key signatures only (an HMAC "signed" with a public key
/// is the classic forgery).
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why a JWT was refused. The message goes to the client: it never contains the token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtError {
    /// Not a JWT we accept (malformed, bad signature, wrong claims, unknown key).
    #[error("{0}")]
    Refused(String),
    /// The issuer's keys could not be fetched.
    #[error("the identity provider's keys cannot be fetched now")]
    KeysUnavailable,
}

struct Cache {
    keys: HashMap<String, DecodingKey>,
    /// Keys without a `kid` (used only when the JWKS has exactly one key).
    anonymous: Vec<DecodingKey>,
    fetched: Option<Instant>,
    /// When an unknown key id last made it fetch.
    refetched: Option<Instant>,
}

/// The verifier, with its cache of the issuer's keys.
pub(crate) struct JwtVerifier {
    config: OidcConfig,
    client: Result<reqwest::Client, String>,
    cache: tokio::sync::Mutex<Cache>,
}

/// Who a verified token speaks for.
pub(crate) struct Verified {
    pub(crate) tenant: String,
    /// Issuer and subject: the key of its rate limit.
    pub(crate) subject: String,
}

impl JwtVerifier {
    pub(crate) fn new(config: OidcConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| e.to_string());
        Self {
            config,
            client,
            cache: tokio::sync::Mutex::new(Cache {
                keys: HashMap::new(),
                anonymous: Vec::new(),
                fetched: None,
                refetched: None,
            }),
        }
    }

    /// Verifies `token`: signature, `iss`, `aud`, `exp`, `nbf`, and the tenant claim.
    pub(crate) async fn verify(&self, token: &str) -> Result<Verified, JwtError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| JwtError::Refused("the bearer token is not a valid JWT".into()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(JwtError::Refused(format!(
                "the JWT is signed with {:?}; accepted: RS256/384/512, PS256/384/512, ES256/384",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        if key.family() != header.alg.family() {
            return Err(JwtError::Refused(
                "the JWT's algorithm does not fit its key".into(),
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<HashMap<String, Value>>(token, &key, &validation)
            .map_err(|e| JwtError::Refused(refusal(&e)))?;
        let claim = &self.config.tenant_claim;
        let tenant = match data.claims.get(claim) {
            Some(Value::String(t)) if botarmy_store::check_tenant(t).is_ok() => t.clone(),
            Some(_) => {
                return Err(JwtError::Refused(format!(
                    "the JWT's claim `{claim}` is not an acceptable tenant name"
                )));
            }
            None => {
                return Err(JwtError::Refused(format!(
                    "the JWT has no claim `{claim}` naming its tenant"
                )));
            }
        };
        let sub = data.claims.get("sub").and_then(Value::as_str).unwrap_or("");
        Ok(Verified {
            tenant,
            subject: format!("{}|{sub}", self.config.issuer),
        })
    }

    /// The key `kid` names, from the cache or a new fetch of the JWKS.
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, JwtError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let stale = cache
            .fetched
            .is_none_or(|at| now.duration_since(at) >= self.config.cache_for);
        if stale {
            self.fetch(&mut cache, now).await?;
        }
        if let Some(key) = find(&cache, kid) {
            return Ok(key);
        }
        // Perhaps the issuer rotated its keys: fetch again, but not too often.
        let recent = cache
            .refetched
            .is_some_and(|at| now.duration_since(at) < self.config.refetch_every);
        if !stale && !recent {
            cache.refetched = Some(now);
            self.fetch(&mut cache, now).await?;
            if let Some(key) = find(&cache, kid) {
                return Ok(key);
            }
        }
        Err(JwtError::Refused(match kid {
            Some(_) => "the JWT is signed with a key the issuer does not publish".into(),
            None => "the JWT names no key (`kid`) and the issuer publishes several".into(),
        }))
    }

    async fn fetch(&self, cache: &mut Cache, now: Instant) -> Result<(), JwtError> {
        match self.download().await {
            Ok(set) => {
                cache.keys.clear();
                cache.anonymous.clear();
                for jwk in &set.keys {
                    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
                        || !matches!(
                            jwk.algorithm,
                            AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)
                        )
                    {
                        continue;
                    }
                    let Ok(key) = DecodingKey::from_jwk(jwk) else {
                        continue;
                    };
                    match &jwk.common.key_id {
                        Some(kid) => {
                            cache.keys.insert(kid.clone(), key);
                        }
                        None => cache.anonymous.push(key),
                    }
                }
                cache.fetched = Some(now);
                Ok(())
            }
            Err(problem) => {
                eprintln!(
                    "botarmy-server: cannot fetch the JWKS {}: {problem}",
                    self.config.jwks_url
                );
                // Keys fetched before stay usable; the next attempt waits a little.
                if cache.fetched.is_some() || !cache.keys.is_empty() {
                    cache.fetched = Some(now);
                    Ok(())
                } else {
                    Err(JwtError::KeysUnavailable)
                }
            }
        }
    }

    async fn download(&self) -> Result<JwkSet, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let response = client
            .get(&self.config.jwks_url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("it answered {}", response.status()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("it is not a JWKS: {e}"))
    }
}

fn find(cache: &Cache, kid: Option<&str>) -> Option<DecodingKey> {
    match kid {
        Some(kid) => cache.keys.get(kid).cloned(),
        None => match (cache.anonymous.as_slice(), cache.keys.len()) {
            ([one], 0) => Some(one.clone()),
            ([], 1) => cache.keys.values().next().cloned(),
            _ => None,
        },
    }
}

/// What the client is told about a refused JWT.
fn refusal(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the JWT has expired".into(),
        ErrorKind::ImmatureSignature => "the JWT is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the JWT is from another issuer".into(),
        ErrorKind::InvalidAudience => "the JWT is for another audience".into(),
        ErrorKind::InvalidSignature => "the JWT's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the JWT has no `{claim}` claim"),
        _ => "the bearer token is not a valid JWT".into(),
    }
}
