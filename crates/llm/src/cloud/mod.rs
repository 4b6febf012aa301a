//! Cloud chat models behind [`Provider`]: OpenAI (Chat Completions), any OpenAI-compatible
//! server (Ollama, vLLM, LM Studio, llama.cpp server), Anthropic (Messages), Google Gemini
//! (generateContent) and Gemini on Vertex AI with a service account.
//!
//! One [`CloudProvider`], described by data ([`CloudConfig`], its [`CloudKind`] picks the wire
//! format): the `genai` crate builds the request bodies and reads the answers (SSE streams,
//! tool-call deltas, usage); BotArmy sets the URL and headers of every call itself, signs
//! Vertex's service account token itself, and maps every failure to an [`LlmError`] that says
//! what to do about it (status, the provider's message, `retry-after`, which timeout fired, a
//! stream that was cut short). A provider makes exactly one attempt per call: retries, rate
//! limits and failover belong to the resilience layer above it. The one exception is Vertex's
//! access token, which is fetched again once when Vertex rejects it.
//!
//! Sent: system prompts (as each API wants them), the conversation with tool calls and tool
//! results, tools as JSON Schema functions, `max_tokens` (Anthropic requires one: genai picks
//! the model's maximum when the request leaves it at 0), temperature, stop strings and the seed
//! (not to Anthropic, which has none). Not sent: [`ChatRequest::grammar`], which no cloud API
//! takes.

mod answer;
mod config;
mod failure;
mod outbound;
mod service_account;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

pub use config::{CloudConfig, CloudKind, UnknownCloudKind, VertexConfig};

use self::config::Wire;
use self::failure::Limits;
use self::outbound::Credential;
use self::service_account::{ServiceAccount, TokenSource};
use crate::{ChatRequest, ChatResponse, LlmError, Provider, TokenSink};

/// A chat model of a cloud provider (or of an OpenAI-compatible server), reached over HTTP.
pub struct CloudProvider {
    config: CloudConfig,
    /// The root the kind's paths are appended to (no trailing slash): `.../v1` for
    /// Chat Completions, the host for Messages, `.../v1beta` for Gemini, `.../publishers/google`
    /// for Vertex.
    root: String,
    http: reqwest::Client,
    genai: genai::Client,
    limits: Limits,
    /// Vertex's access tokens.
    tokens: Option<TokenSource>,
}

