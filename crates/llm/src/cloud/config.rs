//! What a cloud provider is: its wire format, where it answers, how it is authorised and how
//! long each part of a call may take. Plain data, filled in by the configuration layer.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The wire format (and defaults) a cloud provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloudKind {
    /// OpenAI's Chat Completions API (`POST {base}/chat/completions`, bearer key).
    OpenAi,
    /// Any server speaking the Chat Completions API (vLLM, LM Studio, llama.cpp server):
    /// a configured base URL, key optional.
    OpenAiCompatible,
    /// Ollama through its OpenAI-compatible endpoint (`http://localhost:11434/v1`), no key.
    Ollama,
    /// Anthropic's Messages API (`POST {base}/v1/messages`, `x-api-key`).
    Anthropic,
    /// Google's Gemini API (`POST {base}/v1beta/models/{model}:streamGenerateContent`,
    /// `x-goog-api-key`).
    Gemini,
    /// Gemini through Vertex AI, authorised with a service account key (see [`VertexConfig`]).
    Vertex,
}

impl CloudKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [CloudKind; 6] = [
        CloudKind::OpenAi,
        CloudKind::OpenAiCompatible,
        CloudKind::Ollama,
        CloudKind::Anthropic,
        CloudKind::Gemini,
        CloudKind::Vertex,
    ];

    /// The kind's configuration name (`openai`, `openai-compatible`, `ollama`, `anthropic`,
    /// `gemini`, `vertex`), also the default provider id.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::OpenAiCompatible => "openai-compatible",
            Self::Ollama => "ollama",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Vertex => "vertex",
        }
    }

    /// The base URL used when none is configured. `None`: it must be configured
    /// (`openai-compatible`) or is derived from other settings (`vertex`: from the region).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("https://api.openai.com/v1"),
            Self::OpenAiCompatible | Self::Vertex => None,
            Self::Ollama => Some("http://localhost:11434/v1"),
            Self::Anthropic => Some("https://api.anthropic.com"),
            Self::Gemini => Some("https://generativelanguage.googleapis.com"),
        }
    }

    /// Whether calls need an API key (`vertex` needs a service account instead).
    pub fn needs_api_key(self) -> bool {
        matches!(self, Self::OpenAi | Self::Anthropic | Self::Gemini)
    }

    /// The wire format family.
    pub(super) fn wire(self) -> Wire {
        match self {
            Self::OpenAi | Self::OpenAiCompatible | Self::Ollama => Wire::ChatCompletions,
            Self::Anthropic => Wire::Messages,
            Self::Gemini | Self::Vertex => Wire::GenerateContent,
        }
    }
}

/// The three wire formats behind the six kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    /// OpenAI Chat Completions.
    ChatCompletions,
    /// Anthropic Messages.
    Messages,
    /// Google generateContent.
    GenerateContent,
}

impl fmt::Display for CloudKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A provider kind name that is not one of [`CloudKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown cloud provider kind `{0}`; expected one of openai, openai-compatible, ollama, anthropic, gemini, vertex"
)]
pub struct UnknownCloudKind(pub String);

impl FromStr for CloudKind {
    type Err = UnknownCloudKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        match wanted.as_str() {
            "openai-compatible" | "openai-compat" => Ok(Self::OpenAiCompatible),
            "google" => Ok(Self::Gemini),
            "vertex-ai" | "vertexai" => Ok(Self::Vertex),
            other => Self::ALL
                .into_iter()
                .find(|k| k.name() == other)
                .ok_or_else(|| UnknownCloudKind(s.to_owned())),
        }
    }
}

/// Where Vertex AI answers and which service account signs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexConfig {
    /// Google Cloud project id.
    pub project: String,
    /// Region (`us-central1`); also picks the default host `https://{region}-aiplatform.googleapis.com`.
    pub region: String,
    /// The service account's JSON key file (`GOOGLE_APPLICATION_CREDENTIALS`).
    pub credentials_path: PathBuf,
}

/// One cloud provider: what [`super::CloudProvider::new`] is built from.
#[derive(Clone)]
pub struct CloudConfig {
    /// Provider id used in routes, records and errors (`openai`, `my-vllm`).
    pub id: String,
    /// Wire format and defaults.
    pub kind: CloudKind,
    /// Base URL (`None`: [`CloudKind::default_base_url`]). For `openai`-style kinds it
    /// includes the version (`https://api.openai.com/v1`; for `ollama`, `/v1` is added when
    /// missing); for `anthropic` and `gemini` it is
    /// the host (`https://api.anthropic.com`); for `vertex` it replaces
    /// `https://{region}-aiplatform.googleapis.com`.
    pub base_url: Option<String>,
    /// API key (never logged; required by [`CloudKind::needs_api_key`]).
    pub api_key: Option<String>,
    /// Model used when a request leaves `model` empty.
    pub default_model: String,
    /// Models this provider is known to offer (`None`: any name is accepted).
    pub models: Option<Vec<String>>,
    /// Limit on establishing the connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit on waiting for the response headers once the request is sent.
    pub first_byte_timeout: Duration,
    /// Limit on silence between two chunks of a streamed answer (a stalled stream).
    pub chunk_timeout: Duration,
    /// Limit on the whole call, however steadily it streams.
    pub request_timeout: Duration,
    /// Stream answers (`true`, the default) or ask for the whole answer at once (for servers
    /// whose streams lack usage); tokens are passed on either way. A whole answer is bounded
    /// by `connect_timeout` and `request_timeout` only (it has no chunks to wait between).
    pub stream: bool,
    /// Extra headers sent with every request (an organisation or project header, a proxy's
    /// key).
    pub headers: Vec<(String, String)>,
    /// Vertex AI settings (required for [`CloudKind::Vertex`]).
    pub vertex: Option<VertexConfig>,
}

impl CloudConfig {
    /// A configuration of `kind` answering with `default_model` by default, with the kind's
    /// name as id, its default base URL, no key and the default limits: 10 s to connect,
    /// 60 s to the first byte, 120 s between chunks, 10 minutes in all.
    pub fn new(kind: CloudKind, default_model: impl Into<String>) -> Self {
        Self {
            id: kind.name().to_owned(),
            kind,
            base_url: None,
            api_key: None,
            default_model: default_model.into(),
            models: None,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            chunk_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(600),
            stream: true,
            headers: Vec::new(),
            vertex: None,
        }
    }
}

impl fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("CloudConfig")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("default_model", &self.default_model)
            .field("models", &self.models)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("chunk_timeout", &self.chunk_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("stream", &self.stream)
            .field("headers", &header_names)
            .field("vertex", &self.vertex)
            .finish()
    }
}
