//! An agent that works with tools: the model asks for tool calls, BotArmy runs them in the
//! run's worktree and hands back the results, until the model answers without asking for
//! more. Every LLM call and every tool call is recorded, so a resumed attempt replays the
//! conversation from the log and never runs a completed tool call again. Guards stop an
//! agent that takes too many turns, repeats itself or goes round in circles.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use botarmy_core::document::CodeFile;
use botarmy_llm::{ChatMessage, ToolCall};
use botarmy_protocol::{
    ArtifactKind, ErrorInfo, ErrorKind, Event, FileChangeKind, PlanStep, WorktreeInfo,
};
use botarmy_tools::{ToolOutput, Toolbox};
use botarmy_workspace::{ChangeKind, Files, check_link};

use crate::limits::Resource;
use crate::step::{Calls, Produced, StepJob};
use crate::worktrees::{WorktreeGit, nul_separated};

/// Tools whose calls start a process, and so take a tool-process slot.
const PROCESS_TOOLS: &[&str] = &["bash", "git", "run_tests"];

/// Default bound on tool-use turns of one attempt, when neither the step nor its agent
/// names one.
pub const DEFAULT_MAX_TURNS: u32 = 40;
/// The same call (tool and arguments) this many times in a row stops the agent.
const MAX_REPEATS: usize = 3;
/// This many turns in a row that only repeat earlier calls with the same results stop it.
const MAX_STALE_TURNS: usize = 3;
/// Largest file of a worktree stored as an artifact when a step commits.
const MAX_ARTIFACT_BYTES: u64 = 512 * 1024;

/// A step's view of the run's worktree: where it is, and the tools its agent may use there.
#[derive(Debug)]
pub(crate) struct StepWorkspace {
    pub worktree: WorktreeInfo,
    pub tools: Toolbox,
    files: Files,
    git: WorktreeGit,
}

impl StepWorkspace {
    pub fn new(worktree: WorktreeInfo, tools: Toolbox, git: WorktreeGit) -> Self {
        Self {
            files: Files::new(PathBuf::from(&worktree.path)),
            git,
            worktree,
            tools,
        }
    }

    /// Document mode: writes the files an answer carries into the worktree; returns their
    /// `file_changed` events.
    pub fn apply_files(&self, step: u32, files: &[CodeFile]) -> Result<Vec<Event>, ErrorInfo> {
        let mut events = Vec::with_capacity(files.len());
        for file in files {
            let change = self.files.write(&file.path, &file.content).map_err(|e| {
                ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!("cannot write the answer's file into the worktree: {e}"),
                )
            })?;
            events.push(Event::FileChanged {
                step,
                repository: self.worktree.repository.clone(),
                path: change.path,
                change: match change.kind {
                    ChangeKind::Created => FileChangeKind::Created,
                    ChangeKind::Modified => FileChangeKind::Modified,
                },
            });
        }
        Ok(events)
    }

    /// Drops what is not committed (an earlier attempt's half-done work): the worktree as
    /// the branch's last commit has it, ignored files (build output) kept.
    pub async fn discard_changes(&self) -> Result<(), ErrorInfo> {
        for args in [
            &["reset", "--hard", "--quiet"][..],
            &["clean", "-fd", "--quiet"][..],
        ] {
            self.git.run(args).await.map_err(|e| {
                ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!("cannot reset the worktree {}: {e}", self.worktree.path),
                )
            })?;
        }
        Ok(())
    }

    /// Commits what the step left in the worktree to the run's branch and returns the
    /// added or changed files as code artifacts. An attempt that committed before the
    /// process stopped finds its commit at the branch's head and returns its files again.
    pub async fn commit(
        &self,
        plan_step: &PlanStep,
        step: u32,
        attempt: u32,
    ) -> Result<Vec<Produced>, ErrorInfo> {
        let git_error = |e: String| {
            ErrorInfo::new(
                ErrorKind::Fatal,
                format!(
                    "cannot commit the step's work in {}: {e}",
                    self.worktree.path
                ),
            )
        };
        check_link(
            Path::new(&self.worktree.path),
            Path::new(&self.worktree.repo_path),
        )
        .map_err(|e| git_error(e.to_string()))?;
        let mark = format!(
            "BotArmy step {step} (`{}`), attempt {attempt}.",
            plan_step.key
        );
        let message = format!("{}: {}\n\n{mark}", plan_step.agent, plan_step.title);
        let mut files = self.git.commit_all(&message).await.map_err(git_error)?;
        if files.is_empty() {
            // Nothing new: the attempt may have committed before the process stopped.
            let head = self
                .git
                .run(&["log", "-1", "--format=%B"])
                .await
                .map_err(git_error)?;
            if !head.contains(&mark) {
                return Ok(Vec::new());
            }
            let shown = self
                .git
                .run(&[
                    "show",
                    "--name-only",
                    "--no-renames",
                    "-z",
                    "--format=",
                    "HEAD",
                ])
                .await
                .map_err(git_error)?;
            files = nul_separated(&shown);
        }
        let mut produced = Vec::new();
        for path in &files {
            // Deleted files and files that are not text (or too large) are in the commit
            // but not stored as artifacts.
            let Ok(content) = self.files.read(path) else {
                continue;
            };
            if content.len() as u64 > MAX_ARTIFACT_BYTES {
                continue;
            }
            produced.push(Produced {
                name: format!("code/{path}"),
                kind: ArtifactKind::Code,
                content,
            });
        }
        Ok(produced)
    }
}

