//! Conflicts end to end: the design contradicts the requirements twice. The check after
//! the Design phase finds both; mediation settles the first in one round; the second wins
//! too little agreement in three rounds and goes to a person, who answers from another
//! process. The build step then reads both resolutions, and a second run of the project
//! shows its mediator how the first conflict was settled. The model is a local server
//! speaking OpenAI's streaming wire format.

use botarmy_testkit::{Recorded, Reply};
use serde_json::Value;

use crate::support::*;

const STORAGE_PROPOSAL: &str =
    "Use SQLite for the first release; requirements.md changes to say so.";
const KEYS_PROPOSAL: &str = "Make the API keys optional.";

fn team(request: &Recorded, index: usize) -> Reply {
    let prompt = prompt_of(request);
    let text = if prompt.contains("# Conflict check") {
        "CONFLICT: high\nBETWEEN: requirements.md | design.md\nISSUE: Storage engine differs\n\
         A: Data is kept in PostgreSQL\nB: Data is kept in one SQLite file\n\
         CONFLICT: medium\nBETWEEN: requirements.md | api.md\n\
         ISSUE: API keys are required by one and absent in the other\n\
         A: Every request needs an API key\nB: The API is open, without keys\n"
    } else if prompt.contains("# Mediation") && prompt.contains("severity):\nStorage engine") {
        STORAGE_PROPOSAL
    } else if prompt.contains("# Mediation") {
        KEYS_PROPOSAL
    } else if prompt.contains("# Review a proposed resolution") && prompt.contains(STORAGE_PROPOSAL)
    {
        "AGREEMENT: 0.9 - it serves the first release"
    } else if prompt.contains("# Review a proposed resolution") {
        "AGREEMENT: 0.5 - security matters more"
    } else if prompt.contains("[step:requirements]") {
        "# Requirements\n\nData is kept in PostgreSQL. Every request needs an API key.\n\nConfidence: 0.9 - clear"
    } else if prompt.contains("[step:design]") {
        "# Design\n\nOne SQLite file keeps the data.\n\nConfidence: 0.9 - clear"
    } else if prompt.contains("[step:api]") {
        "# API\n\nThe API is open, without keys.\n\nConfidence: 0.9 - clear"
    } else if prompt.contains("[step:build]") {
        "# Build notes\n\nBuild it as designed.\n\nConfidence: 0.9 - clear"
    } else {
        panic!("unexpected prompt: {prompt}")
    };
    openai_stream(text, index, (100, 20))
}

fn prompts(model: &Scripted, marker: &str) -> Vec<String> {
    model
        .server
        .requests()
        .iter()
        .map(prompt_of)
        .filter(|p| p.contains(marker))
        .collect()
}

