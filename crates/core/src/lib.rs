//! BotArmy's core: method definitions (BMAD-METHOD v4 compatible) and their loader,
//! template rendering, prompt assembly, and the run engine as a pure state machine.
//!
//! The one idea: nothing here awaits or touches the network, the clock or a database. The
//! engine is a function of (state, event) to (state, next actions), so a run can be rebuilt
//! on any worker by folding its event log, and tested exhaustively. The only IO is reading
//! a definitions folder ([`method::Method::load`]).
//!
//! The path of a step through this crate: [`method::Method::load`] or
//! [`method::Method::builtin`] → [`method::Method::check`] → [`method::Method::plan`] →
//! for each step [`method::Method::prompt`] → (the model) →
//! [`method::Method::finish_document`] → [`document::extract_code_files`] for Build steps.

pub mod assess;
pub mod budget;
pub mod conflict;
pub mod context;
pub mod document;
pub mod engine;
pub mod method;
pub mod prompt;
pub mod render;
