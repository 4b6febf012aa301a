use crate::support::*;

#[test]
fn the_builtin_method_checks_clean() {
    let s = Sandbox::new();
    let o = ok(s.cmd().args(["check", "--json"]));
    let v = json(&o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["workflows"], serde_json::json!(["sdlc"]));
}

#[test]
fn the_bmad_fixtures_check_with_warnings_only() {
    let s = Sandbox::new();
    let o = ok(s.cmd().args(["check", "--method"]).arg(fixtures()));
    let text = stdout(&o);
    assert!(
        text.contains("10 agents, 13 templates, 6 workflows; 0 error(s)"),
        "{text}"
    );
    assert!(
        text.contains("brownfield-service.yaml:26"),
        "warnings carry file:line: {text}"
    );
}

#[test]
fn a_broken_workflow_fails_with_file_line_and_field_and_the_others_still_load() {
    let s = Sandbox::new();
    let method = s.out("method");
    std::fs::create_dir_all(method.join("workflows")).unwrap();
    std::fs::create_dir_all(method.join("agents")).unwrap();
    std::fs::write(
        method.join("agents/analyst.md"),
        "# analyst\n\n```yaml\nagent:\n  id: analyst\n  name: Ana\n  title: Analyst\n```\n",
    )
    .unwrap();
    std::fs::write(
        method.join("workflows/good.yaml"),
        "workflow:\n  id: good\n  sequence:\n    - agent: analyst\n      creates: brief.md\n",
    )
    .unwrap();
    std::fs::write(
        method.join("workflows/broken.yaml"),
        "workflow:\n  id: broken\n  name: Broken\n  sequence:\n    - agent: analyst\n      requires:\n        a: b\n",
    )
    .unwrap();
    let o = run(s.cmd().args(["check", "--json", "--method"]).arg(&method));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["workflows"], serde_json::json!(["good"]));
    let shown = v["diagnostics"][0]["message"].as_str().unwrap_or_default();
    assert_eq!(
        shown,
        "workflows/broken.yaml:7: workflow.sequence[0].requires: expected a string or a list of strings, found a map"
    );

    // A run of the broken workflow says why it cannot start, and nothing is stored.
    let o = run(s
        .cmd()
        .args(["run", "x", "--workflow", "broken", "--method"])
        .arg(&method));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("workflow `broken` cannot start: workflows/broken.yaml does not load:")
            && err.contains("workflows/broken.yaml:7:9: workflow.sequence[0].requires"),
        "{err}"
    );
    assert!(!s.db_path().exists(), "a failed start stores nothing");
}

#[test]
fn a_folder_with_no_definitions_is_an_error_that_names_the_shapes() {
    let s = Sandbox::new();
    let dir = botarmy_testkit::fixtures::bmad_v6().join("src/bmm-skills");
    let o = run(s.cmd().args(["check", "--method"]).arg(&dir));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains("the folder yields no agent (looked for `agents/*.md`")
            && text.contains("no workflow (looked for `workflows/*.yaml`")
            && text.contains("BMAD v6 files"),
        "{text}"
    );
    assert!(text.contains("definitions do not load"), "{text}");
}
