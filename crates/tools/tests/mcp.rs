//! MCP servers' tools against a real MCP server: `tests/mcp_server.py`, written with the
//! `mcp` package from PyPI, over stdio and over streamable HTTP.
//!
//! The Python that runs it is `$BOTARMY_TEST_PYTHON`, else `python3`; `.ci/run` installs
//! the package.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use botarmy_tools::{
    KEPT_ENV, McpError, McpSelectError, McpServer, McpServerConfig, Tool, ToolError, ToolOutput,
    select_tools, server_env,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_server.py");

/// Every tool of the test server, by its name on the server.
const TOOLS: &[&str] = &[
    "add",
    "echo",
    "fail",
    "protocol_error",
    "slow",
    "pixel",
    "get.env",
    "env",
    "pid",
    "crash",
    "a.tool.name.long.enough.to.be.cut.at.sixty.four.characters.by.botarmy.one",
    "a.tool.name.long.enough.to.be.cut.at.sixty.four.characters.by.botarmy.two",
];

fn python() -> String {
    std::env::var("BOTARMY_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails (never skips) when the `mcp` package is missing, saying how to install it.
fn require_mcp_package() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let python = python();
        match std::process::Command::new(&python)
            .args(["-c", "import mcp.server.mcpserver"])
            .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "`{python}` cannot import the `mcp` package (2.x): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run `{python}`: {e}")),
        }
    });
    if let Err(problem) = checked {
        panic!(
            "{problem}\nThe MCP tests need a Python with the `mcp` package: run \
             `python3 -m pip install 'mcp>=2.3,<3'`, or point BOTARMY_TEST_PYTHON at the \
             python of a virtualenv that has it (.ci/run makes one)."
        );
    }
}

fn stdio(name: &str, extra: &[&str]) -> McpServerConfig {
    let mut args = vec![SERVER, "stdio"];
    args.extend_from_slice(extra);
    McpServerConfig::command(name, python(), args)
}

