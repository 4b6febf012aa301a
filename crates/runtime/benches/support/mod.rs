//! What the runtime's benchmarks share: an instant provider, a six-step workflow over the
//! builtin method, and percentiles.
#![allow(dead_code)]

use std::time::Duration;

use async_trait::async_trait;
use botarmy_llm::{ChatRequest, ChatResponse, FinishReason, LlmError, Provider, TokenSink};
use botarmy_protocol::{GatePolicy, RunOptions, RunRequest, Usage};

/// Answers at once with a small document: what is measured is everything but the model.
pub struct Instant0;

#[async_trait]
impl Provider for Instant0 {
    fn id(&self) -> &str {
        "instant"
    }
    fn default_model(&self) -> &str {
        "instant"
    }
    async fn chat(
        &self,
        _: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let text = "## Overview\n\nA short answer.\n\n## Details\n\n- one\n- two\n";
        on_token(text);
        Ok(ChatResponse {
            text: text.into(),
            usage: Usage {
                input_tokens: 100,
                output_tokens: 20,
                ..Usage::default()
            },
            provider: "instant".into(),
            model: "instant".into(),
            finish: FinishReason::Stop,
            tool_calls: Vec::new(),
        })
    }
}

/// Without conflict checks: the benches measure six steps (a check is one more step, with
/// a model call of its own).
pub const SIX_STEPS: &str = r#"workflow:
  id: six
  name: Six steps, one per phase
  type: sdlc
  conflict_check: false
  phases:
    - { id: discovery, name: Discovery }
    - { id: plan, name: Plan, depends_on: [discovery] }
    - { id: design, name: Design, depends_on: [plan] }
    - { id: build, name: Build, depends_on: [design] }
    - { id: validate, name: Validate, depends_on: [build] }
    - { id: launch, name: Launch, depends_on: [validate] }
  sequence:
    - { agent: analyst, phase: discovery, creates: project-plan.md, template: project-plan-tmpl }
    - { agent: analyst, phase: plan, creates: feature-breakdown.md, template: feature-breakdown-tmpl, requires: project-plan.md }
    - { agent: architect, phase: design, creates: technical-architecture.md, template: technical-architecture-tmpl, requires: feature-breakdown.md }
    - { agent: coder, phase: build, creates: source-code.md, template: source-code-tmpl, requires: technical-architecture.md }
    - { agent: tester, phase: validate, creates: test-results.md, template: test-results-tmpl, requires: source-code.md }
    - { agent: deployer, phase: launch, creates: deployment-plan.md, template: deployment-plan-tmpl, requires: test-results.md }
"#;

/// Writes the builtin method with the six-step workflow into `dir`.
pub fn write_method(dir: &std::path::Path) {
    for (path, text) in botarmy_core::method::builtin_files() {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, text).unwrap();
    }
    std::fs::write(dir.join("workflows/six.yaml"), SIX_STEPS).unwrap();
}

/// Takes the tools away from the coder and the tester, so no run makes a git worktree.
pub fn strip_tools(dir: &std::path::Path) {
    for agent in ["coder", "tester"] {
        let file = dir.join(format!("agents/{agent}.md"));
        let text = std::fs::read_to_string(&file).unwrap();
        let start = text.find("\ntools:").unwrap();
        let end = text[start..].find("\n```").unwrap() + start;
        std::fs::write(&file, format!("{}{}", &text[..start], &text[end..])).unwrap();
    }
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Run `i` of the six-step workflow of `method`, its artifacts under `out/i`, every gate
/// with `gates` (`Auto`: the engine's path without a human in it).
pub fn request(method: &str, out: &std::path::Path, i: usize, gates: GatePolicy) -> RunRequest {
    RunRequest {
        idea: "a command-line todo app in Rust".into(),
        workflow: "six".into(),
        method: method.into(),
        options: RunOptions {
            out_dir: Some(out.join(i.to_string()).display().to_string()),
            gate_policy: Some(gates),
            ..RunOptions::default()
        },
    }
}
