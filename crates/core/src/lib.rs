//! BotArmy's core: method definitions (BMAD-METHOD v4 compatible) and their loader,
//! template rendering, and the run engine as a pure state machine.
//!
//! The one idea: nothing here awaits or touches the network, the clock or a database. The
//! engine is a function of (state, event) to (state, next actions), so a run can be rebuilt
//! on any worker by folding its event log, and tested exhaustively.

pub mod engine;
