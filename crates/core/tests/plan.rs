//! Planning: the builtin SDLC and real BMAD workflows resolve into sensible plans.

use botarmy_core::method::PlanError;
use botarmy_protocol::StepKind;

use crate::support::{builtin, fixtures, method_of};

#[test]
fn sdlc_plans_18_steps_in_6_phases_each_followed_by_a_conflict_check() {
    let m = builtin();
    let plan = m.plan("sdlc").unwrap();
    assert_eq!(plan.workflow_id, "sdlc");
    assert_eq!(plan.cycle_type, "sdlc");
    assert_eq!(plan.method_digest, m.digest());
    assert_eq!(plan.steps.len(), 24);
    let work: Vec<usize> = (0..plan.steps.len())
        .filter(|&i| plan.steps[i].kind == StepKind::Work)
        .collect();
    assert_eq!(work.len(), 18);
    let at = |key: &str| -> u32 {
        u32::try_from(plan.steps.iter().position(|s| s.key == key).unwrap()).unwrap()
    };
    let phases = ["Discovery", "Plan", "Design", "Build", "Validate", "Launch"];
    let outputs: [&[&str]; 6] = [
        &[
            "project-plan.md",
            "user-requirements.md",
            "success-criteria.md",
        ],
        &["feature-breakdown.md", "acceptance-criteria.md"],
        &[
            "technical-architecture.md",
            "api-specification.md",
            "data-models.md",
        ],
        &["source-code.md", "unit-tests.md", "documentation.md"],
        &[
            "test-results.md",
            "quality-report.md",
            "performance-metrics.md",
            "risk-cards.md",
        ],
        &[
            "deployment-plan.md",
            "environment-config.md",
            "monitoring-setup.md",
        ],
    ];
    let agents = [
        "analyst",
        "analyst",
        "architect",
        "coder",
        "tester",
        "deployer",
    ];
    let mut i = 0usize;
    let mut previous: Vec<u32> = Vec::new();
    let mut earlier_docs: Vec<String> = Vec::new();
    for ((phase, outs), agent) in phases.iter().zip(outputs).zip(agents) {
        let mut this = Vec::new();
        for out in outs {
            let p = work[i];
            let s = &plan.steps[p];
            assert_eq!(s.phase.as_deref(), Some(*phase), "{}", s.key);
            // The risk review is the risk agent's, in Validate.
            let agent = if *out == "risk-cards.md" {
                "risk"
            } else {
                agent
            };
            assert_eq!(s.agent, agent, "{}", s.key);
            assert_eq!(s.creates.as_deref(), Some(*out));
            let stem = out.trim_end_matches(".md");
            assert_eq!(s.key, format!("{}/{stem}", phase.to_lowercase()));
            assert_eq!(s.template.as_deref(), Some(format!("{stem}-tmpl").as_str()));
            // a phase waits for all of the previous phase, and nothing else (the risk review
            // also reads the test results and the quality report of its own phase)
            let mut expected = previous.clone();
            if *out == "risk-cards.md" {
                expected.extend([at("validate/test-results"), at("validate/quality-report")]);
            }
            assert_eq!(s.depends_on, expected, "{}", s.key);
            for r in &s.requires {
                let creator = plan
                    .steps
                    .iter()
                    .position(|o| o.creates.as_deref() == Some(r))
                    .unwrap();
                assert!(creator < p, "{} reads {r} made later", s.key);
            }
            assert!(!s.optional);
            this.push(u32::try_from(p).unwrap());
            i += 1;
        }
        // Right after the phase: the reviewer's check of its documents against each other
        // and the earlier ones, once they are all done.
        let check = &plan.steps[work[i - 1] + 1];
        let id = phase.to_lowercase();
        assert_eq!(check.key, format!("{id}/conflict-check"));
        assert_eq!(check.kind, StepKind::ConflictCheck);
        assert_eq!(check.agent, "reviewer");
        assert_eq!(check.phase.as_deref(), Some(*phase));
        assert_eq!(check.creates, Some(format!("conflicts-{id}.md")));
        // Its own documents first (the risk review, under a gate of its own, is left out),
        // then those of the phases before it, the nearest first.
        let risk = at("validate/risk-cards");
        let mut docs: Vec<String> = outs
            .iter()
            .filter(|o| **o != "risk-cards.md")
            .map(|o| (*o).to_owned())
            .collect();
        docs.extend(earlier_docs.iter().cloned());
        assert_eq!(check.requires, docs, "{}", check.key);
        let gated: Vec<u32> = this.iter().copied().filter(|s| *s != risk).collect();
        assert_eq!(check.depends_on, gated, "{}", check.key);
        let mut all: Vec<String> = outs.iter().map(|o| (*o).to_owned()).collect();
        all.extend(earlier_docs);
        earlier_docs = all;
        previous = this;
    }
    // A gate per phase, and the risk review's own (a high risk waits for a person).
    let gates: Vec<(&str, &[u32])> = plan
        .gates
        .iter()
        .map(|g| (g.key.as_str(), g.steps.as_slice()))
        .collect();
    assert_eq!(
        gates,
        [
            ("phase:discovery", &[0, 1, 2, 3][..]),
            ("phase:plan", &[4, 5, 6]),
            ("phase:design", &[7, 8, 9, 10]),
            ("phase:build", &[11, 12, 13, 14]),
            ("phase:validate", &[15, 16, 17, 19]),
            ("validate/risk-cards", &[18]),
            ("phase:launch", &[20, 21, 22, 23]),
        ]
    );
    assert!(
        plan.steps[7]
            .requires
            .contains(&"feature-breakdown.md".to_owned())
    );
}

