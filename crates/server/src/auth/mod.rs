//! Who is calling, and which tenant's data the call may reach.
//!
//! Every route under `/api` (except `/api/openapi.json` and `/api/docs`), `/ws` and `/metrics` needs a
//! credential when authentication is on: `Authorization: Bearer <token>` (`/metrics` from
//! a caller of an admin tenant: its figures are every tenant's); a WebSocket client may instead
//! offer the subprotocols `bearer, <token>` (`Sec-WebSocket-Protocol`; the server picks
//! `bearer`) or pass `?token=<token>`, since browsers cannot set headers on WebSockets.
//! A token is an API token (`bat_…`, made by `botarmy token create`, stored hashed) or,
//! when an OIDC issuer is configured, a JWT it signed. The caller's tenant scopes every
//! read and write; another tenant's things answer 404 exactly like missing ones.
//!
//! Without authentication (only allowed on loopback addresses, see [`check_address`])
//! every caller is the `default` tenant.

mod jwt;
mod limit;
mod secret;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use botarmy_store::{DEFAULT_TENANT, RateLimit, Store};

pub use jwt::OidcConfig;
pub use secret::{IssueError, Secret, TOKEN_PREFIX, issue_token, token_hash};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

/// How callers prove who they are. The default is no authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Accept API tokens made with `botarmy token create`.
    pub tokens: bool,
    /// Accept JWTs of this OpenID issuer.
    pub oidc: Option<OidcConfig>,
    /// Requests per caller for tokens without a limit of their own (and for JWT
    /// subjects); `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Tenants whose callers may register and forget repositories (server-wide things).
    pub admin_tenants: Vec<String>,
}

impl AuthConfig {
    /// Whether any authentication is configured.
    pub fn is_enabled(&self) -> bool {
        self.tokens || self.oidc.is_some()
    }
}

/// Why the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Listening beyond this machine needs authentication, which is not configured.
    #[error(
        "refusing to listen on {addr}: it is reachable from other machines and no authentication is configured; \
         turn on API tokens (`[server.auth] tokens = true` in botarmy.toml, or `botarmy serve --auth tokens`) \
         and/or an OIDC issuer (`[server.auth.oidc]`), or listen on a loopback address (127.0.0.1, [::1])"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address cannot be bound or the server failed while serving.
    #[error("serving on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Refuses an address other machines can reach unless authentication is configured.
pub fn check_address(addr: SocketAddr, auth: &AuthConfig) -> Result<(), ServeError> {
    if addr.ip().is_loopback() || auth.is_enabled() {
        Ok(())
    } else {
        Err(ServeError::NotLoopback { addr })
    }
}

/// The authenticated caller of a request: handlers take it as an extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The tenant whose data the request may reach.
    pub(crate) tenant: String,
    /// Whether it may change server-wide things (registered repositories).
    pub(crate) admin: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Put there by `require`; a route it did not guard has no caller.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this route needs a bearer token"))
    }
}

/// How often a token's `last_used_at` is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The authenticator a server shares between requests.
pub(crate) struct Auth {
    config: AuthConfig,
    jwt: Option<jwt::JwtVerifier>,
    limiter: limit::Limiter,
    /// When each token's use was last written.
    touched: Mutex<std::collections::HashMap<String, Instant>>,
}

impl Auth {
    pub(crate) fn new(config: AuthConfig) -> Self {
        Self {
            jwt: config.oidc.clone().map(jwt::JwtVerifier::new),
            config,
            limiter: limit::Limiter::default(),
            touched: Mutex::default(),
        }
    }

    /// Who sends `headers` (and `query`, for `/ws`), after the rate limit.
    async fn caller(
        &self,
        store: &dyn Store,
        headers: &HeaderMap,
        websocket: Option<&str>,
    ) -> Result<Caller, ApiError> {
        if !self.config.is_enabled() {
            return Ok(Caller {
                tenant: DEFAULT_TENANT.to_string(),
                admin: true,
            });
        }
        let token = credential(headers, websocket)?;
        let (tenant, key, limit) = if token.starts_with(TOKEN_PREFIX) && self.config.tokens {
            let record = store
                .token_by_hash(&token_hash(&token))
                .await?
                .filter(|t| t.revoked_at.is_none())
                .ok_or_else(|| {
                    ApiError::unauthorized("the API token is not valid (unknown or revoked)")
                })?;
            self.touch(store, &record.id).await;
            let limit = record.rate_limit.or(self.config.rate_limit);
            (record.tenant, format!("token:{}", record.id), limit)
        } else if let Some(verifier) = &self.jwt {
            let verified = verifier.verify(&token).await.map_err(|e| match e {
                jwt::JwtError::Refused(why) => ApiError::unauthorized(why),
                e @ jwt::JwtError::KeysUnavailable => {
                    ApiError::new(ErrorCode::Unavailable, e.to_string())
                }
            })?;
            (
                verified.tenant,
                format!("jwt:{}", verified.subject),
                self.config.rate_limit,
            )
        } else {
            return Err(ApiError::unauthorized(
                "the bearer token is not valid for this server",
            ));
        };
        if let Some(limit) = limit
            && let Err(wait) = self.limiter.take(&key, limit, Instant::now())
        {
            return Err(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64));
        }
        let admin = self.config.admin_tenants.contains(&tenant);
        Ok(Caller { tenant, admin })
    }

    /// Records the token's use, at most once per [`TOUCH_EVERY`] per process; a failure
    /// only costs the record.
    async fn touch(&self, store: &dyn Store, id: &str) {
        let now = Instant::now();
        {
            let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
            if touched
                .get(id)
                .is_some_and(|at| now.duration_since(*at) < TOUCH_EVERY)
            {
                return;
            }
            touched.insert(id.to_string(), now);
        }
        if let Err(e) = store.touch_token(id, botarmy_protocol::now_millis()).await {
            eprintln!("botarmy-server: cannot record the use of token {id}: {e}");
        }
    }
}

