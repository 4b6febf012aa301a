//! The one typed configuration of the `botarmy` binary, built once from defaults,
//! `botarmy.toml` and the environment (which wins), then passed down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use botarmy_llm::settings::{AgentSettings, LlmSettings, ProviderSettings, Resolved};
use serde::Deserialize;

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BOTARMY_HOME`: models, database and other state.
    pub home: PathBuf,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `BOTARMY_CASSETTE`: the cassette replayed by the replay provider.
    pub cassette: Option<PathBuf>,
    /// `BOTARMY_THREADS`: CPU threads for the embedded model.
    pub threads: Option<u32>,
    /// The environment, as read at start (providers and agents are resolved from it).
    pub env: BTreeMap<String, String>,
    /// `botarmy.toml`, if one was found.
    pub file: FileConfig,
    /// Where `file` came from.
    pub file_path: Option<PathBuf>,
}

/// `botarmy.toml`. Unknown keys are refused by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Default provider for every agent.
    pub provider: Option<String>,
    /// Default model.
    pub model: Option<String>,
    /// Providers by id.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Per-agent providers, models and failover lists.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentSettings>,
    /// Price overrides, in the layout of the built-in price table.
    pub pricing: Option<toml::Table>,
    /// Default spending limits of every run (`usd`, `tokens`, `[budget.phases.<phase>]`,
    /// `[budget.agents.<agent>]`).
    pub budget: Option<botarmy_protocol::Budget>,
    /// How agents' shell commands are confined.
    #[serde(default)]
    pub sandbox: SandboxFile,
    /// How much this process does at once.
    #[serde(default)]
    pub limits: LimitsFile,
    /// MCP servers whose tools agents may list (`mcp:<name>`), by name.
    #[serde(default)]
    pub mcp: BTreeMap<String, botarmy_tools::McpServerConfig>,
    /// `[gates]`: the policy of gates a workflow leaves unset.
    #[serde(default)]
    pub gates: GatesFile,
    /// `botarmy serve`.
    #[serde(default)]
    pub server: ServerFile,
}

/// `[gates]` of `botarmy.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatesFile {
    /// `default = "always"`, `"auto"`, `"confidence_below=0.8,quality_below=0.85"`, or a
    /// table `{ confidence_below = 0.8, quality_below = 0.85 }`.
    pub default: Option<botarmy_protocol::GatePolicy>,
    /// How long an approval may wait where the workflow says nothing:
    /// `{ after = "4h", then = "remind" }` (then: remind, escalate, approve or fail).
    pub timeout: Option<botarmy_protocol::GateTimeout>,
}

