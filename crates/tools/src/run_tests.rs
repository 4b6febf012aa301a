//! The `run_tests` tool: runs the project's tests in the sandbox and says what happened in
//! numbers: how many passed, failed and were skipped, which failed by name, or that the
//! code did not build. The test command is read off the worktree's files (Cargo, Go, npm,
//! Python, Make) unless the caller names one; the runner's output is read by
//! [`parse_report`], so a tester's report carries the counts the runner printed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use botarmy_workspace::{CommandOutput, Files, SandboxError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Args, Tool, ToolError, ToolOutput, ToolSpec, WorktreeTools, first_line};

mod parse;

pub use parse::{TestCounts, parse_report};

/// The test runner whose output a command prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// `cargo test`.
    Cargo,
    /// pytest.
    Pytest,
    /// Python's unittest.
    Unittest,
    /// node's built-in runner (`node --test`), or any TAP producer.
    NodeTest,
    /// Jest or Vitest.
    Jest,
    /// `go test`.
    Go,
    /// Not known from the command (a Makefile target, a script): every format is tried.
    #[default]
    Other,
}

impl Framework {
    /// Its name for people.
    pub fn label(self) -> &'static str {
        match self {
            Framework::Cargo => "cargo test",
            Framework::Pytest => "pytest",
            Framework::Unittest => "unittest",
            Framework::NodeTest => "node --test",
            Framework::Jest => "jest",
            Framework::Go => "go test",
            Framework::Other => "tests",
        }
    }

    /// The runner a command line uses, as far as its words tell.
    pub fn of_command(command: &str) -> Self {
        let words: Vec<&str> = command.split_whitespace().collect();
        let has = |pair: [&str; 2]| words.windows(2).any(|w| w == pair);
        if has(["cargo", "test"]) {
            Framework::Cargo
        } else if words.iter().any(|w| w.ends_with("pytest")) {
            Framework::Pytest
        } else if words.contains(&"unittest") {
            Framework::Unittest
        } else if has(["node", "--test"]) {
            Framework::NodeTest
        } else if words.iter().any(|w| *w == "jest" || *w == "vitest") {
            Framework::Jest
        } else if has(["go", "test"]) {
            Framework::Go
        } else {
            Framework::Other
        }
    }
}

/// The test command a worktree's files suggest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCommand {
    /// The file that suggested it.
    pub found: &'static str,
    /// How its output is read.
    pub framework: Framework,
    /// The shell command line.
    pub command: String,
}

impl TestCommand {
    fn new(found: &'static str, framework: Framework, command: &str) -> Self {
        Self {
            found,
            framework,
            command: command.to_owned(),
        }
    }
}

/// What a test run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The tests ran and none failed.
    Passed,
    /// At least one test failed, or the runner failed after its tests.
    Failed,
    /// The code or the tests did not compile or import: nothing was tested.
    BuildFailed,
    /// The runner ran and found no tests.
    NoTests,
    /// The time limit stopped the run.
    TimedOut,
    /// The runner could not run (missing, misconfigured) and printed no results.
    NotRun,
}

/// One test run, in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// The runner whose output was read.
    pub framework: Framework,
    /// The command line that ran.
    pub command: String,
    /// Its exit code (`None`: killed, e.g. at the time limit).
    pub exit_code: Option<i32>,
    /// What it came to.
    pub outcome: Outcome,
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests skipped or ignored.
    pub ignored: u64,
    /// The failing tests' names.
    pub failures: Vec<String>,
    /// The first compile or import errors, when the build failed.
    pub build_errors: Vec<String>,
    /// Whether the counts come from the runner's output (otherwise they are zero because
    /// none were found).
    pub counted: bool,
}

