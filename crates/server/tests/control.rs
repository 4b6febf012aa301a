//! Pausing, resuming and cancelling runs through the API.

use botarmy_protocol::RunStatus;
use serde_json::json;

use crate::support::{Backend, start, start_limited};

pub async fn pause_resume_and_cancel(backend: Backend) {
    let mut server = start(backend).await;
    let run = server.create_run("steer me").await;
    let doomed = server.create_run("cancel me").await;
    // The first call waits at the gate: the run is running, and driven here.
    server.wait_for_event(run, "step_started").await;
    let shown = server.get(&format!("/api/runs/{run}")).await;
    assert_eq!(shown.body["status"], "running");
    assert_eq!(shown.body["driven_here"], true);

    let paused = server.post_empty(&format!("/api/runs/{run}/pause")).await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.body["status"], "paused");
    assert_eq!(paused.body["driven_here"], false);
    server
        .post_empty(&format!("/api/runs/{run}/pause"))
        .await
        .error(409, "conflict");

    // Resuming with a budget that is not one is refused before anything changes.
    let refused = server
        .post(
            &format!("/api/runs/{run}/resume"),
            &json!({"budget": {"usd": "lots"}}),
        )
        .await;
    assert_eq!(refused.error(400, "invalid_request"), ["budget.usd"]);
    let resumed = server
        .post(
            &format!("/api/runs/{run}/resume"),
            &json!({"budget": {"usd": 100.0}}),
        )
        .await;
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    server
        .post_empty(&format!("/api/runs/{run}/resume"))
        .await
        .error(409, "conflict");
    // Cancelling a run that is running here pauses it, then ends it for good.
    server.wait_for_event(doomed, "step_started").await;
    let cancelled = server
        .post(
            &format!("/api/runs/{doomed}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(
        server.store.get_run(doomed).await.unwrap().status,
        RunStatus::Cancelled
    );
    server
        .post_empty(&format!("/api/runs/{doomed}/resume"))
        .await
        .error(409, "conflict");
    let received = server.connect(doomed, 0).await.read_to_end().await;
    assert_eq!(
        received.events.last().unwrap()["type"],
        "pipeline_cancelled"
    );
    assert_eq!(received.events.last().unwrap()["reason"], "changed my mind");
    assert_eq!(received.close_code, Some(1000));
    server.model.open();
    server.wait_for_event(run, "pipeline_completed").await;
    let log = server.store.read_events(run, 0, 0).await.unwrap();
    let names: Vec<&str> = log.iter().map(|r| r.event.name()).collect();
    for name in ["pipeline_paused", "budget_changed", "pipeline_resumed"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    server
        .post_empty(&format!("/api/runs/{run}/cancel"))
        .await
        .error(409, "conflict");

    server.shutdown().await;
}

/// With one step slot in the process, the second run's steps queue, and its detail says for
/// what.
pub async fn a_queued_step_shows_what_it_waits_for(backend: Backend) {
    let limits = botarmy_runtime::Limits {
        steps: 1,
        ..botarmy_runtime::Limits::default()
    };
    let server = start_limited(backend, limits).await;
    let first = server.create_run("first").await;
    server.wait_for_event(first, "step_started").await;
    let second = server.create_run("second").await;
    server.wait_for_event(second, "step_queued").await;
    let shown = server.get(&format!("/api/runs/{second}")).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let queued: Vec<&str> = shown.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["queued"].as_str())
        .collect();
    assert!(
        !queued.is_empty() && queued.iter().all(|q| *q == "step"),
        "{}",
        shown.body
    );
    // One of the first run's steps holds the slot: running, not queued.
    let first_shown = server.get(&format!("/api/runs/{first}")).await;
    let holding = first_shown.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "running" && s["queued"].is_null())
        .count();
    assert_eq!(holding, 1, "{}", first_shown.body);
    // The metrics show the queue: one slot of one taken, attempts waiting for it.
    let metrics = server.get("/metrics").await;
    let text = String::from_utf8(metrics.bytes).unwrap();
    let value = |series: &str| -> usize {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} in\n{text}"))
    };
    assert_eq!(value("botarmy_slots_limit{resource=\"step\"}"), 1);
    assert_eq!(value("botarmy_slots_in_use{resource=\"step\"}"), 1);
    assert!(
        value("botarmy_queue_depth{resource=\"step\"}") >= 1,
        "{text}"
    );
    server.model.open();
    server.wait_for_event(second, "pipeline_completed").await;
    let metrics = server.get("/metrics").await;
    let text = String::from_utf8(metrics.bytes).unwrap();
    assert!(
        text.contains("botarmy_queue_depth{resource=\"step\"} 0"),
        "{text}"
    );
}
