//! Agents with tools inside the runtime: the tool loop, its records and guards, the
//! worktree session around it, and a resumed run that does not run a completed tool call
//! again. The builtin lifecycle's coder and tester call tools; the provider below plays a
//! model that does (a shell command that appends to a file, then a final answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use botarmy_llm::{
    ChatRequest, ChatResponse, FinishReason, LlmError, Provider, Role, Router, TokenSink, ToolCall,
};
use botarmy_protocol::{Event, RunId, RunStatus, StepStatus, Usage};
use botarmy_runtime::{Runtime, Settings, WorkspaceSettings};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::request;

#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// One `bash` call, then the final answer.
    Work,
    /// The same `file_read` call for ever.
    Loop,
    /// Points the worktree's `.git` elsewhere with `bash`, then answers.
    Tamper,
    /// The first tool-using step asks a human which database; the others just answer.
    Clarify,
}

struct ToolModel {
    script: Script,
    /// Hold the second turn of the first tool-using step until the run is stopped.
    hold: AtomicBool,
    held: Notify,
    calls: AtomicU64,
    asked: AtomicBool,
    /// Every tool result the model was shown.
    seen: std::sync::Mutex<Vec<String>>,
}

impl ToolModel {
    fn new(script: Script, hold: bool) -> Arc<Self> {
        Arc::new(Self {
            script,
            hold: AtomicBool::new(hold),
            held: Notify::new(),
            calls: AtomicU64::new(0),
            asked: AtomicBool::new(false),
            seen: std::sync::Mutex::default(),
        })
    }
}

fn answer(text: &str, tool_calls: Vec<ToolCall>) -> ChatResponse {
    ChatResponse {
        text: text.into(),
        usage: Usage {
            input_tokens: 50,
            output_tokens: 5,
            ..Usage::default()
        },
        provider: "tools".into(),
        model: "tools-1".into(),
        finish: if tool_calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        },
        tool_calls,
    }
}

#[async_trait]
impl Provider for ToolModel {
    fn id(&self) -> &str {
        "tools"
    }
    fn default_model(&self) -> &str {
        "tools-1"
    }
    fn supports_tools(&self) -> bool {
        true
    }
    async fn chat(
        &self,
        request: &ChatRequest,
        _on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if request.grammar.is_some() {
            return Ok(answer("yes", vec![]));
        }
        if request.tools.is_empty() {
            return Ok(answer("## Overview\n\nA document.\n", vec![]));
        }
        self.seen.lock().unwrap().extend(
            request
                .messages
                .iter()
                .filter(|m| m.role == Role::Tool)
                .map(|m| m.content.clone()),
        );
        let turn = request
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
            .count();
        let read = || ToolCall {
            id: format!("read-{turn}"),
            name: "file_read".into(),
            arguments: json!({"path": "missing.txt"}),
        };
        match (self.script, turn) {
            (Script::Loop, _) => Ok(answer("", vec![read()])),
            (Script::Tamper, 0) => Ok(answer(
                "",
                vec![ToolCall {
                    id: "sh-0".into(),
                    name: "bash".into(),
                    arguments: json!({"command": "mkdir own && git init -q own && printf 'gitdir: own/.git\\n' > .git"}),
                }],
            )),
            (Script::Tamper, _) => Ok(answer("## Work\n\nDone.\n", vec![])),
            (Script::Clarify, 0) if !self.asked.swap(true, Ordering::SeqCst) => Ok(answer(
                "",
                vec![ToolCall {
                    id: "ask-0".into(),
                    name: "request_clarification".into(),
                    arguments: json!({"question": "Which database?", "options": ["sqlite", "postgres"]}),
                }],
            )),
            (Script::Clarify, _) => Ok(answer("## Work\n\nDone.\n", vec![])),
            (Script::Work, 0) => Ok(answer(
                "",
                vec![ToolCall {
                    id: "sh-0".into(),
                    name: "bash".into(),
                    arguments: json!({"command": "echo ran >> calls.log"}),
                }],
            )),
            (Script::Work, _) => {
                if self.hold.swap(false, Ordering::SeqCst) {
                    self.held.notify_one();
                    std::future::pending::<()>().await;
                }
                Ok(answer("## Work\n\nDone with tools.\n", vec![]))
            }
        }
    }
}

struct Ctx {
    runtime: Runtime,
    dir: tempfile::TempDir,
}

async fn runtime(model: Arc<ToolModel>, dir: Option<tempfile::TempDir>) -> Ctx {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let store = botarmy_store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let mut workspace = WorkspaceSettings::new(dir.path().join("work"));
    workspace
        .hidden
        .push(std::path::PathBuf::from(std::env::var("HOME").unwrap()));
    let runtime = Runtime::new(
        store,
        Arc::new(Router::new(model)),
        Settings {
            out_root: dir.path().join("out"),
            workspace: Some(workspace),
            ..Settings::default()
        },
    );
    Ctx { runtime, dir }
}

