//! How one MCP server is reached, as written in `botarmy.toml` under `[mcp.<name>]`, and
//! its checks.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::McpError;

/// Seconds a tool call may take unless the server's table says otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Seconds starting (or reaching), initializing and listing a server may take unless its
/// table says otherwise. Generous: `npx -y` may first download the server.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 60;

/// Variables a stdio server inherits from BotArmy's environment; everything else (API keys
/// above all) is withheld, and the server gets only these plus its configured `env`.
pub const KEPT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "TMPDIR",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// One MCP server: a command BotArmy starts and talks to over stdio, or a streamable HTTP
/// endpoint. Exactly one of `command` and `url` is given.
///
/// ```toml
/// [mcp.files]
/// command = "npx"
/// args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]
///
/// [mcp.notion]
/// url = "https://mcp.example.com/mcp"
/// headers = { Authorization = "Bearer …" }
/// timeout_secs = 120
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The server's name: the key of its table, set by whoever reads the file (see
    /// [`McpServerConfig::named`]). Prefixes its tools' names and is what agents list as
    /// `mcp:<name>`.
    #[serde(skip)]
    pub name: String,
    /// The program of a stdio server.
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables set for it, on top of [`KEPT_ENV`] taken from BotArmy's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its working directory (BotArmy's own when absent).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The endpoint of a streamable HTTP server (`http://` or `https://`).
    #[serde(default)]
    pub url: Option<String>,
    /// Headers sent with every request to `url` (`Authorization`, for one).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Seconds one tool call may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Seconds starting, initializing and listing the tools may take.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

fn default_connect_timeout_secs() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}

impl Default for McpServerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
        }
    }
}

/// How a server is reached, once its configuration is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
    },
}

impl McpServerConfig {
    /// The stdio server `name` running `command` with `args`.
    pub fn command(
        name: impl Into<String>,
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            command: Some(command.into()),
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The streamable HTTP server `name` at `url`.
    pub fn url(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// This configuration under the name `name` (the key of its `[mcp.<name>]` table).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The per-call time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The time limit for starting, initializing and listing.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// Checks the configuration without starting anything: a valid name, exactly one of
    /// `command` and `url`, no field of the other kind, a well-formed URL and headers, and
    /// time limits above zero.
    pub fn validate(&self) -> Result<(), McpError> {
        self.transport().map(|_| ())
    }

    pub(crate) fn transport(&self) -> Result<Transport, McpError> {
        let invalid = |message: String| McpError::Config {
            server: self.name.clone(),
            message,
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(format!(
                "the name `{}` must be letters, digits, `_` or `-` (at least one)",
                self.name
            )));
        }
        for (field, secs) in [
            ("timeout_secs", self.timeout_secs),
            ("connect_timeout_secs", self.connect_timeout_secs),
        ] {
            if secs == 0 {
                return Err(invalid(format!("`{field}` must be at least 1")));
            }
        }
        match (&self.command, &self.url) {
            (None, None) => Err(invalid(
                "give either `command` (a server started over stdio) or `url` (a streamable \
                 HTTP server); found neither"
                    .into(),
            )),
            (Some(_), Some(_)) => Err(invalid("give either `command` or `url`, not both".into())),
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(invalid("`command` is empty".into()));
                }
                if !self.headers.is_empty() {
                    return Err(invalid(
                        "`headers` are for a `url` server; a `command` server takes `env`".into(),
                    ));
                }
                Ok(Transport::Stdio {
                    command: command.clone(),
                    args: self.args.clone(),
                    env: self.env.clone(),
                    cwd: self.cwd.clone(),
                })
            }
            (None, Some(url)) => {
                for (field, unused) in [
                    ("args", self.args.is_empty()),
                    ("env", self.env.is_empty()),
                    ("cwd", self.cwd.is_none()),
                ] {
                    if !unused {
                        return Err(invalid(format!(
                            "`{field}` is for a `command` server; a `url` server takes `headers`"
                        )));
                    }
                }
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| invalid(format!("`url` `{url}` is not a URL: {e}")))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(invalid(format!(
                        "`url` `{url}` must be an http:// or https:// address"
                    )));
                }
                let mut headers = Vec::with_capacity(self.headers.len());
                for (name, value) in &self.headers {
                    let header_name = http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| invalid(format!("header name `{name}` is not valid")))?;
                    let mut header_value = http::HeaderValue::from_str(value).map_err(|_| {
                        invalid(format!(
                            "the value of header `{name}` is not valid (control characters?)"
                        ))
                    })?;
                    header_value.set_sensitive(true);
                    headers.push((header_name, header_value));
                }
                Ok(Transport::Http {
                    url: url.clone(),
                    headers,
                })
            }
        }
    }
}

/// The environment of a stdio server: the [`KEPT_ENV`] variables (and the `LC_*` ones) of
/// `parent`, then `configured` on top.
pub fn server_env(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
    configured: &BTreeMap<String, String>,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = parent
        .into_iter()
        .filter(|(key, _)| {
            key.to_str()
                .is_some_and(|k| KEPT_ENV.contains(&k) || k.starts_with("LC_"))
        })
        .collect();
    env.extend(
        configured
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    env
}
