//! The default method: it loads, checks clean, plans, and the embedded files are exactly the
//! files of `crates/core/method/`.

use botarmy_core::method::{Method, MethodSource};

use crate::support::{builtin, builtin_dir};

#[test]
fn loads_and_checks_clean() {
    let m = builtin();
    assert_eq!(m.source(), &MethodSource::Builtin);
    assert_eq!(m.source().to_string(), "builtin");
    let ids: Vec<&str> = m.agents().iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "analyst",
            "architect",
            "coder",
            "deployer",
            "reviewer",
            "risk",
            "tester"
        ]
    );
    assert_eq!(m.templates().len(), 18);
    assert_eq!(m.workflow_ids(), ["sdlc"]);
    assert_eq!(m.default_workflow().map(|w| w.id.as_str()), Some("sdlc"));
    assert_eq!(m.check(), []);
    let coder = m.agent("coder").unwrap();
    assert_eq!(coder.max_turns, Some(40));
    assert!(coder.tools.iter().any(|t| t == "run_tests"));
    // The plan carries each step's tools (its agent's) and its turn bound.
    let plan = m.plan("sdlc").unwrap();
    let build = plan.steps.iter().find(|s| s.agent == "coder").unwrap();
    assert_eq!(build.tools, coder.tools);
    assert_eq!(build.max_turns, Some(40));
    assert!(
        plan.steps
            .iter()
            .filter(|s| s.agent == "analyst")
            .all(|s| s.tools.is_empty())
    );
    assert!(
        coder
            .persona
            .core_principles
            .iter()
            .any(|p| p.contains("fenced block"))
    );
}

#[test]
fn folder_and_embedded_files_are_the_same() {
    let from_dir = Method::load(&builtin_dir()).unwrap();
    let embedded = builtin();
    assert_eq!(
        from_dir.digest(),
        embedded.digest(),
        "a file of crates/core/method is missing from builtin.rs"
    );
    assert_eq!(from_dir.digest().len(), 64);
    assert_eq!(from_dir.source(), &MethodSource::Dir(builtin_dir()));
    assert_eq!(from_dir.check(), []);
}

#[test]
fn digest_is_stable_and_content_sensitive() {
    let files = |extra: &str| {
        vec![
            ("b.md".to_owned(), b"b".to_vec()),
            ("a.md".to_owned(), format!("a{extra}").into_bytes()),
        ]
    };
    let one = Method::from_files(MethodSource::Builtin, files("")).unwrap();
    let mut reversed = files("");
    reversed.reverse();
    let two = Method::from_files(MethodSource::Builtin, reversed).unwrap();
    let three = Method::from_files(MethodSource::Builtin, files("!")).unwrap();
    assert_eq!(one.digest(), two.digest());
    assert_ne!(one.digest(), three.digest());
    assert_eq!(builtin().digest(), builtin().digest());
}

#[test]
fn every_template_and_agent_makes_a_prompt() {
    let m = builtin();
    let plan = m.plan("sdlc").unwrap();
    let used: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| s.template.as_deref())
        .collect();
    for t in m.templates() {
        assert!(
            used.contains(&t.key.as_str()),
            "template {} is used by no step",
            t.key
        );
        assert!(t.title.starts_with("{{project_name}}"), "{}", t.key);
    }
    for s in &plan.steps {
        if s.kind == botarmy_protocol::StepKind::ConflictCheck {
            // A check asks its own question about the documents it compares.
            let docs: Vec<(&str, &str)> = s.requires.iter().map(|r| (r.as_str(), "text")).collect();
            let p = m
                .conflict_check_prompt(s, "a command-line todo app in Rust", &[], &docs, 4_000)
                .unwrap();
            assert!(p.system.contains(&m.agent(&s.agent).unwrap().name));
            assert!(
                p.user.contains("Command-line todo app in Rust"),
                "{}",
                s.key
            );
            for r in &s.requires {
                assert!(
                    p.user.contains(&format!("<document name=\"{r}\">")),
                    "{}: {r}",
                    s.key
                );
            }
            continue;
        }
        let p = m
            .prompt(s, "a command-line todo app in Rust", &[], 4_000)
            .unwrap();
        assert!(p.system.contains(&m.agent(&s.agent).unwrap().name));
        assert!(
            p.user.contains("Command-line todo app in Rust"),
            "{}",
            s.key
        );
        assert!(!p.sections.is_empty(), "{}", s.key);
    }
}
