//! The `run_tests` tool: real runs of cargo, pytest, unittest, npm/node and make inside the
//! sandbox, and the output parsers on runners' real output (recorded from runs on this
//! machine; Go's, Jest's and Vitest's written from their documented formats).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use botarmy_tools::{
    Framework, Outcome, RunTests, TestCounts, Toolbox, WorktreeTools, detect_tests, parse_report,
    worktree_tools,
};
use botarmy_workspace::{Sandbox, Toolchains};
use serde_json::json;

struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tools: Arc<WorktreeTools>,
    toolbox: Toolbox,
}

fn project(files: &[(&str, &str)]) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    for (path, content) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    let home = PathBuf::from(std::env::var("HOME").unwrap());
    let sandbox = Sandbox::new(&root, vec![home], Toolchains::from_env(), false).unwrap();
    let tools = Arc::new(WorktreeTools::new(&root, sandbox));
    let mut toolbox = Toolbox::new();
    for tool in worktree_tools(tools.clone()) {
        toolbox.insert(tool);
    }
    Project {
        _dir: dir,
        root,
        tools,
        toolbox,
    }
}

fn write(root: &Path, path: &str, content: &str) {
    std::fs::write(root.join(path), content).unwrap();
}

const CARGO_TOML: &str = "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";

const CARGO_LIB: &str = r#"/// Adds.
///
/// ```
/// assert_eq!(tiny::add(1, 1), 2);
/// ```
pub fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[cfg(test)]
mod tests {
    #[test]
    fn passes() {
        assert_eq!(super::add(1, 1), 2);
    }

    #[test]
    fn fails() {
        assert_eq!(super::add(1, 1), 3);
    }

    #[test]
    #[ignore]
    fn later() {}
}
"#;

#[tokio::test]
async fn cargo_tests_are_counted_across_binaries_and_doctests_and_compile_errors_named() {
    let p = project(&[
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", CARGO_LIB),
        (
            "tests/it.rs",
            "#[test]\nfn outside() { assert_eq!(tiny::add(2, 2), 4); }\n",
        ),
    ]);
    let out = p.toolbox.call("run_tests", &json!({})).await.unwrap();
    assert_eq!(
        out.summary, "cargo test: 3 passed, 1 failed, 1 ignored",
        "{out:?}"
    );
    assert!(out.is_error);
    assert!(
        out.content.contains("command: cargo test --no-fail-fast\n"),
        "{}",
        out.content
    );
    assert!(out.content.contains("exit code: 101\n"), "{}", out.content);
    assert!(
        out.content.contains("failing tests:\n  tests::fails\n"),
        "{}",
        out.content
    );
    assert!(
        out.content.contains("test result: FAILED. 1 passed"),
        "{}",
        out.content
    );

    // Narrowed to one test, which passes.
    let out = p
        .toolbox
        .call("run_tests", &json!({"filter": "passes"}))
        .await
        .unwrap();
    assert_eq!(
        out.summary, "cargo test: 1 passed, 0 failed, 0 ignored",
        "{out:?}"
    );
    assert!(!out.is_error);

    // Code that does not compile is not "0 tests".
    write(&p.root, "src/lib.rs", "pub fn broken() -> u32 { nope }\n");
    let run = RunTests::new(p.tools.clone())
        .run(None, None)
        .await
        .unwrap();
    let r = run.report;
    assert_eq!(
        (r.outcome, r.counted),
        (Outcome::BuildFailed, false),
        "{r:?}"
    );
    assert_eq!(
        r.build_errors.first().map(String::as_str),
        Some("error[E0425]: cannot find value `nope` in this scope"),
        "{r:?}"
    );
    assert_eq!(r.exit_code, Some(101));
}

const CALC_PY: &str = "def add(a, b):\n    return a + b\n";

