//! Crash safety for real: a run in a child process is killed with SIGKILL in the middle,
//! `botarmy resume` finishes it, and no completed LLM call is made twice.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use botarmy_protocol::{Event, RunId};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_resumes_without_repeating_llm_calls() {
    let s = Sandbox::new();
    let cassette = s.out("calls.jsonl");
    let mut child = s
        .local()
        .args([
            "run",
            "a tiny URL shortener",
            "--gate-policy",
            "auto",
            "--max-tokens",
            "24",
            "--max-parallel",
            "1",
            "--record",
        ])
        .arg(&cassette)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The child names its run first thing.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let run_id: RunId = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the child ended before naming its run"
        );
        if let Some(id) = line.trim().strip_prefix("run ") {
            break id.parse().unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));

    // Wait (on the store, not the clock) until two LLM calls are durable, then kill.
    let store = botarmy_store::open(&s.database_url()).await.unwrap();
    let mut seen = 0;
    let mut last = 0;
    while seen < 2 {
        assert!(
            store
                .wait_for_events(run_id, last, Duration::from_secs(120))
                .await
                .unwrap(),
            "no progress"
        );
        for r in store.read_events(run_id, last, 0).await.unwrap() {
            last = r.seq;
            if matches!(r.event, Event::LlmCallCompleted { .. }) {
                seen += 1;
            }
        }
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    let before: Vec<_> = store.read_events(run_id, 0, 0).await.unwrap();
    let calls_before: Vec<String> = before
        .iter()
        .filter_map(|r| match &r.event {
            Event::LlmCallCompleted { request_hash, .. } => Some(request_hash.clone()),
            _ => None,
        })
        .collect();
    assert!(calls_before.len() >= 2);
    assert_eq!(
        store.get_run(run_id).await.unwrap().status.as_str(),
        "running",
        "killed mid-run"
    );

    // Resume in a new process.
    let o = ok(s
        .local()
        .args(["resume", &run_id.to_string(), "--json", "--record"])
        .arg(&cassette));
    assert_eq!(json(&o)["status"], "succeeded");

    // A gap-free log, every step done, and every LLM call made exactly once.
    let events = store.read_events(run_id, 0, 0).await.unwrap();
    for (i, r) in events.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "gap-free");
    }
    assert!(
        events
            .iter()
            .any(|r| matches!(r.event, Event::PipelineResumed {}))
    );
    let steps = store.steps(run_id).await.unwrap();
    assert_eq!(steps.len(), 24, "18 documents and 6 conflict checks");
    assert!(steps.iter().all(|st| st.status.as_str() == "succeeded"));
    let mut per_call: HashMap<(u32, u32, u32), usize> = HashMap::new();
    let mut hashes = Vec::new();
    for r in &events {
        if let Event::LlmCallCompleted {
            step,
            attempt,
            call,
            request_hash,
            ..
        } = &r.event
        {
            *per_call.entry((*step, *attempt, *call)).or_default() += 1;
            hashes.push(request_hash.clone());
        }
    }
    assert!(
        per_call.values().all(|n| *n == 1),
        "a call was recorded twice: {per_call:?}"
    );
    assert!(
        hashes.len() >= 24,
        "a call per step at least (mediation adds some): {}",
        hashes.len()
    );
    // The model itself was asked for each of the calls that were durable before the kill
    // exactly once (the cassette records every real request, across both processes).
    let requested: Vec<String> = std::fs::read_to_string(&cassette)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["digest"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for h in &calls_before {
        assert_eq!(
            requested.iter().filter(|d| *d == h).count(),
            1,
            "call {h} was requested again after resume"
        );
    }
    // At most the one call in flight at the moment of the kill may have been made twice.
    assert!(
        requested.len() <= hashes.len() + 1,
        "{} requests for {} calls",
        requested.len(),
        hashes.len()
    );
}