/// The bearer token of a request: the `Authorization` header, else (WebSocket only) the
/// subprotocol after `bearer`, else the `token` query parameter.
fn credential(headers: &HeaderMap, websocket: Option<&str>) -> Result<String, ApiError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().unwrap_or("");
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
        return Ok(token.trim().to_string());
    }
    if let Some(query) = websocket {
        let offered = headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        if let Some(i) = offered
            .iter()
            .position(|p| p.eq_ignore_ascii_case("bearer"))
            && let Some(token) = offered.get(i + 1)
        {
            return Ok((*token).to_string());
        }
        if let Some(token) = query_token(query) {
            return Ok(token);
        }
    }
    Err(ApiError::unauthorized(
        "this route needs a bearer token: send `Authorization: Bearer <token>`",
    ))
}

/// The `token` parameter of a query string, decoded.
fn query_token(query: &str) -> Option<String> {
    let uri = format!("/?{query}").parse().ok()?;
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok()?;
    pairs
        .0
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// Routes under `/api` that answer without a credential: the API's description.
const UNGUARDED: [&str; 4] = [
    "/api/openapi.json",
    "/api/docs",
    "/api/docs.js",
    "/api/docs.css",
];

/// Whether a path needs a caller.
fn guarded(path: &str) -> bool {
    path == "/ws"
        || path == "/metrics"
        || path == "/api"
        || (path.starts_with("/api/") && !UNGUARDED.contains(&path))
}

/// The middleware that authenticates guarded routes and hands handlers their [`Caller`].
pub(crate) async fn require(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !guarded(path) {
        return next.run(request).await;
    }
    let websocket = (path == "/ws").then(|| request.uri().query().unwrap_or(""));
    match state
        .auth
        .caller(state.store.as_ref(), request.headers(), websocket)
        .await
    {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// Shared by the server's state.
pub(crate) type SharedAuth = Arc<Auth>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_loopback_is_served_without_authentication() {
        let open = AuthConfig::default();
        let tokens = AuthConfig {
            tokens: true,
            ..AuthConfig::default()
        };
        for addr in ["127.0.0.1:8080", "[::1]:8080"] {
            assert!(
                check_address(addr.parse().unwrap(), &open).is_ok(),
                "{addr}"
            );
        }
        for addr in ["0.0.0.0:8080", "192.168.1.5:80", "[::]:8080"] {
            let err = check_address(addr.parse().unwrap(), &open).unwrap_err();
            assert!(
                err.to_string().contains("no authentication is configured"),
                "{err}"
            );
            assert!(
                check_address(addr.parse().unwrap(), &tokens).is_ok(),
                "{addr}"
            );
        }
        let oidc = AuthConfig {
            oidc: Some(OidcConfig::new(
                "https://issuer/".into(),
                "api".into(),
                "https://issuer/jwks".into(),
                "org_id".into(),
            )),
            ..AuthConfig::default()
        };
        assert!(check_address("0.0.0.0:1".parse().unwrap(), &oidc).is_ok());
    }

    #[test]
    fn credentials_come_from_the_header_the_subprotocol_or_the_query() {
        let mut headers = HeaderMap::new();
        assert!(credential(&headers, None).is_err());
        assert!(credential(&headers, Some("run_id=1")).is_err());
        assert_eq!(
            credential(&headers, Some("run_id=1&token=bat_x%2By")).unwrap(),
            "bat_x+y"
        );
        headers.insert(SEC_WEBSOCKET_PROTOCOL, "bearer, bat_sub".parse().unwrap());
        assert_eq!(credential(&headers, Some("token=q")).unwrap(), "bat_sub");
        // Only WebSocket upgrades read subprotocols.
        assert!(credential(&headers, None).is_err());
        headers.insert(AUTHORIZATION, "bearer  bat_h ".parse().unwrap());
        assert_eq!(credential(&headers, None).unwrap(), "bat_h");
        headers.insert(AUTHORIZATION, "Basic dTpw".parse().unwrap());
        assert!(credential(&headers, None).is_err());
    }

    #[test]
    fn guarded_routes() {
        for path in [
            "/api/runs",
            "/api/version",
            "/ws",
            "/api",
            "/api/nothing",
            "/metrics",
        ] {
            assert!(guarded(path), "{path}");
        }
        for path in [
            "/health",
            "/ready",
            "/api/openapi.json",
            "/api/docs",
            "/api/docs.js",
            "/",
            "/favicon.ico",
        ] {
            assert!(!guarded(path), "{path}");
        }
    }
}
