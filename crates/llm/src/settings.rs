//! Which providers exist and which agent uses which, from `botarmy.toml` and the
//! environment, checked as a whole before any run starts.
//!
//! The file's LLM part:
//!
//! ```toml
//! provider = "anthropic"            # default for every agent (env BOTARMY_PROVIDER)
//! model = "claude-sonnet-4-5"       # its model (env BOTARMY_MODEL)
//!
//! [providers.openai]                # any of openai, anthropic, gemini, vertex, ollama, or
//! requests_per_minute = 500         # an id of your own with `kind = "openai-compatible"`
//! tokens_per_minute = 200000
//! retry = { max_retries = 3, base_delay = 500, max_delay = 30000, max_retry_after = 120000 }
//!
//! [providers.my-vllm]
//! kind = "openai-compatible"
//! base_url = "http://gpu-box:8000/v1"
//! model = "qwen2.5-coder"
//!
//! [agents.architect]                # env ARCHITECT_AGENT_PROVIDER / ARCHITECT_AGENT_MODEL
//! provider = "openai"
//! model = "gpt-4.1"
//! failover = ["anthropic/claude-sonnet-4-5", "gemini"]   # env ARCHITECT_AGENT_FAILOVER
//! ```
//!
//! The environment wins over the file. Keys come from the environment only
//! (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY` or `GOOGLE_API_KEY`, or the
//! variable a provider names in `api_key_env`); endpoints from `OPENAI_BASE_URL`,
//! `ANTHROPIC_BASE_URL`, `GEMINI_BASE_URL`, `OLLAMA_BASE_URL` or the file (a provider of
//! another id with a `base_url` of its own, such as a second Anthropic endpoint, keeps
//! it); Vertex's service account from `GOOGLE_APPLICATION_CREDENTIALS`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::cloud::{CloudConfig, CloudKind, VertexConfig};
use crate::resilience::{BreakerConfig, RateLimits, RetryPolicy};
use crate::router::ProviderPolicy;

/// The in-process providers, which the binary builds itself.
pub const LOCAL: &str = "local";
/// Replay of a recorded cassette.
pub const REPLAY: &str = "replay";

/// The LLM part of `botarmy.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Default provider id for every agent.
    pub provider: Option<String>,
    /// Default model.
    pub model: Option<String>,
    /// Providers by id.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Per-agent choices by agent id.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentSettings>,
}

/// One provider in `botarmy.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Wire format (`openai`, `openai-compatible`, `ollama`, `anthropic`, `gemini`,
    /// `vertex`); default: the id, when it names one.
    pub kind: Option<String>,
    /// Endpoint.
    pub base_url: Option<String>,
    /// The environment variable holding the key (default: the kind's usual one).
    pub api_key_env: Option<String>,
    /// Default model.
    pub model: Option<String>,
    /// Models the provider offers, to catch typos before a run.
    pub models: Option<Vec<String>>,
    /// Vertex: Google Cloud project.
    pub project: Option<String>,
    /// Vertex: region.
    pub region: Option<String>,
    /// Vertex: the service account key (default `GOOGLE_APPLICATION_CREDENTIALS`).
    pub credentials: Option<PathBuf>,
    /// Seconds to connect.
    pub connect_timeout_secs: Option<u64>,
    /// Seconds to the first byte of the answer.
    pub first_byte_timeout_secs: Option<u64>,
    /// Seconds of silence allowed between two chunks of a stream.
    pub chunk_timeout_secs: Option<u64>,
    /// Seconds for a whole call.
    pub request_timeout_secs: Option<u64>,
    /// Stream answers (default true).
    pub stream: Option<bool>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests per minute, shared by every run of the process.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u32>,
    /// Retries and backoff.
    pub retry: Option<RetryPolicy>,
    /// Circuit breaker.
    pub breaker: Option<BreakerConfig>,
}

/// One agent in `botarmy.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Provider id.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Routes tried in order when the first fails: `provider` or `provider/model`.
    #[serde(default)]
    pub failover: Vec<String>,
}

