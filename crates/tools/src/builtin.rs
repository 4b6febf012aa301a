//! The tools that work inside one worktree: `file_read`, `file_write`, `list_dir`,
//! `search`, `bash` and `git`. Paths are confined by [`Files`]; commands run in the
//! [`Sandbox`]; git runs through the command line.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use botarmy_protocol::FileChangeKind;
use botarmy_workspace::{ChangeKind, CommandOutput, Files, Git, Sandbox, check_link};
use serde_json::{Value, json};

use crate::{Args, FileChanged, Tool, ToolError, ToolOutput, ToolSpec, first_line};

/// What the worktree tools share: the checkout, its sandbox and its git.
#[derive(Debug)]
pub struct WorktreeTools {
    files: Files,
    sandbox: Sandbox,
    git: Git,
    /// The repository the worktree belongs to, whose link is checked before git runs.
    repo: Option<PathBuf>,
}

impl WorktreeTools {
    /// Tools working in `root`, running commands in `sandbox`.
    pub fn new(root: impl Into<PathBuf>, sandbox: Sandbox) -> Self {
        let root = root.into();
        Self {
            files: Files::new(root.clone()),
            git: Git::new(root),
            sandbox,
            repo: None,
        }
    }

    /// The worktree belongs to `repo`: before each git command, its `.git` is checked to
    /// still lead there (see [`check_link`]).
    pub fn with_repository(mut self, repo: impl Into<PathBuf>) -> Self {
        self.repo = Some(repo.into());
        self
    }

    /// The sandbox commands run in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }
}

/// Every built-in worktree tool, sharing `tools`.
pub fn worktree_tools(tools: Arc<WorktreeTools>) -> Vec<Arc<dyn Tool>> {
    let kinds = [
        Kind::FileRead,
        Kind::FileWrite,
        Kind::ListDir,
        Kind::Search,
        Kind::Bash,
        Kind::Git,
    ];
    kinds
        .into_iter()
        .map(|kind| {
            Arc::new(Builtin {
                spec: kind.spec(),
                kind,
                tools: tools.clone(),
            }) as Arc<dyn Tool>
        })
        .chain([crate::run_tests_tool(tools.clone())])
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    FileRead,
    FileWrite,
    ListDir,
    Search,
    Bash,
    Git,
}

/// Git subcommands the `git` tool runs; anything that reaches other repositories (push,
/// fetch, remote) or rewrites history is not among them.
const GIT_COMMANDS: &[&str] = &["status", "diff", "add", "commit", "log", "show"];

/// Options the `git` tool refuses: git runs outside the sandbox, so nothing may make it
/// write or read files outside the worktree (`--output`, `--no-index`, `-F`), run programs
/// (`--ext-diff`, `--textconv`, `--exec`), or look at another repository or configuration.
const GIT_REFUSED: &[&str] = &[
    "--output",
    "--no-index",
    "--ext-diff",
    "--textconv",
    "--exec",
    "--template",
    "--file",
    "-F",
    "--pathspec-from-file",
    "--orderfile",
    "-O",
    "--upload-pack",
    "--receive-pack",
    "--config",
    "-c",
    "--git-dir",
    "--work-tree",
    "--namespace",
    "-C",
    "--amend",
    "-S",
    "--gpg-sign",
];

/// Whether `arg` is one of [`GIT_REFUSED`] (`--output`, `--output=x`, `-Fx`).
fn refused_git_arg(arg: &str) -> bool {
    GIT_REFUSED.iter().any(|r| {
        arg.strip_prefix(r)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('=') || !r.starts_with("--"))
    })
}

