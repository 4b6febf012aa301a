//! Gates end to end: a writer whose model is not sure of its draft stops the run at the
//! Draft phase's gate; a human sends the draft back with feedback from another process
//! (the first one has exited, as after a kill), the draft is rewritten with the feedback in
//! its prompt and passes; the Publish gate stops the run again and a human approves it.
//! The model is a local server speaking OpenAI's streaming wire format.

use botarmy_testkit::{Recorded, Reply};
use serde_json::{Value, json};

use crate::support::*;

const IDEA: &str = "release notes for version 1";
const FEEDBACK: &str = "Say who the notes are for.";

/// What the writer answers: unsure of its first draft, sure of the revised one.
fn writer(request: &Recorded, index: usize) -> Reply {
    let prompt = prompt_of(request);
    let revised = prompt.contains("Feedback on your previous version");
    let answered = prompt.contains("The human answered: developers");
    let text = if prompt.contains("[step:askdoc]") && !answered {
        "CLARIFY: Who reads these notes?\nOPTIONS: operators | developers"
    } else if prompt.contains("[step:askdoc]") {
        "# Audience\n\nWritten for developers, as the human said.\n\nConfidence: 0.9 - settled"
    } else if prompt.contains("[step:draft]") && !revised {
        "# Notes\n\n## Changes\n\nFirst draft of the changes.\n\nConfidence: 0.4 - I do not know who reads this"
    } else if prompt.contains("[step:draft]") {
        "# Notes\n\n## Changes\n\nFor operators upgrading from 0.9: the changes.\n\nConfidence: 0.9 - the audience is clear now"
    } else if prompt.contains("[step:publish]") {
        "# Release\n\nVersion 1 is out.\n\nConfidence: 0.6 - the date is a guess"
    } else {
        panic!("unexpected prompt: {prompt}")
    };
    openai_stream(text, index, (120, 30))
}

