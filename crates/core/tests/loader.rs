//! The tolerant loader: BMAD's quirks as table tests, and errors that name file, line,
//! column and field exactly.

use botarmy_core::method::{parse_agent, parse_team, parse_template, parse_workflow};

use crate::support::method_of;

fn agent_md(yaml: &str) -> String {
    format!("# x\n\nSome preamble.\n\n```yaml\n{yaml}```\n\nTrailing text.\n")
}

#[test]
fn commands_in_every_shape() {
    type Cmd<'a> = (&'a str, Option<&'a str>, &'a str);
    let cases: &[(&str, &[Cmd<'_>])] = &[
        (
            "commands:\n  - help: Show help\n  - research {topic}: run task x.md\n",
            &[
                ("help", None, "Show help"),
                ("research", Some("{topic}"), "run task x.md"),
            ],
        ),
        (
            "commands: # a comment\n  help: Show help\n  exit: Leave\n",
            &[("help", None, "Show help"), ("exit", None, "Leave")],
        ),
        (
            "commands:\n  - help\n  - '*exit'\n",
            &[("help", None, ""), ("exit", None, "")],
        ),
        (
            "commands:\n  - develop-story:\n      - order: a then b\n      - blocking: 'HALT for: x'\n",
            &[(
                "develop-story",
                None,
                "order: a then b\nblocking: HALT for: x",
            )],
        ),
        ("commands: ~\n", &[]),
    ];
    for (yaml, want) in cases {
        let text = agent_md(&format!("agent:\n  id: a\n  name: A\n  title: T\n{yaml}"));
        let a = parse_agent("agents/a.md", &text).unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
        let got: Vec<(&str, Option<&str>, &str)> = a
            .commands
            .iter()
            .map(|c| (c.name.as_str(), c.args.as_deref(), c.description.as_str()))
            .collect();
        assert_eq!(&got, want, "{yaml}");
    }
}

#[test]
fn core_principles_inside_or_outside_persona() {
    let inside =
        agent_md("agent: {id: a}\npersona:\n  role: R\n  core_principles:\n    - One\n    - Two\n");
    let outside =
        agent_md("agent: {id: a}\npersona:\n  role: R\ncore_principles:\n  - One\n  - Two\n");
    let mixed = agent_md(
        "agent: {id: a}\npersona:\n  core_principles: [One]\ncore_principles:\n  - Two: with detail\n",
    );
    for (text, want) in [
        (inside, vec!["One", "Two"]),
        (outside, vec!["One", "Two"]),
        (mixed, vec!["One", "Two: with detail"]),
    ] {
        let a = parse_agent("agents/a.md", &text).unwrap();
        assert_eq!(a.persona.core_principles, want);
    }
}

#[test]
fn agent_defaults_root_placeholders_and_extensions() {
    let text = agent_md(
        "agent:\n  name: Zed\ndependencies:\n  tasks:\n    - '{root}/tasks/create-doc.md'\n    - other.md\n  data: null\ntools: [read_file, write_file]\nmax_turns: 7\n",
    );
    let a = parse_agent("agents/zed-agent.md", &text).unwrap();
    assert_eq!(a.id, "zed-agent");
    assert_eq!(a.title, "Zed");
    assert_eq!(
        a.dependency_names("tasks").collect::<Vec<_>>(),
        ["create-doc.md", "other.md"]
    );
    assert_eq!(a.dependencies["tasks"][0].line, 10, "line in the .md file");
    assert!(a.dependencies["data"].is_empty());
    assert_eq!(a.tools, ["read_file", "write_file"]);
    assert_eq!(a.max_turns, Some(7));
    assert!(a.preamble.contains("Some preamble."));
}

#[test]
fn requires_as_string_or_list_and_item_shapes() {
    let text = "\
workflow:
  id: w
  sequence:
    - agent: pm
      creates: prd.md (if needed)
      requires: brief.md
    - agent: architect
      requires:
        - prd.md
        - brief.md
    - step: routing
      routes:
        small:
          agent: pm
          uses: story-task
        big:
          continue: next
    - workflow_end:
        action: project_complete
    - classification_decision: Decide how big the change is
    - bare_step_name
";
    let w = parse_workflow("workflows/w.yaml", text).unwrap();
    assert_eq!(w.len(), 1);
    let s = &w[0].sequence;
    assert_eq!(s.len(), 6);
    assert_eq!(s[0].requires, ["brief.md"]);
    assert_eq!(s[0].creates.as_deref(), Some("prd.md (if needed)"));
    assert_eq!(s[1].requires, ["prd.md", "brief.md"]);
    assert_eq!(s[2].routes.len(), 2);
    assert_eq!(s[2].routes[0].uses.as_deref(), Some("story-task"));
    assert_eq!(s[3].step.as_deref(), Some("workflow_end"));
    assert_eq!(s[3].action.as_deref(), Some("project_complete"));
    assert_eq!(s[4].step.as_deref(), Some("classification_decision"));
    assert_eq!(s[4].notes.as_deref(), Some("Decide how big the change is"));
    assert_eq!(s[5].step.as_deref(), Some("bare_step_name"));
    assert_eq!(s[1].line, 7);
    assert_eq!(s[1].line_of("requires"), 8);
}

#[test]
fn table_rows_in_two_shapes_and_list_choices() {
    let text = "\
template:
  id: t
  name: T
  version: 2.0
  output: {format: markdown, filename: docs/t.md, title: '{{project_name}} T'}
sections:
  - id: plain
    type: table
    columns: [A, B]
    rows:
      - [a1, b1]
  - id: grouped
    rows:
      - category: Core
        items:
          - [x, '{{y}}']
  - id: status
    choices: [Draft, Done]
  - title: No Id Here
";
    let t = parse_template("templates/t-tmpl.yaml", text).unwrap();
    use botarmy_core::method::TableRow;
    assert_eq!(t.key, "t-tmpl");
    assert_eq!(t.version.as_deref(), Some("2.0"));
    assert_eq!(
        t.sections[0].rows,
        [TableRow::Cells(vec!["a1".into(), "b1".into()])]
    );
    assert_eq!(
        t.sections[1].rows,
        [TableRow::Group {
            category: "Core".into(),
            rows: vec![vec!["x".into(), "{{y}}".into()]]
        }]
    );
    assert_eq!(
        t.sections[2].choices,
        [(String::new(), vec!["Draft".to_owned(), "Done".to_owned()])]
    );
    assert_eq!(t.sections[3].id, "no-id-here");
}

#[test]
fn wrong_type_names_file_line_column_field() {
    let text = "\
workflow:
  id: x
  sequence:
    - agent: pm
      creates: prd.md
    - agent: pm
      requires:
        a: b
";
    let errs = parse_workflow("workflows/x.yaml", text).unwrap_err();
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "workflows/x.yaml:8:9: workflow.sequence[1].requires: expected a string or a list of strings, found a map"
        ]
    );
}

