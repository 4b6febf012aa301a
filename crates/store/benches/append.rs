//! Append throughput and latency of the stores, printed as figures.
//!
//! ```text
//! cargo bench -p botarmy-store --bench append
//! BOTARMY_BENCH_RUNS=5000 cargo bench -p botarmy-store --bench append     # more runs
//! BOTARMY_BENCH_PG=none cargo bench -p botarmy-store --bench append       # SQLite only
//! ```
//!
//! Scenarios, on a SQLite file (WAL, `synchronous=NORMAL`) and on PostgreSQL (a scratch
//! database created through `BOTARMY_BENCH_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`, dropped afterwards; once with the server's
//! defaults, once with `synchronous_commit=off`):
//! - one writer appending single small events to one run;
//! - one six-step run at a time, written as a runtime would: `ensure_project`,
//!   `create_run`, then 7 appends of 2–4 events (step started, LLM call with a 1 KB
//!   response, 1 KB artifact, step completed): 8 writes, 26 events;
//! - 100 such runs in flight at once.
//!
//! Wall-clock figures depend on what else the machine does; the CPU time lines (from
//! `/proc`) much less.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use botarmy_protocol::{
    ArtifactId, ArtifactKind, ArtifactRef, Event, Plan, PlanStep, RunId, RunOptions, RunRequest,
    Usage,
};
use botarmy_store::{AppendBatch, ArtifactBody, Store};

const STEPS: u32 = 6;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async_main());
}