/// Runs the conversation of a tool-using attempt to its final answer.
pub(crate) async fn run(
    job: &StepJob,
    calls: &mut Calls,
    ws: &StepWorkspace,
    mut messages: Vec<ChatMessage>,
) -> Result<String, ErrorInfo> {
    let mut specs = ws.tools.specs();
    specs.push(clarification_spec());
    let guide = format!(
        "You work in a git checkout of the project (repository `{}`); paths are relative to its root. Use the tools to look around, write the files, run commands and the tests: files only shown in your answer are not saved. When the work is done, answer without calling tools, with the document the step asks for (what you did, and the results).",
        ws.worktree.repository
    );
    match messages
        .iter_mut()
        .find(|m| m.role == botarmy_llm::Role::System)
    {
        Some(system) => {
            system.content.push_str("\n\n");
            system.content.push_str(&guide);
        }
        None => messages.insert(0, ChatMessage::system(guide)),
    }
    let mut tool_index = 0u32;
    let mut guard = Guard::default();
    for _turn in 0..job.max_turns {
        let mut request = job.request(
            messages.clone(),
            job.options.max_output_tokens,
            calls.next,
            None,
        );
        request.tools = specs.clone();
        let (text, tool_calls) = calls.chat(job, request).await?;
        if tool_calls.is_empty() {
            return Ok(text);
        }
        messages.push(ChatMessage::assistant_tool_calls(text, tool_calls.clone()));
        let mut stale = true;
        for call in &tool_calls {
            let output = call_tool(job, calls, ws, tool_index, call).await?;
            tool_index += 1;
            stale &= guard.seen_before(call, &output.content);
            if let Some(problem) = guard.repeated(call) {
                return Err(stopped(job, problem));
            }
            messages.push(ChatMessage::tool_result(&call.id, output.content));
        }
        if let Some(problem) = guard.turn_ended(stale) {
            return Err(stopped(job, problem));
        }
    }
    Err(stopped(
        job,
        format!(
            "it used all {} tool-use turns without giving its final answer (raise `max_turns` on the agent or step if the work needs more)",
            job.max_turns
        ),
    ))
}

fn stopped(job: &StepJob, problem: String) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Fatal,
        format!("agent `{}` was stopped: {problem}", job.plan_step.agent),
    )
}