#[test]
fn a_gate_stops_for_low_confidence_and_a_rejection_reruns_the_step_with_its_feedback() {
    let model = Scripted::start(writer);
    let s = Sandbox::new();
    let out = s.out("out");

    // 1. The draft is unsure: the run stops at the Draft gate and the process exits 75.
    let o = run(model
        .configure(&mut s.cmd())
        .args(["run", IDEA, "--workflow", "review", "--json", "--out"])
        .arg(&out)
        .arg("--method")
        .arg(toolwork()));
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let run_id = json(&o)["run_id"].as_str().unwrap().to_string();
    assert_eq!(json(&o)["status"], "waiting");
    assert!(stderr(&o).contains("approve"), "says how: {}", stderr(&o));

    // What waits, across runs, with the scores and the way to answer.
    let inbox = json(&ok(s.cmd().args(["inbox", "--json"])));
    let item = &inbox[0];
    assert_eq!(item["kind"], "approval");
    assert_eq!(item["question"], "Approve the Draft phase?");
    assert_eq!(item["gate"]["waiting"]["confidence"], 0.4);
    assert_eq!(item["gate"]["waiting"]["quality"], 1.0);
    let reasons = item["gate"]["waiting"]["reasons"].to_string();
    assert!(
        reasons.contains("confidence 0.40 is below 0.80")
            && reasons.contains("I do not know who reads this"),
        "{reasons}"
    );
    assert!(item["answer"].as_str().unwrap().contains("botarmy reject"));
    // Nothing of the next phase ran.
    let show = json(&ok(s.cmd().args(["show", &run_id, "--json"])));
    assert_eq!(show["steps"][1]["status"], "pending");
    assert_eq!(show["assessments"]["0"]["confidence"]["value"], 0.4);

    // An approval is not an answer to a question.
    let o = run(s.cmd().args(["answer", &run_id, "maybe"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("botarmy reject"), "{}", stderr(&o));

    // 2. Another process sends the draft back with feedback. The draft is rewritten with
    //    the feedback in its prompt, passes its gate, and the Publish gate stops the run.
    let o = run(model.configure(&mut s.cmd()).args([
        "reject",
        &run_id[..8],
        "--feedback",
        FEEDBACK,
        "--json",
    ]));
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let draft_prompts: Vec<String> = model
        .server
        .requests()
        .iter()
        .map(|r| r.text())
        .filter(|t| t.contains("[step:draft]"))
        .collect();
    assert_eq!(draft_prompts.len(), 2);
    assert!(!draft_prompts[0].contains(FEEDBACK));
    assert!(draft_prompts[1].contains(FEEDBACK), "{}", draft_prompts[1]);
    let notes = std::fs::read_to_string(out.join("notes.md")).unwrap();
    assert!(
        notes.contains(&format!(
            "Revised in attempt 2 based on review feedback: {FEEDBACK}"
        )),
        "{notes}"
    );
    assert!(notes.contains("For operators"), "{notes}");
    assert!(
        !notes.contains("Confidence:"),
        "the self-assessment line is not part of the document: {notes}"
    );
    let inbox = json(&ok(s.cmd().args(["inbox", "--json"])));
    assert_eq!(inbox[0]["question"], "Approve the Publish phase?");

    // 3. A human edits the release text in their editor and approves it: the run finishes.
    let o = ok(model
        .configure(&mut s.cmd())
        .env("VISUAL", "sed -i s/Version/Release/")
        .args(["approve", &run_id, "--amend", "--json"]));
    assert_eq!(json(&o)["status"], "succeeded");
    let release = std::fs::read_to_string(out.join("release.md")).unwrap();
    assert!(release.contains("Release 1 is out."), "{release}");

    // The log tells the whole story, attempts and decisions included.
    let log = events(&s, &run_id);
    let of = |kind: &str| -> Vec<&Value> { log.iter().filter(|e| e["type"] == kind).collect() };
    let requested: Vec<&str> = of("hitl_requested")
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(requested, ["the Draft phase", "the Publish phase"]);
    let decided: Vec<(&str, &Value)> = of("hitl_resolved")
        .iter()
        .map(|e| (e["decision"].as_str().unwrap(), &e["feedback"]))
        .collect();
    assert_eq!(
        decided,
        [("rejected", &json!(FEEDBACK)), ("amended", &Value::Null)]
    );
    assert!(
        of("hitl_resolved")
            .iter()
            .all(|e| !e["by"].as_str().unwrap().is_empty())
    );
    let restarted = of("step_restarted");
    assert_eq!(restarted.len(), 1);
    assert_eq!(restarted[0]["step"], 0);
    assert_eq!(restarted[0]["feedback"], FEEDBACK);
    let started: Vec<(u64, u64)> = of("step_started")
        .iter()
        .map(|e| (e["step"].as_u64().unwrap(), e["attempt"].as_u64().unwrap()))
        .collect();
    assert_eq!(started, [(0, 1), (0, 2), (1, 1)]);
    // Both versions of the draft are kept.
    let show = json(&ok(s.cmd().args(["show", &run_id, "--json"])));
    let versions: Vec<u64> = show["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "notes.md")
        .map(|a| a["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2]);
    assert!(show["gates"][1]["approved_by"].as_str().is_some());
    let release_versions = show["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "release.md")
        .count();
    assert_eq!(release_versions, 2, "the model's and the human's");
}

#[test]
fn yes_approves_every_gate_and_logs_it() {
    let model = Scripted::start(writer);
    let s = Sandbox::new();
    let o = ok(model
        .configure(&mut s.cmd())
        .args([
            "run",
            IDEA,
            "--workflow",
            "review",
            "--yes",
            "--json",
            "--method",
        ])
        .arg(toolwork()));
    assert_eq!(json(&o)["status"], "succeeded");
    let run_id = json(&o)["run_id"].as_str().unwrap().to_string();
    let log = events(&s, &run_id);
    let by: Vec<&str> = log
        .iter()
        .filter(|e| e["type"] == "hitl_resolved")
        .map(|e| e["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["auto-approve (--yes)", "auto-approve (--yes)"]);

    // `--gate-policy auto` lets everything through without asking at all.
    let o = ok(model
        .configure(&mut s.cmd())
        .args([
            "run",
            IDEA,
            "--workflow",
            "review",
            "--gate-policy",
            "auto",
            "--json",
            "--method",
        ])
        .arg(toolwork()));
    let log = events(&s, json(&o)["run_id"].as_str().unwrap());
    assert!(!log.iter().any(|e| e["type"] == "hitl_requested"));

    // A policy that is not one is refused before anything is stored.
    let o = run(s.cmd().args(["run", IDEA, "--gate-policy", "sometimes"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("expected `auto`, `always`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_model_without_tools_asks_with_a_clarify_line_and_the_answer_continues_it() {
    let model = Scripted::start(writer);
    let s = Sandbox::new();
    let out = s.out("out");
    let o = run(model
        .configure(&mut s.cmd())
        .args(["run", IDEA, "--workflow", "ask-doc", "--json", "--out"])
        .arg(&out)
        .arg("--method")
        .arg(toolwork()));
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let run_id = json(&o)["run_id"].as_str().unwrap().to_string();
    let inbox = json(&ok(s.cmd().args(["inbox", "--json"])));
    assert_eq!(inbox[0]["kind"], "clarification");
    assert_eq!(inbox[0]["question"], "Who reads these notes?");
    assert_eq!(inbox[0]["options"], json!(["operators", "developers"]));
    // An answer that is not an option is refused; the right one continues the step.
    let o = run(s.cmd().args(["answer", &run_id, "managers"]));
    assert_eq!(o.status.code(), Some(1));
    let o = ok(model
        .configure(&mut s.cmd())
        .args(["answer", &run_id, "developers", "--json"]));
    assert_eq!(json(&o)["status"], "succeeded");
    let doc = std::fs::read_to_string(out.join("audience.md")).unwrap();
    assert!(doc.contains("Written for developers"), "{doc}");
    assert!(!doc.contains("CLARIFY"), "{doc}");
    let log = events(&s, &run_id);
    let kinds: Vec<&str> = log
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|t| t.starts_with("clarification") || *t == "llm_call_completed")
        .collect();
    assert_eq!(
        kinds,
        [
            "llm_call_completed",
            "clarification_requested",
            "clarification_answered",
            "llm_call_completed"
        ],
        "the question's call is not made again"
    );
}
