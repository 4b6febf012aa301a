//! Every file of the real BMAD v4 core folder loads, with the facts we rely on.

use botarmy_core::method::TableRow;

use crate::support::{fixtures, fixtures_dir};

#[test]
fn every_fixture_file_loads() {
    let m = fixtures();
    assert_eq!(m.agents().len(), 10);
    assert_eq!(m.templates().len(), 13);
    assert_eq!(m.workflows().len(), 6);
    assert_eq!(m.teams().len(), 4);
    assert_eq!(m.tasks().len(), 23);
    assert_eq!(m.checklists().len(), 6);
    assert_eq!(m.data().len(), 6);
    assert_eq!(m.utils().len(), 2);
    assert_eq!(m.config()["prd"]["prdFile"], "docs/prd.md");
    assert_eq!(m.other_files(), ["LICENSE"]);
    // every file of the folder was seen
    let mut count = 0;
    let mut stack = vec![fixtures_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                count += 1
            }
        }
    }
    assert_eq!(count, 10 + 13 + 6 + 4 + 23 + 6 + 6 + 2 + 1 + 1);
}

#[test]
fn agents_keep_their_quirks() {
    let m = fixtures();
    let analyst = m.agent("analyst").unwrap();
    assert_eq!(
        (analyst.name.as_str(), analyst.title.as_str()),
        ("Mary", "Business Analyst")
    );
    assert_eq!(analyst.persona.core_principles.len(), 11);
    let brainstorm = analyst
        .commands
        .iter()
        .find(|c| c.name == "brainstorm")
        .unwrap();
    assert_eq!(brainstorm.args.as_deref(), Some("{topic}"));
    assert!(
        analyst
            .dependency_names("templates")
            .any(|t| t == "project-brief-tmpl.yaml")
    );
    assert_eq!(analyst.line, 33, "line of `agent:` in the .md file");
    // commands as a map, with a comment on the key line
    let orchestrator = m.agent("bmad-orchestrator").unwrap();
    assert_eq!(orchestrator.commands.len(), 11);
    assert_eq!(orchestrator.commands[0].name, "help");
    // core_principles outside persona; a command with nested instructions
    let dev = m.agent("dev").unwrap();
    assert!(!dev.persona.core_principles.is_empty());
    assert!(dev.persona.role.is_some());
    let develop = dev
        .commands
        .iter()
        .find(|c| c.name == "develop-story")
        .unwrap();
    assert!(
        develop
            .description
            .contains("order-of-execution: Read (first or next) task"),
        "{}",
        develop.description
    );
    assert!(
        develop
            .description
            .contains("story-file-updates-ONLY:\n  CRITICAL"),
        "{}",
        develop.description
    );
}