/// Runs one tool call, or reuses its recorded result; records it.
async fn call_tool(
    job: &StepJob,
    calls: &mut Calls,
    ws: &StepWorkspace,
    index: u32,
    call: &ToolCall,
) -> Result<ToolOutput, ErrorInfo> {
    if let Some(recorded) = job.recorded_tools.get(index as usize) {
        // Completed tool calls are never made again.
        return Ok(ToolOutput {
            content: recorded.result.clone(),
            is_error: recorded.is_error,
            ..ToolOutput::default()
        });
    }
    calls.send_unsent(job).await?;
    if call.name == CLARIFY {
        return clarify(job, calls, index, call).await;
    }
    let _slot = if PROCESS_TOOLS.contains(&call.name.as_str()) {
        Some(job.slots.take(Resource::ToolProcess, job).await?)
    } else {
        None
    };
    job.report(started(job, index, call)).await?;
    let began = Instant::now();
    // A tool that is gone (an MCP server that stopped) is the model's to work around, as
    // any failed call: it is told, and the attempt goes on.
    let output = ws
        .tools
        .call(&call.name, &call.arguments)
        .await
        .unwrap_or_else(|e| ToolOutput::error(e.to_string()));
    calls.unsent.push(completed(
        job,
        index,
        call,
        &output,
        began.elapsed().as_millis() as u64,
    ));
    for change in &output.changes {
        calls.unsent.push(Event::FileChanged {
            step: job.step,
            repository: ws.worktree.repository.clone(),
            path: change.path.clone(),
            change: change.change,
        });
    }
    Ok(output)
}

/// The tool every tool-using agent has: ask a human.
const CLARIFY: &str = "request_clarification";

fn clarification_spec() -> botarmy_llm::ToolSpec {
    botarmy_llm::ToolSpec {
        name: CLARIFY.into(),
        description: "Ask the human who runs this a question you cannot answer from the documents or the code; the work pauses until they answer, and the answer comes back as this tool's result. Offer options when the answer is one of a few.".into(),
        parameters: serde_json::json!({"type": "object", "properties": {
            "question": {"type": "string", "description": "the question, self-contained"},
            "options": {"type": "array", "items": {"type": "string"}, "description": "the accepted answers, if it is a choice"}
        }, "required": ["question"]}),
    }
}

/// `request_clarification`: the answer if a human gave it (the call completes with it);
/// otherwise the question is recorded and the attempt stops to wait for it.
async fn clarify(
    job: &StepJob,
    calls: &mut Calls,
    index: u32,
    call: &ToolCall,
) -> Result<ToolOutput, ErrorInfo> {
    let args = botarmy_tools::Args::new(CLARIFY, &call.arguments);
    let asked = args
        .string("question")
        .and_then(|q| Ok((q.to_string(), args.opt_strings("options")?)));
    let (question, options) = match asked {
        Ok((q, o)) if !q.trim().is_empty() => (q, o),
        Ok(_) => {
            return Ok(ToolOutput::error(format!(
                "{CLARIFY}: the question is empty"
            )));
        }
        Err(problem) => return Ok(ToolOutput::error(problem)),
    };
    let Some(answer) = job.answers.get(&index) else {
        job.report(Event::ClarificationRequested {
            step: job.step,
            attempt: job.attempt,
            call: index,
            question: question.clone(),
            options: options.iter().map(|o| (*o).to_string()).collect(),
        })
        .await?;
        return Err(ErrorInfo::new(
            ErrorKind::NeedsInput,
            format!("agent `{}` asked: {question}", job.plan_step.agent),
        ));
    };
    let output = ToolOutput::ok(
        format!("The human answered: {answer}"),
        format!("answered: {}", botarmy_tools::first_line(answer)),
    );
    job.report(started(job, index, call)).await?;
    calls.unsent.push(completed(job, index, call, &output, 0));
    Ok(output)
}

