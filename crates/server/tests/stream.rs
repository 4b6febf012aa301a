//! The WebSocket stream: the durable log then live events, no gap, no duplicate, across
//! reconnects, several clients, slow clients and shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use botarmy_protocol::{RunId, RunStatus};
use botarmy_server::ServerConfig;
use serde_json::{Value, json};

use crate::support::{Backend, Received, assert_log_after, start, start_with};

fn last_type(received: &Received) -> &str {
    received
        .events
        .last()
        .and_then(|e| e["type"].as_str())
        .unwrap_or("")
}

pub async fn a_run_is_followed_to_completion(backend: Backend) {
    let mut server = start(backend).await;
    // The model waits until the client listens, so every token is streamed to it.
    let run = server.create_run("a todo app").await;
    let mut ws = server.connect(run, 0).await;
    server.model.open();
    let received = ws.read_to_end().await;
    assert_eq!(
        received.close_code,
        Some(1000),
        "closed normally when the run ended"
    );
    assert!(received.goodbye.is_none());
    let log = server.stored_log(run).await;
    assert_log_after(&received.events, &log, 0);
    assert_eq!(received.events[0]["type"], "pipeline_created");
    assert_eq!(last_type(&received), "pipeline_completed");

    // Every streamed piece arrived, per step in the order of the step's calls, and
    // batched: fewer messages than pieces.
    let mut streamed: BTreeMap<u64, String> = BTreeMap::new();
    for token in &received.tokens {
        assert_eq!(token["run_id"], run.to_string());
        assert!(token["agent"].as_str().is_some_and(|a| !a.is_empty()));
        streamed
            .entry(token["step"].as_u64().unwrap())
            .or_default()
            .push_str(token["text"].as_str().unwrap());
    }
    let mut answered: BTreeMap<u64, String> = BTreeMap::new();
    let mut pieces = 0;
    for event in received
        .events
        .iter()
        .filter(|e| e["type"] == "llm_call_completed")
    {
        let response = event["response"].as_str().unwrap();
        pieces += if response == "yes" {
            1
        } else {
            crate::support::PIECES_PER_CALL
        };
        answered
            .entry(event["step"].as_u64().unwrap())
            .or_default()
            .push_str(response);
    }
    assert!(!answered.is_empty());
    assert_eq!(streamed, answered);
    assert!(
        received.tokens.len() < pieces,
        "{} token messages for {pieces} pieces",
        received.tokens.len()
    );
    server.shutdown().await;
}

pub async fn a_dropped_client_resumes_without_gap_or_duplicate(backend: Backend) {
    let mut server = start(backend).await;
    let run = server.create_run("resume me").await;
    let mut first = server.connect(run, 0).await;
    server.model.release(1);
    let mut before = Received::default();
    first
        .read_until(&mut before, |e| e["type"] == "llm_call_completed")
        .await;
    let seen = *before.seqs().last().unwrap();
    first.drop_abruptly();

    // The run goes on while the client is away, and it misses at least two events.
    server.model.release(2);
    server.wait_past(run, seen + 1).await;
    server.model.open();

    let mut second = server.connect(run, seen).await;
    let after = second.read_to_end().await;
    assert_eq!(after.close_code, Some(1000));
    let log = server.stored_log(run).await;
    assert_log_after(&before.events, &log[..seen as usize], 0);
    assert_log_after(&after.events, &log, seen);
    assert_eq!(last_type(&after), "pipeline_completed");
    server.shutdown().await;
}

pub async fn two_clients_at_different_offsets(backend: Backend) {
    let mut server = start(backend).await;
    let run = server.create_run("two readers").await;
    server.model.release(1);
    server.wait_for_event(run, "llm_call_completed").await;
    let mut early = server.connect(run, 0).await;
    let mut late = server.connect(run, 3).await;
    server.model.open();
    let (a, b) = tokio::join!(early.read_to_end(), late.read_to_end());
    let log = server.stored_log(run).await;
    assert_log_after(&a.events, &log, 0);
    assert_log_after(&b.events, &log, 3);
    assert_eq!(last_type(&a), "pipeline_completed");
    // Both saw the same live tokens (they were subscribed before any was streamed after
    // the first call).
    assert!(!a.tokens.is_empty() && !b.tokens.is_empty());
    server.shutdown().await;
}

pub async fn a_finished_run_streams_its_log_and_closes(backend: Backend) {
    let mut server = start(backend).await;
    server.model.open();
    let run = server.create_run("done already").await;
    server.wait_for_event(run, "pipeline_completed").await;
    let log = server.stored_log(run).await;
    let last = log.len() as u64;
    for since in [0, last - 3, last, last + 5] {
        let received = server.connect(run, since).await.read_to_end().await;
        assert_eq!(received.close_code, Some(1000), "since {since}");
        assert_log_after(&received.events, &log, since.min(last));
        assert!(received.tokens.is_empty());
    }
    server.shutdown().await;
}