/// `[server]` of `botarmy.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Who may call the API.
    #[serde(default)]
    pub auth: AuthFile,
    /// Origins besides the server's own whose web pages may call it
    /// (`https://botarmy.example.com`); CORS is answered for exactly these.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Names besides its addresses and `localhost` by which the server is reached, such
    /// as a reverse proxy's public name (`botarmy.example.com`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl ServerFile {
    /// What browsers' pages may do, checked: every entry that is not an origin or a host
    /// name is named with its key.
    pub fn browser_policy(
        &self,
        path: &Path,
    ) -> Result<botarmy_server::BrowserPolicy, ConfigError> {
        let bad = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let allowed_origins = self
            .allowed_origins
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.parse()
                    .map_err(|e: String| bad(format!("[server] allowed_origins[{i}]: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let allowed_hosts = self
            .allowed_hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                botarmy_server::BrowserPolicy::host_name(h)
                    .map_err(|e| bad(format!("[server] allowed_hosts[{i}]: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(botarmy_server::BrowserPolicy {
            allowed_origins,
            allowed_hosts,
        })
    }
}

/// `[server.auth]` of `botarmy.toml`: how callers of `botarmy serve` authenticate. None of
/// it is secret (tokens live hashed in the database; an issuer's keys are public).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// Accept API tokens made with `botarmy token create`.
    #[serde(default)]
    pub tokens: bool,
    /// Requests per token (or JWT subject) for tokens without their own limit: `N/s`,
    /// `N/min` or `N/h`.
    pub rate_limit: Option<String>,
    /// Tenants whose callers may register and forget repositories through the API.
    #[serde(default)]
    pub admin_tenants: Vec<String>,
    /// Accept JWTs of an OpenID issuer.
    pub oidc: Option<OidcFile>,
}

/// `[server.auth.oidc]`: the issuer whose JWTs are accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFile {
    /// The `iss` of its tokens (Auth0: `https://TENANT.auth0.com/`).
    pub issuer: String,
    /// The `aud` its tokens must include (the API's identifier).
    pub audience: String,
    /// Where it publishes its keys; default `<issuer>/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// The claim that names the caller's tenant (`org_id`).
    pub tenant_claim: String,
}

impl AuthFile {
    /// The server's authentication settings, checked; `rate_limit` overrides the file's.
    pub fn auth_config(
        &self,
        path: &Path,
        tokens: bool,
        rate_limit: Option<botarmy_store::RateLimit>,
    ) -> Result<botarmy_server::AuthConfig, ConfigError> {
        let bad = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let rate_limit = match (rate_limit, &self.rate_limit) {
            (Some(flag), _) => Some(flag),
            (None, Some(text)) => Some(
                text.parse()
                    .map_err(|e: String| bad(format!("[server.auth] rate_limit: {e}")))?,
            ),
            (None, None) => None,
        };
        for tenant in &self.admin_tenants {
            botarmy_store::check_tenant(tenant).map_err(|problem| {
                bad(format!("[server.auth] admin_tenants: `{tenant}` {problem}"))
            })?;
        }
        let oidc = match &self.oidc {
            None => None,
            Some(o) => {
                let jwks_url = o.jwks_url.clone().unwrap_or_else(|| {
                    format!("{}/.well-known/jwks.json", o.issuer.trim_end_matches('/'))
                });
                check_url(&jwks_url).map_err(|expected| {
                    bad(format!(
                        "[server.auth.oidc] jwks_url `{jwks_url}`: {expected}"
                    ))
                })?;
                if o.issuer.trim().is_empty() || o.audience.trim().is_empty() {
                    return Err(bad(
                        "[server.auth.oidc] issuer and audience must not be empty".into(),
                    ));
                }
                if o.tenant_claim.trim().is_empty() {
                    return Err(bad(
                        "[server.auth.oidc] tenant_claim: expected the name of the claim that names the tenant (org_id)".into(),
                    ));
                }
                Some(botarmy_server::OidcConfig::new(
                    o.issuer.clone(),
                    o.audience.clone(),
                    jwks_url,
                    o.tenant_claim.clone(),
                ))
            }
        };
        Ok(botarmy_server::AuthConfig {
            tokens: self.tokens || tokens,
            oidc,
            rate_limit,
            admin_tenants: self.admin_tenants.clone(),
        })
    }
}

/// An issuer's keys are fetched over HTTPS (plain HTTP only from this machine).
fn check_url(url: &str) -> Result<(), &'static str> {
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    if url.starts_with("https://") || local {
        Ok(())
    } else {
        Err("expected an https:// URL (http:// only on this machine)")
    }
}

/// `[limits]` of `botarmy.toml`: per-process bounds; work beyond them queues.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Attempts of steps executing at once, over every run.
    pub steps: Option<usize>,
    /// LLM calls in flight at once.
    pub llm_calls: Option<usize>,
    /// Tool calls running a process (bash, git, run_tests) at once.
    pub tool_processes: Option<usize>,
}

impl LimitsFile {
    /// The limits, the defaults where not given.
    pub fn limits(&self) -> botarmy_runtime::Limits {
        let d = botarmy_runtime::Limits::default();
        botarmy_runtime::Limits {
            steps: self.steps.unwrap_or(d.steps).max(1),
            llm_calls: self.llm_calls.unwrap_or(d.llm_calls).max(1),
            tool_processes: self.tool_processes.unwrap_or(d.tool_processes).max(1),
        }
    }
}

/// `[sandbox]` of `botarmy.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxFile {
    /// Run agents' commands without bubblewrap where it is not installed (they can then
    /// read and write whatever the user can).
    #[serde(default)]
    pub allow_unsandboxed: bool,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An environment variable.
    #[error("{key}={value:?}: {expected}")]
    Var {
        /// The variable.
        key: &'static str,
        /// What was given.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// The configuration file.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and key.
        message: String,
    },
}