#[tokio::test]
async fn pytest_runs_where_it_is_installed() {
    let p = project(&[
        (
            "pyproject.toml",
            "[project]\nname = \"calc\"\nversion = \"0.1\"\n",
        ),
        ("calc.py", CALC_PY),
        (
            "tests/test_calc.py",
            r#"import pytest
from calc import add

def test_adds():
    assert add(1, 2) == 3

def test_fails():
    assert add(1, 2) == 4

@pytest.mark.skip(reason="later")
def test_later():
    pass
"#,
        ),
    ]);
    let run = RunTests::new(p.tools.clone())
        .run(None, None)
        .await
        .unwrap();
    let r = &run.report;
    assert_eq!(r.framework, Framework::Pytest, "{run:?}");
    assert_eq!(r.command, "python3 -m pytest");
    assert_eq!((r.passed, r.failed, r.ignored), (1, 1, 1), "{run:?}");
    assert_eq!(r.failures, ["tests/test_calc.py::test_fails"]);
    assert_eq!(r.summary(), "pytest: 1 passed, 1 failed, 1 ignored");

    let run = RunTests::new(p.tools.clone())
        .run(None, Some("tests/test_calc.py::test_adds"))
        .await
        .unwrap();
    assert_eq!(run.report.outcome, Outcome::Passed, "{run:?}");
    assert_eq!(run.report.passed, 1);
}

const UNITTEST_PY: &str = r#"import unittest
from calc import add

