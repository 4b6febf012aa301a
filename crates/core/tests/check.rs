//! `Method::check`: cross-references, with file:line diagnostics.

use botarmy_core::method::{Diagnostic, Severity};

use crate::support::{fixtures, method_of};

#[test]
fn bmad_fixtures_have_no_errors_and_four_fuzzy_requires() {
    let d = fixtures().check();
    assert!(d.iter().all(|d| d.severity == Severity::Warning), "{d:?}");
    let shown: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "workflows/brownfield-fullstack.yaml:63: workflow.sequence[4].requires: `existing_documentation_or_analysis` is created by no earlier step; the step will run without it",
            "workflows/brownfield-fullstack.yaml:110: workflow.sequence[10].requires: `sharded_docs_or_brownfield_docs` is created by no earlier step; the step will run without it",
            "workflows/brownfield-service.yaml:26: workflow.sequence[1].requires: `existing_service_analysis` is created by no earlier step; the step will run without it",
            "workflows/brownfield-ui.yaml:25: workflow.sequence[1].requires: `existing_ui_analysis` is created by no earlier step; the step will run without it",
        ]
    );
}

const AGENT_A: &str = "```yaml\nagent: {id: a}\ndependencies:\n  templates:\n    - missing-tmpl.yaml\n  tasks:\n    - t.md\n```\n";
const AGENT_DUP: &str = "```yaml\nagent: {id: a}\n```\n";
const WORKFLOW: &str = "\
workflow:
  id: w
  phases:
    - id: one
      depends_on: [two]
    - id: two
      depends_on: [one]
  sequence:
    - agent: a
      phase: one
      creates: x.md
    - agent: nobody
      phase: two
      uses: no-such-task
      requires: [x.md, later.md]
    - agent: analyst/a
      phase: three
      template: no-such-tmpl
      creates: later.md
    - agent: various
      phase: one
      validates: all_artifacts
      uses: t
";

#[test]
fn reports_each_kind_of_problem_with_its_place() {
    let m = method_of(&[
        ("agents/a.md", AGENT_A),
        ("agents/b.md", AGENT_DUP),
        ("tasks/t.md", "# T\n"),
        ("workflows/w.yaml", WORKFLOW),
        (
            "agent-teams/t.yaml",
            "bundle: {name: T}\nagents: [a, ghost, '*']\nworkflows: [w.yaml, gone.yaml]\n",
        ),
        ("prompts/bad.j2", "{% if %}"),
    ])
    .unwrap();
    let d = m.check();
    let shown: Vec<String> = d.iter().map(|d| format!("{} {d}", d.severity)).collect();
    let expected = [
        "error agents/b.md:2: agent.id: duplicate id `a` (also in agents/a.md)",
        "error prompts/bad.j2:1: (template): syntax error: unexpected end of block",
        "error workflows/w.yaml:1: workflow.phases: phase dependency cycle: one -> two -> one",
        "error workflows/w.yaml:12: workflow.sequence[1].agent: unknown agent `nobody`; known: a, various",
        "error workflows/w.yaml:14: workflow.sequence[1].uses: `no-such-task` is no task, checklist or template of this method",
        "error workflows/w.yaml:16: workflow.sequence[2].agent: unknown agent `analyst/a`; known: a, various",
        "error workflows/w.yaml:17: workflow.sequence[2].phase: unknown phase `three`; declare it under workflow.phases",
        "error workflows/w.yaml:18: workflow.sequence[2].template: unknown template `no-such-tmpl`",
        "warning agent-teams/t.yaml:2: agents: unknown agent `ghost`",
        "warning agent-teams/t.yaml:3: workflows: unknown workflow `gone.yaml`",
        "warning agents/a.md:5: dependencies.templates: template `missing-tmpl.yaml` does not exist in templates/",
        "warning workflows/w.yaml:15: workflow.sequence[1].requires: `later.md` is created by no earlier step; the step will run without it",
    ];
    assert_eq!(shown, expected);
}

#[test]
fn diagnostic_display_without_a_line() {
    let d = Diagnostic {
        severity: Severity::Error,
        file: "core-config.yaml".into(),
        line: 0,
        field: "default_workflow".into(),
        message: "unknown workflow".into(),
    };
    assert_eq!(
        d.to_string(),
        "core-config.yaml: default_workflow: unknown workflow"
    );
    assert_eq!(Severity::Warning.to_string(), "warning");
}

#[test]
fn a_step_cycle_through_depends_on_is_an_error() {
    let wf = "\
workflow:
  id: w
  sequence:
    - agent: a
      creates: x.md
      depends_on: y.md
    - agent: a
      creates: y.md
      requires: x.md
";
    let m = method_of(&[("agents/a.md", AGENT_DUP), ("workflows/w.yaml", wf)]).unwrap();
    let shown: Vec<String> = m.check().iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["workflows/w.yaml:6: workflow.sequence[0].depends_on: dependency cycle: x -> y -> x"]
    );
}

#[test]
fn tools_must_be_built_in_or_an_mcp_servers() {
    let m = method_of(&[
        (
            "agents/a.md",
            "```yaml\nagent: {id: a}\ntools: [file_read, shell, 'mcp:notion', 'mcp:notion/search', 'mcp:bad name', 'mcp:x/']\n```\n",
        ),
        (
            "workflows/w.yaml",
            "workflow:\n  id: w\n  sequence:\n    - agent: a\n      creates: x.md\n      tools: [run_tests, nope]\n",
        ),
    ])
    .unwrap();
    let shown: Vec<String> = m.check().iter().map(ToString::to_string).collect();
    let rest = "tools are file_read, file_write, list_dir, search, bash, git, run_tests, or an MCP server's as `mcp:<server>` or `mcp:<server>/<tool>`";
    assert_eq!(
        shown,
        [
            format!("agents/a.md: tools: unknown tool `shell`; {rest}"),
            format!("agents/a.md: tools: unknown tool `mcp:bad name`; {rest}"),
            format!("agents/a.md: tools: unknown tool `mcp:x/`; {rest}"),
            format!("workflows/w.yaml:6: workflow.sequence[0].tools: unknown tool `nope`; {rest}"),
        ]
    );
}