impl TestReport {
    /// The report of `command`, read as `framework`, from what it did.
    pub fn from_output(framework: Framework, command: &str, output: &CommandOutput) -> Self {
        let text = format!("{}\n{}", output.stdout, output.stderr);
        let counts = parse_report(framework, &text);
        let outcome = if output.timed_out {
            Outcome::TimedOut
        } else if !counts.build_errors.is_empty() {
            Outcome::BuildFailed
        } else if counts.counted {
            if counts.failed > 0 || (output.code != Some(0) && counts.passed > 0) {
                Outcome::Failed
            } else if counts.passed == 0 {
                Outcome::NoTests
            } else {
                Outcome::Passed
            }
        } else if output.code == Some(0) {
            // A command whose output has no counts (a custom script): its exit code is
            // all there is to go by.
            Outcome::Passed
        } else {
            Outcome::NotRun
        };
        Self {
            framework: counts.framework,
            command: command.to_owned(),
            exit_code: output.code,
            outcome,
            passed: counts.passed,
            failed: counts.failed,
            ignored: counts.ignored,
            failures: counts.failures,
            build_errors: counts.build_errors,
            counted: counts.counted,
        }
    }

    /// Whether the tests ran and passed.
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Passed
    }

    /// One line: `cargo test: 4 passed, 1 failed, 0 ignored`.
    pub fn summary(&self) -> String {
        let label = match self.framework {
            Framework::Other => first_line(&self.command),
            f => f.label().to_owned(),
        };
        let code = self
            .exit_code
            .map_or_else(|| "killed".to_owned(), |c| format!("exit code {c}"));
        let counts = format!(
            "{} passed, {} failed, {} ignored",
            self.passed, self.failed, self.ignored
        );
        match self.outcome {
            Outcome::Passed if !self.counted => {
                format!("{label}: {code}, no test counts in the output")
            }
            Outcome::Passed => format!("{label}: {counts}"),
            Outcome::Failed if self.failed == 0 => format!("{label}: {counts} ({code})"),
            Outcome::Failed => format!("{label}: {counts}"),
            Outcome::BuildFailed => format!(
                "{label}: build failed: {}",
                self.build_errors.first().map_or("", String::as_str)
            ),
            Outcome::NoTests => format!("{label}: no tests ran ({code})"),
            Outcome::TimedOut => format!("{label}: stopped at the time limit"),
            Outcome::NotRun => format!("{label}: could not run ({code})"),
        }
    }
}

/// What [`RunTests::run`] did: the report and the output it was read from.
#[derive(Debug, Clone)]
pub struct TestRun {
    /// The numbers.
    pub report: TestReport,
    /// The command's output.
    pub output: CommandOutput,
}

/// Why tests could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunTestsError {
    /// No file of the worktree names a test command, and none was given.
    #[error(
        "no test command found: none of Cargo.toml, go.mod, package.json with a `test` script, Python test files (pyproject.toml, pytest.ini, setup.cfg, requirements*.txt, test_*.py) or a Makefile with a `test` target is in the project; pass `command`"
    )]
    NothingToRun,
    /// The filter cannot be applied to this command.
    #[error("`filter` cannot be applied to `{command}`; pass the whole `command` instead")]
    FilterUnsupported {
        /// The command.
        command: String,
    },
    /// The sandbox could not start the command.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// The `run_tests` tool.
#[derive(Debug)]
pub struct RunTests {
    spec: ToolSpec,
    tools: Arc<WorktreeTools>,
    /// Time limit of one run (builds included).
    pub timeout: Duration,
    /// Bytes of output read from each of stdout and stderr (the model sees a tail).
    pub output_cap: usize,
    /// Bytes of each of stdout and stderr shown to the model, from the end.
    pub shown_tail: usize,
}

/// The `run_tests` tool of `tools`' worktree, as an entry of the toolbox.
pub fn run_tests_tool(tools: Arc<WorktreeTools>) -> Arc<dyn Tool> {
    Arc::new(RunTests::new(tools))
}

impl RunTests {
    /// Runs tests in `tools`' sandbox, with a time limit of ten minutes.
    pub fn new(tools: Arc<WorktreeTools>) -> Self {
        Self {
            spec: ToolSpec {
                name: "run_tests".into(),
                description: "Run the project's tests (the command is found from the project's files: cargo test, pytest or unittest, npm test, go test, make test) and report how many passed, failed and were skipped, the failing tests' names and the end of the output.".into(),
                parameters: json!({"type": "object", "properties": {
                    "command": {"type": "string", "description": "run this test command instead of the detected one"},
                    "filter": {"type": "string", "description": "run only some tests: a test name filter for cargo, a file or test id for pytest, unittest and node, a name pattern or package path (./pkg/...) for go"}
                }}),
            },
            tools,
            timeout: Duration::from_secs(600),
            output_cap: 4 * 1024 * 1024,
            shown_tail: 6 * 1024,
        }
    }

