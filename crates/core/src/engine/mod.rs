//! The run engine: a pure state machine over a run's event log.
//!
//! [`RunState::apply`] folds one stored event into the state; [`RunState::next_actions`]
//! says what should happen next. The runtime performs the actions (LLM calls, writes) and
//! appends the resulting events, which are folded back in. Nothing here awaits, reads a
//! clock or touches storage, so a run can be rebuilt on any worker from its log, and the
//! rules can be tested exhaustively.

mod action;
mod gate;
mod state;
#[cfg(test)]
mod tests;

pub use action::Action;
pub use gate::{DecisionView, GateRequest, GateState, GateVerdict, GateView, WaitingView};
pub use state::check_answer;
pub use state::{
    Asker, Clarification, ConflictState, ConflictView, EngineError, InputRequest, Question,
    RecordedCall, RecordedToolCall, RunState, StepState, WorkspaceState,
};