impl Config {
    /// Builds the configuration from an environment snapshot (the process environment in
    /// the binary, a map in tests) and the configuration file it leads to: `BOTARMY_CONFIG`,
    /// else `./botarmy.toml`, else `$BOTARMY_HOME/botarmy.toml`, else none.
    pub fn load(env: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let non_empty = |key: &str| env.get(key).filter(|v| !v.trim().is_empty()).cloned();
        let home = match non_empty("BOTARMY_HOME") {
            Some(h) => PathBuf::from(h),
            None => default_home().ok_or_else(|| ConfigError::Var {
                key: "BOTARMY_HOME",
                value: String::new(),
                expected: "a folder for BotArmy's data (no platform data folder was found)".into(),
            })?,
        };
        let database_url = non_empty("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}", home.join("botarmy.db").display()));
        let cassette = non_empty("BOTARMY_CASSETTE").map(PathBuf::from);
        let threads =
            match non_empty("BOTARMY_THREADS") {
                None => None,
                Some(v) => Some(v.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(
                    || ConfigError::Var {
                        key: "BOTARMY_THREADS",
                        value: v.clone(),
                        expected: "a positive whole number of CPU threads".into(),
                    },
                )?),
            };
        let file_path = match non_empty("BOTARMY_CONFIG") {
            Some(p) => {
                let p = PathBuf::from(p);
                if !p.is_file() {
                    return Err(ConfigError::Var {
                        key: "BOTARMY_CONFIG",
                        value: p.display().to_string(),
                        expected: "an existing botarmy.toml file".into(),
                    });
                }
                Some(p)
            }
            None => [PathBuf::from("botarmy.toml"), home.join("botarmy.toml")]
                .into_iter()
                .find(|p| p.is_file()),
        };
        let file = match &file_path {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Ok(Self {
            home,
            database_url,
            cassette,
            threads,
            env,
            file,
            file_path,
        })
    }

    /// Where runs' repositories and worktrees are kept, and what their commands may not
    /// see: the home folder and BotArmy's own data. `BOTARMY_ALLOW_UNSANDBOXED=1` or
    /// `[sandbox] allow_unsandboxed = true` lets commands run where bubblewrap is missing.
    pub fn workspace(&self) -> botarmy_runtime::WorkspaceSettings {
        let mut settings = botarmy_runtime::WorkspaceSettings::new(self.home.join("work"));
        settings.hidden.push(self.home.clone());
        if let Some(home) = self.env.get("HOME").filter(|h| !h.is_empty()) {
            settings.hidden.push(PathBuf::from(home));
            let host = self
                .env
                .iter()
                .fold(botarmy_workspace::HostEnv::new(home), |host, (k, v)| {
                    host.with_var(k, v)
                });
            settings.toolchains = botarmy_workspace::Toolchains::detect(&host);
        }
        settings.allow_unsandboxed = self.file.sandbox.allow_unsandboxed
            || self
                .env
                .get("BOTARMY_ALLOW_UNSANDBOXED")
                .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        settings
    }

    /// Where repositories registered by URL are cloned: `$BOTARMY_HOME/repos`.
    pub fn clones_dir(&self) -> PathBuf {
        self.home.join("repos")
    }

    /// Where downloaded models are kept.
    pub fn models_dir(&self) -> PathBuf {
        self.home.join("models")
    }

    /// The GGUF file the local provider runs instead of the embedded model:
    /// `BOTARMY_MODEL` (or the file's `model`) when the default provider is `local`.
    pub fn local_model_file(&self) -> Option<PathBuf> {
        let get = |k: &str| self.env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let provider = get("BOTARMY_PROVIDER")
            .map(str::to_owned)
            .or_else(|| self.file.provider.clone())
            .unwrap_or_else(|| "local".into());
        let model = get("BOTARMY_MODEL")
            .map(str::to_owned)
            .or_else(|| self.file.model.clone())?;
        (provider == "local" && model != botarmy_llm::ModelSpec::smollm2_135m_instruct().name)
            .then(|| PathBuf::from(model))
    }

    /// The LLM part of the configuration file.
    pub fn llm(&self) -> LlmSettings {
        LlmSettings {
            provider: self.file.provider.clone(),
            model: self.file.model.clone(),
            providers: self.file.providers.clone(),
            agents: self.file.agents.clone(),
        }
    }

    /// Every agent's route chain and the providers they need, resolved from the file and the
    /// environment; the error lists every problem at once and says where settings came from.
    pub fn resolve_llm(&self, agents: &[String]) -> anyhow::Result<Resolved> {
        self.llm().resolve(&self.env, agents).map_err(|problems| {
            let from = match &self.file_path {
                Some(p) => format!("the environment and {}", p.display()),
                None => "the environment (no botarmy.toml found)".into(),
            };
            anyhow::anyhow!(
                "the model configuration from {from} has {} problem{}:\n  - {}",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                problems.join("\n  - ")
            )
        })
    }

