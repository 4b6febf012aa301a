//! Gate timeouts, on paused time: an approval that waits past its gate's timeout is
//! approved in the human's stead (and the run goes on), a reminder is logged once, and a
//! `fail` timeout fails the run. The watcher's clock is tokio's, so time only moves when
//! the test says.

use std::sync::Arc;
use std::time::Duration;

use botarmy_protocol::{Event, GatePolicy, GateTimeout, RunStatus, TimeoutAction, UnixMillis};
use tokio_util::sync::CancellationToken;

use crate::support::{request, runtime};

/// A request whose every gate asks, and waits `after` seconds before `then`.
fn waiting_request(then: TimeoutAction) -> botarmy_protocol::RunRequest {
    let mut r = request("a kettle timer");
    r.options.gate_policy = Some(GatePolicy::Always);
    r.options.gate_timeout = Some(GateTimeout { after: 3_600, then });
    r
}

#[tokio::test(start_paused = true)]
async fn timeouts_remind_approve_or_fail_when_an_approval_waits_too_long() {
    let ctx = Arc::new(runtime().await);
    for then in [
        TimeoutAction::Remind,
        TimeoutAction::Approve,
        TimeoutAction::Fail,
    ] {
        let state = ctx
            .runtime
            .start_run("t", waiting_request(then), |_| {}, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(state.status, RunStatus::Waiting, "{then:?}");
        let run = state.run_id;

        // The watcher, on tokio's (paused) clock from the run's own time.
        let base: UnixMillis = ctx.runtime.store().get_run(run).await.unwrap().created_at;
        let started = tokio::time::Instant::now();
        let clock = move || base + started.elapsed().as_millis() as i64;
        let (tx, mut fired) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let watcher = {
            let (ctx, stop) = (Arc::clone(&ctx), stop.clone());
            tokio::spawn(async move {
                ctx.runtime
                    .watch_gate_timeouts(clock, Duration::from_secs(60), stop, |id, state| {
                        let _ = tx.send((id, state.status));
                    })
                    .await
            })
        };
        // An hour later the policy fires, once (the engine's tests pin the exact deadline).
        tokio::time::advance(Duration::from_secs(3_601)).await;
        let (id, status) = fired.recv().await.unwrap();
        assert_eq!(id, run);
        let state = ctx.runtime.load(run).await.unwrap();
        assert_eq!(state.status, status);
        let timed_out: Vec<TimeoutAction> = ctx
            .runtime
            .store()
            .read_events(run, 0, 0)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.event {
                Event::HitlTimedOut {
                    action,
                    waited_secs,
                    ..
                } => {
                    assert!(waited_secs >= 3_600);
                    Some(action)
                }
                _ => None,
            })
            .collect();
        assert_eq!(timed_out, [then]);
        match then {
            TimeoutAction::Remind => assert_eq!(status, RunStatus::Waiting),
            TimeoutAction::Approve => {
                assert_eq!(status, RunStatus::Running, "the caller continues it");
                assert_eq!(
                    state.gates[0].approved_by.as_deref(),
                    Some("timeout"),
                    "logged as the timeout's"
                );
            }
            _ => {
                assert_eq!(status, RunStatus::Failed);
                assert!(
                    state.error.unwrap().message.contains("nobody approved"),
                    "says why"
                );
            }
        }
        // The watcher stops when told (that a timeout fires once is the engine's rule,
        // tested there).
        stop.cancel();
        watcher.await.unwrap().unwrap();
    }
}