    /// Runs the tests: `command` if given, otherwise the detected one; narrowed by `filter`.
    pub async fn run(
        &self,
        command: Option<&str>,
        filter: Option<&str>,
    ) -> Result<TestRun, RunTestsError> {
        let mut sandbox = self.tools.sandbox().clone();
        sandbox.timeout = self.timeout;
        sandbox.output_cap = self.output_cap;
        let (framework, mut line) = match command {
            Some(c) => (Framework::of_command(c), c.to_owned()),
            None => {
                let detected = detect_tests(sandbox.root()).ok_or(RunTestsError::NothingToRun)?;
                if detected.framework == Framework::Pytest {
                    // pytest where it is installed, else the standard library's runner.
                    let probe = sandbox.run("python3 -c 'import pytest'").await?;
                    if probe.code != Some(0) {
                        let fallback = unittest_command(sandbox.root());
                        (Framework::Unittest, fallback)
                    } else {
                        (detected.framework, detected.command)
                    }
                } else {
                    (detected.framework, detected.command)
                }
            }
        };
        if let Some(filter) = filter.filter(|f| !f.trim().is_empty()) {
            line = with_filter(framework, command.is_some(), &line, filter)?;
        }
        let output = sandbox.run(&line).await?;
        Ok(TestRun {
            report: TestReport::from_output(framework, &line, &output),
            output,
        })
    }

    fn render(&self, run: &TestRun) -> ToolOutput {
        let r = &run.report;
        let mut content = r.summary();
        content.push('\n');
        content.push_str(&format!("command: {}\n", r.command));
        if run.output.timed_out {
            content.push_str(&format!(
                "stopped after {}s (the time limit)\n",
                self.timeout.as_secs()
            ));
        } else {
            let code = r
                .exit_code
                .map_or_else(|| "none (killed)".to_owned(), |c| c.to_string());
            content.push_str(&format!("exit code: {code}\n"));
        }
        if !r.failures.is_empty() {
            content.push_str("failing tests:\n");
            for name in &r.failures {
                content.push_str(&format!("  {name}\n"));
            }
        }
        if !r.build_errors.is_empty() {
            content.push_str("build errors:\n");
            for line in &r.build_errors {
                content.push_str(&format!("  {line}\n"));
            }
        }
        for (name, text) in [
            ("stdout", &run.output.stdout),
            ("stderr", &run.output.stderr),
        ] {
            if text.trim().is_empty() {
                continue;
            }
            let (tail, cut) = tail(text, self.shown_tail);
            let heading = if cut || run.output.truncated {
                format!("--- {name} (the end) ---\n")
            } else {
                format!("--- {name} ---\n")
            };
            content.push_str(&heading);
            content.push_str(tail);
            if !tail.ends_with('\n') {
                content.push('\n');
            }
        }
        ToolOutput {
            content,
            summary: r.summary(),
            changes: Vec::new(),
            is_error: !r.is_success(),
        }
    }
}

#[async_trait]
impl Tool for RunTests {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: &Value) -> Result<ToolOutput, ToolError> {
        let args = Args::new(&self.spec.name, arguments);
        let parsed = args
            .opt_string("command")
            .and_then(|c| Ok((c, args.opt_string("filter")?)));
        let (command, filter) = match parsed {
            Ok(v) => v,
            Err(message) => return Ok(ToolOutput::error(message)),
        };
        let command = command.filter(|c| !c.trim().is_empty());
        Ok(match self.run(command, filter).await {
            Ok(run) => self.render(&run),
            Err(e) => ToolOutput::error(format!("run_tests: {e}")),
        })
    }
}

