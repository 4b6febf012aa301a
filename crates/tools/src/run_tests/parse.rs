//! Reading test runners' output: how many tests passed, failed or were skipped, which
//! failed by name, and whether the code did not even build. One function per runner, each
//! reading the lines the runner documents as its summary.

use serde::{Deserialize, Serialize};

use super::Framework;

/// What a test run's output says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCounts {
    /// The runner the output was read as (for [`Framework::Other`], the one recognized).
    pub framework: Framework,
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed (errors and cancelled tests included).
    pub failed: u64,
    /// Tests skipped, ignored or left to do.
    pub ignored: u64,
    /// The failing tests' names, as the runner prints them.
    pub failures: Vec<String>,
    /// Whether the output held the runner's counts; without them the numbers are zero
    /// because nothing was found, not because nothing ran.
    pub counted: bool,
    /// When the code or the tests did not build (compile errors, failed imports during
    /// collection): the first error lines.
    pub build_errors: Vec<String>,
}

/// Build errors kept at most.
const MAX_BUILD_ERRORS: usize = 10;

/// Reads `output` (standard output and error of one run) as `framework` prints it. For
/// [`Framework::Other`] (a Makefile target, a custom command) each runner's format is tried
/// in turn and the first one found is used.
pub fn parse_report(framework: Framework, output: &str) -> TestCounts {
    match framework {
        Framework::Cargo => cargo(output, true),
        Framework::Pytest => pytest(output),
        Framework::Unittest => unittest(output),
        Framework::NodeTest => node(output),
        Framework::Jest => jest(output),
        Framework::Go => go(output),
        Framework::Other => sniff(output),
    }
}

fn sniff(output: &str) -> TestCounts {
    let tries = [
        cargo(output, false),
        pytest(output),
        unittest(output),
        go(output),
        node(output),
        jest(output),
    ];
    let found = tries
        .iter()
        .find(|c| c.counted)
        .or_else(|| tries.iter().find(|c| !c.build_errors.is_empty()));
    found.cloned().unwrap_or_default()
}

impl TestCounts {
    fn new(framework: Framework) -> Self {
        Self {
            framework,
            ..Self::default()
        }
    }

    fn fail(&mut self, name: &str) {
        let name = name.trim();
        if !name.is_empty() && !self.failures.iter().any(|f| f == name) {
            self.failures.push(name.to_owned());
        }
    }

    fn build_error(&mut self, line: &str) {
        if self.build_errors.len() < MAX_BUILD_ERRORS {
            self.build_errors.push(line.trim().to_owned());
        }
    }
}

/// `"3 passed"` → `(3, "passed")`.
fn count_word(item: &str) -> Option<(u64, &str)> {
    let (n, word) = item.trim().split_once(' ')?;
    Some((n.trim().parse().ok()?, word.trim()))
}

/// `cargo test`: every `test result:` line (one per test binary and for the doctests),
/// summed; failing tests from their `test NAME ... FAILED` lines. With no result line,
/// compiler errors mean the build failed (`explicit`: the command is known to be cargo's,
/// so any `error` line counts; otherwise only the compiler's own).
fn cargo(output: &str, explicit: bool) -> TestCounts {
    let mut c = TestCounts::new(Framework::Cargo);
    let mut errors = Vec::new();
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            c.counted = true;
            let items = rest.split_once(". ").map_or(rest, |(_, items)| items);
            for (n, word) in items.split(';').filter_map(count_word) {
                match word {
                    "passed" => c.passed += n,
                    "failed" => c.failed += n,
                    "ignored" => c.ignored += n,
                    _ => {}
                }
            }
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            c.fail(name);
        } else if line.starts_with("error[")
            || line.starts_with("error: could not compile")
            || (explicit
                && line.starts_with("error")
                && !line.starts_with("error: test failed")
                && !line.contains(" target failed")
                && !line.contains(" targets failed"))
        {
            errors.push(line);
        }
    }
    if !c.counted {
        for line in errors {
            c.build_error(line);
        }
    }
    c
}