/// A provider id and the model to ask it for (empty: its default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Provider id.
    pub provider: String,
    /// Model (empty: the provider's default).
    pub model: String,
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.model.is_empty() {
            write!(f, "{}", self.provider)
        } else {
            write!(f, "{}/{}", self.provider, self.model)
        }
    }
}

impl RouteSpec {
    /// `provider` or `provider/model` (a model may itself contain `/`).
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        match text.split_once('/') {
            Some((p, m)) => Self {
                provider: p.trim().to_owned(),
                model: m.trim().to_owned(),
            },
            None => Self {
                provider: text.to_owned(),
                model: String::new(),
            },
        }
    }
}

/// Where a resolved provider comes from.
#[derive(Debug, Clone)]
pub enum ProviderSource {
    /// The embedded model or a GGUF file (built by the binary).
    Local,
    /// A cassette (built by the binary).
    Replay,
    /// A cloud provider.
    Cloud(Box<CloudConfig>),
}

/// A provider the routes need, ready to build.
#[derive(Debug, Clone)]
pub struct ResolvedProvider {
    /// Id used in routes and records.
    pub id: String,
    /// What to build.
    pub source: ProviderSource,
    /// Pacing and retries.
    pub policy: ProviderPolicy,
    /// Where the key came from (`OPENAI_API_KEY`), for display; never the key.
    pub key_from: Option<String>,
}

/// Every route and provider, resolved and checked.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The chain of agents without one of their own.
    pub default: Vec<RouteSpec>,
    /// Chains by agent id.
    pub agents: BTreeMap<String, Vec<RouteSpec>>,
    /// Providers used by some chain, in first-use order.
    pub providers: Vec<ResolvedProvider>,
}

/// Default models of the cloud kinds, used when neither the file nor the environment
/// names one.
pub fn default_model(kind: CloudKind) -> Option<&'static str> {
    match kind {
        CloudKind::OpenAi => Some("gpt-4.1-mini"),
        CloudKind::Anthropic => Some("claude-sonnet-4-5"),
        CloudKind::Gemini | CloudKind::Vertex => Some("gemini-2.5-flash"),
        CloudKind::Ollama => Some("llama3.2"),
        CloudKind::OpenAiCompatible => None,
    }
}

fn key_vars(kind: CloudKind) -> &'static [&'static str] {
    match kind {
        CloudKind::OpenAi => &["OPENAI_API_KEY"],
        CloudKind::Anthropic => &["ANTHROPIC_API_KEY"],
        CloudKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        CloudKind::OpenAiCompatible => &["OPENAI_COMPATIBLE_API_KEY"],
        CloudKind::Ollama | CloudKind::Vertex => &[],
    }
}

fn base_url_var(kind: CloudKind) -> Option<&'static str> {
    match kind {
        CloudKind::OpenAi => Some("OPENAI_BASE_URL"),
        CloudKind::Anthropic => Some("ANTHROPIC_BASE_URL"),
        CloudKind::Gemini => Some("GEMINI_BASE_URL"),
        CloudKind::Ollama => Some("OLLAMA_BASE_URL"),
        CloudKind::OpenAiCompatible | CloudKind::Vertex => None,
    }
}

