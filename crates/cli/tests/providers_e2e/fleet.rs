//! The providers of the end-to-end runs: a local server per provider, the `botarmy.toml`
//! and environment that point the agents at them, and the prices the test expects.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use botarmy_testkit::google::{ServiceAccount, TokenEndpoint, vertex_server};
use botarmy_testkit::{MockServer, Responder, Tokens, Wire, failing};

pub(super) const OPENAI_KEY: &str = "sk-e2e-openai-0123456789";
pub(super) const ANTHROPIC_KEY: &str = "sk-ant-e2e-0123456789";
pub(super) const GEMINI_KEY: &str = "AIza-e2e-gemini-0123456789";
pub(super) const GPU_BOX_KEY: &str = "gpu-box-token-0123456789";

/// Dollars per million tokens: input, output, cached input (`None`: billed as input).
struct Price {
    input: f64,
    output: f64,
    cached: Option<f64>,
}

/// One working provider: its id in botarmy.toml, the model its agent asks for, what
/// answers, and the price the test's `[pricing]` gives the model.
pub(super) struct Mock {
    pub(super) provider: &'static str,
    pub(super) model: &'static str,
    pub(super) agent: &'static str,
    pub(super) responder: Responder,
    pub(super) server: MockServer,
    price: Price,
}

impl Mock {
    /// The label its answers carry ("Written by `model` at LABEL.").
    pub(super) fn label(&self) -> String {
        format!("{}-mock", self.provider)
    }

    /// What its answers so far cost, by the test's own reading of the price table.
    pub(super) fn cost(&self) -> f64 {
        self.responder
            .answered()
            .iter()
            .map(|a| cost(&self.price, a.tokens))
            .sum()
    }

    /// The tokens of its answers so far, summed.
    pub(super) fn tokens(&self) -> Tokens {
        self.responder
            .answered()
            .iter()
            .fold(Tokens::default(), |sum, a| Tokens {
                input: sum.input + a.tokens.input,
                cached: sum.cached + a.tokens.cached,
                output: sum.output + a.tokens.output,
            })
    }
}

fn cost(price: &Price, t: Tokens) -> f64 {
    let fresh = (t.input - t.cached) as f64 * price.input;
    let cached = t.cached as f64 * price.cached.unwrap_or(price.input);
    (fresh + cached + t.output as f64 * price.output) / 1_000_000.0
}

/// Every provider of the test, each on its own port, served by a runtime of their own (the
/// binary runs as a child process meanwhile).
pub(super) struct Fleet {
    pub(super) mocks: Vec<Mock>,
    /// The architect's first provider: an Anthropic endpoint that answers 503 to everything.
    pub(super) down: MockServer,
    /// Google's token endpoint, on the Vertex mock's server.
    pub(super) token: TokenEndpoint,
    key_file: PathBuf,
    config_file: PathBuf,
    // Last: the servers stop before their runtime.
    _runtime: tokio::runtime::Runtime,
}

impl Fleet {
    pub(super) fn start(dir: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let account = Arc::new(ServiceAccount::generate());
        let (mocks, down, token) = runtime.block_on(async {
            let mut mocks = Vec::new();
            let mut add = |provider, model, agent, responder: Responder, server, price| {
                mocks.push(Mock {
                    provider,
                    model,
                    agent,
                    responder,
                    server,
                    price,
                });
            };
            let openai = Responder::new(Wire::ChatCompletions, "openai-mock")
                .requiring("authorization", &format!("Bearer {OPENAI_KEY}"));
            let server = openai.serve().await;
            let price = Price {
                input: 30.0,
                output: 60.0,
                cached: Some(7.5),
            };
            add("openai", "gpt-4.1-mini", "analyst", openai, server, price);

            let anthropic = Responder::new(Wire::Messages, "anthropic-mock")
                .requiring("x-api-key", ANTHROPIC_KEY);
            let server = anthropic.serve().await;
            let price = Price {
                input: 10.0,
                output: 50.0,
                cached: Some(1.0),
            };
            add(
                "anthropic",
                "claude-haiku-4-5",
                "architect",
                anthropic,
                server,
                price,
            );

            let gemini = Responder::new(Wire::GenerateContent, "gemini-mock")
                .requiring("x-goog-api-key", GEMINI_KEY);
            let server = gemini.serve().await;
            let price = Price {
                input: 3.0,
                output: 25.0,
                cached: Some(0.75),
            };
            add("gemini", "gemini-2.5-flash", "coder", gemini, server, price);

            let gpu_box = Responder::new(Wire::ChatCompletions, "gpu-box-mock")
                .requiring("authorization", &format!("Bearer {GPU_BOX_KEY}"));
            let server = gpu_box.serve().await;
            let price = Price {
                input: 2.0,
                output: 4.0,
                cached: None,
            };
            add(
                "gpu-box",
                "qwen2.5-coder:7b",
                "tester",
                gpu_box,
                server,
                price,
            );

            let vertex = Responder::new(Wire::GenerateContent, "vertex-mock");
            let (server, token) = vertex_server(account.clone(), vertex.clone()).await;
            let price = Price {
                input: 12.5,
                output: 100.0,
                cached: Some(3.125),
            };
            add(
                "vertex",
                "gemini-2.5-pro",
                "deployer",
                vertex,
                server,
                price,
            );

            let down = failing(
                Wire::Messages,
                503,
                "The service is temporarily unavailable in this region.",
            )
            .await;
            (mocks, down, token)
        });
        let key_file = account.write_key_file(dir, token.token_uri()).unwrap();
        let config_file = dir.join("providers.toml");
        let fleet = Self {
            mocks,
            down,
            token,
            key_file,
            config_file,
            _runtime: runtime,
        };
        std::fs::write(&fleet.config_file, fleet.botarmy_toml()).unwrap();
        fleet
    }