pub async fn a_slow_client_is_told_and_disconnected(backend: Backend) {
    let config = ServerConfig {
        client_queue: 4,
        slow_client: Duration::ZERO,
        ..ServerConfig::default()
    };
    let mut server = start_with(backend, config).await;
    // Answers of 512 KiB: far more than the socket buffers between server and client hold.
    server.model.filler.store(512 * 1024, Ordering::SeqCst);
    let run = server.create_run("a flood").await;
    let mut slow = server.connect_narrow(run, 0).await;
    server.model.open();
    // The client reads nothing until the run has ended.
    server.wait_for_event(run, "pipeline_completed").await;
    let received = slow.read_to_end().await;
    let goodbye = received.goodbye.clone().expect("a goodbye message");
    assert_eq!(goodbye["reason"], "slow_consumer", "{goodbye}");
    assert!(goodbye["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(received.close_code, Some(1008));
    let log = server.stored_log(run).await;
    let resume = goodbye["resume_since"].as_u64().unwrap();
    assert_eq!(Some(resume), received.seqs().last().copied().or(Some(0)));
    assert!(resume < log.len() as u64, "it was cut off before the end");
    assert_log_after(&received.events, &log[..resume as usize], 0);

    // It resumes where it was cut off.
    let rest = server.connect(run, resume).await.read_to_end().await;
    assert_log_after(&rest.events, &log, resume);
    assert_eq!(rest.close_code, Some(1000));
    server.shutdown().await;
}

pub async fn shutdown_says_goodbye_and_pauses_runs(backend: Backend) {
    let mut server = start(backend).await;
    let run = server.create_run("stop the server").await;
    let mut ws = server.connect(run, 0).await;
    server.model.release(1);
    let mut received = Received::default();
    ws.read_until(&mut received, |e| e["type"] == "llm_call_completed")
        .await;
    server.shutdown().await;
    ws.read_until(&mut received, |_| false).await;
    let goodbye = received.goodbye.clone().expect("a goodbye message");
    assert_eq!(goodbye["reason"], "server_shutdown");
    assert_eq!(
        goodbye["resume_since"].as_u64(),
        received.seqs().last().copied()
    );
    assert_eq!(received.close_code, Some(1001));
    // The run was paused, its state stored, before the server stopped.
    let summary = server.store.get_run(run).await.unwrap();
    assert_eq!(summary.status, RunStatus::Paused);
    let log = server.stored_log(run).await;
    assert_eq!(log.last().unwrap()["type"], "pipeline_paused");
    let received: Vec<Value> = received.events;
    assert_log_after(&received, &log[..received.len()], 0);
}

pub async fn clients_joining_mid_run_see_each_event_once(backend: Backend) {
    let mut server = start(backend).await;
    let run = server.create_run("a crowd").await;
    server.model.open();
    // Clients join while the run appends: what they read from the log and what the bus
    // brings overlap, and each must still see every event once.
    let mut clients = Vec::new();
    for i in 0..12u64 {
        let last = server.store.get_run(run).await.unwrap().last_seq;
        let since = last.saturating_sub(i % 3);
        clients.push((since, server.connect(run, since).await));
    }
    let log_reads = futures_util::future::join_all(
        clients
            .iter_mut()
            .map(|(_, ws)| async move { ws.read_to_end().await }),
    )
    .await;
    let log = server.stored_log(run).await;
    for ((since, _), received) in clients.iter().zip(&log_reads) {
        assert_log_after(&received.events, &log, *since);
        assert_eq!(received.close_code, Some(1000));
    }
    server.shutdown().await;
}

pub async fn a_run_driven_elsewhere_is_streamed_from_the_store(backend: Backend) {
    let mut server = start(backend).await;
    // Another process: its own store instance and runtime, so its live bus is not the
    // server's; the server learns of its appends through the store only.
    let other = std::sync::Arc::new(server.runtime_on(server.another_store().await));
    let request = botarmy_protocol::RunRequest {
        idea: "driven elsewhere".into(),
        workflow: "sdlc".into(),
        method: "builtin".into(),
        options: botarmy_protocol::RunOptions {
            gate_policy: Some(botarmy_protocol::GatePolicy::Auto),
            ..botarmy_protocol::RunOptions::default()
        },
    };
    let run = other.create_run("default", request).await.unwrap();
    let mut ws = server.connect(run, 0).await;
    let driver = std::sync::Arc::clone(&other);
    let driving = tokio::spawn(async move {
        driver
            .drive(run, tokio_util::sync::CancellationToken::new())
            .await
            .unwrap()
    });
    server.model.open();
    let received = ws.read_to_end().await;
    assert_eq!(driving.await.unwrap().status, RunStatus::Succeeded);
    let log = server.stored_log(run).await;
    assert_log_after(&received.events, &log, 0);
    assert_eq!(last_type(&received), "pipeline_completed");
    assert_eq!(received.close_code, Some(1000));
    server.shutdown().await;
}

pub async fn a_restarted_server_resumes_the_run_and_the_stream(backend: Backend) {
    let mut server = start(backend).await;
    let run = server.create_run("survive a restart").await;
    let mut ws = server.connect(run, 0).await;
    server.model.release(1);
    let mut before = Received::default();
    ws.read_until(&mut before, |e| e["type"] == "llm_call_completed")
        .await;
    server.restart().await;
    ws.read_until(&mut before, |_| false).await;
    let goodbye = before.goodbye.clone().expect("a goodbye message");
    assert_eq!(goodbye["reason"], "server_shutdown");
    let since = goodbye["resume_since"].as_u64().unwrap();
    assert_eq!(Some(since), before.seqs().last().copied());

    // The new server streams from the log, resumes the paused run, and streams it live.
    let mut again = server.connect(run, since).await;
    let resumed = server.post_empty(&format!("/api/runs/{run}/resume")).await;
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    server.model.open();
    let after = again.read_to_end().await;
    let log = server.stored_log(run).await;
    assert_log_after(&before.events, &log[..since as usize], 0);
    assert_log_after(&after.events, &log, since);
    let names: Vec<&str> = after
        .events
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(names.contains(&"pipeline_paused") && names.contains(&"pipeline_resumed"));
    assert_eq!(last_type(&after), "pipeline_completed");
    server.shutdown().await;
}

pub async fn a_project_stream_follows_its_runs_and_resumes_each(backend: Backend) {
    let server = start(backend).await;
    server.model.open();
    let project = |name: &str| json!({"name": name});
    let ours = server.post("/api/projects", &project("ours")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = server.post("/api/projects", &project("theirs")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let create = |project: &str, policy: &str| json!({"idea": "a kettle timer", "project_id": project, "options": {"gate_policy": policy}});
    // A run of ours that waits at its first gate, active when the client connects.
    let waiting = server
        .post("/api/runs", &create(&ours, "always"))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting_id: RunId = waiting.parse().unwrap();
    server.wait_for_event(waiting_id, "hitl_requested").await;
    let at_gate = crate::approvals::settled(&server, &waiting).await["last_seq"]
        .as_u64()
        .unwrap();

    let url = format!("{}/ws?project_id={ours}", server.ws);
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ws = crate::support::Ws::raw(socket);
    let hello = ws.next().await.unwrap();
    assert_eq!(hello["type"], "subscribed");
    assert_eq!(hello["scope"], "project");
    assert_eq!(hello["runs"][0]["run_id"], waiting.as_str());
    assert_eq!(hello["runs"][0]["since"], at_gate);

    // Their run is not streamed; a new run of ours is, from its first event.
    let other = server
        .post("/api/runs", &create(&theirs, "auto"))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fresh = server.post("/api/runs", &create(&ours, "auto")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut received = Received::default();
    ws.read_until(&mut received, |e| {
        e["run_id"] == fresh.as_str() && e["type"] == "pipeline_completed"
    })
    .await;
    let of = |run: &str| -> Vec<u64> {
        received
            .events
            .iter()
            .filter(|e| e["run_id"] == run)
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    let fresh_seqs = of(&fresh);
    assert_eq!(
        fresh_seqs,
        (1..=fresh_seqs.len() as u64).collect::<Vec<_>>(),
        "the new run whole, in order"
    );
    assert!(
        of(&other).is_empty(),
        "another project's run is not streamed"
    );
    assert!(
        received
            .tokens
            .iter()
            .all(|t| t["run_id"] != other.as_str())
    );

    // The waiting run goes on: its events follow on the same stream, from the gate on.
    let approved = server
        .post(&format!("/api/runs/{waiting}/approve"), &json!({}))
        .await;
    assert_eq!(approved.status, 202, "{}", approved.body);
    let mut more = Received::default();
    ws.read_until(&mut more, |e| {
        e["run_id"] == waiting.as_str() && e["type"] == "hitl_requested"
    })
    .await;
    let resumed: Vec<u64> = more
        .events
        .iter()
        .filter(|e| e["run_id"] == waiting.as_str())
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(resumed[0], at_gate + 1, "no gap after the gate");
    assert!(resumed.windows(2).all(|w| w[1] == w[0] + 1));
    ws.drop_abruptly();

    // A new connection resumes each run where the client says it stopped.
    let last = *resumed.last().unwrap();
    let url = format!(
        "{}/ws?project_id={ours}&since={waiting}:{},{fresh}:{}",
        server.ws,
        last - 2,
        fresh_seqs.len()
    );
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ws = crate::support::Ws::raw(socket);
    let hello = ws.next().await.unwrap();
    assert_eq!(hello["runs"].as_array().unwrap().len(), 2, "{hello}");
    let mut again = Received::default();
    ws.read_until(&mut again, |e| e["seq"] == last).await;
    let seqs: Vec<u64> = again.seqs();
    assert_eq!(seqs, [last - 1, last]);

    // A run of another project cannot be named.
    let bad = format!("{}/ws?project_id={ours}&since={other}:1", server.ws);
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 400)
        }
        other => panic!("{other:?}"),
    }
}
