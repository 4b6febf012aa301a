use std::time::Duration;

use async_trait::async_trait;
use botarmy_protocol::Usage;
pub use botarmy_protocol::{ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The requester.
    User,
    /// The model.
    Assistant,
    /// The result of a tool the model called.
    Tool,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Text (for [`Role::Tool`]: the tool's result).
    pub content: String,
    /// For [`Role::Assistant`]: the tools the model asked to run, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For [`Role::Tool`]: the id of the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A message from `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// The model's turn that asked for `calls` (with any text it said alongside).
    pub fn assistant_tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::new(Role::Assistant, content)
        }
    }

    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A request to a chat model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name as the provider knows it (empty: the provider's default).
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Cap on generated tokens.
    pub max_tokens: u32,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Seed for sampled decoding, so local runs are reproducible.
    pub seed: u64,
    /// Stop generating at any of these strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// A GBNF grammar that constrains the output, for providers that support it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
    /// Tools the model may call (empty: none; providers without tool calling ignore them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
}

impl ChatRequest {
    /// A stable digest of everything that shapes the answer (model excluded, so a cassette
    /// recorded with one model can be replayed under another name). Hex SHA-256.
    ///
    /// The contents of tool results are left out: they describe the machine the run
    /// happened on (temporary paths, timings, compiler hashes) rather than what was asked,
    /// so a recorded tool-using session replays on another machine. Which tools were called,
    /// with what, and in which order stays in.
    pub fn digest(&self) -> String {
        let masked: Vec<ChatMessage>;
        let messages: &[ChatMessage] = if self.messages.iter().any(|m| m.role == Role::Tool) {
            masked = self
                .messages
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    if m.role == Role::Tool {
                        m.content.clear();
                    }
                    m
                })
                .collect();
            &masked
        } else {
            &self.messages
        };
        #[derive(Serialize)]
        struct Canon<'a> {
            messages: &'a [ChatMessage],
            max_tokens: u32,
            temperature_milli: i64,
            seed: u64,
            stop: &'a [String],
            grammar: &'a Option<String>,
            #[serde(skip_serializing_if = "<[ToolSpec]>::is_empty")]
            tools: &'a [ToolSpec],
        }
        let canon = Canon {
            messages,
            max_tokens: self.max_tokens,
            temperature_milli: (f64::from(self.temperature) * 1000.0).round() as i64,
            seed: self.seed,
            stop: &self.stop,
            grammar: &self.grammar,
            tools: &self.tools,
        };
        let bytes = serde_json::to_vec(&canon).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The model stopped to have tools run (see [`ChatResponse::tool_calls`]).
    ToolCalls,
    /// The provider withheld the answer (safety filter).
    ContentFilter,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The generated text.
    pub text: String,
    /// Tokens (and cost, where priced).
    pub usage: Usage,
    /// The provider that answered.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// Why generation stopped.
    pub finish: FinishReason,
    /// Tools the model asked to run, in order (empty when it answered in text only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// Receives streamed text as it is generated. Called from any thread; must be quick.