#[test]
fn one_conflict_is_settled_by_mediation_and_one_by_a_person() {
    let model = Scripted::start(team);
    let s = Sandbox::new();
    let out = s.out("out");

    // 1. The check finds both conflicts; the second one stops the run for a person.
    let o = run(model
        .configure(&mut s.cmd())
        .args([
            "run",
            "a todo service",
            "--workflow",
            "conflicts",
            "--json",
            "--out",
        ])
        .arg(&out)
        .arg("--method")
        .arg(toolwork()));
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let run_id = json(&o)["run_id"].as_str().unwrap().to_string();

    let inbox = json(&ok(s.cmd().args(["inbox", "--json"])));
    assert_eq!(inbox[0]["kind"], "conflict");
    let question = inbox[0]["question"].as_str().unwrap();
    // Both positions side by side, and the best proposal with its agreement.
    assert!(
        question.contains("[1] writer in requirements.md: Every request needs an API key")
            && question.contains("[2] designer in api.md: The API is open, without keys")
            && question.contains("agreement 0.50")
            && question.contains(KEYS_PROPOSAL),
        "{question}"
    );
    let show = json(&ok(s.cmd().args(["show", &run_id, "--json"])));
    let statuses: Vec<&str> = show["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["settled", "escalated"]);
    assert_eq!(show["conflicts"][0]["resolution"]["by"], "mediation");
    assert_eq!(show["conflicts"][0]["resolution"]["score"], 0.9);
    assert_eq!(show["conflicts"][1]["rounds"].as_array().unwrap().len(), 3);
    // The Build phase waits for the conflicts to be settled.
    let build = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["key"] == "build/build-notes")
        .unwrap();
    assert_eq!(build["status"], "pending");
    // Each mediator saw both positions; each side was asked as itself.
    let mediations = prompts(&model, "# Mediation");
    assert_eq!(mediations.len(), 4);
    assert!(mediations[0].contains("Data is kept in PostgreSQL"));
    assert!(mediations[0].contains("Data is kept in one SQLite file"));
    assert!(
        mediations[3].contains("Earlier proposals did not win enough agreement")
            && mediations[3].contains("security matters more"),
        "the objections go into the next round: {}",
        mediations[3]
    );
    let reviews = prompts(&model, "# Review a proposed resolution");
    assert_eq!(reviews.len(), 8, "two sides, four rounds");
    assert!(
        reviews
            .iter()
            .any(|p| p.contains("You are Wren, the Writer"))
    );
    assert!(
        reviews
            .iter()
            .any(|p| p.contains("You are Dan, the Designer"))
    );

    // 2. A person keeps the requirements' position, from another process.
    let calls_before = model.server.requests().len();
    let o = ok(model
        .configure(&mut s.cmd())
        .args(["answer", &run_id[..8], "1", "--json"]));
    assert_eq!(json(&o)["status"], "succeeded", "{}", stderr(&o));
    // The check goes on from its recorded calls: only the build step asks the model.
    assert_eq!(model.server.requests().len(), calls_before + 1);
    let build_prompts = prompts(&model, "[step:build]");
    assert_eq!(build_prompts.len(), 1);
    assert!(
        build_prompts[0].contains("# Settled conflicts")
            && build_prompts[0].contains(STORAGE_PROPOSAL)
            && build_prompts[0].contains("requirements.md holds: Every request needs an API key"),
        "later steps read what was settled: {}",
        build_prompts[0]
    );
    let report = std::fs::read_to_string(out.join("conflicts-design.md")).unwrap();
    assert!(
        report.contains("## Conflict 1: Storage engine differs (high severity)")
            && report.contains("### Resolution, by mediation (agreement 0.90)")
            && report.contains("## Conflict 2: API keys are required")
            && report.contains("### Mediation round 3 (agreement 0.50)"),
        "{report}"
    );

    let log = events(&s, &run_id);
    let of = |kind: &str| -> Vec<&Value> { log.iter().filter(|e| e["type"] == kind).collect() };
    assert_eq!(of("conflict_detected").len(), 2);
    assert_eq!(of("conflict_mediated").len(), 4);
    assert_eq!(of("conflict_escalated").len(), 1);
    let resolved: Vec<(u64, &str)> = of("conflict_resolved")
        .iter()
        .map(|e| (e["conflict"].as_u64().unwrap(), e["by"].as_str().unwrap()))
        .collect();
    assert_eq!(resolved[0], (0, "mediation"));
    assert_eq!(resolved[1].0, 1);
    assert!(!resolved[1].1.is_empty() && resolved[1].1 != "mediation");
    assert_eq!(of("clarification_answered")[0]["answer"], "1");

    // 3. A second run of the project: its mediator sees how the storage conflict was
    //    settled before; under --yes the conflict mediation cannot settle takes the best
    //    proposal, logged as such.
    let o = ok(model
        .configure(&mut s.cmd())
        .args([
            "run",
            "a todo service",
            "--workflow",
            "conflicts",
            "--yes",
            "--json",
            "--method",
        ])
        .arg(toolwork()));
    assert_eq!(json(&o)["status"], "succeeded");
    let second = json(&o)["run_id"].as_str().unwrap().to_string();
    let mediations = prompts(&model, "# Mediation");
    let storage_again = mediations
        .iter()
        .skip(4)
        .find(|p| p.contains("severity):\nStorage engine"))
        .unwrap();
    assert!(
        storage_again.contains("How similar conflicts were settled in this project before")
            && storage_again.contains(STORAGE_PROPOSAL),
        "{storage_again}"
    );
    let by: Vec<String> = events(&s, &second)
        .iter()
        .filter(|e| e["type"] == "conflict_resolved")
        .map(|e| e["by"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(by, ["mediation", "auto-approve (--yes)"]);
}
