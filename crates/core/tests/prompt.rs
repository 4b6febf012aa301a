//! Prompt assembly: snapshots of rendered prompts and the rules behind them.

use botarmy_core::prompt::{ExpectedSection, PromptError, parse_condition_answer, project_name};

use crate::support::{builtin, fixtures, method_of};

const IDEA: &str = "a command-line todo app in Rust";

fn feature_breakdown() -> String {
    let mut s = String::from(
        "# Todo Feature Breakdown\n\n## Summary\n\nThree features, delivered in order.\n",
    );
    for (i, f) in ["Add tasks", "List tasks", "Complete tasks"]
        .iter()
        .enumerate()
    {
        s.push_str(&format!(
            "\n### {f}\n\n**Purpose:** users need to {f_lower}.\n**Requirements:** FR{n}\n\nA second paragraph about {f_lower} with details that may be cut when the budget is small, repeated to take room: {pad}\n",
            f_lower = f.to_lowercase(),
            n = i + 1,
            pad = "lorem ipsum ".repeat(20)
        ));
    }
    s
}

#[test]
fn sdlc_design_step_prompt_snapshot() {
    let m = builtin();
    let plan = m.plan("sdlc").unwrap();
    let step = plan
        .steps
        .iter()
        .find(|s| s.key == "design/api-specification")
        .unwrap();
    let fb = feature_breakdown();
    let ac = "# Acceptance Criteria\n\n## Criteria by Requirement\n\n**AC1 (FR1)**\n- Given an empty list\n- When I run `todo add milk`\n- Then `todo list` shows `1. milk`\n";
    let p = m
        .prompt(
            step,
            IDEA,
            &[
                ("feature-breakdown.md", &fb),
                ("acceptance-criteria.md", ac),
            ],
            300,
        )
        .unwrap();
    insta::assert_snapshot!("sdlc_design_api_system", p.system);
    insta::assert_snapshot!("sdlc_design_api_user", p.user);
    assert!(p.context[0].trimmed && !p.context[1].trimmed);
    assert!(p.context.iter().map(|c| c.tokens).sum::<u32>() <= 300);
    let titles: Vec<&str> = p.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Overview",
            "Operations",
            "{{operation_name}}",
            "Error Model",
            "End-to-End Example"
        ]
    );
    assert_eq!(
        p.sections[2],
        ExpectedSection {
            title: "{{operation_name}}".into(),
            depth: 1,
            required: true
        }
    );
    assert!(
        !p.sections[1].required,
        "repeatable sections may appear any number of times"
    );
}

#[test]
fn build_step_prompt_states_the_code_block_convention() {
    let m = builtin();
    let plan = m.plan("sdlc").unwrap();
    let step = plan
        .steps
        .iter()
        .find(|s| s.key == "build/source-code")
        .unwrap();
    let p = m.prompt(step, IDEA, &[], 4_000).unwrap();
    insta::assert_snapshot!("sdlc_build_source_code_user", p.user);
    assert!(p.user.contains("```rust path=src/main.rs"));
}

#[test]
fn bmad_prd_prompt_keeps_llm_placeholders_and_fills_project_name() {
    let m = fixtures();
    let plan = m.plan("greenfield-service").unwrap();
    let prd = &plan.steps[1];
    let p = m
        .prompt(
            prd,
            "an API for a pet shop",
            &[("project-brief.md", "# Brief\n\nPets.")],
            4_000,
        )
        .unwrap();
    assert!(
        p.system.starts_with("You are John, the Product Manager"),
        "{}",
        p.system
    );
    assert!(
        p.user
            .contains("\"# API for a pet shop Product Requirements Document (PRD)\""),
        "{}",
        p.user
    );
    assert!(
        p.user
            .contains("### Accessibility: {None|WCAG AA|WCAG AAA|Custom Requirements}"),
        "{}",
        p.user
    );
    assert!(
        p.user
            .contains("- Choose accessibility from: None | WCAG AA | WCAG AAA"),
        "{}",
        p.user
    );
    assert!(
        p.user.contains("- Number the items FR1, FR2, ..."),
        "{}",
        p.user
    );
    assert!(
        p.user.contains("Check if data/technical-preferences.yaml"),
        "{{root}} is stripped: {}",
        p.user
    );
    assert!(
        p.user
            .contains("<document name=\"project-brief.md\">\n# Brief\n\nPets.\n</document>")
    );
    let conditional = p
        .sections
        .iter()
        .find(|s| s.title == "User Interface Design Goals")
        .unwrap();
    assert!(!conditional.required);
    assert!(
        p.sections
            .iter()
            .any(|s| s.title == "Goals" && s.required && s.depth == 1)
    );
}

