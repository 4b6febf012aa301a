//! `/metrics`: Prometheus text format (version 0.0.4), written here by hand — a few
//! counters and one histogram do not need a metrics crate.
//!
//! What the server measures itself (request latencies) lives in [`Metrics`]; everything
//! about runs, steps and LLM calls is read from the store when scraped, so every replica
//! reports the same totals and nothing is lost on restart.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `botarmy_build_info` | gauge (1) | `version` |
//! | `botarmy_http_request_duration_seconds` | histogram | `method`, `route` (the route template, `unmatched` for none), `status` |
//! | `botarmy_runs` | gauge | `status` (every run state, zeros included) |
//! | `botarmy_steps` | gauge | `status` (every step state, zeros included) |
//! | `botarmy_llm_calls_total` | counter | `provider`, `model`, `outcome` (`ok`, `failed`) |
//! | `botarmy_llm_tokens_total` | counter | `provider`, `model`, `kind` (`input`, `output`, `cached`) |
//! | `botarmy_llm_cost_usd_total` | counter | `provider`, `model` |
//! | `botarmy_drives_active` | gauge | — runs this process drives now |
//! | `botarmy_queue_depth` | gauge | `resource` (`step`, `llm_call`, `tool_process`): attempts of this process waiting for a slot |
//! | `botarmy_slots_in_use` | gauge | `resource`: slots taken (of `botarmy_slots_limit`) |
//! | `botarmy_slots_limit` | gauge | `resource` |
//!
//! The store's totals drop when runs are deleted; Prometheus reads that as a counter reset.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use botarmy_protocol::{RunStatus, StepStatus};
use botarmy_store::StoreTotals;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bucket's bound (not cumulative).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// (method, route template, status)
type Key = (String, String, u16);

/// What this process measures itself.
#[derive(Default)]
pub(crate) struct Metrics {
    http: Mutex<BTreeMap<Key, Histogram>>,
}

impl Metrics {
    fn observe(&self, key: Key, seconds: f64) {
        self.http
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .observe(seconds);
    }
}

/// The middleware that times every request by route template.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    // The template, never the path itself: ids would make a series per request.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state
        .metrics
        .observe((method, route, status), started.elapsed().as_secs_f64());
    response
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The text exposition of everything.
fn render(
    metrics: &Metrics,
    totals: &StoreTotals,
    drives: usize,
    queue: &botarmy_runtime::QueueDepth,
) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "botarmy_build_info",
        "gauge",
        "The botarmy version serving.",
    );
    let _ = writeln!(
        out,
        "botarmy_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    let name = "botarmy_http_request_duration_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "HTTP request latency by route template and status.",
    );
    for ((method, route, status), h) in metrics
        .http
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        let labels = format!(
            "method=\"{}\",route=\"{}\",status=\"{status}\"",
            label(method),
            label(route)
        );
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
    }

    header(&mut out, "botarmy_runs", "gauge", "Runs stored, by state.");
    for status in [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Paused,
        RunStatus::Waiting,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        let n = totals
            .runs
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "botarmy_runs{{status=\"{status}\"}} {n}");
    }
    header(
        &mut out,
        "botarmy_steps",
        "gauge",
        "Steps of all runs, by state.",
    );
    for status in [
        StepStatus::Pending,
        StepStatus::Running,
        StepStatus::Interrupted,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
    ] {
        let n = totals
            .steps
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "botarmy_steps{{status=\"{}\"}} {n}", status.as_str());
    }

    header(
        &mut out,
        "botarmy_llm_calls_total",
        "counter",
        "LLM calls recorded.",
    );
    for t in &totals.llm {
        let (p, m) = (label(&t.provider), label(&t.model));
        let ok = t.calls.saturating_sub(t.failed_calls);
        let _ = writeln!(
            out,
            "botarmy_llm_calls_total{{provider=\"{p}\",model=\"{m}\",outcome=\"ok\"}} {ok}"
        );
        let _ = writeln!(
            out,
            "botarmy_llm_calls_total{{provider=\"{p}\",model=\"{m}\",outcome=\"failed\"}} {}",
            t.failed_calls
        );
    }
    header(
        &mut out,
        "botarmy_llm_tokens_total",
        "counter",
        "Tokens of completed LLM calls.",
    );
    for t in &totals.llm {
        let (p, m) = (label(&t.provider), label(&t.model));
        for (kind, n) in [
            ("input", t.usage.input_tokens),
            ("output", t.usage.output_tokens),
            ("cached", t.usage.cached_tokens),
        ] {
            let _ = writeln!(
                out,
                "botarmy_llm_tokens_total{{provider=\"{p}\",model=\"{m}\",kind=\"{kind}\"}} {n}"
            );
        }
    }
    header(
        &mut out,
        "botarmy_llm_cost_usd_total",
        "counter",
        "Cost of completed LLM calls, US dollars.",
    );
    for t in &totals.llm {
        let _ = writeln!(
            out,
            "botarmy_llm_cost_usd_total{{provider=\"{}\",model=\"{}\"}} {}",
            label(&t.provider),
            label(&t.model),
            t.usage.cost_usd
        );
    }
    header(
        &mut out,
        "botarmy_drives_active",
        "gauge",
        "Runs this server process drives now.",
    );
    let _ = writeln!(out, "botarmy_drives_active {drives}");
    let pools = [
        ("step", queue.steps),
        ("llm_call", queue.llm_calls),
        ("tool_process", queue.tool_processes),
    ];
    for (name, kind, help, pick) in [
        (
            "botarmy_queue_depth",
            "gauge",
            "Attempts of this process waiting for a slot.",
            (|u: &botarmy_runtime::SlotUse| u.waiting) as fn(&botarmy_runtime::SlotUse) -> usize,
        ),
        (
            "botarmy_slots_in_use",
            "gauge",
            "Slots of this process taken.",
            |u| u.in_use,
        ),
        (
            "botarmy_slots_limit",
            "gauge",
            "Slots of this process (botarmy.toml [limits]).",
            |u| u.limit,
        ),
    ] {
        header(&mut out, name, kind, help);
        for (resource, usage) in &pools {
            let _ = writeln!(out, "{name}{{resource=\"{resource}\"}} {}", pick(usage));
        }
    }
    out
}