#[test]
fn templates_keep_nested_sections() {
    let m = fixtures();
    let prd = m.template("prd-tmpl").unwrap();
    assert_eq!(
        m.template("prd-template-v2").map(|t| t.key.as_str()),
        Some("prd-tmpl")
    );
    assert_eq!(prd.version.as_deref(), Some("2.0"));
    assert_eq!(
        prd.title,
        "{{project_name}} Product Requirements Document (PRD)"
    );
    assert_eq!(prd.filename.as_deref(), Some("docs/prd.md"));
    assert_eq!(prd.mode.as_deref(), Some("interactive"));
    let requirements = prd
        .sections
        .iter()
        .find(|s| s.id == "requirements")
        .unwrap();
    assert!(requirements.elicit);
    let functional = &requirements.sections[0];
    assert_eq!(functional.id, "functional");
    assert_eq!(functional.kind.as_deref(), Some("numbered-list"));
    assert_eq!(functional.prefix.as_deref(), Some("FR"));
    assert_eq!(functional.examples.len(), 1);
    assert!(functional.examples[0].starts_with("FR6: The Todo List uses AI"));
    let ui = prd.sections.iter().find(|s| s.id == "ui-goals").unwrap();
    assert_eq!(ui.condition.as_deref(), Some("PRD has UX/UI requirements"));
    assert_eq!(
        ui.choices[0],
        (
            "accessibility".to_owned(),
            vec!["None".into(), "WCAG AA".into(), "WCAG AAA".into()]
        )
    );
    let changelog = &prd.sections[0].sections[2];
    assert_eq!(
        changelog.columns,
        ["Date", "Version", "Description", "Author"]
    );
    // table rows in both shapes
    let fe = m.template("front-end-architecture-tmpl").unwrap();
    let stack = fe
        .walk()
        .into_iter()
        .find(|(_, s)| !s.rows.is_empty())
        .unwrap()
        .1;
    assert!(matches!(&stack.rows[0], TableRow::Cells(c) if c[0] == "Framework"));
    let ca = m.template("competitor-analysis-tmpl").unwrap();
    let grouped = ca
        .walk()
        .into_iter()
        .flat_map(|(_, s)| s.rows.iter())
        .find(|r| matches!(r, TableRow::Group { .. }));
    assert!(
        matches!(grouped, Some(TableRow::Group { category, rows }) if category == "Core Functionality" && rows.len() == 2)
    );
    // list items as strings or maps
    let bprd = m.template("brownfield-prd-tmpl").unwrap();
    let iv = bprd
        .walk()
        .into_iter()
        .find(|(_, s)| s.prefix.as_deref() == Some("IV"))
        .unwrap()
        .1;
    assert_eq!(iv.items[0], "IV1: {{existing_functionality_verification}}");
    // owner/editors and a list of choices
    let story = m.template("story-tmpl").unwrap();
    assert_eq!(story.sections[0].owner.as_deref(), Some("scrum-master"));
    assert_eq!(story.sections[0].editors, ["scrum-master", "dev-agent"]);
    // a template with no sections at all
    let gate = m.template("qa-gate-tmpl").unwrap();
    assert_eq!(gate.format, "yaml");
    assert!(gate.sections.is_empty());
}

#[test]
fn workflows_and_teams() {
    let m = fixtures();
    let gs = m.workflow("greenfield-service").unwrap();
    assert_eq!(gs.kind, "greenfield");
    assert_eq!(gs.project_types.len(), 6);
    assert!(gs.flow_diagram.as_deref().unwrap().contains("graph TD"));
    assert_eq!(gs.handoff_prompts.len(), 7);
    assert!(
        gs.decision_guidance
            .as_deref()
            .unwrap()
            .contains("Building production APIs")
    );
    assert_eq!(
        gs.sequence[0].optional_steps,
        ["brainstorming_session", "market_research_prompt"]
    );
    assert_eq!(
        gs.sequence[12].step.as_deref(),
        Some("repeat_development_cycle")
    );
    let gf = m.workflow("greenfield-fullstack").unwrap();
    assert_eq!(gf.sequence[4].requires, ["prd.md", "front-end-spec.md"]);
    let bf = m.workflow("brownfield-fullstack").unwrap();
    assert_eq!(
        bf.sequence[1]
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["single_story", "small_feature", "major_enhancement"]
    );
    let team = m
        .teams()
        .iter()
        .find(|t| t.id == "team-ide-minimal")
        .unwrap();
    assert_eq!(team.name, "Team IDE Minimal");
    assert!(team.workflows.is_empty(), "`workflows: null`");
    let all = m.teams().iter().find(|t| t.id == "team-all").unwrap();
    assert_eq!(
        all.agents
            .iter()
            .map(|(a, _)| a.as_str())
            .collect::<Vec<_>>(),
        ["bmad-orchestrator", "*"]
    );
    assert_eq!(
        m.task("create-doc.md").map(|t| t.name.as_str()),
        Some("create-doc")
    );
    assert_eq!(
        m.checklist("po-master-checklist").unwrap().title(),
        "Product Owner (PO) Master Validation Checklist"
    );
    assert!(m.has_resource("data", "{root}/data/bmad-kb.md"));
    assert_eq!(
        m.default_workflow().map(|w| w.id.as_str()),
        Some("brownfield-fullstack")
    );
}
