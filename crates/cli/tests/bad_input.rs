use crate::support::*;

#[test]
fn an_unknown_workflow_is_named_with_the_available_ones() {
    let s = Sandbox::new();
    let o = run(s.cmd().args(["run", "an idea", "--workflow", "nope"]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("nope") && err.contains("sdlc"), "{err}");
    assert!(
        !s.home().join("models").exists(),
        "nothing is fetched for a run that cannot start"
    );
}

#[test]
fn a_missing_model_file_says_where_and_what_to_do() {
    let s = Sandbox::new();
    let missing = s.out("no-such-model.gguf");
    let o =
        run(s
            .cmd()
            .env("BOTARMY_MODEL", &missing)
            .args(["run", "an idea", "--max-tokens", "8"]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn a_bad_environment_value_is_named() {
    let s = Sandbox::new();
    let o = run(s.cmd().env("BOTARMY_THREADS", "many").args(["runs"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("BOTARMY_THREADS=\"many\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn every_model_configuration_problem_is_listed_before_anything_runs() {
    let s = Sandbox::new();
    let o = run(s
        .cmd()
        .env("BOTARMY_PROVIDER", "gpt5")
        .env("CODER_AGENT_PROVIDER", "anthropic")
        .env_remove("ANTHROPIC_API_KEY")
        .args(["run", "a todo app"]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("has 2 problems"), "{err}");
    assert!(err.contains("unknown provider `gpt5`"), "{err}");
    assert!(err.contains("set ANTHROPIC_API_KEY"), "{err}");
    // Nothing was stored.
    let o = run(s.cmd().args(["runs", "--json"]));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
}

#[test]
fn an_unwritable_output_folder_stops_the_run_before_it_is_stored() {
    let s = Sandbox::new();
    let file = s.out("a-file");
    std::fs::write(&file, "x").unwrap();
    let cassette = cassette("sdlc-todo.jsonl");
    let o = run(s
        .replay(&cassette)
        .args(["run", "a command-line todo app in Rust", "--out"])
        .arg(file.join("out")));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("output folder") && err.contains("a-file"),
        "{err}"
    );
    let o = ok(s.cmd().args(["runs", "--json"]));
    assert_eq!(json(&o), serde_json::json!([]), "no run was stored");
}

#[test]
fn a_corrupt_database_is_reported_and_left_alone() {
    let s = Sandbox::new();
    let garbage = b"this is not a database, and it must still be here afterwards".repeat(100);
    std::fs::write(s.db_path(), &garbage).unwrap();
    let o = run(s.cmd().args(["runs"]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&s.db_path().display().to_string()), "{err}");
    assert_eq!(std::fs::read(s.db_path()).unwrap(), garbage);
}

#[test]
fn a_request_missing_from_the_cassette_fails_the_run_clearly() {
    let s = Sandbox::new();
    let cassette = cassette("sdlc-todo.jsonl");
    // Another idea means other prompts: the cassette has no answers for them.
    let o =
        run(s
            .replay(&cassette)
            .args(["run", "a different idea", "--max-tokens", "48", "--json"]));
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["status"], "failed");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("has no recorded answer"), "{message}");
    assert!(message.contains("sdlc-todo.jsonl"), "{message}");
}

#[test]
fn an_unknown_run_id_is_reported() {
    let s = Sandbox::new();
    let o = run(s.cmd().args(["show", "0123abcd"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("0123abcd"), "{}", stderr(&o));
}

#[test]
fn a_bad_browser_setting_stops_serve_naming_the_key_and_the_value() {
    let s = Sandbox::new();
    for (setting, named) in [
        (
            "allowed_origins = [\"https://ok.example\", \"evil.example\"]",
            "[server] allowed_origins[1]: `evil.example`",
        ),
        (
            "allowed_hosts = [\"https://proxy.example\"]",
            "[server] allowed_hosts[0]: `https://proxy.example`",
        ),
    ] {
        std::fs::write(
            s.dir.path().join("botarmy.toml"),
            format!("[server]\n{setting}\n"),
        )
        .unwrap();
        let o = run(s.cmd().args(["serve", "--addr", "127.0.0.1:0"]));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(named), "{}", stderr(&o));
    }
}
