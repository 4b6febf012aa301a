//! Speed and memory of the embedded model: prompt evaluation and generation in tokens per
//! second for a ~320-token prompt and 200 generated tokens, and the process's memory.
//!
//! `cargo bench -p botarmy-llm --bench generate -- <model.gguf>` (or set
//! `BOTARMY_TEST_MODEL`; `BENCH_THREADS=n` / `BENCH_BATCH_THREADS=n` to try other thread
//! counts for generation / prompt evaluation; `BENCH_KV_F16=1` for a 16-bit KV cache; `BENCH_LLAMA_LOGS=1` for llama.cpp's
//! own log; `BENCH_BATCH=n` for the prompt step size). A last run with a long prompt shows the memory
//! a large context takes. Prompt evaluation is measured to the first streamed token (so it
//! includes sizing the context and sampling one token); generation from the first streamed
//! token to the last.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use botarmy_llm::{
    ChatMessage, ChatRequest, LocalModelConfig, LocalProvider, Provider, physical_cores,
};

const GENERATE: u32 = 200;
const RUNS: u64 = 3;
/// Prompt size of the memory run, in tokens (roughly).
const LONG_PROMPT: usize = 6000;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("BOTARMY_TEST_MODEL").map(PathBuf::from))
        .context("give the model path as an argument or in BOTARMY_TEST_MODEL")?;
    let mut config = LocalModelConfig::new(&path);
    let env_threads = |name: &str| std::env::var(name).ok().and_then(|n| n.parse().ok());
    config.threads = env_threads("BENCH_THREADS");
    config.batch_threads = env_threads("BENCH_BATCH_THREADS");
    config.quantized_kv_cache = std::env::var_os("BENCH_KV_F16").is_none();
    config.llama_logs = std::env::var_os("BENCH_LLAMA_LOGS").is_some();
    if let Some(n) = env_threads("BENCH_BATCH") {
        config.batch_size = n;
    }
    let threads = format!(
        "{} physical cores; generation threads {}, prompt threads {} (default: 1 for models up to 256 MB)",
        physical_cores(),
        config
            .threads
            .map_or("default".to_owned(), |n| n.to_string()),
        config
            .batch_threads
            .map_or("default".to_owned(), |n| n.to_string()),
    );
    let local = LocalProvider::new(config);
    let loading = Instant::now();
    local.load().await?;
    println!(
        "model {} loaded in {:.2} s; {}",
        path.display(),
        loading.elapsed().as_secs_f64(),
        threads
    );
    println!(
        "memory after load: VmRSS {:.1} MiB",
        mib(status_kib("VmRSS:"))
    );

    let system = "You are a senior software architect. You write clear, complete and well-structured \
        technical documents in Markdown, with headings, short paragraphs and lists.";
    let mut user = String::from(
        "Write the technical architecture of a command-line todo application written in Rust. \
         Cover the modules, the data model, storage, error handling and testing. Requirements so far: ",
    );
    let requirement = "users add, list, complete and delete tasks with due dates and tags; ";
    let mut messages = vec![ChatMessage::system(system), ChatMessage::user(&user)];
    let mut prompt_tokens = local
        .count_tokens(&local.render_prompt(&messages).await?)
        .await?;
    while prompt_tokens < 320 {
        user.push_str(requirement);
        messages = vec![ChatMessage::system(system), ChatMessage::user(&user)];
        prompt_tokens = local
            .count_tokens(&local.render_prompt(&messages).await?)
            .await?;
    }

    let mut prompt_rates = Vec::new();
    let mut gen_rates = Vec::new();
    for run in 0..RUNS {
        let request = ChatRequest {
            model: String::new(),
            messages: messages.clone(),
            max_tokens: GENERATE,
            temperature: 0.7,
            seed: run,
            stop: vec![],
            grammar: None,
            tools: vec![],
        };
        let first: Mutex<Option<Instant>> = Mutex::new(None);
        let last: Mutex<Option<Instant>> = Mutex::new(None);
        let start = Instant::now();
        let response = local
            .chat(&request, &|_| {
                let now = Instant::now();
                if let Ok(mut first) = first.lock() {
                    first.get_or_insert(now);
                }
                if let Ok(mut last) = last.lock() {
                    *last = Some(now);
                }
            })
            .await?;
        let first = first
            .into_inner()
            .ok()
            .flatten()
            .context("no token was streamed")?;
        let last = last
            .into_inner()
            .ok()
            .flatten()
            .context("no token was streamed")?;
        let to_first = first.duration_since(start).as_secs_f64();
        let generating = last.duration_since(first).as_secs_f64();
        let prompt_rate = response.usage.input_tokens as f64 / to_first;
        let gen_rate = (response.usage.output_tokens.saturating_sub(1)) as f64 / generating;
        println!(
            "run {run}: prompt {} tokens in {:.3} s = {:.0} tok/s; generated {} tokens in {:.2} s = {:.1} tok/s ({:?})",
            response.usage.input_tokens,
            to_first,
            prompt_rate,
            response.usage.output_tokens,
            generating,
            gen_rate,
            response.finish
        );
        prompt_rates.push(prompt_rate);
        gen_rates.push(gen_rate);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median prompt evaluation: {:.0} tok/s",
        median(&mut prompt_rates)
    );
    println!(
        "median generation: {:.1} tok/s (target >= 40)",
        median(&mut gen_rates)
    );
    println!(
        "memory: VmRSS {:.1} MiB now, peak (VmHWM) {:.1} MiB (target < 200 MiB for the whole CLI)",
        mib(status_kib("VmRSS:")),
        mib(status_kib("VmHWM:"))
    );

    // A long prompt, near what a step with a full context budget sends.
    let long_user = requirement.repeat(LONG_PROMPT / 12);
    let long = ChatRequest {
        model: String::new(),
        messages: vec![ChatMessage::system(system), ChatMessage::user(long_user)],
        max_tokens: 512,
        temperature: 0.7,
        seed: 0,
        stop: vec![],
        grammar: None,
        tools: vec![],
    };
    let start = Instant::now();
    let first: Mutex<Option<Instant>> = Mutex::new(None);
    let response = local
        .chat(&long, &|_| {
            if let Ok(mut first) = first.lock() {
                first.get_or_insert_with(Instant::now);
            }
        })
        .await?;
    let to_first = first
        .into_inner()
        .ok()
        .flatten()
        .map_or(0.0, |f| f.duration_since(start).as_secs_f64());
    println!(
        "long prompt: {} prompt tokens in {:.1} s, then {} generated in {:.1} s; peak (VmHWM) {:.1} MiB, VmRSS after {:.1} MiB",
        response.usage.input_tokens,
        to_first,
        response.usage.output_tokens,
        start.elapsed().as_secs_f64() - to_first,
        mib(status_kib("VmHWM:")),
        mib(status_kib("VmRSS:"))
    );
    Ok(())
}
