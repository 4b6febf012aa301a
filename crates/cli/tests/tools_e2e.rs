//! Agents that build, end to end: a coder writes a small Rust crate in the run's worktree
//! with tools, a tester runs its tests with `run_tests` (real `cargo test` in the sandbox,
//! real counts), the failing test goes back to the coder, who fixes it, and the tests are
//! green at Validate; the run's branch holds the commits.
//!
//! The session is recorded: a local server speaking OpenAI's streaming wire format plays a
//! model that calls tools (the script below), and the run records its exchanges into a
//! cassette. The committed cassette (`cassettes/tools-fix-loop.jsonl`) is then replayed by
//! the replay provider, as a user would debug a run. `BOTARMY_RERECORD=1` rewrites it when
//! prompts change.

use std::path::{Path, PathBuf};
use std::process::Command;

use botarmy_testkit::{Recorded, Reply};
use serde_json::{Value, json};

use crate::support::*;

const IDEA: &str = "a tiny arithmetic crate";

/// The tool calls (or final answer) of each step, turn by turn.
fn script(step: &str, turn: usize) -> Turn {
    let write =
        |path: &str, content: &str| call("file_write", json!({"path": path, "content": content}));
    match (step, turn) {
        ("code", 0) => Turn::Calls(vec![
            write(
                "Cargo.toml",
                "[package]\nname = \"arith\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
            ),
            write("src/lib.rs", LIB_WITH_BUG),
        ]),
        ("code", 1) => Turn::Calls(vec![call(
            "git",
            json!({"command": "status", "args": ["--short"]}),
        )]),
        ("code", _) => Turn::Answer(
            "## Build notes\n\nWrote `arith` with `add` and two unit tests in src/lib.rs.\n",
        ),
        ("test", 0) | ("retest", 0) => Turn::Calls(vec![call("run_tests", json!({}))]),
        ("test", _) => Turn::Answer(
            "## Test report\n\n1 passed, 1 failed. Failing: `tests::adds_positive_numbers` (add(2, 3) returned -1, expected 5).\n",
        ),
        ("fix", 0) => Turn::Calls(vec![call("file_read", json!({"path": "src/lib.rs"}))]),
        ("fix", 1) => Turn::Calls(vec![call(
            "file_write",
            json!({"path": "src/lib.rs", "old": "a - b", "new": "a + b"}),
        )]),
        ("fix", 2) => Turn::Calls(vec![call("run_tests", json!({}))]),
        ("fix", _) => Turn::Answer("## Fix notes\n\n`add` subtracted; it adds now. Tests pass.\n"),
        ("retest", _) => Turn::Answer("## Final test report\n\n2 passed, 0 failed.\n"),
        ("ask", 0) => Turn::Calls(vec![call(
            "request_clarification",
            json!({"question": "Which license?", "options": ["MIT", "Apache-2.0"]}),
        )]),
        ("ask", _) => Turn::Answer("## License notes\n\nMIT, as the human chose.\n"),
        ("mcp", 0) => Turn::Calls(vec![call("calc_add", json!({"a": 2, "b": 3}))]),
        ("mcp", _) => Turn::Answer("## Answer\n\n2 + 3 = 5, says the calculator.\n"),
        (other, _) => panic!("no script for step `{other}`"),
    }
}

const LIB_WITH_BUG: &str = "/// The sum of two numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a - b\n}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn adds_positive_numbers() {\n        assert_eq!(add(2, 3), 5);\n    }\n\n    #[test]\n    fn adding_zero_changes_nothing() {\n        assert_eq!(add(4, 0), 4);\n    }\n}\n";

