//! `botarmy serve` as its clients see it: the real binary in its own process over a SQLite
//! file, every agent answered at once by a local server speaking OpenAI's streaming wire
//! format. Measured, each printed with the target:
//!
//! - ready: from spawning the process to the first `200` of `/ready` (the first start
//!   makes and migrates the database; the others open it);
//! - idle memory: the resident set of the server, idle, once ready and once more after a
//!   finished run and the load below;
//! - `GET /api/runs/{id}` at a fixed rate (default 2,000 requests/s for 5 s, sent on
//!   schedule whatever the answers do; latency from the moment a request was due);
//! - 1,000 WebSocket subscribers on one run: a run waits at a gate, every subscriber is
//!   connected, the gate is approved over the API, and each event the run then appends is
//!   timed from its commit (the event's `at`) to its arrival at each subscriber.
//!
//! `cargo bench -p botarmy-cli --bench serve [-- RATE SECONDS SUBSCRIBERS]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use botarmy_testkit::{End, MockServer, Reply};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

/// What every agent answers: a short document and a confident self-assessment.
fn instant_model() -> impl Fn(&botarmy_testkit::Recorded, usize) -> Reply + Send + Sync {
    |_, i| {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": format!("c{i}"), "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        Reply::Sse {
            events: vec![
                chunk(
                    json!({"role": "assistant", "content": "# Document\n\n## Overview\n\nDone.\n\nConfidence: 0.9 - clear"}),
                    Value::Null,
                ),
                chunk(json!({}), json!("stop")),
                format!(
                    "data: {}\n\n",
                    json!({"id": format!("c{i}"), "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
                ),
                "data: [DONE]\n\n".to_string(),
            ],
            end: End::Close,
        }
    }
}

struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `botarmy serve` on a free port; returns it and how long until `/ready` said 200.
async fn start(home: &std::path::Path, model: &str, http: &reqwest::Client) -> (Serve, Duration) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_botarmy"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        // Runs write their documents under the working folder's `botarmy-out/`.
        .current_dir(home)
        .env("BOTARMY_HOME", home)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", home.join("botarmy.db").display()),
        )
        .env("BOTARMY_PROVIDER", "openai")
        .env("BOTARMY_MODEL", "gpt-4o")
        .env("OPENAI_API_KEY", "sk-bench")
        .env("OPENAI_BASE_URL", model)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let serve = Serve { child, base };
    // Asked again at once until the socket answers: the wait is what is measured.
    loop {
        if let Ok(r) = http.get(format!("{}/ready", serve.base)).send().await
            && r.status().as_u16() == 200
        {
            return (serve, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not get ready"
        );
        tokio::task::yield_now().await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/PID/status` figure in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// The resident set and its parts: heap and stacks (anonymous), and pages of the binary
/// and libraries (file-backed, shared, dropped first under memory pressure).
fn rss_parts(pid: u32) -> String {
    format!(
        "{:.1} MiB ({:.1} MiB anonymous, {:.1} MiB of mapped files)",
        rss_kib(pid) as f64 / 1024.0,
        status_kib(pid, "RssAnon:") as f64 / 1024.0,
        status_kib(pid, "RssFile:") as f64 / 1024.0
    )
}

/// CPU time the process has used (user and system), from `/proc/PID/stat` (in clock ticks
/// of 10 ms on Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after its `)`.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let text = http.get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Polls the run until its status is `status` (the bench's own pacing, not a measurement).
async fn until_status(http: &reqwest::Client, base: &str, run: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let shown = get_json(http, &format!("{base}/api/runs/{run}")).await;
        if shown["status"] == status && shown["driven_here"] == false {
            return shown;
        }
        assert!(Instant::now() < deadline, "run {run}: {shown}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let mut numbers = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let rate = numbers.next().unwrap_or(2_000);
    let seconds = numbers.next().unwrap_or(5);
    let subscribers = numbers.next().unwrap_or(1_000) as usize;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(measure(rate, seconds, subscribers));
}

async fn measure(rate: u64, seconds: u64, subscribers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let model = MockServer::start(instant_model()).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();

    // Ready: a cold start on a new database, then restarts on it.
    let mut restarts = Vec::new();
    let (mut serve, first) = start(&home, &model.base, &http).await;
    for _ in 0..5 {
        drop(serve);
        let (s, took) = start(&home, &model.base, &http).await;
        serve = s;
        restarts.push(took);
    }
    restarts.sort();
    println!(
        "ready after start: {} on a new database; restarts median {}, max {} (target < 200 ms)",
        ms(first),
        ms(percentile(&restarts, 0.5)),
        ms(*restarts.last().unwrap())
    );
    let pid = serve.child.id();
    println!("idle RSS, ready: {} (target < 30 MB)", rss_parts(pid));

    // A whole run, then its detail under load.
    let base = serve.base.clone();
    let created = post_json(
        &http,
        &format!("{base}/api/runs"),
        &json!({"idea": "a kettle timer", "options": {"gate_policy": "auto"}}),
    )
    .await;
    let run = created["id"].as_str().unwrap().to_owned();
    until_status(&http, &base, &run, "succeeded").await;
    let url = format!("{base}/api/runs/{run}");
    let total = (rate * seconds) as usize;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let t0 = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = t0 + interval * i as u32;
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let _ = response.bytes().await.unwrap();
            tokio::time::Instant::now() - due
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    let elapsed = tokio::time::Instant::now() - t0;
    latencies.sort();
    println!(
        "GET /api/runs/{{id}} at {rate}/s for {seconds} s ({total} requests, done in {:.2} s): p50 {}, p99 {}, max {} (target p99 < 5 ms)",
        elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );
    println!("idle RSS after a run and the load: {}", rss_parts(pid));

    // Subscribers on a run that waits at its first gate, then goes on.
    let created = post_json(
        &http,
        &format!("{base}/api/runs"),
        &json!({"idea": "a tea timer", "options": {"gate_policy": "always", "max_parallel": 1}}),
    )
    .await;
    let run = created["id"].as_str().unwrap().to_owned();
    let shown = until_status(&http, &base, &run, "waiting").await;
    let since = shown["last_seq"].as_u64().unwrap_or(0);
    let ws = format!(
        "ws://{}/ws?run_id={run}&since={since}",
        base.trim_start_matches("http://")
    );
    let connected = Arc::new(tokio::sync::Barrier::new(subscribers + 1));
    // Every client stays connected until all have the run's last event: a thousand
    // disconnections at once are not part of what is measured.
    let received = Arc::new(tokio::sync::Barrier::new(subscribers));
    let mut clients = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let ws = ws.clone();
        let connected = Arc::clone(&connected);
        let received = Arc::clone(&received);
        clients.push(tokio::spawn(async move {
            // tungstenite zero-fills its whole read buffer before every read (128 KiB by
            // default): a thousand such clients would spend the cores on that. Messages here
            // are small; 8 KiB is what the server uses too.
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(8 * 1024);
            let (mut socket, _) =
                tokio_tungstenite::connect_async_with_config(&ws, Some(config), true)
                    .await
                    .unwrap();
            // The first message says the subscription holds.
            let first = socket.next().await.unwrap().unwrap();
            assert!(first.to_text().unwrap().contains("\"subscribed\""));
            connected.wait().await;
            let mut delays = Vec::new();
            while let Some(Ok(message)) = socket.next().await {
                let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                    if let tokio_tungstenite::tungstenite::Message::Ping(p) = message {
                        let _ = socket
                            .send(tokio_tungstenite::tungstenite::Message::Pong(p))
                            .await;
                    }
                    continue;
                };
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                // Only what is measured is read (`at` comes before the event's own fields):
                // a client on this machine parsing every message would take the server's CPU.
                // Both sit in the first bytes; the rest (a document, streamed text) is not
                // scanned.
                let end = (0..=text.len().min(160))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                let head = &text[..end];
                let Some(at) = head.find("\"at\":").and_then(|i| {
                    let digits: String = head[i + 5..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    digits.parse::<i64>().ok()
                }) else {
                    continue;
                };
                delays.push(Duration::from_millis((now - at).max(0) as u64));
                if head.contains("\"type\":\"hitl_requested\"")
                    || head.contains("\"type\":\"pipeline_completed\"")
                {
                    break;
                }
            }
            received.wait().await;
            delays
        }));
    }
    connected.wait().await;
    println!(
        "idle RSS with {subscribers} subscribers: {:.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    );
    let cpu_before = cpu_time(pid);
    let clients_before = cpu_time(std::process::id());
    post_json(&http, &format!("{base}/api/runs/{run}/approve"), &json!({})).await;
    let mut delays = Vec::new();
    let mut events = 0;
    for c in clients {
        let d = c.await.unwrap();
        events = events.max(d.len());
        delays.extend(d);
    }
    let server_cpu = cpu_time(pid) - cpu_before;
    let clients_cpu = cpu_time(std::process::id()) - clients_before;
    println!(
        "clients' CPU (this process): {} ms, {:.1} µs per delivery",
        clients_cpu.as_millis(),
        clients_cpu.as_secs_f64() * 1e6 / delays.len().max(1) as f64
    );
    delays.sort();
    println!(
        "server CPU while the run went on and its events were sent: {} ms, {:.1} µs per delivery",
        server_cpu.as_millis(),
        server_cpu.as_secs_f64() * 1e6 / delays.len().max(1) as f64
    );
    println!(
        "{subscribers} WebSocket subscribers, {events} events each ({} deliveries): commit -> received p50 {}, p99 {}, max {} (target p99 < 20 ms; `at` has millisecond resolution)",
        delays.len(),
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(*delays.last().unwrap()),
    );
}
