//! The default method's files, embedded in the binary. The same files live in
//! `crates/core/method/`, so `botarmy check --method crates/core/method` reads exactly what
//! the binary carries (a test keeps this list and the folder in step).

macro_rules! embed {
    ($($path:literal,)*) => {
        &[$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/method/", $path))),)*]
    };
}

/// `(path relative to the method folder, contents)` of every builtin file.
pub(crate) const FILES: &[(&str, &str)] = embed![
    "README.md",
    "agent-teams/team-sdlc.yaml",
    "agents/analyst.md",
    "agents/architect.md",
    "agents/coder.md",
    "agents/deployer.md",
    "agents/reviewer.md",
    "agents/risk.md",
    "agents/tester.md",
    "checklists/code-review-checklist.md",
    "checklists/document-quality-checklist.md",
    "core-config.yaml",
    "prompts/agreement.j2",
    "prompts/checklist.j2",
    "prompts/condition.j2",
    "prompts/conflict-check.j2",
    "prompts/mediation.j2",
    "prompts/partials/context.j2",
    "prompts/partials/feedback.j2",
    "prompts/partials/output.j2",
    "prompts/partials/task.j2",
    "prompts/partials/template.j2",
    "prompts/system.j2",
    "prompts/user.j2",
    "tasks/assess-risk.md",
    "tasks/create-document.md",
    "tasks/review-document.md",
    "templates/acceptance-criteria-tmpl.yaml",
    "templates/api-specification-tmpl.yaml",
    "templates/data-models-tmpl.yaml",
    "templates/deployment-plan-tmpl.yaml",
    "templates/documentation-tmpl.yaml",
    "templates/environment-config-tmpl.yaml",
    "templates/feature-breakdown-tmpl.yaml",
    "templates/monitoring-setup-tmpl.yaml",
    "templates/performance-metrics-tmpl.yaml",
    "templates/project-plan-tmpl.yaml",
    "templates/quality-report-tmpl.yaml",
    "templates/risk-cards-tmpl.yaml",
    "templates/source-code-tmpl.yaml",
    "templates/success-criteria-tmpl.yaml",
    "templates/technical-architecture-tmpl.yaml",
    "templates/test-results-tmpl.yaml",
    "templates/unit-tests-tmpl.yaml",
    "templates/user-requirements-tmpl.yaml",
    "workflows/sdlc.yaml",
];