/// pytest: the closing summary (`==== 1 failed, 3 passed, 1 skipped in 0.12s ====`, or
/// without the rules under `-q`), the `FAILED`/`ERROR` lines of the short summary, and
/// `Interrupted: … during collection` for tests that could not even be imported.
fn pytest(output: &str) -> TestCounts {
    let mut c = TestCounts::new(Framework::Pytest);
    let mut summary = None;
    let mut interrupted = None;
    let mut errors = Vec::new();
    for line in output.lines() {
        if let Some(items) = pytest_summary(line) {
            summary = Some(items);
        } else if let Some(rest) = line.strip_prefix("FAILED ") {
            c.fail(rest.split_once(" - ").map_or(rest, |(name, _)| name));
        } else if let Some(rest) = line.strip_prefix("ERROR ") {
            let name = rest.split_once(" - ").map_or(rest, |(name, _)| name);
            c.fail(name);
            errors.push(line);
        } else if line.contains("Interrupted: ") && line.contains("during collection") {
            interrupted = Some(line.trim_matches(|ch| ch == '!' || ch == ' '));
        }
    }
    if let Some(items) = summary {
        c.counted = true;
        for (n, word) in items {
            match word {
                "passed" | "xpassed" => c.passed += n,
                "failed" | "error" | "errors" => c.failed += n,
                "skipped" | "xfailed" => c.ignored += n,
                _ => {}
            }
        }
    }
    if let Some(line) = interrupted {
        c.build_error(line);
        for line in errors {
            c.build_error(line);
        }
    }
    c
}

/// The counts of a pytest closing line, or `None` if `line` is not one.
fn pytest_summary(line: &str) -> Option<Vec<(u64, &str)>> {
    let line = line.trim_matches(|ch| ch == '=' || ch == ' ');
    let (items, time) = line.rsplit_once(" in ")?;
    // "0.12s", "1.50s (0:00:01)"
    let seconds = time.split(' ').next()?.strip_suffix('s')?;
    seconds.parse::<f64>().ok()?;
    if items == "no tests ran" {
        return Some(Vec::new());
    }
    const WORDS: &[&str] = &[
        "passed",
        "failed",
        "skipped",
        "deselected",
        "xfailed",
        "xpassed",
        "error",
        "errors",
        "warning",
        "warnings",
        "rerun",
    ];
    items
        .split(", ")
        .map(|item| count_word(item).filter(|(_, w)| WORDS.contains(w)))
        .collect()
}

/// unittest: `Ran N tests in Xs`, then `OK`, `OK (skipped=1)` or
/// `FAILED (failures=1, errors=1, skipped=1)`; failing tests from their `FAIL: name (id)`
/// and `ERROR: name (id)` headers. A test module that could not be imported is a build
/// error.
fn unittest(output: &str) -> TestCounts {
    let mut c = TestCounts::new(Framework::Unittest);
    let mut ran: Option<u64> = None;
    let (mut failed, mut ignored) = (0, 0);
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("Ran ") {
            ran = rest.split(' ').next().and_then(|n| n.parse().ok());
        } else if ran.is_some() && (line.starts_with("OK") || line.starts_with("FAILED")) {
            let details = line
                .split_once('(')
                .and_then(|(_, d)| d.strip_suffix(')'))
                .unwrap_or("");
            for item in details.split(", ") {
                let Some((key, n)) = item.split_once('=') else {
                    continue;
                };
                let n: u64 = n.trim().parse().unwrap_or(0);
                match key.trim() {
                    "failures" | "errors" | "unexpected successes" => failed += n,
                    "skipped" | "expected failures" => ignored += n,
                    _ => {}
                }
            }
        } else if let Some((kind, rest)) = ["FAIL: ", "ERROR: ", "UNEXPECTED SUCCESS: "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)))
        {
            let name = unittest_name(rest);
            if name.starts_with("unittest.loader._FailedTest.") {
                let module = name.trim_start_matches("unittest.loader._FailedTest.");
                c.build_error(&format!("{kind}failed to import test module {module}"));
            }
            c.fail(&name);
        }
    }
    if let Some(ran) = ran {
        c.counted = true;
        c.failed = failed;
        c.ignored = ignored;
        c.passed = ran.saturating_sub(failed + ignored);
    }
    c
}

/// `test_b (test_x.TestX.test_b)` → `test_x.TestX.test_b`; before Python 3.11,
/// `test_b (test_x.TestX)` → `test_x.TestX.test_b`.
fn unittest_name(header: &str) -> String {
    let Some((name, rest)) = header.split_once(" (") else {
        return header.trim().to_owned();
    };
    let id = rest.split(')').next().unwrap_or(rest);
    if id.ends_with(&format!(".{name}")) {
        id.to_owned()
    } else {
        format!("{id}.{name}")
    }
}