enum Turn {
    Calls(Vec<(String, Value)>),
    Answer(&'static str),
}

fn call(name: &str, arguments: Value) -> (String, Value) {
    (name.to_string(), arguments)
}

/// The step a request belongs to (its instruction carries `[step:<name>]`) and how many
/// tool-call turns the conversation has had.
fn step_and_turn(body: &Value) -> (String, usize) {
    let messages = body["messages"].as_array().expect("messages");
    let step = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .find_map(|c| {
            let at = c.find("[step:")? + 6;
            let end = c[at..].find(']')? + at;
            Some(c[at..end].to_string())
        })
        .expect("a step marker in the prompt");
    let turn = messages
        .iter()
        .filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .count();
    (step, turn)
}

/// OpenAI's streaming chat-completion chunks for one turn.
fn reply(request: &Recorded, index: usize) -> Reply {
    let body = request.json();
    assert!(
        body["tools"].as_array().is_some_and(|t| !t.is_empty()),
        "tool-using agents send their tools"
    );
    let (step, turn) = step_and_turn(&body);
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": format!("chatcmpl-{index}"), "object": "chat.completion.chunk", "created": 1_760_000_000, "model": "gpt-4o-2024-08-06",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut events = Vec::new();
    let finish = match script(&step, turn) {
        Turn::Calls(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                events.push(chunk(
                    json!({"role": "assistant", "content": null, "tool_calls": [{"index": i, "id": format!("call_{step}_{turn}_{i}"), "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                ));
                events.push(chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": args.to_string()}}]}),
                    Value::Null,
                ));
            }
            "tool_calls"
        }
        Turn::Answer(text) => {
            events.push(chunk(
                json!({"role": "assistant", "content": text}),
                Value::Null,
            ));
            "stop"
        }
    };
    events.push(chunk(json!({}), json!(finish)));
    events.push(format!(
        "data: {}\n\n",
        json!({"id": format!("chatcmpl-{index}"), "object": "chat.completion.chunk", "created": 1_760_000_000, "model": "gpt-4o-2024-08-06", "choices": [],
               "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340}})
    ));
    events.push("data: [DONE]\n\n".to_string());
    Reply::Sse {
        events,
        end: botarmy_testkit::End::Close,
    }
}

/// `git args…` in `dir` (with an identity for commits); its output, or the test fails.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run_cmd(cmd: &mut Command) -> &mut Command {
    cmd.args([
        "run",
        IDEA,
        "--workflow",
        "fix-loop",
        "--yes",
        "--json",
        "--method",
    ])
    .arg(toolwork())
}

/// Everything the run must show, whichever way its model answered.
fn check_run(s: &Sandbox, summary: &Value) {
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    let run = summary["run_id"].as_str().unwrap().to_string();
    let events: Vec<Value> = stdout(&ok(s.cmd().args(["events", &run])))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == kind).collect() };

    // The tester's runs of the tests report the real counts: one failure, then none.
    let test_runs: Vec<&str> = of("tool_call_completed")
        .into_iter()
        .filter(|e| e["tool"] == "run_tests")
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(test_runs.len(), 3, "{test_runs:?}");
    assert!(
        test_runs[0].contains("1 passed") && test_runs[0].contains("1 failed"),
        "{test_runs:?}"
    );
    for green in &test_runs[1..] {
        assert!(
            green.contains("2 passed") && green.contains("0 failed"),
            "{test_runs:?}"
        );
    }
    // Each tool call was announced, then completed; writes are file_changed events.
    assert_eq!(
        of("tool_call_started").len(),
        of("tool_call_completed").len()
    );
    let changed: Vec<(&str, &str)> = of("file_changed")
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["change"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changed,
        [
            ("Cargo.toml", "created"),
            ("src/lib.rs", "created"),
            ("src/lib.rs", "modified")
        ]
    );
    // The worktree session: made, ready, cleaned.
    for kind in [
        "worktree_session_creating",
        "worktree_repo_created",
        "worktree_session_ready",
        "worktree_session_cleaned",
    ] {
        assert_eq!(of(kind).len(), 1, "{kind}");
    }
    let worktree = &of("worktree_repo_created")[0]["worktree"];
    let repo = PathBuf::from(worktree["repo_path"].as_str().unwrap());
    let branch = worktree["branch"].as_str().unwrap();
    assert_eq!(branch, format!("botarmy/{run}"));
    assert!(
        !Path::new(worktree["path"].as_str().unwrap()).exists(),
        "the worktree is removed at the end"
    );

    // The branch holds the commits: the crate, then the fix.
    let git = |args: &[&str]| git_in(&repo, args);
    let log = git(&["log", "--format=%s", branch]);
    let by_coder: Vec<&str> = log.lines().filter(|l| l.starts_with("coder: ")).collect();
    assert_eq!(
        by_coder,
        ["coder: Fix what failed", "coder: Write the crate"],
        "{log}"
    );
    // The tester's first run left cargo's lock file, which its step committed.
    let tester = git(&[
        "log",
        "--format=%H",
        "--grep=^tester: Run the tests$",
        branch,
    ]);
    let files = git(&["show", "--format=", "--name-only", tester.trim()]);
    assert_eq!(files.trim(), "Cargo.lock", "{log}");
    let fixed = git(&["show", &format!("{branch}:src/lib.rs")]);
    assert!(
        fixed.contains("a + b") && !fixed.contains("a - b"),
        "{fixed}"
    );
    // Nothing the build produced was committed.
    assert!(!git(&["ls-tree", "-r", "--name-only", branch]).contains("target/"));
}

#[test]
fn a_coder_and_a_tester_fix_a_failing_test_with_tools() {
    let cassette = cassette("tools-fix-loop.jsonl");

    // 1. The model over the wire, recorded.
    let model = Scripted::start(reply);
    let s = Sandbox::new();
    let recorded = s.out("recorded.jsonl");
    let out = ok(run_cmd(model.configure(&mut s.cmd()))
        .arg("--record")
        .arg(&recorded));
    check_run(&s, &json(&out));
    if std::env::var("BOTARMY_RERECORD").is_ok_and(|v| v == "1") {
        std::fs::copy(&recorded, &cassette).unwrap();
    }

    // 2. The committed recording, replayed: the same run, from the cassette alone.
    let s = Sandbox::new();
    let out = ok(run_cmd(&mut s.replay(&cassette)));
    check_run(&s, &json(&out));
}

#[test]
fn an_agent_calls_the_tools_of_an_mcp_server_configured_in_botarmy_toml() {
    let model = Scripted::start(reply);
    let server = &model.server;
    let s = Sandbox::new();
    let python = std::env::var("BOTARMY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/tests/mcp_server.py");
    std::fs::write(
        s.dir.path().join("botarmy.toml"),
        format!(
            "[mcp.calc]\ncommand = {}\nargs = [{}, \"stdio\"]\n",
            toml_string(&python),
            toml_string(&script.display().to_string())
        ),
    )
    .unwrap();
    let out = ok(model
        .configure(&mut s.cmd())
        .args([
            "run",
            IDEA,
            "--workflow",
            "mcp-lookup",
            "--yes",
            "--json",
            "--method",
        ])
        .arg(toolwork()));
    let summary = json(&out);
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    let run = summary["run_id"].as_str().unwrap();
    let events = stdout(&ok(s.cmd().args(["events", run])));
    let done: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "tool_call_completed")
        .collect();
    assert_eq!(done.len(), 1, "{events}");
    assert_eq!(done[0]["tool"], "calc_add");
    assert_eq!(done[0]["is_error"], false);
    assert_eq!(done[0]["result"], "5");
    // The model was offered the server's tools, named after the server (and the question
    // every tool-using agent may ask).
    let offered: Vec<String> = server.requests()[0].json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        offered
            .iter()
            .all(|n| n.starts_with("calc_") || n == "request_clarification"),
        "{offered:?}"
    );
    assert!(offered.contains(&"calc_add".to_string()), "{offered:?}");
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn a_repository_with_a_setup_command_waits_for_a_human_then_sets_up_and_runs() {
    let model = Scripted::start(reply);
    let server = &model.server;
    let s = Sandbox::new();
    // The user's repository: a crate (so `cargo fetch` is proposed) with one commit.
    let repo = s.out("arith");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"arith\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(repo.join("src/lib.rs"), "").unwrap();
    let git = |args: &[&str]| git_in(&repo, args);
    git(&["init", "--quiet", "--initial-branch=main"]);
    git(&["add", "-A"]);
    git(&["commit", "--quiet", "-m", "start"]);
    let openai = |cmd: &mut Command| {
        model.configure(cmd);
    };

    let mut first = s.cmd();
    openai(&mut first);
    first
        .args(["run", IDEA, "--workflow", "fix-loop", "--json", "--repo"])
        .arg(&repo)
        .arg("--method")
        .arg(toolwork());
    let out = run(&mut first);
    assert_eq!(out.status.code(), Some(75), "waiting: {}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["status"], "waiting");
    let reason = summary["reason"].as_str().unwrap();
    assert!(
        reason.contains("arith: cargo fetch") && reason.contains("--answer run"),
        "{reason}"
    );
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    // Nothing was asked of the model yet; `show` says what the run waits for.
    assert!(server.requests().is_empty());
    let shown = stdout(&ok(s.cmd().args(["show", &run_id])));
    assert!(
        shown.contains("waiting   run the setup") && shown.contains("(run / skip)"),
        "{shown}"
    );

    // A wrong answer is refused, naming the accepted ones; the right one continues it.
    let wrong = run(s.cmd().args(["resume", &run_id, "--answer", "maybe"]));
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("expected one of: run, skip"),
        "{}",
        stderr(&wrong)
    );
    let mut resume = s.cmd();
    openai(&mut resume);
    let out = ok(resume.args(["resume", &run_id, "--answer", "run", "--json"]));
    assert_eq!(json(&out)["status"], "succeeded", "{}", stderr(&out));

    let events: Vec<Value> = stdout(&ok(s.cmd().args(["events", &run_id])))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let at = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no {name}: {names:?}"))
    };
    assert!(at("worktree_repo_created") < at("pipeline_needs_input"));
    assert!(at("pipeline_needs_input") < at("input_provided"));
    assert!(at("input_provided") < at("worktree_setup_started"));
    assert!(at("worktree_setup_completed") < at("worktree_session_ready"));
    let setup = &events[at("worktree_setup_completed")];
    assert_eq!(setup["command"], "cargo fetch");
    assert_eq!(setup["exit_code"], 0, "{setup}");
    // The user's repository has the run's branch; its own branch is untouched.
    assert!(git(&["branch", "--list", &format!("botarmy/{run_id}")]).contains(&run_id));
    assert_eq!(git(&["log", "--format=%s", "main"]).trim(), "start");
}

#[test]
fn an_agent_asks_and_botarmy_answer_continues_the_run() {
    let model = Scripted::start(reply);
    let server = &model.server;
    let s = Sandbox::new();
    let openai = |cmd: &mut Command| {
        model.configure(cmd).env("USER", "ada");
    };
    let mut first = s.cmd();
    openai(&mut first);
    first
        .args([
            "run",
            IDEA,
            "--workflow",
            "ask",
            "--yes",
            "--json",
            "--method",
        ])
        .arg(toolwork());
    let out = run(&mut first);
    assert_eq!(out.status.code(), Some(75), "waiting: {}", stderr(&out));
    let run_id = json(&out)["run_id"].as_str().unwrap().to_string();
    let shown = stdout(&ok(s.cmd().args(["show", &run_id])));
    assert!(
        shown.contains("question  step 1: Which license? (MIT / Apache-2.0)"),
        "{shown}"
    );

    let inbox = stdout(&ok(s.cmd().args(["inbox"])));
    assert_eq!(
        inbox,
        format!(
            "{run_id} clarification (coder asks)\n  Which license?\n  options: MIT / Apache-2.0\n  answer:  botarmy answer {run_id} TEXT\n"
        )
    );

    let mut wrong = s.cmd();
    openai(&mut wrong);
    let refused = run(wrong.args(["answer", &run_id, "GPL"]));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("`GPL` is not one of the accepted answers (MIT, Apache-2.0)"),
        "{}",
        stderr(&refused)
    );
    let mut answer = s.cmd();
    openai(&mut answer);
    let out = ok(answer.args(["answer", &run_id, "MIT", "--json"]));
    assert_eq!(json(&out)["status"], "succeeded", "{}", stderr(&out));

    let events: Vec<Value> = stdout(&ok(s.cmd().args(["events", &run_id])))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let answered: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "clarification_answered")
        .collect();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["answer"], "MIT");
    assert_eq!(answered[0]["by"], "ada");
    let inbox = stdout(&ok(s.cmd().args(["inbox", "--json"])));
    assert_eq!(serde_json::from_str::<Value>(&inbox).unwrap(), json!([]));
    // The model was asked twice in all: the question, then the answer to it.
    assert_eq!(server.requests().len(), 2);
    let last = server.requests()[1].json();
    let tool_result = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert_eq!(tool_result["content"], "The human answered: MIT");
}