/// The metrics, for Prometheus. Needs a caller of an admin tenant when authentication is
/// on: the figures are the whole server's, every tenant's.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
        (status = 401, description = "no valid bearer token", body = crate::error::ErrorBody),
        (status = 403, description = "the caller is not of an admin tenant", body = crate::error::ErrorBody),
    ))]
pub async fn scrape(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if !caller.admin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "metrics cover every tenant; only callers of an admin tenant may read them",
        ));
    }
    let totals = state.store.totals().await?;
    let text = render(
        &state.metrics,
        &totals,
        state.drives.count(),
        &state.runtime.queue_depth(),
    );
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let metrics = Metrics::default();
        let key = |route: &str| ("GET".to_owned(), route.to_owned(), 200);
        metrics.observe(key("/api/runs/{id}"), 0.003);
        metrics.observe(key("/api/runs/{id}"), 0.2);
        metrics.observe(key("/api/runs/{id}"), 60.0);
        metrics.observe(key("a\"b\\c"), 0.0);
        let queue = botarmy_runtime::QueueDepth {
            llm_calls: botarmy_runtime::SlotUse {
                in_use: 16,
                limit: 16,
                waiting: 3,
            },
            ..Default::default()
        };
        let text = render(&metrics, &StoreTotals::default(), 2, &queue);
        let series = "method=\"GET\",route=\"/api/runs/{id}\",status=\"200\"";
        for line in [
            format!("botarmy_http_request_duration_seconds_bucket{{{series},le=\"0.001\"}} 0"),
            format!("botarmy_http_request_duration_seconds_bucket{{{series},le=\"0.005\"}} 1"),
            format!("botarmy_http_request_duration_seconds_bucket{{{series},le=\"0.25\"}} 2"),
            format!("botarmy_http_request_duration_seconds_bucket{{{series},le=\"10\"}} 2"),
            format!("botarmy_http_request_duration_seconds_bucket{{{series},le=\"+Inf\"}} 3"),
            format!("botarmy_http_request_duration_seconds_count{{{series}}} 3"),
            "route=\"a\\\"b\\\\c\"".to_owned(),
            "botarmy_runs{status=\"waiting\"} 0".to_owned(),
            "botarmy_steps{status=\"running\"} 0".to_owned(),
            "botarmy_drives_active 2".to_owned(),
            "botarmy_queue_depth{resource=\"llm_call\"} 3".to_owned(),
            "botarmy_queue_depth{resource=\"step\"} 0".to_owned(),
            "botarmy_slots_in_use{resource=\"llm_call\"} 16".to_owned(),
            "botarmy_slots_limit{resource=\"llm_call\"} 16".to_owned(),
        ] {
            assert!(text.contains(&line), "{line} in\n{text}");
        }
    }
}