async fn connect(config: McpServerConfig) -> McpServer {
    require_mcp_package();
    match McpServer::connect(config).await {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

async fn call(server: &McpServer, tool: &str, arguments: Value) -> ToolOutput {
    let tool = server.tool(tool).unwrap();
    tool.call(&arguments).await.unwrap()
}

fn refused(servers: &[McpServer], entries: &[&str]) -> McpSelectError {
    match select_tools(servers, entries) {
        Err(e) => e,
        Ok(tools) => panic!("expected an error, got {:?}", names(&tools)),
    }
}

fn names(tools: &[std::sync::Arc<dyn Tool>]) -> Vec<String> {
    tools.iter().map(|t| t.spec().name.clone()).collect()
}

#[tokio::test]
async fn every_page_of_tools_is_listed_with_names_models_accept_and_schemas_as_given() {
    let server = connect(stdio("t", &["--page-size", "3"])).await;
    assert_eq!(server.name(), "t");
    assert_eq!(server.tool_names().collect::<Vec<_>>(), TOOLS);

    let exposed = names(&server.tools());
    let long = "t_a_tool_name_long_enough_to_be_cut_at_sixty_four_characters_by_";
    assert_eq!(long.len(), 64);
    assert_eq!(
        exposed,
        [
            "t_add",
            "t_echo",
            "t_fail",
            "t_protocol_error",
            "t_slow",
            "t_pixel",
            "t_get_env",
            "t_env",
            "t_pid",
            "t_crash",
            long,
            "t_a_tool_name_long_enough_to_be_cut_at_sixty_four_characters_b_2",
        ]
    );
    for name in &exposed {
        assert!(
            (1..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{name}"
        );
    }

    let add = server.tool("add").unwrap();
    assert_eq!(add.spec().description, "Adds two integers.");
    let schema = &add.spec().parameters;
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["a"]["type"], "integer");
    assert_eq!(schema["properties"]["b"]["type"], "integer");
    assert_eq!(schema["required"], json!(["a", "b"]));
    // An argument-less tool still gets an object schema with properties.
    let pid = server.tool("pid").unwrap();
    assert_eq!(pid.spec().parameters["type"], "object");
    assert_eq!(pid.spec().parameters["properties"], json!({}));
    server.close().await;
}

#[tokio::test]
async fn results_errors_and_other_content_come_back_as_outputs_for_the_model() {
    let server = connect(stdio("t", &[])).await;

    let sum = call(&server, "add", json!({"a": 2, "b": 3})).await;
    assert!(!sum.is_error, "{sum:?}");
    assert_eq!(sum.content, "5");
    assert_eq!(sum.summary, "t_add: 5");
    assert!(sum.changes.is_empty());

    let echoed = call(&server, "echo", json!({"text": "first line\nsecond line"})).await;
    assert_eq!(echoed.content, "first line\nsecond line");
    assert_eq!(echoed.summary, "t_echo: first line");

    let failed = call(&server, "fail", json!({"message": "the disk is full"})).await;
    assert!(failed.is_error, "{failed:?}");
    assert!(failed.content.contains("the disk is full"), "{failed:?}");
    assert!(failed.summary.starts_with("t_fail failed: "), "{failed:?}");

    let refused = call(&server, "protocol_error", json!({})).await;
    assert!(refused.is_error, "{refused:?}");
    assert!(
        refused.content.contains("the server refuses this call"),
        "{refused:?}"
    );

    let bad_arguments = call(&server, "add", json!({"a": "two", "b": 3})).await;
    assert!(bad_arguments.is_error, "{bad_arguments:?}");

    let not_an_object = call(&server, "add", json!([2, 3])).await;
    assert!(not_an_object.is_error, "{not_an_object:?}");
    assert!(
        not_an_object.content.contains("must be a JSON object"),
        "{not_an_object:?}"
    );

    let image = call(&server, "pixel", Value::Null).await;
    assert!(!image.is_error, "{image:?}");
    assert_eq!(image.content, "[image: image/png, 67 bytes]");
    server.close().await;
}

#[tokio::test]
async fn a_stdio_server_gets_the_kept_environment_and_its_own_not_our_secrets() {
    let ours: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("CARGO"))
        .collect();
    assert!(
        !ours.is_empty(),
        "cargo sets CARGO_* variables for tests; found none to check the server does not get"
    );
    let mut config = stdio("t", &[]);
    config
        .env
        .insert("BOTARMY_MCP_TEST_TOKEN".into(), "configured".into());
    let server = connect(config).await;

    let theirs = call(&server, "env", json!({})).await.content;
    let theirs: Vec<&str> = theirs.lines().collect();
    assert!(theirs.contains(&"BOTARMY_MCP_TEST_TOKEN"), "{theirs:?}");
    for name in &ours {
        assert!(
            !theirs.contains(&name.as_str()),
            "{name} leaked: {theirs:?}"
        );
    }
    let token = call(
        &server,
        "get.env",
        json!({"name": "BOTARMY_MCP_TEST_TOKEN"}),
    )
    .await;
    assert_eq!(token.content, "configured");
    let home = call(&server, "get.env", json!({"name": "HOME"})).await;
    assert_eq!(Some(home.content), std::env::var("HOME").ok());
    server.close().await;
}

#[test]
fn the_server_environment_is_the_kept_variables_plus_the_configured_ones() {
    let parent = [
        ("PATH", "/usr/bin"),
        ("HOME", "/home/me"),
        ("LC_TIME", "C"),
        ("OPENAI_API_KEY", "sk-secret"),
        ("ANTHROPIC_API_KEY", "secret"),
        ("TERM", "xterm"),
    ]
    .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    let configured = BTreeMap::from([
        ("NOTION_TOKEN".to_string(), "ntn".to_string()),
        ("TERM".to_string(), "dumb".to_string()),
    ]);
    let env = server_env(parent, &configured);
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (k.to_str().unwrap(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        env,
        [
            ("HOME", "/home/me"),
            ("LC_TIME", "C"),
            ("NOTION_TOKEN", "ntn"),
            ("PATH", "/usr/bin"),
            ("TERM", "dumb"),
        ]
    );
    assert!(KEPT_ENV.contains(&"PATH") && !KEPT_ENV.iter().any(|k| k.contains("KEY")));
}

#[tokio::test]
async fn a_call_past_its_time_limit_is_unavailable_and_the_server_stays_usable() {
    let mut config = stdio("t", &[]);
    config.timeout_secs = 5;
    let server = connect(config).await;
    let slow = server.tool("slow").unwrap();

    tokio::time::pause();
    let timed_out = slow.call(&json!({"seconds": 600})).await;
    tokio::time::resume();
    match timed_out {
        Err(ToolError::Unavailable { tool, message }) => {
            assert_eq!(tool, "t_slow");
            assert!(message.contains("within 5 s"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let sum = call(&server, "add", json!({"a": 1, "b": 1})).await;
    assert_eq!(sum.content, "2");
    server.close().await;
}

#[tokio::test]
async fn the_tools_of_a_server_that_exited_are_unavailable() {
    let server = connect(stdio("t", &[])).await;
    let crash = server.tool("crash").unwrap();
    let add = server.tool("add").unwrap();

    let crashed = crash.call(&json!({})).await;
    assert!(
        matches!(&crashed, Err(ToolError::Unavailable { tool, .. }) if tool == "t_crash"),
        "{crashed:?}"
    );
    let after = add.call(&json!({"a": 1, "b": 2})).await;
    match after {
        Err(ToolError::Unavailable { tool, message }) => {
            assert_eq!(tool, "t_add");
            assert!(message.contains("MCP server `t`"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_does_not_start_is_an_error_with_its_last_words() {
    require_mcp_package();
    let dies = McpServerConfig::command(
        "dies",
        python(),
        [
            "-c",
            "import sys; print('cannot open the database', file=sys.stderr); sys.exit(2)",
        ],
    );
    match McpServer::connect(dies).await {
        Err(e @ McpError::Initialize { .. }) => {
            let message = e.to_string();
            assert!(message.starts_with("MCP server `dies`"), "{message}");
            assert!(message.contains("cannot open the database"), "{message}");
        }
        other => panic!("expected Initialize, got {other:?}"),
    }

    let missing = McpServerConfig::command("missing", "/nonexistent/mcp-server", [""; 0]);
    match McpServer::connect(missing).await {
        Err(McpError::Spawn {
            server, command, ..
        }) => {
            assert_eq!(server, "missing");
            assert_eq!(command, "/nonexistent/mcp-server");
        }
        other => panic!("expected Spawn, got {other:?}"),
    }

    // Answers nothing on stdout: the connect time limit ends the wait.
    let mut silent =
        McpServerConfig::command("silent", python(), ["-c", "import sys; sys.stdin.read()"]);
    silent.connect_timeout_secs = 3;
    tokio::time::pause();
    let result = McpServer::connect(silent).await;
    tokio::time::resume();
    assert!(
        matches!(&result, Err(McpError::Timeout { server, seconds: 3, .. }) if server == "silent"),
        "{result:?}"
    );
}

/// Waits until process `pid` is gone (`tail --pid` watches it), at most a minute.
async fn gone(pid: &str) -> bool {
    let watcher = tokio::process::Command::new("tail")
        .args(["--pid", pid, "-f", "/dev/null"])
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(60), watcher).await,
        Ok(Ok(status)) if status.success()
    )
}

#[tokio::test]
async fn closing_or_dropping_a_server_ends_its_process() {
    let closed = connect(stdio("closed", &[])).await;
    let closed_pid = call(&closed, "pid", json!({})).await.content;
    let dropped = connect(stdio("dropped", &[])).await;
    let dropped_pid = call(&dropped, "pid", json!({})).await.content;
    let tool = dropped.tool("add").unwrap();

    closed.close().await;
    assert!(gone(&closed_pid).await, "process {closed_pid} still runs");
    drop(dropped);
    assert!(gone(&dropped_pid).await, "process {dropped_pid} still runs");
    // A tool outliving its server says so.
    let after = tool.call(&json!({"a": 1, "b": 2})).await;
    assert!(
        matches!(after, Err(ToolError::Unavailable { .. })),
        "{after:?}"
    );
}

#[tokio::test]
async fn agents_select_all_tools_of_a_server_or_single_ones() {
    let a = connect(stdio("a", &[])).await;
    let a_get = connect(stdio("a_get", &[])).await;
    let servers = [a, a_get];

    let picked =
        select_tools(&servers, &["file_read", "mcp:a/echo", "mcp:a", "mcp:a/add"]).unwrap();
    let picked = names(&picked);
    assert_eq!(picked.len(), TOOLS.len(), "{picked:?}");
    assert_eq!(picked[0], "a_echo");
    assert_eq!(picked[1], "a_add");

    let one = select_tools(&servers, &["mcp:a_get/get.env"]).unwrap();
    assert_eq!(names(&one), ["a_get_get_env"]);
    assert!(
        select_tools(&servers, &["file_read", "bash"])
            .unwrap()
            .is_empty()
    );

    let unknown_server = refused(&servers, &["mcp:notion"]);
    assert_eq!(
        unknown_server,
        McpSelectError::UnknownServer {
            entry: "mcp:notion".into(),
            server: "notion".into(),
            known: vec!["a".into(), "a_get".into()],
        }
    );
    assert_eq!(
        unknown_server.to_string(),
        "tool entry `mcp:notion`: there is no MCP server `notion`; configured servers: a, a_get"
    );
    match refused(&servers, &["mcp:a/nope"]) {
        McpSelectError::UnknownTool {
            server,
            tool,
            known,
            ..
        } => {
            assert_eq!((server.as_str(), tool.as_str()), ("a", "nope"));
            assert_eq!(known, TOOLS);
        }
        other => panic!("expected UnknownTool, got {other:?}"),
    }

    // `a` + `get.env` and `a_get` + `env` would both be `a_get_env`.
    let clash = refused(&servers, &["mcp:a", "mcp:a_get"]);
    assert_eq!(
        clash,
        McpSelectError::NameClash {
            name: "a_get_env".into(),
            first: "a/get.env".into(),
            second: "a_get/env".into(),
        }
    );
    let [a, a_get] = servers;
    a.close().await;
    a_get.close().await;
}

/// The test server over streamable HTTP, and its address once it accepts connections.
async fn http_server(token: &str) -> (tokio::process::Child, String) {
    require_mcp_package();
    let mut child = tokio::process::Command::new(python())
        .args([SERVER, "http", "--token", token])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the HTTP server printed nothing within a minute")
        .unwrap()
        .expect("the HTTP server exited before listening");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    (child, url)
}

#[tokio::test]
async fn a_streamable_http_server_is_reached_with_its_headers() {
    let (mut process, url) = http_server("s3cret").await;

    let mut config = McpServerConfig::url("web", &url);
    config
        .headers
        .insert("Authorization".into(), "Bearer s3cret".into());
    let server = connect(config).await;
    assert_eq!(server.tool_names().collect::<Vec<_>>(), TOOLS);
    let sum = call(&server, "add", json!({"a": 20, "b": 22})).await;
    assert_eq!(sum.content, "42");
    assert_eq!(sum.summary, "web_add: 42");
    let failed = call(&server, "fail", json!({"message": "nope"})).await;
    assert!(
        failed.is_error && failed.content.contains("nope"),
        "{failed:?}"
    );

    let mut wrong = McpServerConfig::url("web", &url);
    wrong
        .headers
        .insert("Authorization".into(), "Bearer guess".into());
    let refused = McpServer::connect(wrong).await;
    assert!(
        matches!(&refused, Err(McpError::Initialize { server, .. }) if server == "web"),
        "{refused:?}"
    );

    process.kill().await.unwrap();
    let after = server
        .tool("add")
        .unwrap()
        .call(&json!({"a": 1, "b": 1}))
        .await;
    assert!(
        matches!(&after, Err(ToolError::Unavailable { tool, .. }) if tool == "web_add"),
        "{after:?}"
    );
    server.close().await;
}

#[tokio::test]
async fn an_unreachable_url_is_an_error_naming_the_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut config = McpServerConfig::url("gone", format!("http://127.0.0.1:{port}/mcp"));
    config.connect_timeout_secs = 30;
    let result = McpServer::connect(config).await;
    match result {
        Err(e @ McpError::Initialize { .. }) => {
            assert!(e.to_string().starts_with("MCP server `gone`"), "{e}")
        }
        other => panic!("expected Initialize, got {other:?}"),
    }
}

fn config_error(config: McpServerConfig) -> String {
    match config.validate() {
        Err(e @ McpError::Config { .. }) => e.to_string(),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn configurations_are_read_from_toml_tables_and_checked() {
    let tables: BTreeMap<String, McpServerConfig> = toml::from_str(
        r#"
        [files]
        command = "npx"
        args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
        env = { LOG_LEVEL = "debug" }

        [notion]
        url = "https://mcp.example.com/mcp"
        headers = { Authorization = "Bearer abc" }
        timeout_secs = 120
        "#,
    )
    .unwrap();
    let configs: Vec<McpServerConfig> = tables
        .into_iter()
        .map(|(name, config)| config.named(name))
        .collect();
    assert_eq!(configs[0].name, "files");
    assert_eq!(configs[0].command.as_deref(), Some("npx"));
    assert_eq!(configs[0].timeout_secs, 60);
    assert_eq!(configs[0].connect_timeout_secs, 60);
    assert_eq!(configs[1].name, "notion");
    assert_eq!(configs[1].timeout(), Duration::from_secs(120));
    for config in &configs {
        config.validate().unwrap();
    }

    let unknown = toml::from_str::<McpServerConfig>("command = \"x\"\nargz = []\n").unwrap_err();
    assert!(unknown.to_string().contains("argz"), "{unknown}");

    let named = |config: McpServerConfig| config.named("docs");
    assert_eq!(
        config_error(named(McpServerConfig::default())),
        "MCP server `docs`: give either `command` (a server started over stdio) or `url` (a \
         streamable HTTP server); found neither"
    );
    let mut both = McpServerConfig::command("docs", "x", [""; 0]);
    both.url = Some("http://localhost/mcp".into());
    assert_eq!(
        config_error(both),
        "MCP server `docs`: give either `command` or `url`, not both"
    );
    let mut url_with_args = McpServerConfig::url("docs", "http://localhost/mcp");
    url_with_args.args = vec!["-v".into()];
    assert!(config_error(url_with_args).contains("`args` is for a `command` server"));
    let mut command_with_headers = McpServerConfig::command("docs", "x", [""; 0]);
    command_with_headers
        .headers
        .insert("Authorization".into(), "x".into());
    assert!(config_error(command_with_headers).contains("`headers` are for a `url` server"));
    assert!(
        config_error(McpServerConfig::url("docs", "ftp://example.com/mcp"))
            .contains("must be an http:// or https:// address")
    );
    assert!(config_error(McpServerConfig::url("docs", "not a url")).contains("is not a URL"));
    let mut bad_header = McpServerConfig::url("docs", "http://localhost/mcp");
    bad_header
        .headers
        .insert("Authorization".into(), "Bearer a\nb".into());
    assert!(config_error(bad_header).contains("header `Authorization`"));
    let mut no_time = McpServerConfig::command("docs", "x", [""; 0]);
    no_time.timeout_secs = 0;
    assert!(config_error(no_time).contains("`timeout_secs` must be at least 1"));
    assert_eq!(
        config_error(McpServerConfig::command("my docs", "x", [""; 0])),
        "MCP server `my docs`: the name `my docs` must be letters, digits, `_` or `-` (at \
         least one)"
    );
    assert!(config_error(McpServerConfig::command("", "x", [""; 0])).contains("at least one"));
}
