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
fn a_broken_method_fails_with_file_line_and_field() {
    let s = Sandbox::new();
    let method = s.out("method");
    std::fs::create_dir_all(method.join("workflows")).unwrap();
    std::fs::create_dir_all(method.join("agents")).unwrap();
    std::fs::write(
        method.join("workflows/broken.yaml"),
        "workflow:\n  id: broken\n  name: Broken\n  sequence:\n    - agent: analyst\n      requires:\n        a: b\n",
    )
    .unwrap();
    let o = run(s.cmd().args(["check", "--method"]).arg(&method));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains("workflows/broken.yaml:7:") && text.contains("requires"),
        "the error names file, line and field: {text}"
    );

    // The same folder cannot be used for a run, and nothing is stored.
    let o = run(s.cmd().args(["run", "x", "--method"]).arg(&method));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("workflows/broken.yaml:7:"),
        "{}",
        stderr(&o)
    );
    assert!(!s.db_path().exists(), "a failed start stores nothing");
}