    pub(super) fn mock(&self, provider: &str) -> &Mock {
        self.mocks.iter().find(|m| m.provider == provider).unwrap()
    }

    pub(super) fn for_agent(&self, agent: &str) -> &Mock {
        // An agent without a route of its own asks the default provider.
        self.mocks
            .iter()
            .find(|m| m.agent == agent)
            .unwrap_or_else(|| self.mock("openai"))
    }

    /// Agents, failover, endpoints of the providers the environment has no variable for,
    /// and prices.
    fn botarmy_toml(&self) -> String {
        let base = |p: &str| &self.mock(p).server.base;
        let mut toml = format!(
            r#"# Everyone without a route of their own asks OpenAI.
provider = "openai"
model = "gpt-4.1-mini"

# A second Anthropic endpoint (a regional one) for the architect, which is down.
[providers.anthropic-eu]
kind = "anthropic"
base_url = "{down}"
model = "claude-sonnet-4-5"
retry = {{ max_retries = 1, base_delay = 1, max_delay = 2 }}

[providers.gpu-box]
kind = "openai-compatible"
base_url = "{gpu_box}/v1"
api_key_env = "GPU_BOX_API_KEY"
model = "qwen2.5-coder:7b"

[providers.vertex]
base_url = "{vertex}"
project = "acme-dev"
region = "europe-west4"
model = "gemini-2.5-pro"

[agents.architect]
provider = "anthropic-eu"
failover = ["anthropic/claude-haiku-4-5"]

[agents.coder]
provider = "gemini"
model = "gemini-2.5-flash"

[agents.tester]
provider = "gpu-box"

[agents.deployer]
provider = "vertex"

[pricing]
as_of = "2026-11-01"

[pricing.providers.anthropic-eu.models."claude-sonnet-4-5"]
input_per_mtok = 30.0
output_per_mtok = 150.0
"#,
            down = self.down.base,
            gpu_box = base("gpu-box"),
            vertex = base("vertex"),
        );
        for m in &self.mocks {
            toml.push_str(&format!(
                "\n[pricing.providers.{}.models.\"{}\"]\ninput_per_mtok = {:?}\noutput_per_mtok = {:?}\n",
                m.provider, m.model, m.price.input, m.price.output
            ));
            if let Some(cached) = m.price.cached {
                toml.push_str(&format!("cached_input_per_mtok = {cached:?}\n"));
            }
        }
        toml
    }

    /// `cmd` configured like a user's shell: keys and endpoints in the environment, the
    /// analyst's route too; the rest in the file. Nothing inherited that could change it.
    pub(super) fn configure<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        for agent in [
            "ANALYST",
            "ARCHITECT",
            "CODER",
            "TESTER",
            "DEPLOYER",
            "REVIEWER",
            "RISK",
        ] {
            for what in ["PROVIDER", "MODEL", "FAILOVER"] {
                cmd.env_remove(format!("{agent}_AGENT_{what}"));
            }
        }
        for var in [
            "GOOGLE_API_KEY",
            "OLLAMA_BASE_URL",
            "GOOGLE_CLOUD_PROJECT",
            "GOOGLE_CLOUD_REGION",
            "OPENAI_COMPATIBLE_API_KEY",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        let base = |p: &str| self.mock(p).server.base.clone();
        cmd.env("BOTARMY_CONFIG", &self.config_file)
            .env("OPENAI_API_KEY", OPENAI_KEY)
            .env("OPENAI_BASE_URL", format!("{}/v1", base("openai")))
            .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
            .env("ANTHROPIC_BASE_URL", base("anthropic"))
            .env("GEMINI_API_KEY", GEMINI_KEY)
            .env("GEMINI_BASE_URL", base("gemini"))
            .env("GPU_BOX_API_KEY", GPU_BOX_KEY)
            .env("GOOGLE_APPLICATION_CREDENTIALS", &self.key_file)
            .env("ANALYST_AGENT_PROVIDER", "openai")
            .env("ANALYST_AGENT_MODEL", "gpt-4.1-mini")
    }

    /// Chat requests received by every working mock (Vertex's token requests left out).
    pub(super) fn chat_requests(&self) -> usize {
        self.mocks
            .iter()
            .map(|m| {
                m.server
                    .requests()
                    .iter()
                    .filter(|r| r.path() != "/token")
                    .count()
            })
            .sum()
    }

    /// What every answer so far cost.
    pub(super) fn cost(&self) -> f64 {
        self.mocks.iter().map(Mock::cost).sum()
    }
}