async fn async_main() {
    let runs: usize = std::env::var("BOTARMY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let pg = std::env::var("BOTARMY_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = botarmy_store::open(&url).await.unwrap();
    println!("SQLite file, WAL, synchronous=NORMAL ({url})");
    scenarios(&store, runs).await;
    drop(store);

    if pg == "none" {
        return;
    }
    let name = format!("botarmy_bench_{}", uuid::Uuid::now_v7().simple());
    let admin = match connect(&pg).await {
        Some(admin) => admin,
        None => {
            println!("\nPostgreSQL at {pg}: not reachable, skipped");
            return;
        }
    };
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = pg.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let store = botarmy_store::open(&url).await.unwrap();
    println!(
        "\nPostgreSQL, server defaults: an fsync per commit ({})",
        store.location()
    );
    scenarios(&store, runs / 2).await;
    drop(store);
    let store = botarmy_store::open(&format!("{url}?options=-c%20synchronous_commit%3Doff"))
        .await
        .unwrap();
    println!(
        "\nPostgreSQL, synchronous_commit=off (survives any client crash, not a server crash)"
    );
    scenarios(&store, runs / 2).await;
    drop(store);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

async fn connect(url: &str) -> Option<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(client)
}

async fn scenarios(store: &Arc<dyn Store>, runs: usize) {
    // Warm-up: statement caches, pools, pages.
    for _ in 0..20 {
        six_step_run(store, &mut Vec::new()).await;
    }

    // 1. One writer, single small events.
    let project = store.ensure_project("bench").await.unwrap();
    let run = RunId::new();
    store.create_run(run, created(project.id), 0).await.unwrap();
    let n = runs * 4;
    let mut lat = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let s = Instant::now();
        let ev = Event::PipelineWaiting {
            reason: format!("tick {i}"),
        };
        store
            .append(
                run,
                i as u64 + 1,
                0,
                AppendBatch {
                    events: vec![ev],
                    artifacts: vec![],
                },
            )
            .await
            .unwrap();
        lat.push(s.elapsed());
    }
    report(
        "1 writer, 1-event appends",
        n,
        "appends",
        t.elapsed(),
        &mut lat,
    );

    // 2. One six-step run at a time.
    let mut lat = Vec::new();
    let mut per_run = Vec::with_capacity(runs / 4);
    let cpu_before = Cpu::now();
    let t = Instant::now();
    for _ in 0..runs / 4 {
        let s = Instant::now();
        six_step_run(store, &mut lat).await;
        per_run.push(s.elapsed());
    }
    let took = t.elapsed();
    report(
        "sequential six-step runs, per write",
        lat.len(),
        "writes",
        took,
        &mut lat,
    );
    report(
        "sequential six-step runs, whole run",
        per_run.len(),
        "runs",
        took,
        &mut per_run,
    );
    cpu_report(
        "sequential six-step runs",
        Cpu::now().since(&cpu_before),
        per_run.len(),
        lat.len(),
    );

    // 3. 100 runs in flight.
    let in_flight = 100;
    let cpu_before = Cpu::now();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..in_flight {
        let store = Arc::clone(store);
        let mine = runs / in_flight + usize::from(w < runs % in_flight);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(mine * 8);
            for _ in 0..mine {
                six_step_run(&store, &mut lat).await;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.unwrap());
    }
    let took = t.elapsed();
    let cpu = Cpu::now().since(&cpu_before);
    let writes = lat.len();
    report(
        "100 runs in flight, per write",
        writes,
        "writes",
        took,
        &mut lat,
    );
    println!(
        "  {:<40} {:>9.0} runs/s   ({runs} six-step runs in {:.2} s)",
        "100 runs in flight, whole runs",
        runs as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    cpu_report("100 runs in flight", cpu, runs, writes);
}

fn cpu_report(what: &str, cpu: Cpu, runs: usize, writes: usize) {
    // Only the SQLite store writes files from this process (PostgreSQL's server does its own).
    let sqlite = if cpu.writer > 0.0 {
        format!(
            ", {:.0} KiB/run written to files, {:.1} µs/write in the SQLite writer thread",
            cpu.written / 1024.0 / runs as f64,
            cpu.writer * 1e6 / writes as f64
        )
    } else {
        String::new()
    };
    println!(
        "  {:<40} {:>9.0} µs/run in this process{sqlite}",
        format!("{what}, CPU"),
        cpu.process * 1e6 / runs as f64,
    );
}

/// CPU seconds used so far by this process and by its SQLite writer thread, and bytes it
/// wrote (read from `/proc`; zero where there is none). Unlike wall time, they do not depend
/// on what else the machine is doing.
struct Cpu {
    process: f64,
    writer: f64,
    written: f64,
}

impl Cpu {
    fn now() -> Self {
        let ticks = |stat: &str| -> f64 {
            // After `(comm)` come the fields from 3 (state) on; utime is 14, stime 15.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| {
                fields
                    .get(i - 3)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (field(14) + field(15)) / 100.0
        };
        let process = std::fs::read_to_string("/proc/self/stat").map_or(0.0, |s| ticks(&s));
        let mut writer = 0.0;
        for task in std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() == "sqlite-writer" {
                writer +=
                    std::fs::read_to_string(task.path().join("stat")).map_or(0.0, |s| ticks(&s));
            }
        }
        let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let written = io
            .lines()
            .find_map(|l| l.strip_prefix("wchar:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        Self {
            process,
            writer,
            written,
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            process: self.process - before.process,
            writer: self.writer - before.writer,
            written: self.written - before.written,
        }
    }
}

/// One six-step run as the runtime writes it: 8 writes, 26 events, 6 artifacts of ~1 KB.
async fn six_step_run(store: &Arc<dyn Store>, lat: &mut Vec<Duration>) {
    let project = store.ensure_project("bench").await.unwrap();
    let run = RunId::new();
    let s = Instant::now();
    store.create_run(run, created(project.id), 1).await.unwrap();
    lat.push(s.elapsed());
    let mut last = 1;
    let mut write = async |events: Vec<Event>, artifacts: Vec<ArtifactBody>| {
        let s = Instant::now();
        let recs = store
            .append(run, last, 2, AppendBatch { events, artifacts })
            .await
            .unwrap();
        lat.push(s.elapsed());
        last = recs.last().map_or(last, |r| r.seq);
    };
    write(
        vec![
            Event::PipelineStarted {
                cycle_type: "sdlc".into(),
                workflow: "sdlc".into(),
            },
            Event::StepStarted {
                step: 0,
                attempt: 1,
                agent: "analyst".into(),
            },
        ],
        vec![],
    )
    .await;
    for step in 0..STEPS {
        let content = format!(
            "# Document {step}\n\n{}",
            "lorem ipsum dolor sit amet ".repeat(36)
        );
        let id = ArtifactId::new();
        let next = if step + 1 < STEPS {
            Event::StepStarted {
                step: step + 1,
                attempt: 1,
                agent: "analyst".into(),
            }
        } else {
            Event::PipelineCompleted {
                usage: Usage::default(),
                duration_ms: 1,
            }
        };
        write(
            vec![
                Event::LlmCallCompleted {
                    step,
                    attempt: 1,
                    call: 0,
                    provider: "instant".into(),
                    model: "none".into(),
                    request_hash: "0123456789abcdef".into(),
                    response: content.clone(),
                    tool_calls: Vec::new(),
                    usage: Usage {
                        input_tokens: 300,
                        output_tokens: 200,
                        cached_tokens: 0,
                        cost_usd: 0.0,
                        calls: 1,
                    },
                    latency_ms: 0,
                },
                Event::ArtifactCreated {
                    step,
                    artifact: ArtifactRef {
                        id,
                        name: format!("doc-{step}.md"),
                        kind: ArtifactKind::Document,
                        version: 1,
                        sha256: "0".repeat(64),
                        bytes: content.len() as u64,
                    },
                },
                Event::StepCompleted {
                    step,
                    attempt: 1,
                    usage: Usage::default(),
                    duration_ms: 0,
                    assessment: None,
                },
                next,
            ],
            vec![ArtifactBody {
                id,
                content: content.into_bytes(),
            }],
        )
        .await;
    }
}

fn created(project_id: botarmy_protocol::ProjectId) -> Event {
    Event::PipelineCreated {
        project_id,
        request: RunRequest {
            idea: "a command-line todo app in Rust".into(),
            workflow: "sdlc".into(),
            method: "builtin".into(),
            options: RunOptions::default(),
        },
        plan: Plan {
            workflow_id: "sdlc".into(),
            workflow_name: "SDLC".into(),
            cycle_type: "sdlc".into(),
            method_digest: "0".repeat(64),
            gates: Vec::new(),
            steps: (0..STEPS)
                .map(|i| PlanStep {
                    key: format!("phase-{i}/doc"),
                    title: format!("Document {i}"),
                    phase: Some(format!("phase-{i}")),
                    agent: "analyst".into(),
                    creates: Some(format!("doc-{i}.md")),
                    template: None,
                    requires: vec![],
                    depends_on: if i == 0 { vec![] } else { vec![i - 1] },
                    optional: false,
                    condition: None,
                    instruction: None,
                    notes: None,
                    tools: vec![],
                    max_turns: None,
                    kind: Default::default(),
                })
                .collect(),
        },
    }
}

fn report(what: &str, n: usize, unit: &str, took: Duration, lat: &mut [Duration]) {
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "  {what:<40} {:>9.0} {unit}/s   p50 {:>8.3} ms   p99 {:>8.3} ms",
        n as f64 / took.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}
