//! The `botarmy` command: runs the lifecycle from a terminal and inspects stored runs.

mod approval;
mod config;
mod inspect;
mod models;
mod progress;
mod providers;
mod repo;
mod serve;
mod token;
mod usage;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use botarmy_protocol::{RunOptions, RunRequest, RunStatus};
use botarmy_runtime::{Runtime, Settings};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use botarmy_runtime::files::absolute;

/// BotArmy runs a team of LLM agents through a software lifecycle: Discovery, Plan,
/// Design, Build, Validate and Launch.
#[derive(Parser)]
#[command(name = "botarmy", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Take an idea through the whole lifecycle, with live progress.
    Run(RunArgs),
    /// List runs: id, status, workflow, started, cost.
    Runs(RunsArgs),
    /// Show a run: phases, steps, attempts, artifacts, tokens.
    Show(ShowArgs),
    /// A run's tokens and cost by phase, agent and provider/model.
    Cost(CostArgs),
    /// Per agent and model: calls, success rate, latency, tokens, cost; totals per project.
    Stats(StatsArgs),
    /// Print a run's event log as JSON lines.
    Events(EventsArgs),
    /// Continue an interrupted, paused or waiting run.
    Resume(ResumeArgs),
    /// What waiting runs ask of a human (agents' questions, decisions, budgets), across runs.
    Inbox(InboxArgs),
    /// Answer the question a waiting run asks (an agent's clarification, or a decision such
    /// as running a repository's setup), then continue it.
    Answer(AnswerArgs),
    /// Approve what a run's gate waits for (its phase's or step's outputs), then continue it.
    Approve(approval::ApproveArgs),
    /// Send a gate's outputs, or any finished step, back with feedback: the steps restart
    /// with it (their dependants after them), then the run continues.
    Reject(approval::RejectArgs),
    /// Validate method definitions; exits 1 with file:line errors.
    Check(CheckArgs),
    /// The embedded model.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Which provider and model answer for each agent (keys masked); `--ping` checks them.
    Providers(ProvidersArgs),
    /// Serve the REST and WebSocket API (on other than a loopback address only with
    /// authentication configured).
    Serve(serve::ServeArgs),
    /// API tokens for `botarmy serve`: create (the secret is shown once), list, revoke.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Repositories runs work in: add (a folder or a URL to clone), list, remove.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    /// The worktrees of BotArmy's run branches: list, and gc those merged.
    #[command(subcommand)]
    Worktree(repo::WorktreeCommand),
}

#[derive(Args)]
struct ProvidersArgs {
    /// Check that each provider answers (endpoint reachable, key accepted, model present).
    #[arg(long)]
    ping: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunArgs {
    /// The idea, ticket or task to work on.
    idea: String,
    /// Workflow id (default: the method's default workflow).
    #[arg(long)]
    workflow: Option<String>,
    /// Definitions folder (a BMAD `.bmad-core/` works); default: the built-in method.
    #[arg(long)]
    method: Option<PathBuf>,
    /// Where artifacts are written (default ./botarmy-out/<run-id>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Accept every gate without asking (each approval is still logged, as `--yes`'s).
    #[arg(long)]
    yes: bool,
    /// The policy of every gate of this run: `auto`, `always`, or thresholds such as
    /// `confidence_below=0.8,quality_below=0.85` (default: the workflow's, else botarmy.toml's
    /// `[gates] default`, else those thresholds).
    #[arg(long, value_parser = botarmy_protocol::GatePolicy::parse)]
    gate_policy: Option<botarmy_protocol::GatePolicy>,
    /// Record every LLM exchange to this cassette (JSON lines) for replay.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Project the run belongs to.
    #[arg(long, default_value = "default")]
    project: String,
    /// Steps that may execute at the same time.
    #[arg(long, default_value_t = RunOptions::default().max_parallel)]
    max_parallel: u32,
    /// Token budget for the artifacts put into a step's prompt.
    #[arg(long, default_value_t = RunOptions::default().context_tokens)]
    context_tokens: u32,
    /// Cap on generated tokens per LLM call.
    #[arg(long, default_value_t = RunOptions::default().max_output_tokens)]
    max_tokens: u32,
    /// Attempts per step for retryable failures.
    #[arg(long, default_value_t = RunOptions::default().max_attempts)]
    max_attempts: u32,
    /// Execute steps the workflow marks optional.
    #[arg(long)]
    run_optional: bool,
    /// Print the final run summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    budget: BudgetArgs,
    /// A repository to work in (a registered name or a git checkout's folder); repeat for
    /// several. None: a fresh repository of the run's own.
    #[arg(long)]
    repo: Vec<String>,
}

/// Spending limits on the command line (over `[budget]` in botarmy.toml).
#[derive(Args)]
struct BudgetArgs {
    /// Stop (the run waits) before a call could take the run past this many US dollars.
    #[arg(long)]
    budget_usd: Option<f64>,
    /// Stop (the run waits) before a call could take the run past this many tokens.
    #[arg(long)]
    budget_tokens: Option<u64>,
}

impl BudgetArgs {
    /// `base` with the limits given here replacing its run-wide ones.
    fn over(&self, mut base: botarmy_protocol::Budget) -> Result<botarmy_protocol::Budget> {
        if let Some(usd) = self.budget_usd {
            anyhow::ensure!(
                usd.is_finite() && usd >= 0.0,
                "--budget-usd {usd}: expected a non-negative amount of US dollars"
            );
            base.usd = Some(usd);
        }
        if let Some(tokens) = self.budget_tokens {
            base.tokens = Some(tokens);
        }
        Ok(base)
    }