#[test]
fn every_error_of_a_file_is_reported() {
    let text = "\
workflow:
  id: x
  sequence:
    - agent: [pm]
      optional: maybe
      max_turns: lots
";
    let errs = parse_workflow("workflows/x.yaml", text).unwrap_err();
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "workflows/x.yaml:4:14: workflow.sequence[0].agent: expected a string, found a list",
            "workflows/x.yaml:5:17: workflow.sequence[0].optional: expected true or false, found a string `maybe`",
            "workflows/x.yaml:6:18: workflow.sequence[0].max_turns: expected a whole number, found a string `lots`",
        ]
    );
}

#[test]
fn agent_errors_use_lines_of_the_md_file() {
    // the yaml block starts on line 6 of the file
    let text = agent_md("agent:\n  id: a\npersona: just a string\n");
    let errs = parse_agent("agents/a.md", &text).unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "agents/a.md:8:10: persona: expected a map, found a string `just a string`"
    );
    let bad = agent_md("agent:\n  id: [a\n");
    let e = parse_agent("agents/a.md", &bad).unwrap_err();
    assert!(e[0].to_string().starts_with("agents/a.md:8:"), "{}", e[0]);
    assert!(e[0].to_string().contains("invalid YAML"), "{}", e[0]);
    let none = parse_agent("agents/b.md", "# b\n\nno block\n").unwrap_err();
    assert!(
        none[0]
            .to_string()
            .starts_with("agents/b.md: no ```yaml block found"),
        "{}",
        none[0]
    );
}

#[test]
fn syntax_errors_and_missing_fields() {
    let e = parse_template(
        "templates/t.yaml",
        "template:\n  id: t\n  name: [unclosed\n",
    )
    .unwrap_err();
    assert!(
        e[0].to_string().starts_with("templates/t.yaml:4:"),
        "{}",
        e[0]
    );
    let e = parse_template("templates/t.yaml", "template:\n  name: T\nsections: []\n").unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "templates/t.yaml:2:3: template.id: missing (expected a string)"
    );
    let e = parse_workflow("workflows/w.yaml", "workflow:\n  id: w\n").unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "workflows/w.yaml:2:3: workflow.sequence: missing (expected a list of steps: `sequence`, `steps`, a named `<name>_sequence`, or `phases` with steps)"
    );
    let e = parse_workflow("workflows/w.yaml", "a: 1\na: 2\n").unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "workflows/w.yaml:2:1: invalid YAML: duplicate key `a`"
    );
    let e = parse_team("agent-teams/t.yaml", "bundle: {name: T}\nagents: pm\n").unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "agent-teams/t.yaml:2:9: agents: expected a list, found a string `pm`"
    );
}

#[test]
fn a_folder_reports_the_errors_of_all_its_files() {
    let err = method_of(&[
        ("agents/a.md", "no yaml here"),
        ("workflows/w.yaml", "workflow:\n  id: w\n  sequence: 3\n"),
        ("templates/t.yaml", "template: [\n"),
        ("README.md", "ignored"),
    ])
    .unwrap_err();
    // The workflow that cannot be read does not stop the method: it is reported by
    // `check` (see workflow_shapes); the agent and the template do.
    assert_eq!(err.errors.len(), 2);
    let text = err.to_string();
    assert!(text.starts_with("2 errors in method builtin"), "{text}");
    assert!(text.contains("agents/a.md: no ```yaml block"), "{text}");
    assert!(!text.contains("workflows/w.yaml"), "{text}");
    assert!(
        text.contains("templates/t.yaml:2:1: invalid YAML"),
        "{text}"
    );
}

#[test]
fn not_utf8_and_missing_folder() {
    let err = botarmy_core::method::Method::from_files(
        botarmy_core::method::MethodSource::Builtin,
        vec![("agents/a.md".to_owned(), vec![0xff, 0xfe])],
    )
    .unwrap_err();
    assert_eq!(
        err.errors[0].to_string(),
        "agents/a.md: invalid YAML: the file is not valid UTF-8"
    );
    let missing = botarmy_core::method::Method::load(std::path::Path::new("/nonexistent/method"))
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("/nonexistent/method: cannot read the file"),
        "{missing}"
    );
}