#[test]
fn greenfield_service_plans_sensibly() {
    let m = fixtures();
    let wf = m.workflow("greenfield-service").unwrap();
    assert_eq!(
        wf.sequence.len(),
        15,
        "items, including the two `step:` items"
    );
    let plan = m.plan("greenfield-service").unwrap();
    assert_eq!(plan.cycle_type, "greenfield");
    assert_eq!(plan.workflow_name, "Greenfield Service/API Development");
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "project-brief",
            "prd",
            "architecture",
            "update-prd",
            "validate-all-artifacts",
            "update-any-flagged-documents",
            "shard-documents",
            "create-story",
            "review-draft-story",
            "implement-story",
            "review-implementation",
            "address-qa-feedback",
            "epic-retrospective",
        ]
    );
    let s = &plan.steps;
    // documents come from the templates their agents own
    assert_eq!(s[0].template.as_deref(), Some("project-brief-tmpl"));
    assert_eq!(s[1].template.as_deref(), Some("prd-tmpl"));
    assert_eq!(s[2].template.as_deref(), Some("architecture-tmpl"));
    assert_eq!(s[7].template.as_deref(), Some("story-tmpl"));
    assert_eq!(s[1].requires, ["project-brief.md"]);
    assert_eq!(s[1].depends_on, [0]);
    // an update makes a new version of prd.md, read by later steps
    assert_eq!(s[3].creates.as_deref(), Some("prd.md"));
    assert_eq!(s[3].requires, ["architecture.md", "prd.md"]);
    assert_eq!(
        s[3].condition.as_deref(),
        Some("architecture_suggests_prd_changes")
    );
    assert_eq!(s[3].depends_on, [1, 2]);
    // validation reads everything made so far, with the checklist it uses
    assert_eq!(s[4].agent, "po");
    assert_eq!(
        s[4].requires,
        ["project-brief.md", "prd.md", "architecture.md"]
    );
    assert_eq!(s[4].depends_on, [0, 2, 3]);
    assert_eq!(
        s[4].instruction.as_deref(),
        Some(
            "Validate all artifacts for consistency and completeness using the checklist `po-master-checklist`."
        )
    );
    // `various` goes to the last agent that wrote a document, and says so
    assert_eq!(s[5].agent, "pm");
    assert!(s[5].notes.as_deref().unwrap().contains("`various`"));
    assert_eq!(s[5].depends_on, [4], "no requires: the previous step");
    // `analyst/pm` takes the first
    assert_eq!(s[8].agent, "analyst");
    assert!(s[8].optional);
    assert_eq!(s[7].creates.as_deref(), Some("story.md"));
    assert!(s[7].notes.as_deref().unwrap().contains("for_each_epic"));
    assert_eq!(s[9].requires, ["story.md"]);
    assert_eq!(s[9].depends_on, [8], "the latest version of story.md");
    assert_eq!(
        s[0].notes.as_deref().unwrap().lines().last(),
        Some(
            "Optional work before this step, if useful: brainstorming_session, market_research_prompt."
        )
    );
    for (i, step) in s.iter().enumerate() {
        assert!(
            step.depends_on.iter().all(|&d| (d as usize) < i),
            "{}",
            step.key
        );
        assert!(m.agent(&step.agent).is_some(), "{}", step.agent);
    }
}

#[test]
fn every_fixture_workflow_plans() {
    let m = fixtures();
    for id in m.workflow_ids() {
        let plan = m.plan(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(plan.steps.len() >= 10, "{id}");
        let fullstack = m.plan("greenfield-fullstack").unwrap();
        assert_eq!(fullstack.steps[4].requires, ["prd.md", "front-end-spec.md"]);
        assert_eq!(
            fullstack.steps[4].template.as_deref(),
            Some("fullstack-architecture-tmpl")
        );
    }
    // `uses:` naming a template picks it
    let b = m.plan("brownfield-service").unwrap();
    assert_eq!(b.steps[1].template.as_deref(), Some("brownfield-prd-tmpl"));
    assert!(
        b.steps[1]
            .notes
            .as_deref()
            .unwrap()
            .contains("existing_service_analysis")
    );
}

#[test]
fn unknown_workflow_lists_the_available_ones() {
    let err = builtin().plan("waterfall").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown workflow `waterfall`; available: sdlc"
    );
    assert!(matches!(err, PlanError::UnknownWorkflow { .. }));
    assert!(
        fixtures().plan("greenfield-service.yaml").is_ok(),
        "file names work too"
    );
}

const AGENT: &str = "```yaml\nagent: {id: a}\n```\n";

