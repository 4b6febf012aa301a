//! The blocking side of the local model: llama.cpp loading a GGUF file, applying its chat
//! template, and generating token by token with sampling, grammar and stop strings.

use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::LocalModelConfig;
use super::text::{StopScanner, Utf8Decoder};
use crate::model_store::gguf;
use crate::{ChatMessage, ChatRequest, FinishReason, LlmError, Role};

/// Work allowed to a chat template per rendering (minijinja instructions).
const TEMPLATE_FUEL: u64 = 5_000_000;

/// llama.cpp's backend is process-wide and may be initialised only once per process, so its
/// proof of initialisation lives here for every engine to share. Whether llama.cpp may log to
/// stderr is decided by the first engine loaded.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend(llama_logs: bool) -> Result<&'static LlamaBackend, LlmError> {
    let init = BACKEND.get_or_init(|| {
        let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
        if !llama_logs {
            backend.void_logs();
        }
        Ok(backend)
    });
    init.as_ref().map_err(|e| LlmError::Fatal {
        provider: "local".to_owned(),
        message: format!("llama.cpp could not start: {e}"),
    })
}

/// How a conversation becomes a prompt.
enum Template {
    /// The model's own Jinja template, rendered with minijinja.
    Jinja {
        source: String,
        bos: String,
        eos: String,
        fallback: LlamaChatTemplate,
    },
    /// One of llama.cpp's built-in templates (when the model has none, or it fails).
    Builtin(LlamaChatTemplate),
}

/// A loaded model.
pub(crate) struct Engine {
    model: LlamaModel,
    template: Template,
    name: String,
    /// The context the model was trained with.
    n_ctx_train: u32,
    /// Threads generating (one token per step).
    threads: i32,
    /// Threads evaluating the prompt (many tokens per step).
    batch_threads: i32,
    config: LocalModelConfig,
}

/// One finished generation.
pub(crate) struct Generation {
    pub(crate) text: String,
    pub(crate) prompt_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) finish: FinishReason,
}

fn fatal(message: impl Into<String>) -> LlmError {
    LlmError::Fatal {
        provider: "local".to_owned(),
        message: message.into(),
    }
}