#[test]
fn a_step_that_uses_a_checklist_gets_it_as_context() {
    let m = fixtures();
    let plan = m.plan("greenfield-service").unwrap();
    let validate = &plan.steps[4];
    let p = m
        .prompt(validate, "x", &[("prd.md", "# PRD\n")], 2_000)
        .unwrap();
    assert_eq!(p.context.len(), 2);
    assert_eq!(p.context[1].name, "checklists/po-master-checklist.md");
    assert!(
        p.context[1].trimmed,
        "the long checklist is fitted into the budget"
    );
    assert!(p.user.contains("Validate all artifacts for consistency and completeness using the checklist `po-master-checklist`."));
    assert!(p.sections.is_empty(), "no template, no expected sections");
}

#[test]
fn condition_prompts_and_answers() {
    let m = fixtures();
    let plan = m.plan("greenfield-service").unwrap();
    let update = &plan.steps[3];
    let p = m
        .condition_prompt(
            update,
            IDEA,
            &[("architecture.md", "# Arch\n\nNo PRD changes.")],
            update.condition.as_deref().unwrap(),
            1_000,
        )
        .unwrap();
    insta::assert_snapshot!("bmad_condition_user", p.user);
    for (answer, want) in [
        ("YES - it does", Some(true)),
        ("no.", Some(false)),
        ("**Yes**", Some(true)),
        ("maybe", None),
        ("", None),
    ] {
        assert_eq!(parse_condition_answer(answer), want, "{answer}");
    }
}

#[test]
fn a_method_can_override_prompt_templates() {
    let m = method_of(&[
        ("agents/a.md", "```yaml\nagent: {id: a, name: Al, title: Helper}\n```\n"),
        ("workflows/w.yaml", "workflow:\n  id: w\n  sequence:\n    - agent: a\n      action: say_hello\n"),
        ("prompts/user.j2", "{% extends \"base.j2\" %}{% block task %}{{ step.instruction }} for {{ project_name }}{% endblock %}"),
        ("prompts/base.j2", "<<{% block task %}{% endblock %}>>"),
    ])
    .unwrap();
    let plan = m.plan("w").unwrap();
    let p = m.prompt(&plan.steps[0], "the moon", &[], 100).unwrap();
    assert_eq!(p.user, "<<Say hello. for Moon>>");
    assert!(
        p.system.starts_with("You are Al, the Helper"),
        "builtin system.j2 is used: {}",
        p.system
    );
}

#[test]
fn broken_prompt_templates_and_unknown_agents_are_errors() {
    let m = method_of(&[
        ("agents/a.md", "```yaml\nagent: {id: a}\n```\n"),
        (
            "workflows/w.yaml",
            "workflow:\n  id: w\n  sequence:\n    - agent: a\n      action: go\n",
        ),
        ("prompts/user.j2", "line\n{{ no_such_variable }}"),
    ])
    .unwrap();
    let plan = m.plan("w").unwrap();
    let e = m.prompt(&plan.steps[0], "x", &[], 100).unwrap_err();
    assert_eq!(
        e.to_string(),
        "user.j2:2: undefined variable `no_such_variable`"
    );
    let mut other = plan.steps[0].clone();
    other.agent = "ghost".into();
    assert_eq!(
        m.prompt(&other, "x", &[], 100).unwrap_err(),
        PromptError::UnknownAgent {
            step: "go".into(),
            agent: "ghost".into()
        }
    );
}

#[test]
fn project_names_from_ideas() {
    for (idea, want) in [
        (
            "a command-line todo app in Rust",
            "Command-line todo app in Rust",
        ),
        ("The weather bot.\nMore details here", "Weather bot"),
        ("  ", "Untitled project"),
        ("an", "An"),
        (
            "build one two three four five six seven eight nine ten",
            "Build one two three four five six seven",
        ),
    ] {
        assert_eq!(project_name(idea), want, "{idea}");
    }
}
