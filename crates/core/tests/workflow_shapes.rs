//! Workflows in the shapes community packs write, and a method that loads although one
//! of its workflows does not.

use botarmy_core::method::{Method, PlanError, Severity};

use crate::support::method_of;

const AGENTS: &[(&str, &str)] = &[
    (
        "agents/writer.md",
        "# writer\n\n```yaml\nagent:\n  id: writer\n  name: Wren\n  title: Writer\n```\n",
    ),
    (
        "agents/editor.md",
        "# editor\n\n```yaml\nagent:\n  id: editor\n  name: Ed\n  title: Editor\n```\n",
    ),
    (
        "tasks/outline-story.md",
        "# Outline a story\n\nList the beats.\n",
    ),
];

fn method_with(workflows: &[(&str, &str)]) -> Method {
    let mut files: Vec<(&str, &str)> = AGENTS.to_vec();
    files.extend_from_slice(workflows);
    match method_of(&files) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn phases_as_a_map_keep_their_order_and_run_task_steps() {
    let m = method_with(&[(
        "workflows/novel.yaml",
        "\
workflow:
  id: novel
  name: Novel
  phases:
    drafting:
      - agent: writer
        task: outline-story
        output: outline.md
      - agent: writer
        input: outline.md
        output: draft.md
    polishing:
      steps:
        - agent: editor
          inputs: [draft.md]
          outputs:
            - path: edited.md
            - path: notes.md
",
    )]);
    assert_eq!(
        m.check()
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count(),
        0,
        "{:?}",
        m.check()
    );
    let plan = m.plan("novel").unwrap();
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        ["drafting/outline", "drafting/draft", "polishing/edited"]
    );
    let phases: Vec<Option<&str>> = plan.steps.iter().map(|s| s.phase.as_deref()).collect();
    assert_eq!(
        phases,
        [Some("Drafting"), Some("Drafting"), Some("Polishing")]
    );
    // The task step uses its task; the second reads the first's output; the last phase
    // waits for the whole first one.
    assert_eq!(plan.steps[0].creates.as_deref(), Some("outline.md"));
    assert_eq!(plan.steps[1].requires, ["outline.md"]);
    assert_eq!(plan.steps[1].depends_on, [0]);
    assert_eq!(plan.steps[2].depends_on, [0, 1]);
    assert!(
        plan.steps[2]
            .notes
            .as_deref()
            .unwrap_or_default()
            .contains("notes.md"),
        "{:?}",
        plan.steps[2].notes
    );
    let wf = m.workflow("novel").unwrap();
    assert_eq!(wf.sequence[0].uses.as_deref(), Some("outline-story"));
    assert_eq!(wf.sequence[2].path, "workflow.phases.polishing.steps[0]");
}

#[test]
fn a_workflow_at_the_top_level_of_its_file() {
    let m = method_with(&[(
        "workflows/zine.yaml",
        "\
name: zine
title: A small zine
agents: [writer, editor]
inputs: [theme]
steps:
  - name: pitch
    output: pitch.md
  - name: layout
    agent: editor
    input: pitch.md
    output: layout.md
outputs: [layout.md]
",
    )]);
    let wf = m.workflow("zine").unwrap();
    assert_eq!(wf.name, "zine");
    assert_eq!(wf.line, 1);
    let plan = m.plan("zine").unwrap();
    // A step that names no agent goes to the first of the workflow's `agents`.
    let who: Vec<&str> = plan.steps.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(who, ["writer", "editor"]);
    assert_eq!(plan.steps[1].requires, ["pitch.md"]);
    assert_eq!(plan.steps[1].depends_on, [0]);
}