impl std::fmt::Debug for CloudProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudProvider")
            .field("config", &self.config)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl CloudProvider {
    /// Checks `config` and prepares the HTTP client; for Vertex, reads the service account
    /// key. Fails with [`LlmError::Fatal`] naming the setting that is missing or wrong.
    pub fn new(config: CloudConfig) -> Result<Self, LlmError> {
        let id = config.id.clone();
        let fatal = |message: String| LlmError::Fatal {
            provider: id.clone(),
            message,
        };
        if config.id.trim().is_empty() {
            return Err(fatal("the provider id is empty".to_owned()));
        }
        if config.default_model.trim().is_empty() {
            return Err(fatal(format!(
                "no default model configured for the {} provider",
                config.kind
            )));
        }
        if config.kind == CloudKind::Vertex && config.vertex.is_none() {
            return Err(fatal(
                "the vertex provider needs a project, a region and a service account key"
                    .to_owned(),
            ));
        }
        let key = config.api_key.as_deref().filter(|k| !k.trim().is_empty());
        if config.kind.needs_api_key() && key.is_none() {
            return Err(fatal(format!(
                "no API key configured for the {} provider",
                config.kind
            )));
        }
        for (name, value) in &config.headers {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                fatal(format!(
                    "extra header name `{name}` is not a valid header name"
                ))
            })?;
            HeaderValue::from_str(value).map_err(|_| {
                fatal(format!(
                    "extra header `{name}` has a value that is not a valid header value"
                ))
            })?;
        }
        let root = api_root(&config).map_err(fatal)?;
        let limits = Limits {
            connect: config.connect_timeout,
            first_byte: config.first_byte_timeout,
            chunk: config.chunk_timeout,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| fatal(format!("the HTTP client could not be built: {e}")))?;
        let genai = genai::Client::builder()
            .with_reqwest(http.clone())
            .build()
            .map_err(|e| fatal(format!("the genai client could not be built: {e}")))?;
        let tokens = match (&config.kind, &config.vertex) {
            (CloudKind::Vertex, Some(v)) => {
                let account = ServiceAccount::load(&v.credentials_path).map_err(fatal)?;
                Some(TokenSource::new(
                    account,
                    http.clone(),
                    config.id.clone(),
                    limits,
                ))
            }
            _ => None,
        };
        Ok(Self {
            config,
            root,
            http,
            genai,
            limits,
            tokens,
        })
    }

    /// The provider's configuration.
    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    fn credential<'a>(&'a self, token: Option<&'a str>) -> Credential<'a> {
        match (token, self.config.api_key.as_deref()) {
            (Some(token), _) => Credential::Bearer(token),
            (None, Some(key)) if !key.trim().is_empty() => Credential::ApiKey(key),
            _ => Credential::None,
        }
    }

    /// One call, with the given Vertex token (if any).
    async fn attempt(
        &self,
        model: &str,
        conversation: genai::chat::ChatRequest,
        options: &genai::chat::ChatOptions,
        token: Option<&str>,
        on_token: TokenSink<'_>,
    ) -> Result<answer::Answer, LlmError> {
        let kind = self.config.kind;
        let stream = self.config.stream;
        let url = outbound::chat_url(kind, &self.root, model, stream);
        let headers = outbound::headers(kind, self.credential(token), &self.config.headers);
        let target = outbound::target(kind, model, url, headers);
        let id = self.config.id.as_str();
        if stream {
            let response = self
                .genai
                .exec_chat_stream(target, conversation, Some(options))
                .await
                .map_err(|e| failure::from_genai(id, e, &self.limits))?;
            answer::read_stream(id, kind.wire(), response.stream, on_token, &self.limits).await
        } else {
            let response = self
                .genai
                .exec_chat(target, conversation, Some(options))
                .await
                .map_err(|e| failure::from_genai(id, e, &self.limits))?;
            answer::read_whole(id, response, on_token)
        }
    }

    /// GETs the provider's model list; says what was checked.
    async fn list_models(&self) -> Result<String, LlmError> {
        let kind = self.config.kind;
        let url = match kind.wire() {
            Wire::Messages => format!("{}/v1/models", self.root),
            Wire::ChatCompletions | Wire::GenerateContent => format!("{}/models", self.root),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in outbound::headers(kind, self.credential(None), &self.config.headers) {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
        let id = self.config.id.as_str();
        let send = self.http.get(&url).headers(headers).send();
        let response = tokio::time::timeout(self.limits.first_byte, send)
            .await
            .map_err(|_| LlmError::Timeout {
                provider: id.to_owned(),
                during: "waiting for the answer",
                after: self.limits.first_byte,
            })?
            .map_err(|e| failure::from_reqwest(id, &e, &self.limits))?;
        let status = response.status().as_u16();
        let response_headers = response.headers().clone();
        let body = tokio::time::timeout(self.limits.chunk, response.text())
            .await
            .map_err(|_| LlmError::Timeout {
                provider: id.to_owned(),
                during: "between stream chunks",
                after: self.limits.chunk,
            })?
            .map_err(|e| failure::from_reqwest(id, &e, &self.limits))?;
        if !(200..300).contains(&status) {
            return Err(failure::from_status(id, status, &response_headers, &body));
        }
        let listed = model_names(&body);
        let default = &self.config.default_model;
        let about_default = if listed.iter().any(|m| m == default) {
            format!(", including the default {default}")
        } else {
            format!(" (the default {default} is not among those listed)")
        };
        let auth = if matches!(self.credential(None), Credential::None) {
            "answered"
        } else {
            "key accepted"
        };
        Ok(format!(
            "GET {url}: {auth}; {} models listed{about_default}",
            listed.len()
        ))
    }
}

/// The root the kind's paths are appended to, from the configured or default base URL.
fn api_root(config: &CloudConfig) -> Result<String, String> {
    let kind = config.kind;
    let base = match (&config.base_url, kind.default_base_url(), &config.vertex) {
        (Some(url), _, _) => url.trim().trim_end_matches('/').to_owned(),
        (None, Some(url), _) => url.to_owned(),
        (None, None, Some(v)) if kind == CloudKind::Vertex => {
            format!("https://{}-aiplatform.googleapis.com", v.region)
        }
        (None, None, _) => return Err(format!("no base URL configured for the {kind} provider")),
    };
    match reqwest::Url::parse(&base) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => return Err(format!("base URL `{base}` is not an http(s) URL")),
    }
    Ok(match (kind.wire(), &config.vertex) {
        (Wire::GenerateContent, Some(v)) if kind == CloudKind::Vertex => {
            if v.project.trim().is_empty() || v.region.trim().is_empty() {
                return Err("the vertex provider needs both a project and a region".to_owned());
            }
            format!(
                "{base}/v1/projects/{}/locations/{}/publishers/google",
                v.project, v.region
            )
        }
        // Ollama's own address is often given without the OpenAI-compatible path.
        (Wire::ChatCompletions, _) if kind == CloudKind::Ollama && !base.ends_with("/v1") => {
            format!("{base}/v1")
        }
        (Wire::ChatCompletions, _) => base,
        (Wire::Messages, _) => base.trim_end_matches("/v1").to_owned(),
        (Wire::GenerateContent, _) if base.ends_with("/v1beta") || base.ends_with("/v1") => base,
        (Wire::GenerateContent, _) => format!("{base}/v1beta"),
    })
}

