//! Test support for BotArmy: local HTTP servers that play LLM providers, for the tests of the
//! providers themselves (`botarmy-llm`) and for end-to-end runs of the `botarmy` binary.
//!
//! The one idea: a provider is tested at its real boundary, the wire. [`MockServer`]
//! records every request and answers with what the test scripts (a JSON body, an SSE stream
//! that ends, stalls or breaks, silence); [`Responder`] answers any number of chat requests
//! the way OpenAI, Anthropic or Gemini would ([`Wire`]), streamed with the format's real
//! events and its final usage; [`failing`] plays an outage; [`google`] plays the OAuth token
//! endpoint and Vertex AI for a service account. Everything listens on `127.0.0.1` only.
//! [`fixtures`] finds the BMAD assets beside the repository, or says in one line that they
//! are missing and where they are expected.
//!
//! Not for production code: this crate is a dev-dependency only.

pub mod fixtures;
pub mod google;
mod responder;
mod server;
mod wire;

pub use responder::{Answered, Responder, failing};
pub use server::{Bound, End, MockServer, Recorded, Reply, closed_port, events};
pub use wire::{Tokens, Wire};