impl Engine {
    /// Loads the model named by `config`.
    pub(crate) fn load(config: &LocalModelConfig) -> Result<Self, LlmError> {
        let path = &config.path;
        let model_file = |problem: String, hint: &str| LlmError::ModelFile {
            path: path.display().to_string(),
            problem,
            hint: hint.to_owned(),
        };
        if !path.exists() {
            return Err(model_file(
                "not found".to_owned(),
                "run `botarmy model pull` to fetch the default model, or configure the path of a GGUF file",
            ));
        }
        let info = gguf::read_info(path).map_err(|e| {
            model_file(
                e.to_string(),
                "point the local model at a GGUF file, or run `botarmy model pull`",
            )
        })?;
        let backend = backend(config.llama_logs)?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| {
                model_file(
                    format!(
                        "llama.cpp could not load it ({e}); its architecture is {}",
                        info.architecture.as_deref().unwrap_or("unknown")
                    ),
                    "check that the file is a complete GGUF model, or run `botarmy model pull`",
                )
            })?;
        let fallback = model
            .chat_template(None)
            .or_else(|_| LlamaChatTemplate::new("chatml"))
            .map_err(|e| fatal(format!("no usable chat template: {e}")))?;
        let template = match info.chat_template {
            Some(source) => {
                let vocab = model.vocab();
                let piece =
                    |t| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
                let (bos, eos) = (piece(vocab.bos()), piece(vocab.eos()));
                Template::Jinja {
                    source,
                    bos,
                    eos,
                    fallback,
                }
            }
            None => Template::Builtin(fallback),
        };
        let n_ctx_train = model.n_ctx_train();
        let model_bytes = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
        let threads = config
            .threads
            .map_or_else(|| default_threads(model_bytes), |n| n as usize);
        let batch_threads = config
            .batch_threads
            .map_or_else(|| default_threads(model_bytes), |n| n as usize);
        Ok(Self {
            model,
            template,
            name: config.model_name(),
            n_ctx_train,
            threads: i32::try_from(threads.max(1)).unwrap_or(1),
            batch_threads: i32::try_from(batch_threads.max(1)).unwrap_or(1),
            config: config.clone(),
        })
    }

    /// The largest context a request may use: the model's training context, capped by the
    /// configuration.
    pub(crate) fn context_limit(&self) -> u32 {
        self.n_ctx_train.min(self.config.context_cap).max(1)
    }

    /// The prompt text for `messages`, through the model's chat template.
    pub(crate) fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        match &self.template {
            Template::Jinja {
                source,
                bos,
                eos,
                fallback,
            } => render_jinja(source, messages, bos, eos)
                .or_else(|_| self.render_builtin(fallback, messages)),
            Template::Builtin(template) => self.render_builtin(template, messages),
        }
    }

    fn render_builtin(
        &self,
        template: &LlamaChatTemplate,
        messages: &[ChatMessage],
    ) -> Result<String, LlmError> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(role_name(m.role).to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fatal(format!("a message cannot be given to the model: {e}")))?;
        self.model
            .apply_chat_template(template, &chat, true)
            .map_err(|e| fatal(format!("the chat template could not be applied: {e}")))
    }

    /// The model's tokens for `text` (special tokens such as `<|im_start|>` recognised).
    pub(crate) fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), true, true)
    }

    /// Generates the answer to `request`, passing each safe-to-show piece of text to `emit`
    /// (which returns false when nobody listens any more). Stops early when `cancel` is set.
    pub(crate) fn generate(
        &self,
        request: &ChatRequest,
        cancel: &AtomicBool,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, LlmError> {
        let prompt = self.render(&request.messages)?;
        let tokens = self.tokenize(&prompt);
        if tokens.is_empty() {
            return Err(fatal("the request has no messages, so there is no prompt"));
        }
        let n_prompt = tokens.len() as u64;
        let limit = u64::from(self.context_limit());
        if n_prompt >= limit {
            return Err(LlmError::ContextTooLong {
                model: self.name.clone(),
                prompt_tokens: n_prompt,
                context: limit,
            });
        }
        if request.max_tokens == 0 {
            return Ok(Generation {
                text: String::new(),
                prompt_tokens: n_prompt,
                output_tokens: 0,
                finish: FinishReason::Length,
            });
        }
        // Size the context for this request only: memory follows what is asked, up to the limit.
        let wanted = n_prompt + u64::from(request.max_tokens);
        let n_ctx = wanted.div_ceil(256).saturating_mul(256).min(limit);
        let budget = (n_ctx - n_prompt).min(u64::from(request.max_tokens));
        let n_ctx = u32::try_from(n_ctx).unwrap_or(u32::MAX);

        let batch_size = self.config.batch_size.clamp(1, 4096) as usize;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(batch_size as u32)
            .with_n_ubatch(batch_size as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.batch_threads);
        let params = if self.config.quantized_kv_cache {
            params
                .with_type_k(KvCacheType::Q8_0)
                .with_type_v(KvCacheType::Q8_0)
        } else {
            params
        };
        let backend = backend(self.config.llama_logs)?;
        let mut ctx = self
            .model
            .new_context(backend, params)
            .map_err(|e| fatal(format!("could not create a context of {n_ctx} tokens: {e}")))?;
        let mut sampler = self.sampler(request)?;

        // Evaluate the prompt in batches; logits only for its last token.
        let mut batch = LlamaBatch::new(batch_size, 1);
        let last = tokens.len() - 1;
        for (chunk_index, chunk) in tokens.chunks(batch_size).enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Err(LlmError::Cancelled);
            }
            batch.clear();
            for (offset, token) in chunk.iter().enumerate() {
                let pos = chunk_index * batch_size + offset;
                batch
                    .add(*token, pos as i32, &[0], pos == last)
                    .map_err(|e| fatal(format!("prompt batch: {e}")))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| fatal(format!("evaluating the prompt failed: {e}")))?;
        }

        let vocab = self.model.vocab();
        let mut utf8 = Utf8Decoder::default();
        let mut stops = StopScanner::new(&request.stop);
        let mut piece_bytes = Vec::with_capacity(32);
        let mut pos = tokens.len();
        let mut generated = 0u64;
        let mut finish = FinishReason::Length;
        let mut listening = true;
        let mut stopped_by_string = false;
        while generated < budget {
            if cancel.load(Ordering::Relaxed) || !listening {
                return Err(LlmError::Cancelled);
            }
            let mut candidates = ctx.token_data_array_ith(batch.n_tokens() - 1);
            candidates.apply_sampler(&mut sampler);
            let token = candidates.selected_token().ok_or_else(|| {
                fatal("the sampler selected no token (is the grammar satisfiable?)")
            })?;
            sampler
                .try_accept(token)
                .map_err(|e| fatal(format!("the sampler rejected token {token}: {e}")))?;
            generated += 1;
            if vocab.is_eog(token) {
                finish = FinishReason::Stop;
                break;
            }
            piece_bytes.clear();
            vocab.token_to_piece_into(token, &mut piece_bytes, false, None);
            let scan = stops.push(&utf8.push(&piece_bytes));
            if !scan.ready.is_empty() {
                listening = emit(&scan.ready);
            }
            if scan.stopped {
                finish = FinishReason::Stop;
                stopped_by_string = true;
                break;
            }
            if generated == budget {
                break;
            }
            batch.clear();
            batch
                .add(token, pos as i32, &[0], true)
                .map_err(|e| fatal(format!("batch: {e}")))?;
            pos += 1;
            ctx.decode(&mut batch)
                .map_err(|e| fatal(format!("generating failed: {e}")))?;
        }
        if !stopped_by_string {
            // Release what was held back: a partial character, a partial stop string.
            let scan = stops.push(&utf8.finish());
            let mut rest = scan.ready;
            if scan.stopped {
                finish = FinishReason::Stop;
            } else {
                rest.push_str(&stops.finish());
            }
            if !rest.is_empty() && listening {
                emit(&rest);
            }
        }
        Ok(Generation {
            text: stops.text().to_owned(),
            prompt_tokens: n_prompt,
            output_tokens: generated,
            finish,
        })
    }

    fn sampler(&self, request: &ChatRequest) -> Result<LlamaSampler, LlmError> {
        let c = &self.config;
        let mut chain = Vec::new();
        if (c.repeat_penalty - 1.0).abs() > f32::EPSILON {
            chain.push(LlamaSampler::penalties(
                self.model.n_vocab(),
                c.repeat_last_n,
                c.repeat_penalty,
                0.0,
                0.0,
            ));
        }
        if let Some(grammar) = &request.grammar {
            let sampler = LlamaSampler::grammar(&self.model, grammar, "root").map_err(|e| {
                fatal(format!(
                    "the request's GBNF grammar is invalid ({e}); it needs a `root` rule"
                ))
            })?;
            chain.push(sampler);
        }
        if request.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            chain.push(LlamaSampler::top_k(c.top_k));
            chain.push(LlamaSampler::top_p(c.top_p, 1));
            chain.push(LlamaSampler::min_p(c.min_p, 1));
            chain.push(LlamaSampler::temp(request.temperature));
            chain.push(LlamaSampler::dist(seed32(request.seed)));
        }
        Ok(LlamaSampler::chain(chain, true))
    }
}