/// node's test runner, in either of its reporters: TAP (`# pass N`, `# fail N`; the default
/// when output is not a terminal before node 23) and spec (`ℹ pass N`). Other TAP producers
/// without those comments are counted from their top-level `ok`/`not ok` lines.
fn node(output: &str) -> TestCounts {
    let mut c = TestCounts::new(Framework::NodeTest);
    let lines: Vec<&str> = output.lines().collect();
    let mut plain_tap = TestCounts::new(Framework::NodeTest);
    let mut in_failing_section = false;
    let mut spec_failures = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let summary = line
            .strip_prefix("# ")
            .or_else(|| line.strip_prefix("ℹ "))
            .and_then(count_word_reversed);
        if let Some((word, n)) = summary {
            match word {
                "pass" => {
                    c.counted = true;
                    c.passed += n;
                }
                "fail" | "cancelled" => c.failed += n,
                "skipped" | "todo" => c.ignored += n,
                _ => {}
            }
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("not ok ") {
            let (name, directive) = tap_name(rest);
            let top_level = trimmed.len() == line.len();
            plain_tap.counted |= top_level;
            if directive {
                if top_level {
                    plain_tap.ignored += 1;
                }
            } else if !tap_is_suite(&lines[i + 1..]) {
                c.fail(name);
                if top_level {
                    plain_tap.failed += 1;
                }
            }
        } else if let Some(rest) = line.strip_prefix("ok ") {
            plain_tap.counted = true;
            if tap_name(rest).1 {
                plain_tap.ignored += 1;
            } else {
                plain_tap.passed += 1;
            }
        } else if trimmed.starts_with("✖ failing tests:") {
            in_failing_section = true;
        } else if let Some(rest) = trimmed.strip_prefix("✖ ")
            && in_failing_section
        {
            spec_failures.push(strip_duration(rest));
        }
    }
    for name in spec_failures {
        c.fail(name);
    }
    if !c.counted && plain_tap.counted {
        c.counted = true;
        c.passed = plain_tap.passed;
        c.failed = plain_tap.failed;
        c.ignored = plain_tap.ignored;
    }
    c
}

/// `"pass 2"` → `("pass", 2)`.
fn count_word_reversed(text: &str) -> Option<(&str, u64)> {
    let (word, n) = text.trim().split_once(' ')?;
    Some((word, n.trim().parse().ok()?))
}

/// A TAP test line after `ok `/`not ok `: its name, and whether a `# SKIP`/`# TODO`
/// directive marks it.
fn tap_name(rest: &str) -> (&str, bool) {
    let rest = rest.trim_start_matches(|ch: char| ch.is_ascii_digit());
    let rest = rest.trim_start().strip_prefix("- ").unwrap_or(rest).trim();
    match rest.split_once(" # ") {
        Some((name, directive)) => {
            let d = directive.trim_start().to_ascii_uppercase();
            (name, d.starts_with("SKIP") || d.starts_with("TODO"))
        }
        None => (rest, false),
    }
}

/// Whether the YAML block after a `not ok` line says it is a suite (node marks a `describe`
/// whose tests failed that way; its tests are reported on their own).
fn tap_is_suite(after: &[&str]) -> bool {
    let mut lines = after.iter().map(|l| l.trim());
    if lines.next() != Some("---") {
        return false;
    }
    lines
        .take_while(|l| *l != "...")
        .any(|l| l == "type: 'suite'")
}

/// `fails (1.17ms)` → `fails`.
fn strip_duration(text: &str) -> &str {
    match text.rsplit_once(" (") {
        Some((name, d)) if d.ends_with("ms)") || d.ends_with("s)") => name,
        _ => text,
    }
}