#[test]
fn named_sequences_are_workflows_of_their_own() {
    let m = method_with(&[(
        "workflows/comic.yaml",
        "\
workflow:
  id: comic
  name: Comic
  strip_sequence:
    - step: gag
      agent: writer
      creates: gag.md
    - step: panels
      agent: editor
      creates: panels/
      requires: gag.md, style.md
  jam_sequence:
    - step: quick_gag
      agent: writer
      creates: quick-gag.md
  jam_workflow_end:
    action: publish
",
    )]);
    assert_eq!(m.workflow_ids(), ["comic:jam", "comic:strip"]);
    let strip = m.plan("comic:strip").unwrap();
    assert_eq!(strip.steps.len(), 2);
    assert_eq!(strip.workflow_name, "Comic (Strip)");
    // A folder is made as one document; comma-separated names are a list.
    assert_eq!(strip.steps[1].creates.as_deref(), Some("panels.md"));
    assert_eq!(strip.steps[1].requires, ["gag.md"]);
    let jam = m.plan("comic:jam").unwrap();
    assert_eq!(jam.steps.len(), 1);
    assert_eq!(jam.steps[0].creates.as_deref(), Some("quick-gag.md"));
}

#[test]
fn one_broken_workflow_does_not_stop_the_method() {
    let m = method_with(&[
        (
            "workflows/good.yaml",
            "workflow:\n  id: good\n  sequence:\n    - agent: writer\n      creates: story.md\n",
        ),
        (
            "workflows/bad.yaml",
            "workflow:\n  id: bad\n  sequence:\n    - agent: [writer]\n      creates: x.md\n",
        ),
        ("workflows/worse.yaml", "workflow: [\n"),
    ]);
    assert_eq!(m.workflow_ids(), ["good"]);
    let broken: Vec<&str> = m
        .broken_workflows()
        .iter()
        .map(|b| b.file.as_str())
        .collect();
    assert_eq!(broken, ["workflows/bad.yaml", "workflows/worse.yaml"]);
    // `check` reports each problem where it is.
    let errors: Vec<String> = m
        .check()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0],
        "workflows/bad.yaml:4: workflow.sequence[0].agent: expected a string, found a list"
    );
    assert!(
        errors[1].starts_with("workflows/worse.yaml:2: (file): invalid YAML"),
        "{}",
        errors[1]
    );
    // The good one plans; the bad one says why it cannot start.
    assert!(m.plan("good").is_ok());
    match m.plan("bad") {
        Err(e @ PlanError::Broken { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with("workflow `bad` cannot start: workflows/bad.yaml does not load:"),
                "{text}"
            );
            assert!(
                text.contains("workflows/bad.yaml:4:14: workflow.sequence[0].agent"),
                "{text}"
            );
        }
        other => panic!("expected a broken workflow, got {other:?}"),
    }
    assert!(matches!(
        m.plan("nothing"),
        Err(PlanError::UnknownWorkflow { .. })
    ));
}

#[test]
fn a_file_in_no_known_shape_names_the_shapes() {
    let m = method_with(&[("workflows/notes.yaml", "title: just notes\nitems: [a, b]\n")]);
    let b = &m.broken_workflows()[0];
    assert_eq!(
        b.errors[0].to_string(),
        "workflows/notes.yaml:1:1: workflow: missing (expected a `workflow:` map with `id`, `name` and `sequence`, or `name` with `steps`, `sequence` or `phases` at the top level)"
    );
}

#[test]
fn a_folder_without_agents_or_workflows_is_an_error_naming_the_shapes() {
    let dir = botarmy_testkit::fixtures::bmad_v6().join("src/bmm-skills");
    let err = Method::load(&dir).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    let text = err.errors[0].to_string();
    assert!(
        text.starts_with(&format!(
            "{}: (folder): the folder yields no agent (looked for `agents/*.md`",
            dir.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("and no workflow (looked for `workflows/*.yaml`"),
        "{text}"
    );
    assert!(
        text.contains("it holds BMAD v6 files (module.yaml, module-help.csv, agents/bmad-agent-analyst/SKILL.md)"),
        "{text}"
    );
    // The v4 fixture, which has both, still loads.
    assert!(Method::load(&botarmy_testkit::fixtures::bmad_v4()).is_ok());
}
