//! Conflicts between the documents of a run: what a conflict check found, how mediation
//! went, and how each conflict was settled.

use serde::{Deserialize, Serialize};

use crate::Severity;

/// Mediation rounds tried before a conflict goes to a human.
pub const MEDIATION_ROUNDS: u32 = 3;

/// The score a mediated resolution needs (every agent involved must agree this much).
pub const RESOLUTION_SCORE: f64 = 0.85;

/// What one side of a conflict says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictPosition {
    /// The agent whose document says it.
    pub agent: String,
    /// The document (artifact name).
    pub artifact: String,
    /// What the document says, in a sentence.
    pub claim: String,
}

/// A contradiction between documents, as a conflict check records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// How much it matters.
    pub severity: Severity,
    /// What contradicts what.
    pub description: String,
    /// The sides, two or more.
    pub positions: Vec<ConflictPosition>,
}

impl Conflict {
    /// The agents involved, each once, in the order of the positions.
    pub fn agents(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.positions.len());
        for p in &self.positions {
            if !out.contains(&p.agent) {
                out.push(p.agent.clone());
            }
        }
        out
    }
}

/// One round of mediation: the resolution proposed and how far the agents involved accept it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediationRound {
    /// The proposed resolution.
    pub proposal: String,
    /// The lowest agreement among the agents involved, from 0 to 1.
    pub score: f64,
    /// Each agent's answer (`architect: 0.9 - fits the design`).
    pub reasons: Vec<String>,
}

/// How a conflict was settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictResolution {
    /// What was decided.
    pub resolution: String,
    /// `mediation`, or the person (or `auto-approve (--yes)`) who decided.
    pub by: String,
    /// The agreement the resolution reached in mediation (none: decided by a person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// A settled conflict of an earlier run of a project, kept so later mediation can see how
/// similar conflicts were settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettledConflict {
    /// The run it came up in.
    pub run_id: crate::RunId,
    /// The conflict.
    pub conflict: Conflict,
    /// How it was settled.
    pub resolution: ConflictResolution,
    /// When.
    pub resolved_at: crate::UnixMillis,
}