#[test]
fn at_a_terminal_the_run_asks_inline_and_the_answer_continues_it() {
    let model = Scripted::start(reply);
    let s = Sandbox::new();
    let mut cmd = s.cmd();
    model.configure(&mut cmd).env("USER", "ada");
    cmd.args(["run", IDEA, "--workflow", "ask", "--method"])
        .arg(toolwork());
    // `script` gives the command a terminal; what is written to it is typed there.
    let quoted: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect();
    let mut terminal = Command::new("script");
    terminal
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .current_dir(s.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => terminal.env(key, v),
            None => terminal.env_remove(key),
        };
    }
    let mut child = terminal.spawn().unwrap();
    {
        use std::io::Write;
        let mut typed = child.stdin.take().unwrap();
        // A wrong answer first: it is refused and asked again.
        typed.write_all(b"GPL\nMIT\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("coder asks: Which license?"), "{shown}");
    assert!(
        shown.contains("`GPL` is not one of the accepted answers (MIT, Apache-2.0)"),
        "{shown}"
    );
    assert!(shown.contains("succeeded"), "{shown}");
    let runs = json(&ok(s.cmd().args(["runs", "--json"])));
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status"], "succeeded");
    let answered: Vec<Value> = stdout(&ok(s.cmd().args(["events", &run_id])))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "clarification_answered")
        .collect();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["answer"], "MIT");
    assert_eq!(answered[0]["by"], "ada");
}
