//! Wire types shared by every BotArmy crate: identifiers, the run plan, the durable
//! [`Event`] log entries and the live (non-durable) notifications.
//!
//! The one idea: everything a run does is described by data in this crate, so the
//! engine, the store, the server and any client agree on it without depending on each
//! other. This crate depends on no other crate of ours.

mod conflict;
mod event;
mod gate;
mod ids;
mod plan;
mod tool;
mod usage;

pub use conflict::{
    Conflict, ConflictPosition, ConflictResolution, MEDIATION_ROUNDS, MediationRound,
    RESOLUTION_SCORE, SettledConflict,
};
pub use event::{ErrorInfo, ErrorKind, Event, EventRecord, LiveEvent, WorktreeInfo};
pub use gate::{
    Assessment, ChecklistItem, DEFAULT_CONFIDENCE_BELOW, DEFAULT_QUALITY_BELOW, GatePolicy,
    GateTimeout, HitlDecision, PlanGate, RiskCard, Score, Severity, Thresholds, TimeoutAction,
    Verdict, parse_duration,
};
pub use ids::{ArtifactId, IdParseError, ProjectId, RunId, SessionId};
pub use plan::{
    ArtifactKind, ArtifactRef, Budget, Limit, Plan, PlanStep, RunOptions, RunRequest, RunStatus,
    StepKind, StepStatus,
};
pub use tool::{BUILTIN_TOOLS, FileChangeKind, ToolCall, ToolSpec, is_tool_entry};
pub use usage::Usage;

/// Milliseconds since the Unix epoch, the timestamp unit of every record.
pub type UnixMillis = i64;

/// The current time in [`UnixMillis`]. Only the runtime calls this; the engine never reads
/// a clock.
pub fn now_millis() -> UnixMillis {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats a [`UnixMillis`] timestamp as RFC 3339 (UTC), or the raw number if it is out
/// of range.
pub fn format_millis(ms: UnixMillis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
