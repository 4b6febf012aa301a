//! BotArmy's language models: the [`Provider`] trait every model sits behind, the embedded
//! local model (the default, offline), the replay provider and the recorder that writes
//! cassettes for it, the model file cache, and the [`Router`] that picks a provider per agent.
//!
//! The one idea: the rest of BotArmy sees a model only as `chat(request) -> response` with
//! streamed tokens and exact usage; which wire format or runtime answers is this crate's
//! business alone. This crate knows nothing about runs or storage.

mod cassette;
mod local;
pub mod model_store;
mod provider;
mod replay;
mod router;

pub use cassette::{CassetteError, CassetteWriter, Exchange, read_cassette};
pub use local::{LocalModelConfig, LocalProvider, physical_cores};
pub use model_store::{ModelError, ModelSpec, ModelStore};
pub use provider::*;
pub use replay::{RecordingProvider, ReplayProvider};
pub use router::{Route, Router};