impl Kind {
    fn spec(self) -> ToolSpec {
        let (name, description, parameters) = match self {
            Kind::FileRead => (
                "file_read",
                "Read a text file of the project. Paths are relative to the project root.",
                json!({"type": "object", "properties": {
                    "path": {"type": "string", "description": "file path relative to the project root"}
                }, "required": ["path"]}),
            ),
            Kind::FileWrite => (
                "file_write",
                "Create or replace a file with `content`, or change part of it: give `old` (text that occurs exactly once in the file) and `new` (its replacement) instead of `content`.",
                json!({"type": "object", "properties": {
                    "path": {"type": "string", "description": "file path relative to the project root"},
                    "content": {"type": "string", "description": "the whole new content"},
                    "old": {"type": "string", "description": "exact text to replace"},
                    "new": {"type": "string", "description": "replacement for `old`"}
                }, "required": ["path"]}),
            ),
            Kind::ListDir => (
                "list_dir",
                "List a folder of the project (folders end with /).",
                json!({"type": "object", "properties": {
                    "path": {"type": "string", "description": "folder relative to the project root; default: the root"}
                }}),
            ),
            Kind::Search => (
                "search",
                "Find lines containing a text in the project's files.",
                json!({"type": "object", "properties": {
                    "text": {"type": "string", "description": "text to look for (case-sensitive)"},
                    "path": {"type": "string", "description": "folder or file to search; default: the whole project"}
                }, "required": ["text"]}),
            ),
            Kind::Bash => (
                "bash",
                "Run a shell command in the project root (no network; only the project is writable). Returns the exit code and output.",
                json!({"type": "object", "properties": {
                    "command": {"type": "string", "description": "the command line, run with sh -c"}
                }, "required": ["command"]}),
            ),
            Kind::Git => (
                "git",
                "Run git in the project: status, diff, add, commit, log or show.",
                json!({"type": "object", "properties": {
                    "command": {"type": "string", "enum": GIT_COMMANDS},
                    "args": {"type": "array", "items": {"type": "string"}, "description": "further arguments, e.g. [\"-A\"] for add"},
                    "message": {"type": "string", "description": "the commit message (commit only)"}
                }, "required": ["command"]}),
            ),
        };
        ToolSpec {
            name: name.to_string(),
            description: description.to_string(),
            parameters,
        }
    }
}

struct Builtin {
    spec: ToolSpec,
    kind: Kind,
    tools: Arc<WorktreeTools>,
}

#[async_trait]
impl Tool for Builtin {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: &Value) -> Result<ToolOutput, ToolError> {
        let args = Args::new(&self.spec.name, arguments);
        let result = match self.kind {
            Kind::FileRead => self.file_read(args),
            Kind::FileWrite => self.file_write(args),
            Kind::ListDir => self.list_dir(args),
            Kind::Search => self.search(args),
            Kind::Bash => self.bash(args).await,
            Kind::Git => self.git(args).await,
        };
        Ok(result.unwrap_or_else(ToolOutput::error))
    }
}

impl Builtin {
    fn file_read(&self, args: Args<'_>) -> Result<ToolOutput, String> {
        let path = args.string("path")?;
        let content = self.tools.files.read(path).map_err(|e| e.to_string())?;
        let summary = format!("read {path} ({} lines)", content.lines().count());
        Ok(ToolOutput::ok(content, summary))
    }

    fn file_write(&self, args: Args<'_>) -> Result<ToolOutput, String> {
        let path = args.string("path")?;
        let content = args.opt_string("content")?;
        let (old, new) = (args.opt_string("old")?, args.opt_string("new")?);
        let change = match (content, old, new) {
            (Some(content), None, None) => self.tools.files.write(path, content),
            (None, Some(old), Some(new)) => self.tools.files.edit(path, old, new),
            _ => {
                return Err(
                    "file_write: give either `content` (the whole file) or both `old` and `new` (one replacement)"
                        .into(),
                );
            }
        }
        .map_err(|e| e.to_string())?;
        let kind = match change.kind {
            ChangeKind::Created => FileChangeKind::Created,
            ChangeKind::Modified => FileChangeKind::Modified,
        };
        let summary = format!("{} {} ({} bytes)", kind.as_str(), change.path, change.bytes);
        Ok(ToolOutput {
            content: summary.clone(),
            summary,
            changes: vec![FileChanged {
                path: change.path,
                change: kind,
            }],
            is_error: false,
        })
    }