pub type TokenSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Errors of a provider, by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Too many requests; try again after the given time.
    #[error("rate limited by {provider}; retry after {retry_after:?}")]
    RateLimited {
        /// Provider.
        provider: String,
        /// Hint from the provider.
        retry_after: Option<Duration>,
    },
    /// The prompt does not fit the model's context window.
    #[error("prompt of {prompt_tokens} tokens does not fit the {context} token context of {model}")]
    ContextTooLong {
        /// Model.
        model: String,
        /// Prompt size.
        prompt_tokens: u64,
        /// Context window.
        context: u64,
    },
    /// A passing failure (timeout, connection reset, 5xx); trying again may work.
    #[error("{provider}: {message}")]
    Transient {
        /// Provider.
        provider: String,
        /// What happened.
        message: String,
    },
    /// The provider answered with an HTTP error status other than 401, 403 and 429.
    /// 408, 409, 425 and 5xx are passing (retryable); other 4xx will repeat.
    #[error("{provider}: HTTP {status}: {message}")]
    Http {
        /// Provider.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's error message (from its error body when it has one).
        message: String,
        /// `retry-after`, when the provider sent one.
        retry_after: Option<Duration>,
    },
    /// The key is missing, wrong or lacks permission (HTTP 401/403): retrying cannot help,
    /// another provider may.
    #[error("{provider}: not authorized (HTTP {status}): {message}")]
    Unauthorized {
        /// Provider.
        provider: String,
        /// 401 or 403.
        status: u16,
        /// The provider's error message.
        message: String,
    },
    /// Nothing arrived in time: connecting, the first byte, or the next chunk of a stream.
    #[error("{provider}: timed out {during} after {after:?}")]
    Timeout {
        /// Provider.
        provider: String,
        /// `connecting`, `waiting for the answer`, `between stream chunks`.
        during: &'static str,
        /// The limit that was reached.
        after: Duration,
    },
    /// A failure that will repeat (bad request, auth, unknown model).
    #[error("{provider}: {message}")]
    Fatal {
        /// Provider.
        provider: String,
        /// What happened.
        message: String,
    },
    /// The local model file is missing or unusable.
    #[error("model file {path}: {problem}. {hint}")]
    ModelFile {
        /// Where it was looked for.
        path: String,
        /// What is wrong.
        problem: String,
        /// What to do.
        hint: String,
    },
    /// The replay cassette has no answer for this request.
    #[error(
        "cassette {cassette} has no recorded answer for request {digest} (call {call} with this digest); record it with `botarmy run --record`"
    )]
    NotInCassette {
        /// Cassette path.
        cassette: String,
        /// Request digest.
        digest: String,
        /// How many answers for this digest were already served.
        call: usize,
    },
    /// The call was abandoned because the step was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl LlmError {
    /// Whether trying again (later) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transient { .. } | Self::Timeout { .. } => true,
            Self::Http { status, .. } => matches!(status, 408 | 409 | 425 | 500..=599),
            _ => false,
        }
    }

    /// How long the provider asked us to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, stable name of the failure for records and metrics: `rate_limited`,
    /// `http_503`, `unauthorized`, `timeout`, `transient`, `fatal`, ...
    pub fn code(&self) -> String {
        match self {
            Self::RateLimited { .. } => "rate_limited".into(),
            Self::ContextTooLong { .. } => "context_too_long".into(),
            Self::Transient { .. } => "transient".into(),
            Self::Http { status, .. } => format!("http_{status}"),
            Self::Unauthorized { .. } => "unauthorized".into(),
            Self::Timeout { .. } => "timeout".into(),
            Self::Fatal { .. } => "fatal".into(),
            Self::ModelFile { .. } => "model_file".into(),
            Self::NotInCassette { .. } => "not_in_cassette".into(),
            Self::Cancelled => "cancelled".into(),
        }
    }
}

/// A chat model behind one interface: the embedded local model, replay, and (later) cloud
/// providers.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Provider id (`local`, `replay`, `openai`, ...).
    fn id(&self) -> &str;

    /// The model used when a request leaves `model` empty.
    fn default_model(&self) -> &str;

    /// Models this provider is known to offer, to check configuration before a run (`None`:
    /// not known, any name is accepted).
    fn known_models(&self) -> Option<Vec<String>> {
        None
    }

    /// Whether the provider's models call tools (native function calling). Agents with
    /// tools fall back to writing files in their answer when it does not.
    fn supports_tools(&self) -> bool {
        false
    }

    /// Checks that the provider can answer (endpoint reachable, key accepted, model file
    /// present) without generating anything billable where the provider allows; says what
    /// was checked. In-process providers have nothing to reach.
    async fn ping(&self) -> Result<String, LlmError> {
        Ok("in process; nothing to reach".into())
    }

    /// Answers `request`, streaming text to `on_token` as it is generated. The returned text
    /// equals the concatenation of the streamed pieces.
    async fn chat(
        &self,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError>;
}
