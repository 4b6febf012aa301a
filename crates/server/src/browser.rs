//! What a web browser may do with this server. A page the user opens on any other site can
//! make the browser send requests here (to a loopback server too), so every request passes
//! these rules before it reaches authentication or a handler:
//!
//! 1. **Host.** The `Host` must name this server: an IP address (the bound one; any, when
//!    bound to all interfaces), `localhost` (or `*.localhost`) when bound to loopback or all
//!    interfaces, or a name listed in `[server] allowed_hosts`. A DNS-rebinding page
//!    (`evil.example` resolving to 127.0.0.1) sends its own name and is refused. Ports are
//!    not compared: a rebinding page cannot change the name, and port mappings change ports.
//! 2. **Origin.** A request that carries `Origin` must come from this server's own origin
//!    (the scheme, `X-Forwarded-Proto` or `http`, with the `Host` as the request reached
//!    it) or from one listed in `[server] allowed_origins`; others get 403 naming the
//!    origin. A request without `Origin` but marked by the browser as cross-site
//!    (`Sec-Fetch-Site`) is refused too, unless it is a page navigation: that stops
//!    `<img>`, `<script>` and form loads of API routes and raw artifacts. Clients that are
//!    not browsers (curl, the CLI, other servers) send neither header and are unaffected.
//! 3. **POST bodies.** Every `POST` must declare `Content-Type: application/json`, with a
//!    body or without one. A browser sends that type cross-origin only after a preflight,
//!    which this server answers for allowed origins alone, so no page can fire a body-less
//!    `approve` or `cancel` at it. (`PATCH`, `PUT` and `DELETE` are always preflighted.)
//! 4. **CORS** is closed unless `allowed_origins` names origins: then their preflights are
//!    answered, and their requests carry `Access-Control-Allow-Origin`.
//!
//! Every answer carries `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
//! and `Cross-Origin-Resource-Policy: same-origin`; HTML pages a `Content-Security-Policy`
//! that runs only this server's own scripts and styles, everything else one that runs
//! nothing at all.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    HOST, ORIGIN, REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};

/// An origin: scheme, host and port (`https://botarmy.example.com`,
/// `http://localhost:5173`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Scheme,
    /// Lowercase; an IPv6 address in brackets.
    host: String,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

impl FromStr for Origin {
    type Err = String;

