//! From a human's answer to the next step starting, with an instant provider and the
//! durable SQLite store (file, WAL): every phase of a six-step run has a gate that always
//! asks; the run waits at it with no process driving it. Measured per gate: `approve`
//! (the decision appended to the log), then `resume` (the run read back from the store and
//! folded, the next step started), until the next step's `step_started` is durable and
//! seen on the live bus, as a watching client sees it. Also the whole remaining run after
//! the last but one approval (two more steps and a gate).
//!
//! `cargo bench -p botarmy-runtime --bench approval [-- RUNS]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use botarmy_llm::Router;
use botarmy_protocol::{Event, GatePolicy, LiveEvent, RunId, RunRequest, RunStatus};
use botarmy_runtime::{Runtime, Settings};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

mod support;
use support::{Instant0, percentile};

fn request(method: &str, out: &std::path::Path, i: usize) -> RunRequest {
    support::request(method, out, i, GatePolicy::Always)
}

/// Waits on the bus until `step` of `run` is durably started.
async fn started(bus: &mut broadcast::Receiver<std::sync::Arc<LiveEvent>>, run: RunId, step: u32) {
    loop {
        match bus.recv().await.as_deref() {
            Ok(LiveEvent::Event(record))
                if record.run_id == run
                    && matches!(record.event, Event::StepStarted { step: s, .. } if s == step) =>
            {
                return;
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => panic!("the bus closed"),
        }
    }
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(measure(runs));
}

async fn measure(runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let method = dir.path().join("method");
    support::write_method(&method);
    support::strip_tools(&method);
    let method = method.display().to_string();
    let store = botarmy_store::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
    .unwrap();
    let out = dir.path().join("out");
    let rt = Arc::new(Runtime::new(
        store,
        Arc::new(Router::new(Arc::new(Instant0))),
        Settings {
            out_root: out.clone(),
            ..Settings::default()
        },
    ));

    let mut to_next_step = Vec::new();
    let mut to_the_end = Vec::new();
    for i in 0..runs + 5 {
        let warm = i < 5;
        let state = rt
            .start_run(
                "bench",
                request(&method, &out, i),
                |_| {},
                CancellationToken::new(),
            )
            .await
            .unwrap();
        let run = state.run_id;
        assert_eq!(state.status, RunStatus::Waiting, "the first gate asks");
        // Gates 0..4: each approval starts the step of the next phase.
        for next in 1..6u32 {
            let mut bus = rt.subscribe();
            let t0 = Instant::now();
            rt.approve(run, None, "bench").await.unwrap();
            let driver = {
                let rt = Arc::clone(&rt);
                tokio::spawn(async move { rt.resume(run, CancellationToken::new()).await })
            };
            started(&mut bus, run, next).await;
            let took = t0.elapsed();
            let state = driver.await.unwrap().unwrap();
            assert_eq!(state.status, RunStatus::Waiting);
            if next == 5 && !warm {
                // The rest: approve the last gate; the run completes.
                let t0 = Instant::now();
                rt.approve(run, None, "bench").await.unwrap();
                let state = rt.resume(run, CancellationToken::new()).await.unwrap();
                assert_eq!(state.status, RunStatus::Succeeded);
                to_the_end.push(t0.elapsed());
            } else if next == 5 {
                rt.approve(run, None, "bench").await.unwrap();
                rt.resume(run, CancellationToken::new()).await.unwrap();
            }
            if !warm {
                to_next_step.push(took);
            }
        }
    }
    to_next_step.sort();
    to_the_end.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "answer -> next step started ({} approvals over {runs} runs): median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms",
        to_next_step.len(),
        ms(percentile(&to_next_step, 0.5)),
        ms(percentile(&to_next_step, 0.9)),
        ms(percentile(&to_next_step, 0.99)),
    );
    println!(
        "answer at the last gate -> run completed ({runs} runs): median {:.3} ms, p90 {:.3} ms",
        ms(percentile(&to_the_end, 0.5)),
        ms(percentile(&to_the_end, 0.9)),
    );
}
