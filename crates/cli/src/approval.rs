//! Approving and rejecting at gates: `botarmy approve`, `botarmy reject`, and the inline
//! prompt a run shows at a terminal when a gate stops it.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use botarmy_core::engine::RunState;
use botarmy_protocol::RunId;
use botarmy_runtime::{Runtime, RuntimeError};
use clap::Args;

use crate::config::Config;

/// `botarmy approve`.
#[derive(Args)]
pub(crate) struct ApproveArgs {
    /// Run id or a unique prefix of it.
    run: String,
    /// The step whose gate to approve (index, key, or key without its phase); default:
    /// the gate that waits.
    step: Option<String>,
    /// Edit the step's document in $VISUAL / $EDITOR first; the edit is stored as its next
    /// version and approved.
    #[arg(long)]
    amend: bool,
    /// Print the final run summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// `botarmy reject`.
#[derive(Args)]
pub(crate) struct RejectArgs {
    /// Run id or a unique prefix of it.
    run: String,
    /// The step to send back (index, key, or key without its phase); default: every step
    /// of the gate that waits.
    step: Option<String>,
    /// What should change; the restarted steps see it in their prompt.
    #[arg(long)]
    feedback: String,
    /// Print the final run summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Opens the run named on the command line, and the step named, if any.
async fn target(
    config: &Config,
    run: &str,
    step: Option<&str>,
) -> Result<(Arc<Runtime>, crate::models::ModelNote, RunId, Option<u32>)> {
    let store = botarmy_store::open(&config.database_url).await?;
    let run_id = store.resolve_run(run).await?;
    drop(store);
    let (runtime, note) = crate::open_runtime(config, None).await?;
    let step = match step {
        None => None,
        Some(name) => {
            let state = runtime.load(run_id).await?;
            match state.find_step(name) {
                Some(i) => Some(i),
                None => {
                    let keys: Vec<String> = state
                        .plan
                        .iter()
                        .flat_map(|p| p.steps.iter().map(|s| s.key.clone()))
                        .collect();
                    bail!(
                        "run {run_id} has no step `{name}`; its steps: {}",
                        keys.join(", ")
                    );
                }
            }
        }
    };
    Ok((runtime, note, run_id, step))
}

pub(crate) async fn approve(config: &Config, args: ApproveArgs) -> Result<std::process::ExitCode> {
    let (runtime, note, run_id, step) = target(config, &args.run, args.step.as_deref()).await?;
    if args.amend {
        amend_in_editor(config, &runtime, run_id, step).await?;
    } else {
        runtime.approve(run_id, step, crate::user(config)).await?;
        eprintln!("run {run_id}: approved; continuing");
    }
    crate::drive(config, &runtime, run_id, true, args.json, &note).await
}

pub(crate) async fn reject(config: &Config, args: RejectArgs) -> Result<std::process::ExitCode> {
    let (runtime, note, run_id, step) = target(config, &args.run, args.step.as_deref()).await?;
    let state = runtime
        .reject(run_id, step, &args.feedback, crate::user(config))
        .await?;
    eprintln!(
        "run {run_id}: sent back ({}); continuing",
        restarted(&state).join(", ")
    );
    crate::drive(config, &runtime, run_id, true, args.json, &note).await
}

/// The keys of the steps that wait to run again.
fn restarted(state: &RunState) -> Vec<String> {
    let Some(plan) = &state.plan else {
        return Vec::new();
    };
    state
        .steps
        .iter()
        .zip(&plan.steps)
        .filter(|(s, _)| s.status == botarmy_protocol::StepStatus::Pending && s.attempt > 0)
        .map(|(_, p)| p.key.clone())
        .collect()
}

/// What a gate waits for, for a person: its steps, their documents, scores and reasons.
pub(crate) fn describe(runtime: &Runtime, state: &RunState, gate: u32) -> Vec<String> {
    let mut out = Vec::new();
    let (Some(plan), Some(gs)) = (&state.plan, state.gates.get(gate as usize)) else {
        return out;
    };
    let Some(request) = &gs.request else {
        return out;
    };
    let pg = &plan.gates[gate as usize];
    out.push(format!("Approval needed: {}", pg.title));
    let score = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), |v| format!("{v:.2}"));
    out.push(format!(
        "  confidence {} · quality {}",
        score(request.confidence),
        score(request.quality)
    ));
    for reason in &request.reasons {
        out.push(format!("  - {reason}"));
    }
    let dir = runtime.out_dir(state);
    for &i in &pg.steps {
        let (Some(step), Some(s)) = (plan.steps.get(i as usize), state.steps.get(i as usize))
        else {
            continue;
        };
        out.push(format!("  {} ({}): {}", step.key, step.agent, s.status));
        if let Some(a) = &s.assessment {
            for reason in a
                .quality
                .iter()
                .chain(a.confidence.iter())
                .flat_map(|q| q.reasons.iter())
                .take(3)
            {
                out.push(format!("      {reason}"));
            }
        }
        for artifact in s
            .artifacts
            .iter()
            .filter(|a| a.kind == botarmy_protocol::ArtifactKind::Document)
            .rev()
            .take(1)
        {
            let path = dir.join(&artifact.name);
            out.push(format!("      {} (v{})", path.display(), artifact.version));
            if let Ok(text) = std::fs::read_to_string(&path) {
                for line in text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .skip(1)
                    .take(4)
                {
                    let line: String = line.chars().take(100).collect();
                    out.push(format!("      │ {line}"));
                }
            }
        }
    }
    out
}

