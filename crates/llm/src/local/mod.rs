//! The embedded local model: a GGUF file run on the CPU by llama.cpp, loaded once on first
//! use and kept. Generations run one at a time on the blocking pool (they use every core) and
//! stream their text back to the caller's task.

mod engine;
mod text;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use botarmy_protocol::Usage;
use tokio::sync::{OnceCell, Semaphore, mpsc};

use self::engine::Engine;
use crate::{ChatMessage, ChatRequest, ChatResponse, LlmError, Provider, TokenSink};

pub use self::engine::physical_cores;

/// How the local model is run.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalModelConfig {
    /// The GGUF file.
    pub path: PathBuf,
    /// Model name in responses and requests (default: the file name without `.gguf`).
    pub name: Option<String>,
    /// Largest context a request may use, in tokens; the model's training context caps it
    /// too. Memory for the context is sized per request (prompt + `max_tokens`), so this is
    /// a ceiling, not a reservation. Default 8192.
    pub context_cap: u32,
    /// Threads generating tokens. Default: one for small models (a GGUF file up to 256 MB,
    /// such as the embedded SmolLM2-135M), whose steps are too short to share; the physical
    /// cores for larger ones.
    pub threads: Option<u32>,
    /// Threads evaluating the prompt. Default: as for `threads`.
    pub batch_threads: Option<u32>,
    /// Prompt tokens evaluated per step. Larger steps are a little faster on big machines but
    /// take more memory: llama.cpp's work buffer grows with it (about 0.2 MB per token of
    /// step with SmolLM2's 49,152-token vocabulary). Default 128.
    pub batch_size: u32,
    /// Keep the context's keys and values as 8-bit (Q8_0) rather than 16-bit floats: half the
    /// memory (an 8192-token context of SmolLM2-135M takes 94 MB instead of 188 MB) for a
    /// negligible change in output. Default true.
    pub quantized_kv_cache: bool,
    /// Repetition penalty (1.0: none). Default 1.1.
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at. Default 64.
    pub repeat_last_n: i32,
    /// Top-k sampling. Default 40.
    pub top_k: i32,
    /// Top-p (nucleus) sampling. Default 0.95.
    pub top_p: f32,
    /// Min-p sampling. Default 0.05.
    pub min_p: f32,
    /// Let llama.cpp write its own (verbose) log to stderr. Default false. The first model
    /// loaded in a process decides.
    pub llama_logs: bool,
}

impl LocalModelConfig {
    /// Defaults for the model file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            name: None,
            context_cap: 8192,
            threads: None,
            batch_threads: None,
            quantized_kv_cache: true,
            batch_size: 128,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            llama_logs: false,
        }
    }

    /// The same, with `name` as the model name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn model_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let file = self
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            file.strip_suffix(".gguf")
                .map(str::to_owned)
                .unwrap_or(file)
        })
    }
}

/// The embedded local model as a [`Provider`] (`id() == "local"`).
pub struct LocalProvider {
    config: LocalModelConfig,
    name: String,
    engine: OnceCell<Arc<Engine>>,
    /// One generation at a time: each uses every core.
    gate: Arc<Semaphore>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("name", &self.name)
            .field("path", &self.config.path)
            .field("loaded", &self.engine.initialized())
            .finish()
    }
}

impl LocalProvider {
    /// A provider for the model described by `config`. Nothing is read until the first
    /// request (or [`LocalProvider::load`]).
    pub fn new(config: LocalModelConfig) -> Self {
        let name = config.model_name();
        Self {
            config,
            name,
            engine: OnceCell::new(),
            gate: Arc::new(Semaphore::new(1)),
        }
    }

    /// Loads the model now rather than on the first request.
    pub async fn load(&self) -> Result<(), LlmError> {
        self.engine().await.map(|_| ())
    }

    /// The prompt text `messages` become through the model's chat template.
    pub async fn render_prompt(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        self.engine().await?.render(messages)
    }

    /// The number of tokens of `text` for this model (special tokens recognised).
    pub async fn count_tokens(&self, text: &str) -> Result<u64, LlmError> {
        Ok(self.engine().await?.tokenize(text).len() as u64)
    }

    /// The largest context a request may use, in tokens (prompt plus answer).
    pub async fn context_limit(&self) -> Result<u32, LlmError> {
        Ok(self.engine().await?.context_limit())
    }

    async fn engine(&self) -> Result<Arc<Engine>, LlmError> {
        self.engine
            .get_or_try_init(|| async {
                let config = self.config.clone();
                tokio::task::spawn_blocking(move || Engine::load(&config).map(Arc::new))
                    .await
                    .map_err(|e| joined(&e))?
            })
            .await
            .cloned()
    }
}

fn joined(err: &tokio::task::JoinError) -> LlmError {
    LlmError::Fatal {
        provider: "local".to_owned(),
        message: format!("the model thread failed: {err}"),
    }
}

/// Sets the flag when dropped: a dropped `chat` future stops its generation.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn id(&self) -> &str {
        "local"
    }

    fn default_model(&self) -> &str {
        &self.name
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        if !request.model.is_empty() && request.model != self.name {
            return Err(LlmError::Fatal {
                provider: "local".to_owned(),
                message: format!(
                    "the local provider serves the model `{}` only; the request asked for `{}`",
                    self.name, request.model
                ),
            });
        }
        let engine = self.engine().await?;
        let permit = Arc::clone(&self.gate)
            .acquire_owned()
            .await
            .map_err(|_| LlmError::Fatal {
                provider: "local".to_owned(),
                message: "the model is shut down".to_owned(),
            })?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancel));
        let (tx, mut rx) = mpsc::channel::<String>(64);
        let owned = request.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Held until the generation has really ended, even if the caller went away.
            let _permit = permit;
            engine.generate(&owned, &cancel, &mut |piece| {
                tx.blocking_send(piece.to_owned()).is_ok()
            })
        });
        while let Some(piece) = rx.recv().await {
            on_token(&piece);
        }
        let generation = task.await.map_err(|e| joined(&e))??;
        Ok(ChatResponse {
            text: generation.text,
            usage: Usage {
                input_tokens: generation.prompt_tokens,
                output_tokens: generation.output_tokens,
                calls: 1,
                ..Usage::default()
            },
            provider: "local".to_owned(),
            model: self.name.clone(),
            finish: generation.finish,
            tool_calls: Vec::new(),
        })
    }
}