/// Model ids from a model list: `{"data": [{"id"}]}` (OpenAI, Anthropic) or
/// `{"models": [{"name": "models/..."}]}` (Gemini).
fn model_names(body: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let from = |key: &str, field: &str| -> Option<Vec<String>> {
        Some(
            value
                .get(key)?
                .as_array()?
                .iter()
                .filter_map(|m| m.get(field).and_then(Value::as_str))
                .map(|name| name.strip_prefix("models/").unwrap_or(name).to_owned())
                .collect(),
        )
    };
    from("data", "id")
        .or_else(|| from("models", "name"))
        .unwrap_or_default()
}

#[async_trait]
impl Provider for CloudProvider {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn supports_tools(&self) -> bool {
        true
    }

    fn default_model(&self) -> &str {
        &self.config.default_model
    }

    fn known_models(&self) -> Option<Vec<String>> {
        self.config.models.clone()
    }

    /// Lists the models (OpenAI-style, Anthropic and Gemini: nothing billed) or, for Vertex,
    /// exchanges the service account's token.
    async fn ping(&self) -> Result<String, LlmError> {
        match &self.tokens {
            Some(tokens) => {
                tokens.token(None).await?;
                Ok(format!(
                    "service account {}: access token obtained from {}",
                    tokens.account().email(),
                    tokens.account().token_uri()
                ))
            }
            None => self.list_models().await,
        }
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let id = self.config.id.as_str();
        let model = if request.model.trim().is_empty() {
            self.config.default_model.as_str()
        } else {
            request.model.as_str()
        };
        let conversation = outbound::conversation(request).map_err(|message| LlmError::Fatal {
            provider: id.to_owned(),
            message,
        })?;
        let options = outbound::options(request, self.config.kind)
            .with_stream_header_timeout(self.config.first_byte_timeout)
            .with_stream_read_timeout(self.config.chunk_timeout);
        let call = async {
            let Some(tokens) = &self.tokens else {
                return self
                    .attempt(model, conversation, &options, None, on_token)
                    .await;
            };
            let token = tokens.token(None).await?;
            match self
                .attempt(
                    model,
                    conversation.clone(),
                    &options,
                    Some(&token),
                    on_token,
                )
                .await
            {
                // A token revoked or expired early: fetch a new one, once.
                Err(LlmError::Unauthorized { status: 401, .. }) => {
                    let fresh = tokens.token(Some(&token)).await?;
                    self.attempt(model, conversation, &options, Some(&fresh), on_token)
                        .await
                }
                other => other,
            }
        };
        let answer = tokio::time::timeout(self.config.request_timeout, call)
            .await
            .map_err(|_| LlmError::Timeout {
                provider: id.to_owned(),
                during: "receiving the whole answer",
                after: self.config.request_timeout,
            })??;
        Ok(ChatResponse {
            text: answer.text,
            usage: answer.usage,
            provider: id.to_owned(),
            model: model.to_owned(),
            finish: answer.finish,
            tool_calls: answer.tool_calls,
        })
    }
}
