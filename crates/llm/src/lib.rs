//! BotArmy's language models: the [`Provider`] trait every model sits behind, the embedded
//! local model (the default, offline), the replay provider and the recorder that writes
//! cassettes for it.
//!
//! The one idea: the rest of BotArmy sees a model only as `chat(request) -> response` with
//! streamed tokens and exact usage; which wire format or runtime answers is this crate's
//! business alone. This crate knows nothing about runs or storage.

mod provider;

pub use provider::*;
