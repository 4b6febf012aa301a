use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A private BotArmy home and database for one test.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.db_path().display())
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("botarmy.db")
    }

    pub fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary with this sandbox's environment and nothing inherited that could change
    /// its behaviour.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_botarmy"));
        for key in [
            "BOTARMY_PROVIDER",
            "BOTARMY_MODEL",
            "BOTARMY_CASSETTE",
            "BOTARMY_THREADS",
            "DATABASE_URL",
        ] {
            cmd.env_remove(key);
        }
        cmd.env("BOTARMY_HOME", self.home())
            .env("DATABASE_URL", self.database_url())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn replay(&self, cassette: &Path) -> Command {
        let mut cmd = self.cmd();
        cmd.env("BOTARMY_PROVIDER", "replay")
            .env("BOTARMY_CASSETTE", cassette);
        cmd
    }

    /// The binary on the real embedded model (CI fetches it; see `.ci/run`).
    pub fn local(&self) -> Command {
        let mut cmd = self.cmd();
        cmd.env("BOTARMY_MODEL", test_model());
        cmd
    }
}

pub fn test_model() -> PathBuf {
    let path = std::env::var("BOTARMY_TEST_MODEL").unwrap_or_else(|_| {
        panic!(
            "BOTARMY_TEST_MODEL is not set: run `botarmy model pull` and set it to \
             $BOTARMY_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf (.ci/run does both)"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "BOTARMY_TEST_MODEL={} is not a file",
        path.display()
    );
    path
}

pub fn cassette(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cassettes")
        .join(name)
}

pub fn fixtures() -> PathBuf {
    botarmy_testkit::fixtures::bmad_v4()
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and insists on success, showing stderr otherwise.
pub fn ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "command failed ({}):\n{}",
        o.status,
        stderr(&o)
    );
    o
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(o)))
}

/// A scripted model, served over OpenAI's wire format by a local server, and the way to
/// point the binary at it.
pub struct Scripted {
    pub server: botarmy_testkit::MockServer,
    _rt: tokio::runtime::Runtime,
}

impl Scripted {
    /// Serves every request with `reply(request, index of the request)`.
    pub fn start(
        reply: impl Fn(&botarmy_testkit::Recorded, usize) -> botarmy_testkit::Reply
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(botarmy_testkit::MockServer::start(reply));
        Self { server, _rt: rt }
    }

    /// `cmd` with the environment that makes every agent ask this model.
    pub fn configure<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("BOTARMY_PROVIDER", "openai")
            .env("BOTARMY_MODEL", "gpt-4o")
            .env("OPENAI_API_KEY", "sk-test-tools")
            .env("OPENAI_BASE_URL", &self.server.base)
    }
}

/// A whole answer of `text` in OpenAI's streaming wire format (one content chunk, the stop,
/// the usage), as reply number `index` of a [`Scripted`] model.
pub fn openai_stream(text: &str, index: usize, usage: (u32, u32)) -> botarmy_testkit::Reply {
    use serde_json::{Value, json};
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": format!("chatcmpl-{index}"), "object": "chat.completion.chunk", "created": 1_760_000_000, "model": "gpt-4o-2024-08-06",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    botarmy_testkit::Reply::Sse {
        events: vec![
            chunk(json!({"role": "assistant", "content": text}), Value::Null),
            chunk(json!({}), json!("stop")),
            format!(
                "data: {}\n\n",
                json!({"id": format!("chatcmpl-{index}"), "object": "chat.completion.chunk", "created": 1_760_000_000, "model": "gpt-4o-2024-08-06", "choices": [],
                       "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}})
            ),
            "data: [DONE]\n\n".to_string(),
        ],
        end: botarmy_testkit::End::Close,
    }
}

/// The test method whose agents use tools (and the writer, mediator and designer without).
pub fn toolwork() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/methods/toolwork")
}

/// A run's event log, as `botarmy events` prints it.
pub fn events(s: &Sandbox, run: &str) -> Vec<serde_json::Value> {
    stdout(&ok(s.cmd().args(["events", run])))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every message's text of a recorded chat request, joined.
pub fn prompt_of(request: &botarmy_testkit::Recorded) -> String {
    request.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