/// Jest (`Tests:       1 failed, 2 passed, 3 total`, failures headed `● suite › name`) and
/// Vitest (`Tests  1 failed | 2 passed (3)`, failures as `FAIL  file > suite > name`).
fn jest(output: &str) -> TestCounts {
    let mut c = TestCounts::new(Framework::Jest);
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Tests:") {
            c.counted = true;
            add_js_counts(&mut c, rest.split(','));
        } else if let Some(rest) = trimmed.strip_prefix("Tests ") {
            let rest = rest.trim();
            let items = rest.rsplit_once(" (").map_or(rest, |(items, _)| items);
            if items.split('|').all(|item| count_word(item).is_some()) {
                c.counted = true;
                add_js_counts(&mut c, items.split('|'));
            }
        } else if let Some(name) = trimmed.strip_prefix("● ") {
            if name.starts_with("Test suite failed to run") {
                c.build_error(trimmed);
            } else if name != "Console" {
                c.fail(name);
            }
        } else if let Some(rest) = trimmed.strip_prefix("FAIL ")
            && let Some((_, name)) = rest.trim().split_once(" > ")
        {
            c.fail(name);
        }
    }
    c
}

fn add_js_counts<'a>(c: &mut TestCounts, items: impl Iterator<Item = &'a str>) {
    for (n, word) in items.filter_map(count_word) {
        match word {
            "passed" => c.passed += n,
            "failed" => c.failed += n,
            "skipped" | "todo" | "pending" => c.ignored += n,
            _ => {}
        }
    }
}

/// `go test -v`: a `--- PASS/FAIL/SKIP: Name (0.00s)` line per test, indented for subtests;
/// a parent and its subtests count as the subtests. Without `-v` only failures have such
/// lines, and packages (`ok  \tpkg`, `FAIL\tpkg`) are counted instead. `[build failed]` and
/// compiler lines (`./x.go:3:2: undefined: foo`) mean the build failed.
fn go(output: &str) -> TestCounts {
    let mut c = TestCounts::new(Framework::Go);
    let mut tests: Vec<(&str, &str)> = Vec::new();
    let (mut ok_packages, mut failed_packages) = (0u64, Vec::new());
    let mut compiler = Vec::new();
    for line in output.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--- ") {
            if let Some((status, rest)) = rest.split_once(": ") {
                let name = rest.rsplit_once(" (").map_or(rest, |(name, _)| name).trim();
                if matches!(status, "PASS" | "FAIL" | "SKIP") {
                    tests.push((status, name));
                }
            }
        } else if line.starts_with("ok  ") || line.starts_with("ok\t") {
            ok_packages += 1;
        } else if let Some(rest) = line.strip_prefix("FAIL\t") {
            let package = rest.split('\t').next().unwrap_or(rest);
            if rest.contains("[build failed]") || rest.contains("[setup failed]") {
                c.build_error(line);
            } else {
                failed_packages.push(package.split(' ').next().unwrap_or(package));
            }
        } else if is_go_compiler_line(line) {
            compiler.push(line);
        }
    }
    if !c.build_errors.is_empty() {
        for line in compiler {
            c.build_error(line);
        }
    }
    let is_child = |parent: &str, name: &str| {
        name.strip_prefix(parent)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
    };
    for (status, name) in &tests {
        if tests.iter().any(|(_, other)| is_child(name, other)) {
            // A parent counts as its subtests, unless it failed with none of them failing.
            let child_failed = tests
                .iter()
                .any(|(s, other)| *s == "FAIL" && is_child(name, other));
            if *status == "FAIL" && !child_failed {
                c.failed += 1;
                c.fail(name);
            }
            continue;
        }
        match *status {
            "PASS" => c.passed += 1,
            "FAIL" => {
                c.failed += 1;
                c.fail(name);
            }
            _ => c.ignored += 1,
        }
    }
    let verbose = tests.iter().any(|(s, _)| *s != "FAIL");
    if verbose {
        c.counted = true;
    } else if ok_packages > 0 || !failed_packages.is_empty() {
        // Without -v: packages are what is counted.
        c.counted = true;
        c.passed = ok_packages;
        c.failed = c.failed.max(failed_packages.len() as u64);
        if c.failures.is_empty() {
            for package in failed_packages {
                c.fail(package);
            }
        }
    }
    c
}

/// `./calc.go:3:2: undefined: foo`
fn is_go_compiler_line(line: &str) -> bool {
    let mut parts = line.splitn(4, ':');
    let (Some(file), Some(row), Some(col), Some(_)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    file.ends_with(".go") && row.parse::<u32>().is_ok() && col.parse::<u32>().is_ok()
}