/// The test command `root`'s files suggest, in this order: Cargo, Go, npm (a `test`
/// script), Python, a Makefile's `test` target. Python is given as pytest; [`RunTests`]
/// falls back to unittest where pytest is not installed.
pub fn detect_tests(root: &Path) -> Option<TestCommand> {
    let has = |name: &str| root.join(name).is_file();
    let files = Files::new(root);
    if has("Cargo.toml") {
        return Some(TestCommand::new(
            "Cargo.toml",
            Framework::Cargo,
            "cargo test --no-fail-fast",
        ));
    }
    if has("go.mod") {
        return Some(TestCommand::new(
            "go.mod",
            Framework::Go,
            "go test -v ./...",
        ));
    }
    if let Some(script) = files
        .read("package.json")
        .ok()
        .and_then(|text| npm_test_script(&text))
    {
        let framework = match Framework::of_command(&script) {
            Framework::Other if script.contains("tap") => Framework::NodeTest,
            f => f,
        };
        return Some(TestCommand::new("package.json", framework, "npm test"));
    }
    if let Some(found) = python_marker(root) {
        return Some(TestCommand::new(
            found,
            Framework::Pytest,
            "python3 -m pytest",
        ));
    }
    if files
        .read("Makefile")
        .is_ok_and(|text| text.lines().any(is_test_target))
    {
        return Some(TestCommand::new("Makefile", Framework::Other, "make test"));
    }
    None
}

/// The `test` script of a package.json, unless it is npm's placeholder.
fn npm_test_script(package_json: &str) -> Option<String> {
    let value: Value = serde_json::from_str(package_json).ok()?;
    let script = value.get("scripts")?.get("test")?.as_str()?;
    (!script.contains("no test specified")).then(|| script.to_owned())
}

/// The file that marks a Python project with tests.
fn python_marker(root: &Path) -> Option<&'static str> {
    for name in [
        "pyproject.toml",
        "pytest.ini",
        "setup.cfg",
        "setup.py",
        "tox.ini",
    ] {
        if root.join(name).is_file() {
            return Some(name);
        }
    }
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let is_test_file =
        |n: &String| (n.starts_with("test_") || n.ends_with("_test.py")) && n.ends_with(".py");
    let top = names(root);
    if top
        .iter()
        .any(|n| n.starts_with("requirements") && n.ends_with(".txt"))
    {
        return Some("requirements.txt");
    }
    if top.iter().any(is_test_file) || names(&root.join("tests")).iter().any(is_test_file) {
        return Some("test_*.py");
    }
    None
}

/// A Makefile line that defines the `test` target (`test:`, `test: build`, `check test:`).
fn is_test_target(line: &str) -> bool {
    let Some((targets, rest)) = line.split_once(':') else {
        return false;
    };
    !line.starts_with('\t')
        && !rest.starts_with('=')
        && targets.split_whitespace().any(|t| t == "test")
}

/// unittest's discovery, from `tests/` where the project keeps its tests there.
fn unittest_command(root: &Path) -> String {
    if root.join("tests").is_dir() {
        "python3 -m unittest discover -s tests".into()
    } else {
        "python3 -m unittest discover".into()
    }
}

/// `line` narrowed to the tests `filter` names.
fn with_filter(
    framework: Framework,
    custom: bool,
    line: &str,
    filter: &str,
) -> Result<String, RunTestsError> {
    let quoted = shell_quote(filter);
    Ok(match framework {
        _ if custom => format!("{line} {quoted}"),
        Framework::Cargo | Framework::Pytest => format!("{line} {quoted}"),
        Framework::Unittest => format!("python3 -m unittest {quoted}"),
        Framework::NodeTest | Framework::Jest => format!("{line} -- {quoted}"),
        Framework::Go if filter.starts_with('.') || filter.contains('/') => {
            format!("go test -v {quoted}")
        }
        Framework::Go => format!("go test -v -run {quoted} ./..."),
        Framework::Other => {
            return Err(RunTestsError::FilterUnsupported {
                command: line.to_owned(),
            });
        }
    })
}

/// `text` as one word for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The last `max` bytes of `text`, from a line start where one is near; and whether
/// anything was cut.
fn tail(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    let from_line = cut.find('\n').map_or(cut, |i| &cut[i + 1..]);
    (from_line, true)
}
