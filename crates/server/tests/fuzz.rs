//! A schema-driven fuzz run: schemathesis (from PyPI) reads the server's OpenAPI document,
//! generates requests for every operation (examples, boundary values, random data, and
//! sequences that reuse what earlier answers returned) and checks that none is answered
//! with a server error. `st` is `$BOTARMY_TEST_SCHEMATHESIS`, else `st` on the PATH;
//! `.ci/run` installs it into a virtualenv of its own.
//!
//! The model never answers here (its permits are not released), so runs the fuzzer
//! creates stay at their first call: every route is reached without a run finishing under
//! it.

use crate::support::{Backend, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let st = std::env::var("BOTARMY_TEST_SCHEMATHESIS").unwrap_or_else(|_| "st".into());
    let mut server = start(Backend::Sqlite).await;
    // Links between operations come from the schema alone: links inferred from URLs seen in
    // answers also match texts the fuzzer made up and echoed back (an idea that reads
    // "/api/sessions"), and schemathesis then refuses its own link as invalid.
    let config = tempfile::tempdir().unwrap();
    let config_file = config.path().join("schemathesis.toml");
    std::fs::write(
        &config_file,
        "[phases.stateful.inference]\nalgorithms = [\"dependency-analysis\"]\n",
    )
    .unwrap();
    let output = tokio::process::Command::new(&st)
        // Its cache (`.schemathesis/`) goes there too, not into the source tree.
        .current_dir(config.path())
        .arg("--config-file")
        .arg(&config_file)
        .args([
            "run",
            &format!("{}/api/openapi.json", server.http),
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "15",
            // One worker: with more, Hypothesis's own source parsing races between threads
            // and fails a case for reasons of its own ("AST constructor recursion depth
            // mismatch"), not the server's.
            "--workers",
            "1",
            "--seed",
            "20261121",
            "--no-color",
        ])
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run `{st}` ({e}); install schemathesis or set BOTARMY_TEST_SCHEMATHESIS")
        });
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It did test every operation the document describes.
    let tested = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .unwrap_or_else(|| panic!("no summary in:\n{report}"));
    let selected = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .unwrap();
    assert_eq!(
        Some(tested),
        selected.split('/').next(),
        "every selected operation was tested:\n{report}"
    );
    assert!(tested.parse::<u32>().unwrap() >= 30, "{report}");
    server.shutdown().await;
}