    /// `scheme://host[:port]`, scheme `http` or `https`, with no path, query or user.
    fn from_str(text: &str) -> Result<Self, String> {
        let expected = "expected an origin such as `https://botarmy.example.com` or \
                        `http://localhost:5173` (scheme http or https, a host, an optional port, \
                        nothing after it)";
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}`: {expected}"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(format!("`{text}`: {expected}")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!("`{text}`: {expected}"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| format!("`{text}`: {expected}"))?;
        Ok(Self {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → the lowercase host and the port.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", v6.to_ascii_lowercase()), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    let host = host.strip_suffix('.').map(str::to_owned).unwrap_or(host);
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
    {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host, port))
}

/// The browser rules of one server, decided once by the binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserPolicy {
    /// Origins besides the server's own whose pages may call it (CORS is answered for
    /// them): `[server] allowed_origins`.
    pub allowed_origins: Vec<Origin>,
    /// Names besides its addresses (and `localhost`) by which the server is reached, such
    /// as a reverse proxy's public name: `[server] allowed_hosts`. Lowercase, no port.
    pub allowed_hosts: Vec<String>,
}

impl BrowserPolicy {
    /// Checks and normalises a host name for `allowed_hosts`.
    pub fn host_name(text: &str) -> Result<String, String> {
        match split_host_port(text.trim()) {
            Some((host, None)) => Ok(host),
            _ => Err(format!(
                "`{text}`: expected a host name such as `botarmy.example.com` (no scheme, no port)"
            )),
        }
    }
}

/// The policy and the address it serves on.
pub(crate) struct Guard {
    policy: BrowserPolicy,
    bound: SocketAddr,
}

impl Guard {
    pub(crate) fn new(policy: BrowserPolicy, bound: SocketAddr) -> Arc<Self> {
        Arc::new(Self { policy, bound })
    }

    /// Whether `host` (from the `Host` header, port removed) names this server.
    fn host_allowed(&self, host: &str) -> bool {
        let bound = self.bound.ip();
        let ip = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>();
        if let Ok(ip) = ip {
            return bound.is_unspecified()
                || ip == bound
                || (ip.is_loopback() && bound.is_loopback());
        }
        let local = host == "localhost" || host.ends_with(".localhost");
        (local && (bound.is_loopback() || bound.is_unspecified()))
            || self.policy.allowed_hosts.iter().any(|h| h == host)
    }

    fn origin_allowed(&self, origin: &Origin) -> bool {
        self.policy.allowed_origins.contains(origin)
    }
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The origin this request reached: its scheme (as a proxy in front says, else `http`)
/// and its `Host`.
fn own_origin(headers: &HeaderMap, host: &str, port: Option<u16>) -> Origin {
    let scheme = match header(headers, &HeaderName::from_static("x-forwarded-proto")) {
        Some(p) if p.trim().eq_ignore_ascii_case("https") => Scheme::Https,
        _ => Scheme::Http,
    };
    Origin {
        scheme,
        host: host.to_owned(),
        port: port.unwrap_or(scheme.default_port()),
    }
}

/// Whether a request without `Origin` is a browser's load from another site other than a
/// page navigation (`<img src>`, `<script src>`, a form, an `<iframe>`).
fn cross_site_load(headers: &HeaderMap, method: &Method) -> bool {
    let site = header(headers, &HeaderName::from_static("sec-fetch-site"));
    if !matches!(site, Some("cross-site" | "same-site")) {
        return false;
    }
    let mode = header(headers, &HeaderName::from_static("sec-fetch-mode"));
    let dest = header(headers, &HeaderName::from_static("sec-fetch-dest"));
    let navigation = mode == Some("navigate") && matches!(dest, Some("document") | None);
    !(navigation && (method == Method::GET || method == Method::HEAD))
}

/// Whether the request declares a JSON body (`application/json` or `…+json`).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let essence = header(headers, &CONTENT_TYPE)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// The middleware: refuses what a browser must not do, answers preflights of allowed
/// origins, and puts the security headers on every answer.
pub(crate) async fn guard(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match check(&guard, &request) {
        Err(refused) => refused.into_response(),
        Ok(Verdict::Preflight(origin)) => preflight(&origin),
        Ok(Verdict::Pass(cors)) => {
            let mut response = next.run(request).await;
            if let Some(origin) = cors {
                allow_origin(response.headers_mut(), &origin);
            }
            response
        }
    };
    secure(response.headers_mut());
    response
}

enum Verdict {
    /// Go on; with the allowed foreign origin that gets CORS headers, if any.
    Pass(Option<Origin>),
    /// A preflight of an allowed origin: answer it here.
    Preflight(Origin),
}

fn check(guard: &Guard, request: &Request) -> Result<Verdict, ApiError> {
    let headers = request.headers();
    let method = request.method();
    // 1. The Host names this server. (HTTP/1.1 requires one; a request without comes from
    //    no browser.)
    let authority = header(headers, &HOST)
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let host_port = match &authority {
        None => None,
        Some(a) => match split_host_port(a) {
            Some(hp) => Some(hp),
            None => {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("the Host header `{a}` is not a host name or address"),
                ));
            }
        },
    };
    if let Some((host, _)) = &host_port
        && !guard.host_allowed(host)
    {
        return Err(forbidden(format!(
            "this server is not `{host}` (Host header): it answers to its addresses{}; a proxy's \
             public name belongs in `[server] allowed_hosts`",
            if guard.bound.ip().is_loopback() || guard.bound.ip().is_unspecified() {
                " and localhost"
            } else {
                ""
            }
        )));
    }
    // 2. The Origin is this server's own or an allowed one.
    let origin = match header(headers, &ORIGIN) {
        None => {
            if cross_site_load(headers, method) {
                return Err(forbidden(
                    "a browser's load of this route from another site is refused \
                     (Sec-Fetch-Site); call it from this server's own pages or from an origin \
                     listed in `[server] allowed_origins`"
                        .into(),
                ));
            }
            None
        }
        Some(text) => {
            let refused = || {
                forbidden(format!(
                    "requests from origin `{text}` are refused: only this server's own pages \
                     and the origins listed in `[server] allowed_origins` may call it"
                ))
            };
            let Ok(origin) = text.parse::<Origin>() else {
                return Err(refused());
            };
            let own = host_port
                .as_ref()
                .is_some_and(|(host, port)| own_origin(headers, host, *port) == origin);
            if own {
                None
            } else if guard.origin_allowed(&origin) {
                Some(origin)
            } else {
                return Err(refused());
            }
        }
    };
    if method == Method::OPTIONS
        && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        && let Some(origin) = origin
    {
        return Ok(Verdict::Preflight(origin));
    }
    // 3. A POST declares JSON, even without a body.
    if method == Method::POST && !is_json(headers) {
        let found = header(headers, &CONTENT_TYPE).unwrap_or("(none)");
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "a POST must declare `Content-Type: application/json`, with a body or without \
                 one (found `{found}`): browsers send that type from other sites only after \
                 asking, so no page can post here behind the user's back"
            ),
        ));
    }
    Ok(Verdict::Pass(origin))
}

fn allow_origin(headers: &mut HeaderMap, origin: &Origin) {
    if let Ok(value) = HeaderValue::from_str(&origin.to_string()) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}

/// The answer to an allowed origin's preflight. Credentials are bearer tokens, never
/// cookies, so `Access-Control-Allow-Credentials` is not needed.
fn preflight(origin: &Origin) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PATCH, PUT, DELETE"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

/// Scripts, styles, images and connections of HTML pages: this server's own only.
pub(crate) const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Everything that is not a page runs nothing, even when opened in a tab.
pub(crate) const DATA_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

fn secure(headers: &mut HeaderMap) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    let html = header(headers, &CONTENT_TYPE)
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let policy = if html { PAGE_POLICY } else { DATA_POLICY };
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins_parse_and_print_with_their_default_ports() {
        let o: Origin = "HTTPS://Botarmy.Example.com/".parse().unwrap();
        assert_eq!(o.to_string(), "https://botarmy.example.com");
        assert_eq!(o, "https://botarmy.example.com:443".parse().unwrap());
        let o: Origin = "http://[::1]:8080".parse().unwrap();
        assert_eq!(o.to_string(), "http://[::1]:8080");
        for bad in [
            "null",
            "botarmy.example.com",
            "ftp://x",
            "http://x/path",
            "http://u@x",
            "http://x:99999",
            "http://",
            "http://[zz]:1",
        ] {
            let err = bad.parse::<Origin>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    fn guard(bound: &str, hosts: &[&str]) -> Guard {
        Guard {
            policy: BrowserPolicy {
                allowed_origins: Vec::new(),
                allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            },
            bound: bound.parse().unwrap(),
        }
    }

    #[test]
    fn hosts_are_the_bound_address_localhost_and_configured_names() {
        let loopback = guard("127.0.0.1:8080", &["botarmy.internal"]);
        for yes in [
            "127.0.0.1",
            "[::1]",
            "localhost",
            "app.localhost",
            "botarmy.internal",
        ] {
            assert!(loopback.host_allowed(yes), "{yes}");
        }
        for no in [
            "evil.example",
            "10.0.0.5",
            "botarmy.internal.evil.example",
            "localhost.evil",
        ] {
            assert!(!loopback.host_allowed(no), "{no}");
        }
        let specific = guard("10.0.0.5:80", &[]);
        assert!(specific.host_allowed("10.0.0.5"));
        assert!(!specific.host_allowed("10.0.0.6"));
        assert!(!specific.host_allowed("localhost"));
        let all = guard("0.0.0.0:80", &[]);
        assert!(all.host_allowed("10.0.0.6"));
        assert!(all.host_allowed("localhost"));
        assert!(!all.host_allowed("evil.example"));
    }

    #[test]
    fn host_headers_split() {
        assert_eq!(
            split_host_port("LocalHost:8080"),
            Some(("localhost".into(), Some(8080)))
        );
        assert_eq!(
            split_host_port("example.com."),
            Some(("example.com".into(), None))
        );
        assert_eq!(
            split_host_port("[::1]:80"),
            Some(("[::1]".into(), Some(80)))
        );
        assert_eq!(split_host_port("a b"), None);
        assert_eq!(split_host_port("x:port"), None);
        assert_eq!(
            BrowserPolicy::host_name("Proxy.Example.").unwrap(),
            "proxy.example"
        );
        assert!(BrowserPolicy::host_name("proxy.example:443").is_err());
    }
}