/// A 64-bit request seed folded to llama.cpp's 32 bits, avoiding `u32::MAX`, which llama.cpp
/// reads as "pick a random seed".
fn seed32(seed: u64) -> u32 {
    let folded = (seed ^ (seed >> 32)) as u32;
    if folded == u32::MAX {
        folded - 1
    } else {
        folded
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        // ChatML has a `tool` role; the small model has no tool calling, so a tool result
        // only reaches it when a caller replays a conversation from another model.
        Role::Tool => "tool",
    }
}

fn render_jinja(
    source: &str,
    messages: &[ChatMessage],
    bos: &str,
    eos: &str,
) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    // The template comes from the model file: bound its work.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.add_function(
        "raise_exception",
        |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                message,
            ))
        },
    );
    let messages: Vec<minijinja::Value> = messages
        .iter()
        .map(|m| minijinja::context! { role => role_name(m.role), content => m.content.clone() })
        .collect();
    env.render_str(
        source,
        minijinja::context! { messages, add_generation_prompt => true, bos_token => bos, eos_token => eos },
    )
}

/// Model files up to this size run on one thread by default.
const SMALL_MODEL_BYTES: u64 = 256 << 20;

/// Threads for a model file of `bytes`: one for a small model, whose steps are too short to
/// pay for synchronising threads (llama.cpp's threads spin at a barrier after every
/// operation, so a second thread that the OS deschedules on a busy machine stalls each
/// step). Measured here with SmolLM2-135M while other builds ran: generation 90-110 tok/s on
/// one thread against 4-38 on two, prompt evaluation about 200 tok/s against 30-400. The
/// physical cores for larger models, whose steps are long enough to share.
fn default_threads(bytes: u64) -> usize {
    if bytes <= SMALL_MODEL_BYTES {
        1
    } else {
        physical_cores()
    }
}

/// Physical cores available to this process: one llama.cpp thread per core is fastest (a
/// second thread on a core's sibling competes for the same SIMD units).
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cores = std::collections::HashSet::new();
    for cpu in 0..logical.max(1) * 4 {
        let topology = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        let Ok(siblings) = std::fs::read_to_string(format!("{topology}/thread_siblings_list"))
        else {
            continue;
        };
        cores.insert(siblings.trim().to_owned());
    }
    if cores.is_empty() {
        logical
    } else {
        cores.len().min(logical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_never_mean_random() {
        assert_ne!(seed32(u64::from(u32::MAX)), u32::MAX);
        assert_eq!(seed32(42), 42);
        assert_ne!(seed32(1), seed32(1 << 32 | 2));
    }

    #[test]
    fn chatml_template_renders_with_minijinja() {
        let source = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let out = render_jinja(source, &[ChatMessage::user("Hi")], "", "").unwrap_or_default();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn small_models_generate_on_one_thread() {
        assert!(physical_cores() >= 1);
        assert_eq!(default_threads(98_362_432), 1);
        assert_eq!(default_threads(4 << 30), physical_cores());
    }
}