fn started(job: &StepJob, index: u32, call: &ToolCall) -> Event {
    Event::ToolCallStarted {
        step: job.step,
        attempt: job.attempt,
        call: index,
        id: call.id.clone(),
        tool: call.name.clone(),
        arguments: call.arguments.clone(),
    }
}

fn completed(
    job: &StepJob,
    index: u32,
    call: &ToolCall,
    output: &ToolOutput,
    duration_ms: u64,
) -> Event {
    Event::ToolCallCompleted {
        step: job.step,
        attempt: job.attempt,
        call: index,
        id: call.id.clone(),
        tool: call.name.clone(),
        is_error: output.is_error,
        summary: output.summary.clone(),
        result: output.content.clone(),
        duration_ms,
    }
}

/// Watches an agent's calls for loops.
#[derive(Default)]
struct Guard {
    /// (tool, arguments, result) of every call so far.
    seen: HashSet<(String, String, String)>,
    /// The last call (tool, arguments) and how often it came in a row.
    last: Option<(String, String)>,
    repeats: usize,
    stale_turns: usize,
}

impl Guard {
    fn key(call: &ToolCall) -> (String, String) {
        (call.name.clone(), call.arguments.to_string())
    }

    /// Whether the call, with this result, was made before.
    fn seen_before(&mut self, call: &ToolCall, result: &str) -> bool {
        let (tool, args) = Self::key(call);
        !self.seen.insert((tool, args, result.to_string()))
    }

    /// A problem when the same call came [`MAX_REPEATS`] times in a row.
    fn repeated(&mut self, call: &ToolCall) -> Option<String> {
        let key = Self::key(call);
        if self.last.as_ref() == Some(&key) {
            self.repeats += 1;
        } else {
            self.last = Some(key);
            self.repeats = 1;
        }
        (self.repeats >= MAX_REPEATS).then(|| {
            format!(
                "it made the same call {MAX_REPEATS} times in a row: {}({})",
                call.name, call.arguments
            )
        })
    }

    /// A problem when [`MAX_STALE_TURNS`] turns in a row only repeated earlier calls.
    fn turn_ended(&mut self, stale: bool) -> Option<String> {
        self.stale_turns = if stale { self.stale_turns + 1 } else { 0 };
        (self.stale_turns >= MAX_STALE_TURNS).then(|| {
            format!(
                "no progress in {MAX_STALE_TURNS} turns: each repeated calls it had made before, with the same results"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, args: serde_json::Value) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: args,
        }
    }

    #[test]
    fn the_same_call_three_times_in_a_row_is_a_loop() {
        let mut g = Guard::default();
        let read = call("file_read", json!({"path": "a"}));
        assert!(g.repeated(&read).is_none());
        assert!(g.repeated(&read).is_none());
        let problem = g.repeated(&read).unwrap();
        assert!(problem.contains("same call 3 times"), "{problem}");
        // Interleaved calls reset the count.
        let mut g = Guard::default();
        for _ in 0..5 {
            assert!(g.repeated(&read).is_none());
            assert!(g.repeated(&call("list_dir", json!({}))).is_none());
        }
    }

    #[test]
    fn turns_that_only_repeat_known_results_are_no_progress() {
        let mut g = Guard::default();
        let read = call("file_read", json!({"path": "a"}));
        assert!(!g.seen_before(&read, "x"));
        assert!(g.turn_ended(false).is_none());
        // The same call with a new result is progress (the file changed).
        assert!(!g.seen_before(&read, "y"));
        assert!(g.turn_ended(false).is_none());
        for _ in 0..2 {
            assert!(g.seen_before(&read, "y"));
            assert!(g.turn_ended(true).is_none());
        }
        assert!(g.seen_before(&read, "x"));
        assert!(
            g.turn_ended(true)
                .unwrap()
                .contains("no progress in 3 turns")
        );
    }
}
