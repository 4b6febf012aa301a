use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ArtifactId;

/// What a user asked for when starting a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The idea, ticket text or task description the run works on.
    pub idea: String,
    /// The workflow id (file stem of `workflows/<id>.yaml`).
    pub workflow: String,
    /// Where definitions come from: `builtin` or a folder path.
    pub method: String,
    /// Knobs of this run.
    #[serde(default)]
    pub options: RunOptions,
}

/// Per-run settings that the engine and the runner honour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    /// How many steps may execute at the same time.
    pub max_parallel: u32,
    /// Token budget for the artifacts put into a step's prompt.
    pub context_tokens: u32,
    /// Cap on generated tokens per LLM call.
    pub max_output_tokens: u32,
    /// How many attempts a step gets before the run fails (retryable errors only).
    pub max_attempts: u32,
    /// Accept every gate without asking.
    pub auto_approve: bool,
    /// Execute steps the workflow marks optional instead of skipping them.
    pub run_optional: bool,
    /// Folder where artifacts are written, if not the default.
    pub out_dir: Option<String>,
    /// Spending limits (none by default).
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
    /// Repositories the run's code work happens in (registered names or paths); none: a
    /// fresh repository of the run's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// The policy of every gate of this run, whatever the workflow says (`--gate-policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_policy: Option<crate::GatePolicy>,
    /// The policy of gates the workflow leaves unset (`botarmy.toml`; none: the seeds'
    /// confidence 0.8 and quality 0.85).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_gate: Option<crate::GatePolicy>,
    /// How long an approval may wait where the workflow says nothing (`botarmy.toml`; none:
    /// forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_timeout: Option<crate::GateTimeout>,
}

/// Spending limits of a run: for the whole run, per phase and per agent. A call that would
/// take a scope past its limit is not made; the run waits instead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    /// US dollars for the whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    /// Tokens (input plus output) for the whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Limits per phase, by phase name (compared without case).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub phases: std::collections::BTreeMap<String, Limit>,
    /// Limits per agent, by agent id.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub agents: std::collections::BTreeMap<String, Limit>,
}

impl Budget {
    /// No limit at all.
    pub fn is_empty(&self) -> bool {
        self.usd.is_none()
            && self.tokens.is_none()
            && self.phases.is_empty()
            && self.agents.is_empty()
    }

    /// The run-wide limit.
    pub fn run_limit(&self) -> Limit {
        Limit {
            usd: self.usd,
            tokens: self.tokens,
        }
    }

    /// The limit of `phase`, if any.
    pub fn phase_limit(&self, phase: &str) -> Option<&Limit> {
        self.phases
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(phase))
            .map(|(_, l)| l)
    }
}

/// A limit in money and tokens (either may be absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limit {
    /// US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    /// Tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            max_parallel: 4,
            context_tokens: 4_000,
            max_output_tokens: 768,
            max_attempts: 2,
            auto_approve: false,
            run_optional: false,
            out_dir: None,
            budget: Budget::default(),
            repositories: Vec::new(),
            gate_policy: None,
            default_gate: None,
            gate_timeout: None,
        }
    }
}

/// A workflow resolved into concrete steps, fixed when the run is created and stored in its
/// first event, so a run can be rebuilt from its log alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Workflow id.
    pub workflow_id: String,
    /// Human name of the workflow.
    pub workflow_name: String,
    /// The lifecycle type (`greenfield`, `brownfield`, `sdlc`, ...).
    pub cycle_type: String,
    /// Digest of the method definitions the plan was made from.
    pub method_digest: String,
    /// Steps in workflow order.
    pub steps: Vec<PlanStep>,
    /// Where the run stops for a human: a gate per phase (or per step when the workflow
    /// has no phases, or the step has a `gate` of its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<crate::PlanGate>,
}

impl Plan {
    /// The policy gate `gate` applies in a run with `options`: the run's override, else the
    /// workflow's, else the run's default, else the seeds' thresholds.
    pub fn gate_policy(&self, gate: usize, options: &RunOptions) -> crate::GatePolicy {
        options
            .gate_policy
            .or_else(|| self.gates.get(gate).and_then(|g| g.policy))
            .or(options.default_gate)
            .unwrap_or_default()
    }
}

/// One step of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    /// Unique, stable key within the plan (for example `design/api-specification`).
    pub key: String,
    /// Short human title.
    pub title: String,
    /// The lifecycle phase the step belongs to, when the workflow names phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Agent id that executes the step.
    pub agent: String,
    /// Name of the artifact the step creates (for example `prd.md`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<String>,
    /// Template id used to produce the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Artifact names the step reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Indices of steps that must finish first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<u32>,
    /// Whether the step may be skipped without failing the run.
    #[serde(default)]
    pub optional: bool,
    /// Free-text condition from the workflow, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// What the step should do, for steps that are an action rather than a document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// Notes for the agent from the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Tools the agent may call in this step (the step's own list, else its agent's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Bound on the tool-use turns of one attempt (the runtime's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    /// What the step does: produce its documents (the default), or check the documents
    /// of its phase and the earlier ones for contradictions.
    #[serde(default, skip_serializing_if = "StepKind::is_work")]
    pub kind: StepKind,
}

/// What a [`PlanStep`] does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// An agent produces the step's document (and files).
    #[default]
    Work,
    /// A conflict check: the step's agent compares the documents the step requires, and
    /// each contradiction found is mediated between the agents involved, or escalated.
    ConflictCheck,
}

impl StepKind {
    /// Whether this is [`StepKind::Work`].
    pub fn is_work(&self) -> bool {
        *self == Self::Work
    }
}

impl PlanStep {
    /// Whether the step works in the run's worktree: its agent has tools (with a model that
    /// does not call them, the files of its answer are written there instead).
    pub fn needs_worktree(&self) -> bool {
        !self.tools.is_empty()
    }
}

/// Lifecycle state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, not started.
    Pending,
    /// Steps are executing or ready to.
    Running,
    /// Paused by a user; resume continues it.
    Paused,
    /// Waiting for something outside (a human answer, a budget raise).
    Waiting,
    /// Every required step finished.
    Succeeded,
    /// A step failed for good.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl RunStatus {
    /// Whether nothing more will happen to the run.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the name written by [`RunStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "waiting" => Self::Waiting,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifecycle state of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started; waits for its dependencies.
    Pending,
    /// An attempt is executing.
    Running,
    /// An attempt was cut off (crash, pause); it will be executed again.
    Interrupted,
    /// Finished with its outputs.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Not executed (optional, or its condition did not hold).
    Skipped,
}

impl StepStatus {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Interrupted => "interrupted",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the step counts as done for its dependants.
    pub fn satisfies_dependants(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// A Markdown document produced from a template.
    Document,
    /// A source file extracted from a document's fenced code block.
    Code,
}

impl ArtifactKind {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Code => "code",
        }
    }
}

/// Metadata of one stored artifact version (the content is stored beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Id of this version.
    pub id: ArtifactId,
    /// Logical name (`prd.md`, `code/src/main.rs`); versions share it.
    pub name: String,
    /// Document or code.
    pub kind: ArtifactKind,
    /// Version number, from 1.
    pub version: u32,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Content length in bytes.
    pub bytes: u64,
}