    /// The built-in price table with the file's overrides merged over it.
    pub fn pricing(&self) -> Result<botarmy_llm::PriceTable, ConfigError> {
        let mut table = botarmy_llm::PriceTable::builtin();
        if let Some(overrides) = &self.file.pricing {
            let path = self.file_path.clone().unwrap_or_default();
            let text = toml::to_string(overrides).map_err(|e| ConfigError::File {
                path: path.clone(),
                message: format!("[pricing]: {e}"),
            })?;
            let origin = format!("{} [pricing]", path.display());
            let parsed = botarmy_llm::PriceTable::from_toml(&text, &origin).map_err(|e| {
                ConfigError::File {
                    path,
                    message: e.to_string(),
                }
            })?;
            table.merge(parsed);
        }
        Ok(table)
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: format!("cannot read it: {e}"),
    })?;
    let mut file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // Each MCP server is named by its table's key, and checked before anything starts; a
    // relative working folder is relative to this file.
    let base = path.parent().unwrap_or(Path::new("."));
    file.mcp = std::mem::take(&mut file.mcp)
        .into_iter()
        .map(|(name, server)| {
            let mut server = server.named(name.clone());
            if let Some(cwd) = server.cwd.as_mut().filter(|c| c.is_relative()) {
                *cwd = base.join(&*cwd);
            }
            server.validate().map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: format!("[mcp.{name}]: {e}"),
            })?;
            Ok((name, server))
        })
        .collect::<Result<_, ConfigError>>()?;
    Ok(file)
}

fn default_home() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("botarmy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_put_the_database_in_the_home_folder() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        let c = Config::load(env(&[("BOTARMY_HOME", &home)])).unwrap();
        assert_eq!(c.database_url, format!("sqlite://{home}/botarmy.db"));
        assert_eq!(c.models_dir(), dir.path().join("models"));
        assert!(c.llm().provider.is_none());
    }

    #[test]
    fn bad_values_name_the_variable_and_what_was_expected() {
        let e =
            Config::load(env(&[("BOTARMY_HOME", "/x"), ("BOTARMY_THREADS", "zero")])).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Var {
                    key: "BOTARMY_THREADS",
                    ..
                }
            ),
            "{e}"
        );
        let e = Config::load(env(&[
            ("BOTARMY_HOME", "/x"),
            ("BOTARMY_CONFIG", "/no/such.toml"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("BOTARMY_CONFIG=\"/no/such.toml\""),
            "{e}"
        );
    }

    #[test]
    fn the_file_is_read_from_home_and_its_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        std::fs::write(
            dir.path().join("botarmy.toml"),
            "provider = \"openai\"\n[agents.coder]\nmodel = \"gpt-4.1\"\n",
        )
        .unwrap();
        let c = Config::load(env(&[("BOTARMY_HOME", &home)])).unwrap();
        assert_eq!(c.llm().provider.as_deref(), Some("openai"));
        assert_eq!(c.llm().agents["coder"].model.as_deref(), Some("gpt-4.1"));

        std::fs::write(
            dir.path().join("botarmy.toml"),
            "provider = \"openai\"\nmodle = 1\n",
        )
        .unwrap();
        let e = Config::load(env(&[("BOTARMY_HOME", &home)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("botarmy.toml") && e.contains("modle") && e.contains("line 2"),
            "{e}"
        );
    }

    #[test]
    fn pricing_overrides_merge_over_the_builtin_table() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        std::fs::write(
            dir.path().join("botarmy.toml"),
            "[pricing]\nas_of = \"2026-11-01\"\n[pricing.providers.my-vllm.models.\"qwen\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
        )
        .unwrap();
        let c = Config::load(env(&[("BOTARMY_HOME", &home)])).unwrap();
        let table = c.pricing().unwrap();
        assert!(matches!(
            table.lookup("my-vllm", "qwen"),
            botarmy_llm::PriceLookup::Priced(_)
        ));
        assert!(matches!(
            table.lookup("openai", "gpt-4.1"),
            botarmy_llm::PriceLookup::Priced(_)
        ));
    }
}
