//! The engine's whole overhead per run, with an instant provider and the durable SQLite
//! store (file, WAL): median latency of one six-step run, and runs/s with 100 in flight.
//! Each run also writes its manifest and six Markdown files; that part costs what the
//! filesystem charges for creating files, so it is measured twice: artifacts on the
//! store's disk, and artifacts on tmpfs (`/dev/shm`), which isolates the engine.
//!
//! `cargo bench -p botarmy-runtime --bench lifecycle [-- RUNS] [disk|tmpfs] [sequential]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use botarmy_llm::Router;
use botarmy_protocol::{GatePolicy, RunRequest, RunStatus};
use botarmy_runtime::{Runtime, Settings};
use tokio_util::sync::CancellationToken;

mod support;
use support::{Instant0, percentile};

fn request(method: &str, out: &std::path::Path, i: usize) -> RunRequest {
    support::request(method, out, i, GatePolicy::Auto)
}

async fn one_run(rt: &Runtime, method: &str, out: &std::path::Path, i: usize) -> Duration {
    let started = Instant::now();
    let state = rt
        .start_run(
            "bench",
            request(method, out, i),
            |_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(state.status, RunStatus::Succeeded);
    assert_eq!(state.steps.len(), 6);
    took
}

/// CPU time (user + system, all threads) this process has used, from `/proc/self/stat`
/// (clock ticks of 10 ms); `None` where there is no procfs. Unlike wall time, it does not
/// depend on what else the machine is doing.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn cpu_per_run(before: Option<Duration>, runs: usize) -> String {
    match (before, cpu_time()) {
        (Some(a), Some(b)) => format!(
            "; CPU {:.3} ms per run",
            (b - a).as_secs_f64() * 1e3 / runs as f64
        ),
        _ => String::new(),
    }
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let disk = tempfile::tempdir().unwrap();
    let shm = std::path::Path::new("/dev/shm");
    let mut places = vec![("artifacts on disk", disk.path().join("out"))];
    if shm.is_dir() {
        places.push((
            "artifacts on tmpfs",
            tempfile::tempdir_in(shm).unwrap().keep(),
        ));
    }
    let only: Option<String> = std::env::args()
        .skip(1)
        .find(|a| a == "disk" || a == "tmpfs");
    places.retain(|(label, _)| only.as_ref().is_none_or(|o| label.ends_with(o.as_str())));
    for (label, out) in places {
        tokio.block_on(measure(label, disk.path(), &out, runs));
        if out.starts_with(shm) {
            let _ = std::fs::remove_dir_all(&out);
        }
    }
}

async fn measure(label: &str, dir: &std::path::Path, out: &std::path::Path, runs: usize) {
    let method = dir.join("method");
    support::write_method(&method);
    // The engine's own cost: agents without tools, so no run makes a git worktree (that
    // cost is measured on its own at the end).
    let with_worktrees = method.with_file_name("method-worktrees");
    copy_dir(&method, &with_worktrees);
    support::strip_tools(&method);
    let method = method.display().to_string();
    let db = dir.join(format!("bench-{}.db", label.len()));
    let store = botarmy_store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let router = Arc::new(Router::new(Arc::new(Instant0)));
    let out = out.to_path_buf();
    let rt = Arc::new(Runtime::new(
        store,
        router,
        Settings {
            out_root: out.clone(),
            ..Settings::default()
        },
    ));

    // Warm up (method load, statement caches).
    for i in 0..20 {
        one_run(&rt, &method, &out, i).await;
    }

    // One run at a time.
    let sequential = (runs / 4).max(50);
    let mut times = Vec::with_capacity(sequential);
    let cpu = cpu_time();
    for i in 0..sequential {
        times.push(one_run(&rt, &method, &out, 100 + i).await);
    }
    let cpu = cpu_per_run(cpu, sequential);
    times.sort();
    println!(
        "{label}: six-step run, one at a time ({sequential} runs): median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms{cpu}",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
    );

    // The same runs with the coder's and tester's tools: each run makes a fresh repository
    // and a worktree, commits the steps' work and removes the worktree (git's cost).
    let git_runs = 20;
    let worktree_method = with_worktrees.display().to_string();
    let mut times = Vec::with_capacity(git_runs);
    let cpu = cpu_time();
    for i in 0..git_runs {
        times.push(one_run(&rt, &worktree_method, &out, 50_000 + i).await);
    }
    let cpu = cpu_per_run(cpu, git_runs);
    times.sort();
    println!(
        "{label}: six-step run with a worktree session ({git_runs} runs): median {:.1} ms, p90 {:.1} ms{cpu} (git's processes not counted in CPU)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3,
    );

    if std::env::args().any(|a| a == "sequential") {
        return;
    }

    // 100 in flight.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu = cpu_time();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..100 {
        let (rt, method, out, next) = (rt.clone(), method.clone(), out.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= runs {
                    break;
                }
                one_run(&rt, &method, &out, 10_000 + i).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label}: six-step runs, 100 in flight: {runs} runs in {secs:.2} s = {:.0} runs/s{}",
        runs as f64 / secs,
        cpu_per_run(cpu, runs)
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