    fn given(&self) -> bool {
        self.budget_usd.is_some() || self.budget_tokens.is_some()
    }
}

#[derive(Args)]
struct RunsArgs {
    /// Only runs in this state (pending, running, paused, waiting, succeeded, failed, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ShowArgs {
    /// Run id or a unique prefix of it.
    run: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CostArgs {
    /// Run id or a unique prefix of it.
    run: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct StatsArgs {
    /// Only runs of this project (by name).
    #[arg(long)]
    project: Option<String>,
    /// Only calls of this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Only calls of the last DURATION (7d, 24h, 30m, 1d12h).
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EventsArgs {
    /// Run id or a unique prefix of it.
    run: String,
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Keep printing new events until the run ends.
    #[arg(long)]
    follow: bool,
}

#[derive(Args)]
struct ResumeArgs {
    /// Run id or a unique prefix of it.
    run: String,
    /// Record every new LLM exchange to this cassette (JSON lines), appending.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Print the final run summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// New limits for a run that waits on its budget.
    #[command(flatten)]
    budget: BudgetArgs,
    /// The answer to the question the run waits on (for the setup of its worktrees: `run`
    /// or `skip`).
    #[arg(long)]
    answer: Option<String>,
}

#[derive(Args)]
struct InboxArgs {
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AnswerArgs {
    /// Run id or a unique prefix of it.
    run: String,
    /// The answer (one of the offered options, when the question has some).
    answer: String,
    /// Print the final run summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// Definitions folder; default: the built-in method.
    #[arg(long)]
    method: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Fetch the default embedded model into BOTARMY_HOME/models and verify it.
    Pull,
    /// List the cached models.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let config = Config::load(std::env::vars().collect()).context("invalid configuration")?;
    match cli.command {
        Command::Run(args) => run(&config, args).await,
        Command::Providers(args) => providers::show(&config, args.ping, args.json).await,
        Command::Resume(args) => resume(&config, args).await,
        Command::Answer(args) => answer(&config, args).await,
        Command::Approve(args) => approval::approve(&config, args).await,
        Command::Reject(args) => approval::reject(&config, args).await,
        Command::Inbox(args) => inspect::inbox(&config, args.json).await,
        Command::Runs(args) => {
            inspect::runs(&config, args.status.as_deref(), args.limit, args.json).await
        }
        Command::Show(args) => inspect::show(&config, &args.run, args.json).await,
        Command::Cost(args) => usage::cost_report(&config, &args.run, args.json).await,
        Command::Stats(args) => usage::stats(&config, &args).await,
        Command::Events(args) => inspect::events(&config, &args.run, args.since, args.follow).await,
        Command::Check(args) => inspect::check(args.method.as_deref(), args.json),
        Command::Model(ModelCommand::Pull) => models::pull(&config).await,
        Command::Model(ModelCommand::List { json }) => models::list(&config, json),
        Command::Serve(args) => serve::serve(&config, args).await,
        Command::Repo(command) => repo::repo(&config, command).await,
        Command::Token(command) => token::token(&config, command).await,
        Command::Worktree(command) => repo::worktree(&config, command).await,
    }
}

pub(crate) async fn open_runtime(
    config: &Config,
    record: Option<&PathBuf>,
) -> Result<(Arc<Runtime>, models::ModelNote)> {
    let store = botarmy_store::open(&config.database_url).await?;
    // Agent variables (`CODER_AGENT_PROVIDER`, ...) are found by their names, whatever
    // agents the method has.
    let (router, note) = models::router(config, record, &[]).await?;
    let out_root = absolute(&PathBuf::from("botarmy-out"));
    let mut workspace = config.workspace();
    // Other runs' artifacts are not the agents' to read.
    workspace.hidden.push(out_root.clone());
    let settings = Settings {
        out_root,
        workspace: Some(workspace),
        limits: config.file.limits.limits(),
        ..Settings::default()
    };
    let mut runtime = Runtime::new(store, Arc::new(router), settings);
    if !config.file.mcp.is_empty() {
        let servers = botarmy_tools::McpServer::connect_all(config.file.mcp.values().cloned())
            .await
            .context("connecting the MCP servers of botarmy.toml")?;
        runtime = runtime.with_mcp(servers);
    }
    Ok((Arc::new(runtime), note))
}

async fn run(config: &Config, args: RunArgs) -> Result<ExitCode> {
    let method = match &args.method {
        Some(dir) => absolute(dir).display().to_string(),
        None => "builtin".to_string(),
    };
    // Check the definitions and the output folder before anything is stored or loaded.
    let handle = botarmy_runtime::MethodHandle::load(&method)?;
    let workflow = match args.workflow {
        Some(w) => w,
        None => handle
            .method()
            .default_workflow()
            .map(|w| w.id.clone())
            .context("the method has no workflows; pass --workflow")?,
    };
    handle.plan(&workflow)?;
    let (runtime, note) = open_runtime(config, args.record.as_ref()).await?;
    let options = RunOptions {
        max_parallel: args.max_parallel,
        context_tokens: args.context_tokens,
        max_output_tokens: args.max_tokens,
        max_attempts: args.max_attempts,
        auto_approve: args.yes,
        run_optional: args.run_optional,
        out_dir: args.out.as_ref().map(|o| absolute(o).display().to_string()),
        budget: args
            .budget
            .over(config.file.budget.clone().unwrap_or_default())?,
        repositories: repo::resolve_all(config, &args.repo).await?,
        gate_policy: args.gate_policy,
        default_gate: config.file.gates.default,
        gate_timeout: config.file.gates.timeout,
    };
    let request = RunRequest {
        idea: args.idea,
        workflow,
        method,
        options,
    };
    let run_id = runtime.create_run(&args.project, request).await?;
    let state = runtime.load(run_id).await?;
    eprintln!("run {run_id}");
    eprintln!(
        "  workflow {} · {} steps · out {}",
        workflow_label(&state),
        state.steps.len(),
        runtime.out_dir(&state).display()
    );
    eprintln!("  {}", note.banner());
    drive(config, &runtime, run_id, false, args.json, &note).await
}

async fn resume(config: &Config, args: ResumeArgs) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let run_id = store.resolve_run(&args.run).await?;
    drop(store);
    let (runtime, note) = open_runtime(config, args.record.as_ref()).await?;
    if args.budget.given() {
        let current = runtime
            .load(run_id)
            .await?
            .request
            .map(|r| r.options.budget)
            .unwrap_or_default();
        let budget = args.budget.over(current)?;
        runtime.set_budget(run_id, budget).await?;
        eprintln!("run {run_id}: budget changed");
    }
    // Without a server watching, a gate timeout that fell due fires when the run is resumed.
    if let Some(after) = runtime
        .apply_timeouts(run_id, botarmy_protocol::now_millis())
        .await?
    {
        eprintln!(
            "run {run_id}: an approval timed out; the run is now {}",
            after.status
        );
    }
    if let Some(answer) = &args.answer {
        runtime.answer(run_id, answer.trim(), user(config)).await?;
        eprintln!("run {run_id}: answered `{}`", answer.trim());
    }
    eprintln!("resuming run {run_id}");
    drive(config, &runtime, run_id, true, args.json, &note).await
}

async fn answer(config: &Config, args: AnswerArgs) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let run_id = store.resolve_run(&args.run).await?;
    drop(store);
    let (runtime, note) = open_runtime(config, None).await?;
    runtime
        .answer(run_id, args.answer.trim(), user(config))
        .await?;
    eprintln!("run {run_id}: answered; continuing");
    drive(config, &runtime, run_id, true, args.json, &note).await
}

/// Who answers from this terminal (recorded with the answer).
pub(crate) fn user(config: &Config) -> &str {
    config
        .env
        .get("USER")
        .filter(|u| !u.is_empty())
        .map_or("cli", String::as_str)
}

fn workflow_label(state: &botarmy_core::engine::RunState) -> String {
    state.plan.as_ref().map_or_else(String::new, |p| {
        format!("{} ({})", p.workflow_id, p.workflow_name)
    })
}

pub(crate) async fn drive(
    config: &Config,
    runtime: &Arc<Runtime>,
    run_id: botarmy_protocol::RunId,
    resume: bool,
    json: bool,
    note: &models::ModelNote,
) -> Result<ExitCode> {
    let user = user(config);
    let plan = runtime
        .load(run_id)
        .await?
        .plan
        .context("the run has no plan")?;
    let mut resume = resume;
    loop {
        let view = progress::Progress::new(run_id, plan.clone());
        let done = CancellationToken::new();
        let watcher = tokio::spawn(view.follow(runtime.subscribe(), done.clone()));
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        let signals = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        let result = if resume {
            runtime.resume(run_id, cancel).await
        } else {
            runtime.drive(run_id, cancel).await
        };
        done.cancel();
        signals.abort();
        let _ = watcher.await;
        let state = result?;
        // At a terminal, what the run asks is asked here, and the answer continues it.
        if state.status == RunStatus::Waiting && std::io::stdin().is_terminal() {
            let answered = match state.question() {
                Some(q) if q.gate.is_some() => {
                    approval::ask_inline(config, runtime, &state, user).await?
                }
                Some(_) => match inline_question(&state) {
                    Some(question) => ask_until_answered(runtime, run_id, &question, user).await?,
                    None => false,
                },
                None => false,
            };
            if answered {
                resume = true;
                continue;
            }
        }
        inspect::summary(runtime, &state, json, note).await?;
        return Ok(match state.status {
            RunStatus::Succeeded => ExitCode::SUCCESS,
            RunStatus::Paused => ExitCode::from(130),
            // Waiting for something outside (an answer, a larger budget): not a failure,
            // not done either (sysexits' "temporary failure; try again").
            RunStatus::Waiting => ExitCode::from(75),
            _ => ExitCode::FAILURE,
        });
    }
}

/// The question a waiting run asks a human, with its options (none: free text).
fn inline_question(state: &botarmy_core::engine::RunState) -> Option<(String, Vec<String>)> {
    let q = state.question()?;
    let question = match q.asker {
        None => q.question.to_string(),
        Some(asker) => format!(
            "{} asks: {}",
            state.agent_of(asker.step).unwrap_or("an agent"),
            q.question
        ),
    };
    Some((question, q.options.to_vec()))
}

/// Asks at the terminal until an accepted answer is given (`true`) or the user gives none
/// (an empty line or end of input: `false`, the run stays waiting).
async fn ask_until_answered(
    runtime: &Runtime,
    run_id: botarmy_protocol::RunId,
    (question, options): &(String, Vec<String>),
    by: &str,
) -> Result<bool> {
    loop {
        eprintln!();
        eprintln!("{question}");
        if !options.is_empty() {
            eprintln!("  options: {}", options.join(" / "));
        }
        eprint!("answer (empty: leave the run waiting)> ");
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await
        .context("reading the answer")??;
        let answer = line.trim();
        if answer.is_empty() {
            return Ok(false);
        }
        match runtime.answer(run_id, answer, by).await {
            Ok(_) => return Ok(true),
            Err(botarmy_runtime::RuntimeError::Answer { problem, .. }) => {
                eprintln!("{problem}");
            }
            Err(other) => return Err(other.into()),
        }
    }
}