#[test]
fn declared_dependencies_and_their_errors() {
    let wf = |extra: &str, phases: &str| {
        format!(
            "workflow:\n  id: w\n  phases:\n{phases}  sequence:\n    - agent: a\n      phase: one\n      creates: x.md\n    - agent: a\n      phase: two\n      creates: y.md\n{extra}"
        )
    };
    let ok_phases = "    - id: one\n    - id: two\n";
    // two phases without dependencies run in parallel
    let m = method_of(&[
        ("agents/a.md", AGENT),
        ("workflows/w.yaml", &wf("", ok_phases)),
    ])
    .unwrap();
    assert_eq!(m.plan("w").unwrap().steps[1].depends_on, Vec::<u32>::new());
    // an explicit depends_on on a step key
    let m = method_of(&[
        ("agents/a.md", AGENT),
        (
            "workflows/w.yaml",
            &wf("      depends_on: one/x\n", ok_phases),
        ),
    ])
    .unwrap();
    assert_eq!(m.plan("w").unwrap().steps[1].depends_on, [0]);
    // unknown name
    let m = method_of(&[
        ("agents/a.md", AGENT),
        (
            "workflows/w.yaml",
            &wf("      depends_on: nothing\n", ok_phases),
        ),
    ])
    .unwrap();
    assert_eq!(
        m.plan("w").unwrap_err().to_string(),
        "workflows/w.yaml:13: workflow.sequence[1].depends_on: `nothing` names no step key, step name or artifact of this workflow"
    );
    // a phase cycle
    let cyclic = "    - id: one\n      depends_on: [two]\n    - id: two\n      depends_on: [one]\n";
    let m = method_of(&[
        ("agents/a.md", AGENT),
        ("workflows/w.yaml", &wf("", cyclic)),
    ])
    .unwrap();
    let err = m.plan("w").unwrap_err();
    assert!(matches!(err, PlanError::Cycle { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("dependency cycle: one/x -> two/y -> one/x"),
        "{err}"
    );
    // an unknown phase
    let m = method_of(&[
        ("agents/a.md", AGENT),
        ("workflows/w.yaml", &wf("", "    - id: one\n")),
    ])
    .unwrap();
    assert_eq!(
        m.plan("w").unwrap_err().to_string(),
        "workflows/w.yaml:10: workflow.sequence[1].phase: unknown phase `two`; declared phases: one"
    );
}

#[test]
fn conflict_checks_follow_the_workflow_settings() {
    let reviewer = "```yaml\nagent: {id: reviewer}\n```\n";
    let wf = |top: &str, two: &str| {
        format!(
            "workflow:\n  id: w\n{top}  phases:\n    - id: one\n    - id: two\n      depends_on: [one]\n{two}  sequence:\n    - agent: a\n      phase: one\n      creates: x.md\n    - agent: a\n      phase: two\n      creates: y.md\n"
        )
    };
    let keys = |m: &botarmy_core::method::Method| -> Vec<String> {
        m.plan("w")
            .unwrap()
            .steps
            .iter()
            .map(|s| s.key.clone())
            .collect()
    };
    // Without a reviewer nobody checks.
    let m = method_of(&[("agents/a.md", AGENT), ("workflows/w.yaml", &wf("", ""))]).unwrap();
    assert_eq!(keys(&m), ["one/x", "two/y"]);
    // With one, a phase with two documents to compare is checked (the first has one).
    let m = method_of(&[
        ("agents/a.md", AGENT),
        ("agents/reviewer.md", reviewer),
        ("workflows/w.yaml", &wf("", "")),
    ])
    .unwrap();
    assert_eq!(keys(&m), ["one/x", "two/y", "two/conflict-check"]);
    let plan = m.plan("w").unwrap();
    assert_eq!(plan.steps[2].requires, ["y.md", "x.md"]);
    assert_eq!(plan.steps[2].depends_on, [1]);
    assert_eq!(plan.gates[1].steps, [1, 2]);
    // Turned off for the workflow, or for the phase; another agent named.
    for (top, two) in [
        ("  conflict_check: false\n", ""),
        ("", "      conflict_check: false\n"),
    ] {
        let m = method_of(&[
            ("agents/a.md", AGENT),
            ("agents/reviewer.md", reviewer),
            ("workflows/w.yaml", &wf(top, two)),
        ])
        .unwrap();
        assert_eq!(keys(&m), ["one/x", "two/y"], "{top}{two}");
    }
    let m = method_of(&[
        ("agents/a.md", AGENT),
        ("workflows/w.yaml", &wf("  conflict_check: a\n", "")),
    ])
    .unwrap();
    assert_eq!(m.plan("w").unwrap().steps[2].agent, "a");
    // An agent that does not exist is an error of `botarmy check`, with its line.
    let m = method_of(&[
        ("agents/a.md", AGENT),
        ("workflows/w.yaml", &wf("  conflict_check: judge\n", "")),
    ])
    .unwrap();
    let errors: Vec<String> = m.check().iter().map(|d| d.to_string()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e
                .contains("workflows/w.yaml:3: workflow.conflict_check: unknown agent `judge`")),
        "{errors:?}"
    );
}