/// Opens the document a gate waits on in the user's editor; a changed document is stored
/// as its next version and approved (`amended`), an unchanged one simply approved.
async fn amend_in_editor(
    config: &Config,
    runtime: &Runtime,
    run_id: RunId,
    step: Option<u32>,
) -> Result<()> {
    let (step, name, content) = runtime.amendable(run_id, step).await?;
    let dir = tempfile::tempdir().context("making a folder for the document to edit")?;
    let file_name = name.rsplit('/').next().unwrap_or("document.md");
    let path = dir.path().join(file_name);
    std::fs::write(&path, &content).with_context(|| format!("writing {}", path.display()))?;
    let editor = config
        .env
        .get("VISUAL")
        .or_else(|| config.env.get("EDITOR"))
        .filter(|e| !e.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "vi".to_owned());
    // The editor may carry arguments (`code --wait`); the shell splits them.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status()
        .with_context(|| format!("starting the editor `{editor}`"))?;
    if !status.success() {
        bail!("the editor `{editor}` failed ({status}); nothing was changed");
    }
    let edited = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} back", path.display()))?;
    let by = crate::user(config);
    if edited == content {
        runtime.approve(run_id, Some(step), by).await?;
        eprintln!("run {run_id}: {name} unchanged; approved; continuing");
    } else {
        runtime.amend(run_id, Some(step), &edited, by).await?;
        eprintln!("run {run_id}: {name} amended and approved; continuing");
    }
    Ok(())
}

fn read_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the answer")?;
    Ok(line.trim().to_owned())
}

/// Asks at the terminal whether to approve what the run's gate waits for: `true` when a
/// decision was taken (the run goes on), `false` when the user leaves it waiting.
pub(crate) async fn ask_inline(
    config: &Config,
    runtime: &Runtime,
    state: &RunState,
    by: &str,
) -> Result<bool> {
    let Some(gate) = state.question().and_then(|q| q.gate) else {
        return Ok(false);
    };
    let run_id = state.run_id;
    eprintln!();
    for line in describe(runtime, state, gate) {
        eprintln!("{line}");
    }
    loop {
        eprint!(
            "[a]pprove / [r]eject with feedback / [e]dit a document and approve (empty: leave the run waiting)> "
        );
        let _ = std::io::stderr().flush();
        let answer = tokio::task::spawn_blocking(read_line)
            .await
            .context("reading the answer")??;
        match answer.to_lowercase().as_str() {
            "" => return Ok(false),
            "a" | "approve" | "y" | "yes" => {
                runtime.approve(run_id, None, by).await?;
                return Ok(true);
            }
            "e" | "edit" | "amend" => match amend_in_editor(config, runtime, run_id, None).await {
                Ok(()) => return Ok(true),
                Err(e) => eprintln!("{e:#}"),
            },
            "r" | "reject" | "n" | "no" => loop {
                eprint!("feedback (what should change)> ");
                let _ = std::io::stderr().flush();
                let feedback = tokio::task::spawn_blocking(read_line)
                    .await
                    .context("reading the feedback")??;
                if feedback.is_empty() {
                    eprintln!("a rejection needs feedback; say what should change");
                    continue;
                }
                match runtime.reject(run_id, None, &feedback, by).await {
                    Ok(_) => return Ok(true),
                    Err(RuntimeError::Answer { problem, .. }) => eprintln!("{problem}"),
                    Err(other) => return Err(other.into()),
                }
            },
            other => eprintln!("`{other}` is neither approve nor reject"),
        }
    }
}
