use std::time::Duration;

use async_trait::async_trait;
use botarmy_protocol::Usage;
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
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A request to a chat model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl ChatRequest {
    /// A stable digest of everything that shapes the answer (model excluded, so a cassette
    /// recorded with one model can be replayed under another name). Hex SHA-256.
    pub fn digest(&self) -> String {
        #[derive(Serialize)]
        struct Canon<'a> {
            messages: &'a [ChatMessage],
            max_tokens: u32,
            temperature_milli: i64,
            seed: u64,
            stop: &'a [String],
            grammar: &'a Option<String>,
        }
        let canon = Canon {
            messages: &self.messages,
            max_tokens: self.max_tokens,
            temperature_milli: (f64::from(self.temperature) * 1000.0).round() as i64,
            seed: self.seed,
            stop: &self.stop,
            grammar: &self.grammar,
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
        matches!(self, Self::RateLimited { .. } | Self::Transient { .. })
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

    /// Answers `request`, streaming text to `on_token` as it is generated. The returned text
    /// equals the concatenation of the streamed pieces.
    async fn chat(
        &self,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError>;
}