class TestAdd(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(add(2, 2), 4)

    def test_bad(self):
        self.assertEqual(add(2, 2), 5)

    @unittest.skip("later")
    def test_skip(self):
        pass
"#;

#[tokio::test]
async fn unittest_runs_where_pytest_cannot_be_imported() {
    // A `pytest` module of the project's own that fails to import, as pytest does where it
    // is not installed.
    let p = project(&[
        ("requirements.txt", ""),
        ("calc.py", CALC_PY),
        ("pytest.py", "raise ImportError('no pytest here')\n"),
        ("tests/test_calc.py", UNITTEST_PY),
    ]);
    let run = RunTests::new(p.tools.clone())
        .run(None, None)
        .await
        .unwrap();
    let r = &run.report;
    assert_eq!(r.framework, Framework::Unittest, "{run:?}");
    assert_eq!(r.command, "python3 -m unittest discover -s tests");
    assert_eq!((r.passed, r.failed, r.ignored), (1, 1, 1), "{run:?}");
    assert_eq!(r.failures, ["test_calc.TestAdd.test_bad"]);

    // A Makefile target running it is read the same way.
    write(
        &p.root,
        "Makefile",
        "test:\n\tpython3 -m unittest discover -s tests\n",
    );
    let out = p
        .toolbox
        .call("run_tests", &json!({"command": "make test"}))
        .await
        .unwrap();
    assert_eq!(
        out.summary, "unittest: 1 passed, 1 failed, 1 ignored",
        "{out:?}"
    );
}

const NODE_TEST: &str = r#"const test = require('node:test');
const assert = require('node:assert');
test('adds', () => { assert.strictEqual(1 + 1, 2); });
test('fails', () => { assert.strictEqual(1 + 1, 3); });
test('later', { skip: true }, () => {});
test.describe('group', () => {
  test.it('inner fails', () => { assert.ok(false); });
  test.it('inner ok', () => {});
});
"#;

#[tokio::test]
async fn npm_test_with_nodes_runner() {
    let p = project(&[
        (
            "package.json",
            r#"{"name": "calc", "version": "1.0.0", "scripts": {"test": "node --test"}}"#,
        ),
        ("test/math.test.js", NODE_TEST),
    ]);
    let out = p.toolbox.call("run_tests", &json!({})).await.unwrap();
    assert_eq!(
        out.summary, "node --test: 2 passed, 2 failed, 1 ignored",
        "{out:?}"
    );
    assert!(
        out.content.contains("command: npm test\n"),
        "{}",
        out.content
    );
    assert!(
        out.content
            .contains("failing tests:\n  fails\n  inner fails\n"),
        "{}",
        out.content
    );
    // npm kept its cache and logs out of the project.
    assert!(!p.root.join(".npm").exists());

    // The runner itself, with the spec reporter.
    let out = p
        .toolbox
        .call(
            "run_tests",
            &json!({"command": "node --test --test-reporter=spec"}),
        )
        .await
        .unwrap();
    assert_eq!(
        out.summary, "node --test: 2 passed, 2 failed, 1 ignored",
        "{out:?}"
    );
}

#[tokio::test]
async fn without_a_test_command_the_model_is_told_what_was_looked_for() {
    let p = project(&[("README.md", "nothing to test\n")]);
    let out = p.toolbox.call("run_tests", &json!({})).await.unwrap();
    assert!(out.is_error);
    assert!(
        out.content.starts_with("run_tests: no test command found"),
        "{out:?}"
    );
    // A command that does not exist could not run; it did not "pass".
    let out = p
        .toolbox
        .call("run_tests", &json!({"command": "no-such-runner"}))
        .await
        .unwrap();
    assert!(out.is_error);
    assert!(
        out.summary.contains("could not run (exit code 127)"),
        "{out:?}"
    );
}

#[test]
fn test_commands_are_read_off_the_files() {
    type Files = &'static [(&'static str, &'static str)];
    let cases: &[(Files, Option<&str>)] = &[
        (
            &[("Cargo.toml", ""), ("Makefile", "test:\n")],
            Some("cargo test --no-fail-fast"),
        ),
        (&[("go.mod", "module x\n")], Some("go test -v ./...")),
        (
            &[("package.json", r#"{"scripts": {"test": "jest"}}"#)],
            Some("npm test"),
        ),
        // npm's placeholder is no test script.
        (
            &[(
                "package.json",
                r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#,
            )],
            None,
        ),
        (&[("setup.cfg", "")], Some("python3 -m pytest")),
        (&[("requirements-dev.txt", "")], Some("python3 -m pytest")),
        (&[("tests/test_x.py", "")], Some("python3 -m pytest")),
        (
            &[("Makefile", "all:\n\tcc x.c\ncheck test: all\n\t./run\n")],
            Some("make test"),
        ),
        (&[("Makefile", "TEST := 1\nall:\n\ttest -f x\n")], None),
        (&[("src/main.c", "")], None),
    ];
    for (files, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in *files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let found = detect_tests(dir.path()).map(|c| c.command);
        assert_eq!(found.as_deref(), *expected, "{files:?}");
    }
    assert_eq!(Framework::of_command("cargo test -p x"), Framework::Cargo);
    assert_eq!(Framework::of_command("uv run pytest -x"), Framework::Pytest);
    assert_eq!(Framework::of_command("npx vitest run"), Framework::Jest);
    assert_eq!(Framework::of_command("./check.sh"), Framework::Other);
}

fn fixture(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run_tests");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn counts(c: &TestCounts) -> (u64, u64, u64, bool) {
    (c.passed, c.failed, c.ignored, c.counted)
}

#[test]
fn cargo_output_is_summed_over_test_binaries() {
    let out = fixture("cargo_failed.stdout") + &fixture("cargo_failed.stderr");
    let c = parse_report(Framework::Cargo, &out);
    assert_eq!(counts(&c), (3, 1, 1, true));
    assert_eq!(c.failures, ["tests::fails"]);
    assert!(c.build_errors.is_empty(), "{c:?}");

    let c = parse_report(Framework::Cargo, &fixture("cargo_compile_error.stderr"));
    assert_eq!(counts(&c), (0, 0, 0, false));
    assert_eq!(
        c.build_errors,
        [
            "error[E0425]: cannot find value `nope` in this scope",
            "error: could not compile `tiny` (lib test) due to 1 previous error",
            "error: could not compile `tiny` (lib) due to 1 previous error",
        ]
    );
}

#[test]
fn pytest_output_gives_the_summary_line_and_the_failed_ids() {
    let c = parse_report(Framework::Pytest, &fixture("pytest_failed.txt"));
    assert_eq!(counts(&c), (2, 2, 1, true));
    assert_eq!(
        c.failures,
        [
            "tests/test_calc.py::test_fails",
            "tests/test_calc.py::TestMore::test_bad"
        ]
    );

    let c = parse_report(Framework::Pytest, &fixture("pytest_collection_error.txt"));
    assert_eq!(
        c.build_errors,
        [
            "Interrupted: 1 error during collection",
            "ERROR tests/test_broken.py"
        ]
    );

    // -q and the rarer words.
    let c = parse_report(
        Framework::Pytest,
        "..x.\n1 failed, 10 passed, 2 skipped, 1 xfailed, 1 xpassed, 3 warnings, 1 error in 1.50s (0:00:01)\n",
    );
    assert_eq!(counts(&c), (11, 2, 3, true));
    let c = parse_report(Framework::Pytest, "=== no tests ran in 0.01s ===\n");
    assert_eq!(counts(&c), (0, 0, 0, true));
    // A line that merely contains " in " is not a summary.
    let c = parse_report(Framework::Pytest, "checked 3 files in src\n");
    assert!(!c.counted);
}

#[test]
fn unittest_output_gives_counts_and_dotted_names() {
    let c = parse_report(Framework::Unittest, &fixture("unittest_failed.txt"));
    assert_eq!(counts(&c), (1, 2, 1, true));
    assert_eq!(
        c.failures,
        ["test_u.TestAdd.test_error", "test_u.TestAdd.test_bad"]
    );
    assert!(c.build_errors.is_empty());

    let c = parse_report(Framework::Unittest, &fixture("unittest_import_error.txt"));
    assert_eq!(
        c.build_errors,
        ["ERROR: failed to import test module test_broken"]
    );

    // Python before 3.11 names the class only; "OK" with details.
    let c = parse_report(
        Framework::Unittest,
        "FAIL: test_b (test_x.TestX)\n----\nRan 3 tests in 0.001s\n\nFAILED (failures=1)\n",
    );
    assert_eq!(counts(&c), (2, 1, 0, true));
    assert_eq!(c.failures, ["test_x.TestX.test_b"]);
    let c = parse_report(
        Framework::Unittest,
        "Ran 4 tests in 0.1s\n\nOK (skipped=1, expected failures=1)\n",
    );
    assert_eq!(counts(&c), (2, 0, 2, true));
}

#[test]
fn node_output_in_both_reporters_and_plain_tap() {
    for name in ["node_tap.txt", "node_spec.txt"] {
        let c = parse_report(Framework::NodeTest, &fixture(name));
        assert_eq!(counts(&c), (2, 2, 1, true), "{name}");
        // The describe block whose test failed is not a failing test of its own.
        assert_eq!(c.failures, ["fails", "inner fails"], "{name}");
    }
    let tap = "TAP version 13\n1..4\nok 1 - one\nnot ok 2 - two\nok 3 - three # SKIP no db\nnot ok 4 - four # TODO later\n";
    let c = parse_report(Framework::NodeTest, tap);
    assert_eq!(counts(&c), (1, 1, 2, true));
    assert_eq!(c.failures, ["two"]);
}

#[test]
fn jest_and_vitest_summaries() {
    let c = parse_report(Framework::Jest, &fixture("jest_failed.txt"));
    assert_eq!(counts(&c), (3, 1, 1, true));
    assert_eq!(c.failures, ["math › subtracts"]);
    let c = parse_report(Framework::Jest, &fixture("vitest_failed.txt"));
    assert_eq!(counts(&c), (1, 1, 1, true));
    assert_eq!(c.failures, ["math > subtracts"]);
}

#[test]
fn go_test_output_counts_leaf_tests_and_build_failures() {
    let c = parse_report(Framework::Go, &fixture("go_verbose_failed.txt"));
    // TestAdd, TestTable/zero, TestParse pass; TestSub, TestTable/negative fail.
    assert_eq!(counts(&c), (3, 2, 1, true));
    assert_eq!(c.failures, ["TestSub", "TestTable/negative"]);

    let c = parse_report(Framework::Go, &fixture("go_build_failed.txt"));
    assert_eq!(
        c.build_errors,
        [
            "FAIL\texample.com/calc [build failed]",
            "./calc.go:7:9: undefined: missing",
            "./calc_test.go:12:2: declared and not used: x",
        ]
    );

    // Without -v only failures and packages are printed.
    let c = parse_report(Framework::Go, &fixture("go_quiet_failed.txt"));
    assert_eq!(counts(&c), (1, 1, 0, true));
    assert_eq!(c.failures, ["TestSub"]);
}

#[test]
fn output_of_an_unknown_command_is_read_by_whichever_format_it_has() {
    let c = parse_report(Framework::Other, &fixture("pytest_failed.txt"));
    assert_eq!(
        (c.framework, counts(&c)),
        (Framework::Pytest, (2, 2, 1, true))
    );
    let c = parse_report(Framework::Other, &fixture("go_verbose_failed.txt"));
    assert_eq!(c.framework, Framework::Go);
    let c = parse_report(Framework::Other, &fixture("node_tap.txt"));
    assert_eq!(c.framework, Framework::NodeTest);
    let c = parse_report(Framework::Other, &fixture("cargo_compile_error.stderr"));
    assert_eq!((c.framework, c.build_errors.len()), (Framework::Cargo, 3));
    let c = parse_report(Framework::Other, "all good\n");
    assert_eq!(counts(&c), (0, 0, 0, false));
}