    fn list_dir(&self, args: Args<'_>) -> Result<ToolOutput, String> {
        let path = args.opt_string("path")?.unwrap_or(".");
        let entries = self.tools.files.list(path).map_err(|e| e.to_string())?;
        let content = entries
            .iter()
            .map(|e| e.name.clone())
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ToolOutput::ok(
            if content.is_empty() {
                "(empty)".to_string()
            } else {
                content
            },
            format!("listed {path} ({} entries)", entries.len()),
        ))
    }

    fn search(&self, args: Args<'_>) -> Result<ToolOutput, String> {
        let text = args.string("text")?;
        let path = args.opt_string("path")?.unwrap_or(".");
        let matches = self
            .tools
            .files
            .search(text, path)
            .map_err(|e| e.to_string())?;
        let content = matches
            .iter()
            .map(|m| format!("{}:{}: {}", m.path, m.line, m.text))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ToolOutput::ok(
            if content.is_empty() {
                "no matches".to_string()
            } else {
                content
            },
            format!("searched `{text}`: {} matches", matches.len()),
        ))
    }

    async fn bash(&self, args: Args<'_>) -> Result<ToolOutput, String> {
        let command = args.string("command")?;
        let output = self
            .tools
            .sandbox
            .run(command)
            .await
            .map_err(|e| e.to_string())?;
        Ok(command_result(command, &output))
    }

    async fn git(&self, args: Args<'_>) -> Result<ToolOutput, String> {
        let command = args.string("command")?;
        if !GIT_COMMANDS.contains(&command) {
            return Err(format!(
                "git: `{command}` is not allowed; use one of {}",
                GIT_COMMANDS.join(", ")
            ));
        }
        let extra = args.opt_strings("args")?;
        let mut argv = vec![command];
        match (command, args.opt_string("message")?) {
            ("commit", Some(message)) => argv.extend(["-m", message]),
            ("commit", None) => return Err("git commit: argument `message` is missing".into()),
            (_, Some(_)) => {
                return Err(format!("git {command}: `message` is only for commit"));
            }
            _ => {}
        }
        if let Some(bad) = extra.iter().find(|a| refused_git_arg(a)) {
            return Err(format!(
                "git: argument `{bad}` is not allowed (it could reach outside the worktree)"
            ));
        }
        if let Some(repo) = &self.tools.repo {
            check_link(self.tools.git.dir(), repo).map_err(|e| e.to_string())?;
        }
        // In the sandbox, like any command: hooks, filters or settings planted in the
        // worktree run (if at all) where the agent's own commands run.
        argv.extend(extra);
        if command == "log"
            && !argv
                .iter()
                .any(|a| a.starts_with("-n") || a.starts_with("--max-count"))
        {
            argv.push("--max-count=50");
        }
        let result = self
            .tools
            .sandbox
            .git(&argv)
            .await
            .map_err(|e| e.to_string())?;
        if result.code != Some(0) {
            let status = match (result.code, result.timed_out) {
                (_, true) => "stopped at the time limit".to_string(),
                (Some(code), _) => format!("exit code {code}"),
                (None, _) => "killed".to_string(),
            };
            return Err(format!(
                "git {}: {status}: {}",
                argv.join(" "),
                result.stderr.trim()
            ));
        }
        let out = result.stdout.trim_end().to_string();
        let summary = match command {
            "commit" => first_line(&out),
            _ => format!("git {command}: {} lines", out.lines().count()),
        };
        Ok(ToolOutput::ok(
            if out.is_empty() {
                "(no output)".into()
            } else {
                out
            },
            summary,
        ))
    }
}

/// A command's result as the model sees it: exit code, output, and what was cut.
pub(crate) fn command_result(command: &str, output: &CommandOutput) -> ToolOutput {
    let mut content = String::new();
    let status = match (output.code, output.timed_out) {
        (_, true) => "stopped at the time limit".to_string(),
        (Some(code), _) => format!("exit code {code}"),
        (None, _) => "killed".to_string(),
    };
    content.push_str(&status);
    content.push('\n');
    if !output.stdout.is_empty() {
        content.push_str("--- stdout ---\n");
        content.push_str(&output.stdout);
        if !output.stdout.ends_with('\n') {
            content.push('\n');
        }
    }
    if !output.stderr.is_empty() {
        content.push_str("--- stderr ---\n");
        content.push_str(&output.stderr);
        if !output.stderr.ends_with('\n') {
            content.push('\n');
        }
    }
    if output.truncated {
        content.push_str("(output beyond the cap was dropped)\n");
    }
    ToolOutput {
        content,
        summary: format!("`{}`: {status}", first_line(command)),
        changes: Vec::new(),
        is_error: output.code != Some(0),
    }
}
