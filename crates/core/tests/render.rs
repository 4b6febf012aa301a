//! Jinja rendering of prompt templates (strict) and placeholder filling of BMAD text.

use std::collections::BTreeMap;

use botarmy_core::render::{Prompts, RenderError, fill_placeholders, render_str};
use serde_json::json;

fn prompts(files: &[(&str, &str)]) -> Prompts {
    Prompts::new(
        files
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    )
}

#[test]
fn variables_conditionals_loops() {
    let src = "Hello {{ name }}!\n{% if items %}\n{% for i in items %}\n- {{ loop.index }}. {{ i | upper }}\n{% endfor %}\n{% else %}\nnothing\n{% endif %}\n";
    assert_eq!(
        render_str("t.j2", src, json!({"name": "Ada", "items": ["a", "b"]})).unwrap(),
        "Hello Ada!\n- 1. A\n- 2. B\n"
    );
    assert_eq!(
        render_str("t.j2", src, json!({"name": "Ada", "items": []})).unwrap(),
        "Hello Ada!\nnothing\n"
    );
}

#[test]
fn include_extends_and_import_across_files() {
    let p = prompts(&[
        ("base.j2", "[{% block body %}base{% endblock %}]"),
        (
            "child.j2",
            "{% extends \"base.j2\" %}{% block body %}{% include \"part.j2\" %}{% endblock %}",
        ),
        ("part.j2", "part {{ x }}"),
        (
            "macros.j2",
            "{% macro shout(s) %}{{ s | upper }}!{% endmacro %}",
        ),
        (
            "use.j2",
            "{% from \"macros.j2\" import shout %}{{ shout(x) }}",
        ),
    ]);
    assert_eq!(p.render("child.j2", json!({"x": 1})).unwrap(), "[part 1]");
    assert_eq!(p.render("use.j2", json!({"x": "hi"})).unwrap(), "HI!");
    assert_eq!(
        p.names().collect::<Vec<_>>(),
        ["base.j2", "child.j2", "macros.j2", "part.j2", "use.j2"]
    );
}

#[test]
fn undefined_variable_names_file_line_and_variable() {
    let p = prompts(&[
        ("outer.j2", "line one\n{% include \"inner.j2\" %}"),
        ("inner.j2", "ok {{ known }}\nthen {{ project_nam }}\n"),
        ("attr.j2", "\n\n{{ step.titel }}"),
    ]);
    let e = p.render("outer.j2", json!({"known": 1})).unwrap_err();
    assert_eq!(
        e,
        RenderError::Undefined {
            file: "inner.j2".into(),
            line: 2,
            name: "project_nam".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "inner.j2:2: undefined variable `project_nam`"
    );
    let e = p
        .render("attr.j2", json!({"step": {"title": "x"}}))
        .unwrap_err();
    assert_eq!(e.to_string(), "attr.j2:3: undefined variable `step.titel`");
}

#[test]
fn syntax_errors_and_missing_templates() {
    let p = prompts(&[
        ("bad.j2", "a\nb {% for x in %}\n"),
        ("inc.j2", "x\n{% include \"nope.j2\" %}"),
    ]);
    let e = p.render("bad.j2", json!({})).unwrap_err();
    assert!(matches!(e, RenderError::Syntax { line: 2, .. }), "{e:?}");
    assert!(e.to_string().starts_with("bad.j2:2: syntax error: "), "{e}");
    assert_eq!(p.validate(), [e]);
    let e = p.render("missing.j2", json!({})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "prompt template `missing.j2` not found (looked in prompts/ of the method and the builtin defaults)"
    );
    let e = p.render("inc.j2", json!({})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inc.j2:2: prompt template `nope.j2` not found (looked in prompts/ of the method and the builtin defaults)"
    );
}

#[test]
fn runaway_templates_stop() {
    let src = "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}x{% endfor %}{% endfor %}{% endfor %}";
    let e = render_str("loop.j2", src, json!({})).unwrap_err();
    assert!(matches!(e, RenderError::Failed { .. }), "{e:?}");
}

#[test]
fn bmad_placeholders_are_filled_only_when_known() {
    let vars = [("project_name", "Todo CLI")];
    let cases = [
        ("{{project_name}} PRD", "Todo CLI PRD"),
        (
            "{{ project_name }} and {{epic_num}}.{{story_num}}",
            "Todo CLI and {{epic_num}}.{{story_num}}",
        ),
        (
            "{{project-name}}/ {{ unclosed",
            "{{project-name}}/ {{ unclosed",
        ),
        ("no placeholders", "no placeholders"),
        ("{None|WCAG AA} {{}}", "{None|WCAG AA} {{}}"),
    ];
    for (input, want) in cases {
        assert_eq!(fill_placeholders(input, &vars), want, "{input}");
    }
}