async fn log(rt: &Runtime, run: RunId) -> Vec<Event> {
    rt.store()
        .read_events(run, 0, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect()
}

fn git(repo: &str, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_reuses_completed_tool_calls_and_the_branch_keeps_the_work() {
    let model = ToolModel::new(Script::Work, true);
    let ctx = runtime(model.clone(), None).await;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let held = model.clone();
    tokio::spawn(async move {
        held.held.notified().await;
        stop.cancel();
    });
    let mut id = None;
    let state = ctx
        .runtime
        .start_run("demo", request("a todo app"), |r| id = Some(r), cancel)
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Paused);
    let run = id.unwrap();
    let first = state
        .steps
        .iter()
        .position(|s| s.status == StepStatus::Interrupted)
        .unwrap();
    assert_eq!(
        state.steps[first].tool_calls.len(),
        1,
        "the bash call completed"
    );

    // A new process (runtime) resumes the run: the bash call is not made again.
    let model = ToolModel::new(Script::Work, false);
    let Ctx { dir, .. } = ctx;
    let ctx = runtime(model.clone(), Some(dir)).await;
    let state = ctx
        .runtime
        .resume(run, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded, "{:?}", state.error);

    let events = log(&ctx.runtime, run).await;
    let tool_steps: Vec<u32> = state
        .plan
        .as_ref()
        .unwrap()
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.tools.is_empty())
        .map(|(i, _)| i as u32)
        .collect();
    assert_eq!(tool_steps.len(), 6, "the coder's and the tester's steps");
    let completed = |step: u32| {
        events
            .iter()
            .filter(|e| matches!(e, Event::ToolCallCompleted { step: s, .. } if *s == step))
            .count()
    };
    for step in &tool_steps {
        assert_eq!(completed(*step), 1, "step {step}");
    }
    let ready = events
        .iter()
        .find_map(|e| match e {
            Event::WorktreeSessionReady { worktrees } => Some(worktrees[0].clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::WorktreeSessionCleaned { .. }))
    );
    assert!(!std::path::Path::new(&ready.path).exists());
    // One line per tool-using step: the interrupted step's command ran once.
    let log_file = git(
        &ready.repo_path,
        &["show", &format!("{}:calls.log", ready.branch)],
    );
    assert_eq!(log_file, "ran\n".repeat(6));
    let subjects = git(&ready.repo_path, &["log", "--format=%s", &ready.branch]);
    assert!(
        subjects.lines().any(|l| l.starts_with("coder: ")),
        "{subjects}"
    );
    // Code artifacts come from the commits.
    assert!(state.artifacts.contains_key("code/calls.log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_repeats_itself_is_stopped_with_a_reason() {
    let model = ToolModel::new(Script::Loop, false);
    let ctx = runtime(model.clone(), None).await;
    let mut request = request("a todo app");
    request.options.max_attempts = 1;
    let state = ctx
        .runtime
        .start_run("demo", request, |_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Failed);
    let error = state.error.unwrap().message;
    assert!(
        error.contains(
            "agent `coder` was stopped: it made the same call 3 times in a row: file_read"
        ),
        "{error}"
    );
    // The failed read was shown to the model as an error, and recorded.
    let events = log(&ctx.runtime, state.run_id).await;
    let results: Vec<(bool, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallCompleted {
                is_error, summary, ..
            } => Some((*is_error, summary.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 3);
    assert!(
        results
            .iter()
            .all(|(err, s)| *err && s.contains("missing.txt")),
        "{results:?}"
    );
    drop(ctx.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worktree_whose_git_link_was_replaced_is_not_committed_from() {
    let model = ToolModel::new(Script::Tamper, false);
    let ctx = runtime(model, None).await;
    let mut request = request("a todo app");
    request.options.max_attempts = 1;
    let state = ctx
        .runtime
        .start_run("demo", request, |_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Failed);
    let error = state.error.unwrap().message;
    assert!(error.contains("/.git does not lead to"), "{error}");
    // The worktree is gone all the same, and its branch has no commit of the step.
    let worktree = state.workspace.worktrees()[0].clone();
    assert!(!std::path::Path::new(&worktree.path).exists());
    let subjects = git(
        &worktree.repo_path,
        &["log", "--format=%s", &worktree.branch],
    );
    assert!(!subjects.contains("coder:"), "{subjects}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_asks_a_human_waits_and_continues_with_the_answer() {
    let model = ToolModel::new(Script::Clarify, false);
    let ctx = runtime(model.clone(), None).await;
    let state = ctx
        .runtime
        .start_run(
            "demo",
            request("a todo app"),
            |_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Waiting);
    assert!(
        state.reason.as_deref().unwrap().contains("Which database?"),
        "{:?}",
        state.reason
    );
    let run = state.run_id;
    let asking = state
        .steps
        .iter()
        .position(|s| s.clarification.is_some())
        .unwrap() as u32;

    // Resuming without an answer changes nothing: the run still waits for it.
    let again = ctx
        .runtime
        .resume(run, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.status, RunStatus::Waiting);

    let wrong = ctx
        .runtime
        .answer(run, "mysql", "ada")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        wrong.contains("`mysql` is not one of the accepted answers (sqlite, postgres)"),
        "{wrong}"
    );
    ctx.runtime.answer(run, "postgres", "ada").await.unwrap();
    let done = ctx
        .runtime
        .resume(run, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);

    // The model saw the answer as the tool's result, and no call was made twice.
    assert!(
        model
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == "The human answered: postgres"),
        "{:?}",
        model.seen.lock().unwrap()
    );
    let events = log(&ctx.runtime, run).await;
    let completed_calls = events
        .iter()
        .filter(|e| matches!(e, Event::LlmCallCompleted { .. }))
        .count() as u64;
    assert_eq!(model.calls.load(Ordering::Relaxed), completed_calls);
    let answered: Vec<(u32, &str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ClarificationAnswered {
                step, answer, by, ..
            } => Some((*step, answer.as_str(), by.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(answered, [(asking, "postgres", "ada")]);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ToolCallCompleted { step, tool, summary, .. }
            if *step == asking && tool == "request_clarification" && summary == "answered: postgres"
    )));
}
