//! Read commands: `runs`, `show`, `events`, `check`, and the summary printed after a run.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use botarmy_core::engine::RunState;
use botarmy_core::method::{Method, Severity};
use botarmy_protocol::{RunStatus, Usage, format_millis};
use botarmy_runtime::Runtime;
use botarmy_store::RunFilter;
use serde_json::json;

use crate::config::Config;
use crate::models::ModelNote;
use botarmy_runtime::files::absolute;

/// Standard output, locked, for one command's printing.
pub(crate) fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

/// Dollars, to a hundredth of a cent.
pub(crate) fn cost(usage: &Usage) -> String {
    format!("${:.4}", usage.cost_usd)
}

fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

pub async fn runs(
    config: &Config,
    status: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<ExitCode> {
    let status = match status {
        None => None,
        Some(s) => Some(RunStatus::parse(s).with_context(|| {
            format!("--status {s:?}: expected one of pending, running, paused, waiting, succeeded, failed, cancelled")
        })?),
    };
    let store = botarmy_store::open(&config.database_url).await?;
    let runs = store
        .list_runs(&RunFilter {
            status,
            limit,
            ..RunFilter::default()
        })
        .await?;
    let mut w = out();
    if json {
        serde_json::to_writer_pretty(&mut w, &runs)?;
        writeln!(w)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        writeln!(w, "no runs yet; start one with `botarmy run \"your idea\"`")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        w,
        "{:<36}  {:<10}  {:<20}  {:<20}  {:>8}  {:>9}  IDEA",
        "ID", "STATUS", "WORKFLOW", "STARTED", "TOKENS", "COST"
    )?;
    for r in runs {
        let started = format_millis(r.started_at.unwrap_or(r.created_at));
        let idea: String = r
            .idea
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect();
        writeln!(
            w,
            "{:<36}  {:<10}  {:<20}  {:<20}  {:>8}  {:>9}  {idea}",
            r.id.to_string(),
            r.status.as_str(),
            r.workflow,
            &started[..started.len().min(19)],
            r.usage.total_tokens(),
            cost(&r.usage),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What waiting runs ask of a human, across runs: agents' questions, decisions, and runs
/// stopped by their budget, each with how to answer.
pub async fn inbox(config: &Config, json: bool) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let waiting = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Waiting),
            ..RunFilter::default()
        })
        .await?;
    let mut items = Vec::new();
    for run in &waiting {
        let state = botarmy_core::engine::RunState::from_events(
            run.id,
            &store.read_events(run.id, 0, 0).await?,
        )?;
        items.push(match state.question() {
            Some(q) => {
                let step = q.asker.map(|a| a.step);
                let answer = match (step, q.options) {
                    _ if q.gate.is_some() => format!(
                        "botarmy approve {0}  |  botarmy reject {0} --feedback TEXT",
                        run.id
                    ),
                    (None, options) if !options.is_empty() => {
                        format!("botarmy answer {} <{}>", run.id, options.join("|"))
                    }
                    _ if q.kind == "conflict" => format!(
                        "botarmy answer {} <position number|accept|your resolution>",
                        run.id
                    ),
                    _ => format!("botarmy answer {} TEXT", run.id),
                };
                let mut item = json!({
                    "run_id": run.id, "kind": q.kind, "step": step,
                    "agent": step.and_then(|s| state.agent_of(s)),
                    "question": q.question, "options": q.options, "answer": answer,
                });
                if let Some(g) = q.gate {
                    item["gate"] = json!(state.gate_view(g));
                }
                item
            }
            None => json!({
                "run_id": run.id, "kind": "waiting", "question": state.reason.clone().unwrap_or_default(),
                "options": [], "answer": format!("botarmy resume {}", run.id),
            }),
        });
    }
    let mut w = out();
    if json {
        serde_json::to_writer_pretty(&mut w, &items)?;
        writeln!(w)?;
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        writeln!(w, "nothing waits for an answer")?;
    }
    for item in &items {
        let who = item["agent"]
            .as_str()
            .map_or(String::new(), |a| format!(" ({a} asks)"));
        writeln!(
            w,
            "{} {}{who}",
            item["run_id"].as_str().unwrap_or(""),
            item["kind"].as_str().unwrap_or("")
        )?;
        writeln!(w, "  {}", item["question"].as_str().unwrap_or(""))?;
        if let Some(options) = item["options"].as_array().filter(|o| !o.is_empty()) {
            let options: Vec<&str> = options.iter().filter_map(|o| o.as_str()).collect();
            writeln!(w, "  options: {}", options.join(" / "))?;
        }
        writeln!(w, "  answer:  {}", item["answer"].as_str().unwrap_or(""))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(config: &Config, run: &str, json: bool) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let run_id = store.resolve_run(run).await?;
    let summary = store.get_run(run_id).await?;
    let steps = store.steps(run_id).await?;
    let attempts = store.attempts(run_id).await?;
    let artifacts = store.artifacts(run_id).await?;
    let calls = store.llm_calls(run_id).await?;
    // What only the log tells: steps queued for a slot, the worktrees, a pending question.
    let state = botarmy_core::engine::RunState::from_events(
        run_id,
        &store.read_events(run_id, 0, 0).await?,
    )?;
    let queued: std::collections::BTreeMap<u32, &str> = state
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i as u32, s.queued.as_deref()?)))
        .collect();
    let worktrees = state.workspace.worktrees();
    let mut w = out();
    if json {
        // A decision the run waits for, or an agent's question.
        let question = state.question();
        let needs_input = question
            .filter(|q| q.asker.is_none())
            .map(|q| json!({"kind": q.kind, "question": q.question, "options": q.options}));
        let questions: Vec<_> = question
            .and_then(|q| {
                let asker = q.asker?;
                Some(json!({"step": asker.step, "question": q.question, "options": q.options}))
            })
            .into_iter()
            .collect();
        let gates = state.gate_views();
        let assessments: std::collections::BTreeMap<u32, _> = state
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.assessment.as_ref()?)))
            .collect();
        let value = json!({
            "run": summary, "steps": steps, "attempts": attempts, "artifacts": artifacts, "llm_calls": calls,
            "queued": queued, "worktrees": worktrees, "needs_input": needs_input,
            "questions": questions, "gates": gates, "assessments": assessments,
            "conflicts": state.conflict_views(),
        });
        serde_json::to_writer_pretty(&mut w, &value)?;
        writeln!(w)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(w, "run       {}", summary.id)?;
    writeln!(w, "status    {}", summary.status)?;
    writeln!(w, "workflow  {}", summary.workflow)?;
    writeln!(w, "idea      {}", summary.idea.lines().next().unwrap_or(""))?;
    writeln!(w, "created   {}", format_millis(summary.created_at))?;
    if let (Some(a), Some(b)) = (summary.started_at, summary.finished_at) {
        writeln!(w, "duration  {}", duration((b - a).max(0) as u64))?;
    }
    writeln!(
        w,
        "tokens    {} in / {} out in {} LLM calls, cost {}",
        summary.usage.input_tokens,
        summary.usage.output_tokens,
        calls.len(),
        cost(&summary.usage)
    )?;
    if let Some(e) = &summary.error {
        writeln!(w, "error     {e}")?;
    }
    match state.question() {
        Some(q) if q.gate.is_some() => {
            writeln!(
                w,
                "waiting   {} `botarmy approve {1}` or `botarmy reject {1} --feedback TEXT`",
                q.question, state.run_id
            )?;
        }
        Some(q) if q.asker.is_none() => {
            writeln!(w, "waiting   {} ({})", q.question, q.options.join(" / "))?;
        }
        Some(q) if q.kind == "conflict" => {
            writeln!(
                w,
                "conflict  step {}: {}\n          `botarmy answer {} <number|accept|your resolution>`",
                q.asker.map_or(0, |a| a.step) + 1,
                q.question.replace('\n', "\n          "),
                state.run_id
            )?;
        }
        Some(q) => {
            let options = if q.options.is_empty() {
                String::new()
            } else {
                format!(" ({})", q.options.join(" / "))
            };
            writeln!(
                w,
                "question  step {}: {}{options}; `botarmy answer {} TEXT`",
                q.asker.map_or(0, |a| a.step) + 1,
                q.question,
                state.run_id
            )?;
        }
        None => {}
    }
    for t in worktrees {
        writeln!(
            w,
            "worktree  {} on {} ({})",
            t.repository, t.branch, t.repo_path
        )?;
    }
    let times = botarmy_store::phase_times(&steps, &attempts, botarmy_protocol::now_millis());
    let mut phase = None;
    for s in &steps {
        if s.phase != phase {
            phase.clone_from(&s.phase);
            let name = s.phase.clone().unwrap_or_default();
            let took = times
                .iter()
                .find(|t| t.phase == name && t.attempts > 0)
                .map(|t| format!("  ({} working)", duration(t.busy_ms)))
                .unwrap_or_default();
            writeln!(w, "\n{}{took}", s.phase.as_deref().unwrap_or("steps"))?;
        }
        writeln!(
            w,
            "  {:>2}. {:<40} {:<10} {:<11} attempt {}  {} tok",
            s.step + 1,
            s.title,
            s.agent,
            s.status.as_str(),
            s.attempt,
            s.usage.total_tokens(),
        )?;
        for a in attempts
            .iter()
            .filter(|a| a.step == s.step && a.status != "succeeded")
        {
            let why = a.error.as_deref().unwrap_or("");
            writeln!(w, "        attempt {} {} {why}", a.attempt, a.status)?;
        }
        if let Some(e) = &s.error
            && s.status.as_str() != "succeeded"
        {
            writeln!(w, "        {e}")?;
        }
        if let Some(a) = state
            .steps
            .get(s.step as usize)
            .and_then(|st| st.assessment.as_ref())
        {
            let score = |v: Option<&botarmy_protocol::Score>| {
                v.map_or_else(|| "none".to_owned(), |s| format!("{:.2}", s.value))
            };
            writeln!(
                w,
                "        confidence {} · quality {}",
                score(a.confidence.as_ref()),
                score(a.quality.as_ref())
            )?;
            for risk in &a.risks {
                writeln!(
                    w,
                    "        risk [{}] {}",
                    serde_json::to_value(risk.severity)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    risk.title
                )?;
            }
        }
        for c in state.conflict_views().iter().filter(|c| c.step == s.step) {
            let how = match &c.resolution {
                Some(r) => match r.score {
                    Some(score) => format!("settled by {} (agreement {score:.2})", r.by),
                    None => format!("settled by {}", r.by),
                },
                None => c.status.to_owned(),
            };
            writeln!(
                w,
                "        conflict {} [{}] {} - {how}",
                c.conflict + 1,
                serde_json::to_value(c.detail.severity)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                c.detail.description
            )?;
            for p in &c.detail.positions {
                writeln!(w, "          {} in {}: {}", p.agent, p.artifact, p.claim)?;
            }
            if let Some(r) = &c.resolution {
                writeln!(w, "          resolution: {}", r.resolution)?;
            }
        }
        if let Some(resource) = queued.get(&s.step) {
            writeln!(
                w,
                "        queued: waiting for a free {} slot (limits in botarmy.toml [limits])",
                resource.replace('_', " ")
            )?;
        }
    }
    if !artifacts.is_empty() {
        writeln!(w, "\nartifacts")?;
        for a in &artifacts {
            writeln!(
                w,
                "  {:<44} v{}  {:>7} bytes  {}",
                a.artifact.name,
                a.artifact.version,
                a.artifact.bytes,
                &a.artifact.sha256[..12.min(a.artifact.sha256.len())]
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn events(config: &Config, run: &str, since: u64, follow: bool) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let run_id = store.resolve_run(run).await?;
    let mut last = since;
    loop {
        let records = store.read_events(run_id, last, 500).await?;
        {
            let mut w = out();
            for r in &records {
                serde_json::to_writer(&mut w, r)?;
                writeln!(w)?;
                last = r.seq;
            }
            w.flush()?;
        }
        if !records.is_empty() {
            continue;
        }
        if !follow || store.get_run(run_id).await?.status.is_terminal() {
            return Ok(ExitCode::SUCCESS);
        }
        store
            .wait_for_events(run_id, last, Duration::from_secs(5))
            .await?;
    }
}

pub fn check(method: Option<&Path>, json: bool) -> Result<ExitCode> {
    let (label, loaded) = match method {
        Some(dir) => {
            let dir = absolute(dir);
            if !dir.is_dir() {
                bail!("--method {}: not a folder", dir.display());
            }
            (dir.display().to_string(), Method::load(&dir))
        }
        None => ("builtin".to_string(), Method::builtin()),
    };
    let mut w = out();
    let method = match loaded {
        Ok(m) => m,
        Err(errors) => {
            if json {
                let list: Vec<String> = errors.to_string().lines().map(str::to_string).collect();
                serde_json::to_writer_pretty(
                    &mut w,
                    &json!({ "method": label, "ok": false, "errors": list }),
                )?;
                writeln!(w)?;
            } else {
                writeln!(w, "{errors}")?;
                writeln!(w, "{label}: definitions do not load")?;
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let diagnostics = method.check();
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    if json {
        let list: Vec<_> = diagnostics
            .iter()
            .map(|d| json!({ "severity": if d.severity == Severity::Error { "error" } else { "warning" }, "message": d.to_string() }))
            .collect();
        serde_json::to_writer_pretty(
            &mut w,
            &json!({ "method": label, "ok": errors == 0, "errors": errors, "warnings": warnings, "diagnostics": list,
                     "workflows": method.workflows().iter().map(|wf| wf.id.clone()).collect::<Vec<_>>() }),
        )?;
        writeln!(w)?;
    } else {
        for d in &diagnostics {
            let severity = if d.severity == Severity::Error {
                "error"
            } else {
                "warning"
            };
            writeln!(w, "{severity}: {d}")?;
        }
        writeln!(
            w,
            "{label}: {} agents, {} templates, {} workflows; {errors} error(s), {warnings} warning(s)",
            method.agents().len(),
            method.templates().len(),
            method.workflows().len(),
        )?;
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per phase that ran: the time its attempts took (steps side by side once, waits
/// at gates not at all), attempts and tokens.
fn write_phase_times(
    w: &mut impl Write,
    phases: &[botarmy_store::PhaseTime],
) -> std::io::Result<()> {
    let ran: Vec<_> = phases.iter().filter(|p| p.attempts > 0).collect();
    if ran.is_empty() {
        return Ok(());
    }
    writeln!(w, "phases (time working; waits at gates not counted):")?;
    for p in ran {
        let name = if p.phase.is_empty() {
            "steps"
        } else {
            p.phase.as_str()
        };
        writeln!(
            w,
            "  {name:<12} {:>9}  {:>2} attempt{}  {:>7} tokens{}",
            duration(p.busy_ms),
            p.attempts,
            if p.attempts == 1 { " " } else { "s" },
            p.usage.total_tokens(),
            if p.finished_at.is_none() {
                "  (running)"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

/// What a finished (or paused) run produced, printed after `run` and `resume`.
pub async fn summary(
    runtime: &Runtime,
    state: &RunState,
    json: bool,
    note: &ModelNote,
) -> Result<()> {
    let store = runtime.store();
    let artifacts = store.artifacts(state.run_id).await?;
    let phases = botarmy_store::phase_times(
        &store.steps(state.run_id).await?,
        &store.attempts(state.run_id).await?,
        botarmy_protocol::now_millis(),
    );
    let out_dir = runtime.out_dir(state);
    let duration_ms = match (state.started_at, state.finished_at) {
        (Some(a), Some(b)) => (b - a).max(0) as u64,
        _ => 0,
    };
    // A run that waits for a person says how to answer it, whatever the output format.
    if state.status == RunStatus::Waiting {
        let id = state.run_id;
        let how = match state.question() {
            Some(q) if q.gate.is_some() => format!(
                "{} `botarmy approve {id}`, or `botarmy reject {id} --feedback TEXT`",
                q.question
            ),
            Some(q) if !q.options.is_empty() => format!(
                "{} `botarmy answer {id} <{}>`",
                q.question,
                q.options.join("|")
            ),
            Some(q) => format!("{} `botarmy answer {id} TEXT`", q.question),
            None => format!("`botarmy resume {id}` once what it waits for is there"),
        };
        eprintln!("waiting: {how}");
    }
    if json {
        let latest: Vec<_> = artifacts
            .iter()
            .filter(|a| state.artifacts.get(&a.artifact.name).is_some_and(|l| l.id == a.artifact.id))
            .map(|a| json!({ "name": a.artifact.name, "version": a.artifact.version, "path": out_dir.join(&a.artifact.name), "bytes": a.artifact.bytes }))
            .collect();
        let value = json!({
            "run_id": state.run_id, "status": state.status, "usage": state.usage, "duration_ms": duration_ms,
            "out_dir": out_dir, "artifacts": latest, "error": state.error, "reason": state.reason,
            "worktrees": state.workspace.worktrees(), "phases": phases,
        });
        let mut w = out();
        serde_json::to_writer_pretty(&mut w, &value)?;
        writeln!(w)?;
        return Ok(());
    }
    let mut e = std::io::stderr().lock();
    writeln!(e)?;
    match state.status {
        RunStatus::Succeeded => writeln!(
            e,
            "run {} succeeded in {}",
            state.run_id,
            duration(duration_ms)
        )?,
        RunStatus::Paused => writeln!(
            e,
            "run {} paused: {}",
            state.run_id,
            state.reason.as_deref().unwrap_or("")
        )?,
        status => {
            let why = state
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .or_else(|| state.reason.clone())
                .unwrap_or_default();
            writeln!(e, "run {} {status}: {why}", state.run_id)?;
        }
    }
    write_phase_times(&mut e, &phases)?;
    let documents = state
        .artifacts
        .values()
        .filter(|a| a.kind == botarmy_protocol::ArtifactKind::Document)
        .count();
    let code = state.artifacts.len() - documents;
    writeln!(
        e,
        "artifacts ({documents} documents, {code} code files) in {}",
        out_dir.display()
    )?;
    for a in state.artifacts.values() {
        writeln!(
            e,
            "  {:<44} {:>7} bytes{}",
            a.name,
            a.bytes,
            if a.version > 1 {
                format!("  (v{})", a.version)
            } else {
                String::new()
            }
        )?;
    }
    for w in state.workspace.worktrees() {
        writeln!(
            e,
            "code: branch {} of {} (`git -C {} log {}`)",
            w.branch, w.repo_path, w.repo_path, w.branch
        )?;
    }
    writeln!(
        e,
        "tokens: {} in, {} out, {} LLM calls; cost {}",
        state.usage.input_tokens,
        state.usage.output_tokens,
        state.usage.calls,
        cost(&state.usage)
    )?;
    if let Some(hint) = note.after_run() {
        writeln!(e, "{hint}")?;
    }
    Ok(())
}