/// The environment variable prefix of an agent: `ARCHITECT` for `architect`,
/// `UX_EXPERT` for `ux-expert`.
pub fn agent_env_prefix(agent: &str) -> String {
    agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl LlmSettings {
    /// Resolves every agent's chain and every provider it needs. `env` is a snapshot of the
    /// environment; `agents` the agent ids of the method (so `<AGENT>_AGENT_*` variables of
    /// each are read; variables of other agents are read too). Every problem is reported
    /// at once, each naming the setting at fault.
    pub fn resolve(
        &self,
        env: &BTreeMap<String, String>,
        agents: &[String],
    ) -> Result<Resolved, Vec<String>> {
        let get = |k: &str| env_value(env, k);
        let mut problems = Vec::new();

        let default_provider = get("BOTARMY_PROVIDER")
            .map(str::to_owned)
            .or_else(|| self.provider.clone())
            .unwrap_or_else(|| LOCAL.to_owned());
        let default_model = get("BOTARMY_MODEL")
            .map(str::to_owned)
            .or_else(|| self.model.clone())
            .unwrap_or_default();
        let default = vec![RouteSpec {
            provider: default_provider,
            model: default_model,
        }];

        // Agents named by the method, the file, or an environment variable.
        let mut ids: Vec<String> = agents.to_vec();
        ids.extend(self.agents.keys().cloned());
        for key in env.keys() {
            for suffix in ["_AGENT_PROVIDER", "_AGENT_MODEL", "_AGENT_FAILOVER"] {
                if let Some(prefix) = key.strip_suffix(suffix)
                    && !ids.iter().any(|a| agent_env_prefix(a) == prefix)
                {
                    ids.push(prefix.to_ascii_lowercase().replace('_', "-"));
                }
            }
        }
        ids.sort();
        ids.dedup();

        let mut chains = BTreeMap::new();
        for agent in &ids {
            let prefix = agent_env_prefix(agent);
            let file = self.agents.get(agent);
            let provider = get(&format!("{prefix}_AGENT_PROVIDER"))
                .map(str::to_owned)
                .or_else(|| file.and_then(|a| a.provider.clone()));
            let model = get(&format!("{prefix}_AGENT_MODEL"))
                .map(str::to_owned)
                .or_else(|| file.and_then(|a| a.model.clone()));
            let failover: Vec<RouteSpec> = match get(&format!("{prefix}_AGENT_FAILOVER")) {
                Some(list) => list
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(RouteSpec::parse)
                    .collect(),
                None => file
                    .map(|a| a.failover.iter().map(|s| RouteSpec::parse(s)).collect())
                    .unwrap_or_default(),
            };
            if provider.is_none() && model.is_none() && failover.is_empty() {
                continue;
            }
            let first = match (provider, model) {
                (Some(p), m) => RouteSpec {
                    provider: p,
                    model: m.unwrap_or_default(),
                },
                // Only a model: the default provider with that model.
                (None, Some(m)) => RouteSpec {
                    provider: default[0].provider.clone(),
                    model: m,
                },
                (None, None) => default[0].clone(),
            };
            let mut chain = vec![first];
            chain.extend(failover);
            chains.insert(agent.clone(), chain);
        }

        // Every provider some chain names, once.
        let mut providers: Vec<ResolvedProvider> = Vec::new();
        let all = default.iter().chain(chains.values().flatten());
        for spec in all {
            if providers.iter().any(|p| p.id == spec.provider) {
                continue;
            }
            match self.provider(&spec.provider, env) {
                Ok(p) => providers.push(p),
                Err(mut e) => problems.append(&mut e),
            }
        }
        // Models a provider says it does not offer.
        let mut check_model = |who: &str, spec: &RouteSpec| {
            let Some(p) = providers.iter().find(|p| p.id == spec.provider) else {
                return;
            };
            if let ProviderSource::Cloud(c) = &p.source
                && let Some(models) = &c.models
                && !spec.model.is_empty()
                && !models.iter().any(|m| m == &spec.model)
            {
                problems.push(format!(
                    "{who}: provider `{}` does not offer model `{}` (it offers {})",
                    spec.provider,
                    spec.model,
                    models.join(", ")
                ));
            }
        };
        for spec in &default {
            check_model("default route (BOTARMY_PROVIDER/BOTARMY_MODEL)", spec);
        }
        for (agent, chain) in &chains {
            for spec in chain {
                check_model(&format!("agent `{agent}`"), spec);
            }
        }
        if problems.is_empty() {
            Ok(Resolved {
                default,
                agents: chains,
                providers,
            })
        } else {
            Err(problems)
        }
    }

    /// One provider, from the file and the environment.
    fn provider(
        &self,
        id: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<ResolvedProvider, Vec<String>> {
        let get = |k: &str| env_value(env, k);
        let file = self.providers.get(id).cloned().unwrap_or_default();
        let policy = ProviderPolicy {
            retry: file.retry.unwrap_or_default(),
            limits: RateLimits {
                requests_per_minute: file.requests_per_minute,
                tokens_per_minute: file.tokens_per_minute,
            },
            breaker: file.breaker.unwrap_or_default(),
        };
        let kind_name = file.kind.clone().unwrap_or_else(|| id.to_owned());
        if kind_name == LOCAL || kind_name == REPLAY {
            return Ok(ResolvedProvider {
                id: id.to_owned(),
                source: if kind_name == LOCAL {
                    ProviderSource::Local
                } else {
                    ProviderSource::Replay
                },
                policy,
                key_from: None,
            });
        }
        let kind: CloudKind = match kind_name.parse() {
            Ok(kind) => kind,
            Err(_) if file.kind.is_none() && !self.providers.contains_key(id) => {
                return Err(vec![format!(
                    "unknown provider `{id}`: use local, replay, openai, anthropic, gemini, vertex, ollama, or declare [providers.{id}] with a kind in botarmy.toml"
                )]);
            }
            Err(e) => return Err(vec![format!("[providers.{id}] kind: {e}")]),
        };
        let mut problems = Vec::new();
        let mut config = CloudConfig::new(
            kind,
            file.model
                .clone()
                .or_else(|| default_model(kind).map(str::to_owned))
                .unwrap_or_default(),
        );
        config.id = id.to_owned();
        if config.default_model.is_empty() {
            problems.push(format!(
                "provider `{id}` ({kind}) has no default model: set [providers.{id}] model, or name one per agent"
            ));
        }
        // `ANTHROPIC_BASE_URL` and the like are the endpoints of the providers of those
        // names (where they win over the file); a provider of another id with a `base_url`
        // of its own (a second endpoint of the same kind) keeps it.
        let env_url = base_url_var(kind).and_then(get).map(str::to_owned);
        config.base_url = if id == kind.name() {
            env_url.or(file.base_url.clone())
        } else {
            file.base_url.clone().or(env_url)
        };
        if kind == CloudKind::OpenAiCompatible && config.base_url.is_none() {
            problems.push(format!(
                "provider `{id}` (openai-compatible) needs base_url in [providers.{id}]"
            ));
        }
        let key_names: Vec<String> = match &file.api_key_env {
            Some(var) => vec![var.clone()],
            None => key_vars(kind).iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut key_from = None;
        for name in &key_names {
            if let Some(key) = get(name) {
                config.api_key = Some(key.to_owned());
                key_from = Some(name.clone());
                break;
            }
        }
        if kind.needs_api_key() && config.api_key.is_none() {
            problems.push(format!(
                "provider `{id}` ({kind}) needs an API key: set {}",
                key_names.join(" or ")
            ));
        }
        config.models = file.models.clone();
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        config.connect_timeout = secs(file.connect_timeout_secs, config.connect_timeout);
        config.first_byte_timeout = secs(file.first_byte_timeout_secs, config.first_byte_timeout);
        config.chunk_timeout = secs(file.chunk_timeout_secs, config.chunk_timeout);
        config.request_timeout = secs(file.request_timeout_secs, config.request_timeout);
        config.stream = file.stream.unwrap_or(true);
        config.headers = file.headers.clone().into_iter().collect();
        if kind == CloudKind::Vertex {
            let credentials = file
                .credentials
                .clone()
                .or_else(|| get("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from));
            let project = file
                .project
                .clone()
                .or_else(|| get("GOOGLE_CLOUD_PROJECT").map(str::to_owned));
            let region = file
                .region
                .clone()
                .or_else(|| get("GOOGLE_CLOUD_REGION").map(str::to_owned));
            match (credentials, project, region) {
                (Some(credentials_path), Some(project), Some(region)) => {
                    if !credentials_path.is_file() {
                        problems.push(format!(
                            "provider `{id}` (vertex): the service account key {} does not exist",
                            credentials_path.display()
                        ));
                    }
                    key_from = Some(credentials_path.display().to_string());
                    config.vertex = Some(VertexConfig {
                        project,
                        region,
                        credentials_path,
                    });
                }
                (credentials, project, region) => {
                    let mut missing = Vec::new();
                    if credentials.is_none() {
                        missing.push("GOOGLE_APPLICATION_CREDENTIALS (a service account JSON key)");
                    }
                    if project.is_none() {
                        missing.push("project");
                    }
                    if region.is_none() {
                        missing.push("region");
                    }
                    problems.push(format!(
                        "provider `{id}` (vertex) needs {} (project and region in [providers.{id}])",
                        missing.join(", ")
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(ResolvedProvider {
                id: id.to_owned(),
                source: ProviderSource::Cloud(Box::new(config)),
                policy,
                key_from,
            })
        } else {
            Err(problems)
        }
    }
}

/// A variable's value, trimmed; unset and blank are the same.
fn env_value<'a>(env: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A key shown with all but its last four characters hidden.
pub fn mask(key: &str) -> String {
    let n = key.chars().count();
    if n <= 8 {
        return "****".into();
    }
    let tail: String = key.chars().skip(n - 4).collect();
    format!("****{tail}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(text: &str) -> LlmSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn nothing_configured_means_the_local_model_for_everyone() {
        let r = LlmSettings::default()
            .resolve(&env(&[]), &["analyst".into()])
            .unwrap();
        assert_eq!(r.default[0].provider, "local");
        assert!(r.agents.is_empty());
        assert_eq!(r.providers.len(), 1);
        assert!(matches!(r.providers[0].source, ProviderSource::Local));
    }

    #[test]
    fn env_wins_over_the_file_and_agents_get_their_chains() {
        let s = parse(
            r#"
            provider = "anthropic"
            [agents.architect]
            provider = "gemini"
            model = "gemini-2.5-pro"
            failover = ["openai/gpt-4.1", "anthropic"]
            [agents.ux-expert]
            model = "claude-opus-4-1"
            "#,
        );
        let e = env(&[
            ("ANTHROPIC_API_KEY", "sk-ant-123456789"),
            ("GEMINI_API_KEY", "g-key-123456789"),
            ("OPENAI_API_KEY", "sk-123456789"),
            ("CODER_AGENT_PROVIDER", "openai"),
            ("CODER_AGENT_MODEL", "gpt-4.1"),
            ("ARCHITECT_AGENT_MODEL", "gemini-2.5-flash"),
        ]);
        let r = s.resolve(&e, &["coder".into(), "analyst".into()]).unwrap();
        assert_eq!(r.default[0].to_string(), "anthropic");
        assert_eq!(
            r.agents["architect"]
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["gemini/gemini-2.5-flash", "openai/gpt-4.1", "anthropic"]
        );
        assert_eq!(r.agents["coder"][0].to_string(), "openai/gpt-4.1");
        assert_eq!(
            r.agents["ux-expert"][0].to_string(),
            "anthropic/claude-opus-4-1"
        );
        assert!(!r.agents.contains_key("analyst"));
        let ids: Vec<&str> = r.providers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["anthropic", "gemini", "openai"]);
        assert_eq!(r.providers[1].key_from.as_deref(), Some("GEMINI_API_KEY"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let s = parse(
            r#"
            [providers.openai]
            models = ["gpt-4.1", "gpt-4.1-mini"]
            [providers.box]
            kind = "openai-compatible"
            [agents.tester]
            provider = "openai"
            model = "gpt-4.1-typo"
            "#,
        );
        let e = env(&[
            ("BOTARMY_PROVIDER", "anthropic"),
            ("DEPLOYER_AGENT_PROVIDER", "nosuch"),
            ("ANALYST_AGENT_PROVIDER", "box"),
            ("ARCHITECT_AGENT_PROVIDER", "vertex"),
        ]);
        let problems = s.resolve(&e, &[]).unwrap_err();
        let all = problems.join("\n");
        assert!(
            all.contains("`anthropic` (anthropic) needs an API key: set ANTHROPIC_API_KEY"),
            "{all}"
        );
        assert!(all.contains("unknown provider `nosuch`"), "{all}");
        assert!(
            all.contains("`box` (openai-compatible) needs base_url"),
            "{all}"
        );
        assert!(
            all.contains("`box` (openai-compatible) has no default model"),
            "{all}"
        );
        assert!(
            all.contains("`openai` (openai) needs an API key: set OPENAI_API_KEY"),
            "{all}"
        );
        assert!(
            all.contains("(vertex) needs GOOGLE_APPLICATION_CREDENTIALS"),
            "{all}"
        );
        assert_eq!(problems.len(), 6, "{all}");
        // With the keys, only the model typo remains.
        let e = env(&[
            ("OPENAI_API_KEY", "sk-123456789"),
            ("TESTER_AGENT_MODEL", "gpt-4.1-typo"),
        ]);
        let problems = s.resolve(&e, &[]).unwrap_err();
        assert_eq!(
            problems,
            [
                "agent `tester`: provider `openai` does not offer model `gpt-4.1-typo` (it offers gpt-4.1, gpt-4.1-mini)"
            ]
        );
    }

    #[test]
    fn endpoints_and_gemini_key_fallback_come_from_the_environment() {
        let e = env(&[
            ("BOTARMY_PROVIDER", "gemini"),
            ("GOOGLE_API_KEY", "AIza-123456789"),
            ("GEMINI_BASE_URL", "http://127.0.0.1:9/"),
        ]);
        let r = LlmSettings::default().resolve(&e, &[]).unwrap();
        let ProviderSource::Cloud(c) = &r.providers[0].source else {
            panic!("not cloud")
        };
        assert_eq!(c.base_url.as_deref(), Some("http://127.0.0.1:9/"));
        assert_eq!(c.api_key.as_deref(), Some("AIza-123456789"));
        assert_eq!(c.default_model, "gemini-2.5-flash");
        assert_eq!(r.providers[0].key_from.as_deref(), Some("GOOGLE_API_KEY"));
    }

    #[test]
    fn an_endpoint_variable_does_not_move_a_second_provider_of_its_kind() {
        let s = parse(
            r#"
            [providers.anthropic-eu]
            kind = "anthropic"
            base_url = "http://eu.example:8080"
            [providers.anthropic-proxy]
            kind = "anthropic"
            [providers.anthropic]
            base_url = "http://file.example:8080"
            [agents.architect]
            provider = "anthropic-eu"
            failover = ["anthropic-proxy", "anthropic"]
            "#,
        );
        let e = env(&[
            ("BOTARMY_PROVIDER", "anthropic"),
            ("ANTHROPIC_API_KEY", "sk-ant-123456789"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
        ]);
        let r = s.resolve(&e, &[]).unwrap();
        let url = |id: &str| {
            let p = r.providers.iter().find(|p| p.id == id).unwrap();
            let ProviderSource::Cloud(c) = &p.source else {
                panic!("not cloud")
            };
            c.base_url.clone()
        };
        assert_eq!(
            url("anthropic-eu").as_deref(),
            Some("http://eu.example:8080")
        );
        assert_eq!(
            url("anthropic-proxy").as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(url("anthropic").as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = toml::from_str::<LlmSettings>("[providers.openai]\nrequests_per_min = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("requests_per_min"), "{err}");
    }

    #[test]
    fn keys_are_masked() {
        assert_eq!(mask("sk-abcdefghijkl"), "****ijkl");
        assert_eq!(mask("short"), "****");
    }
}
