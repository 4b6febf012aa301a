//! The whole builtin lifecycle on cloud providers: every agent on a different one, each a
//! local server speaking that provider's wire format (OpenAI, Anthropic, Gemini, an
//! OpenAI-compatible server, Vertex AI with its token endpoint), one agent's first provider
//! down; configured as a user would, keys and endpoints in the environment, agents, failover
//! and prices in `botarmy.toml`. Then the same run stopped by its budget and resumed.

mod fleet;

use std::collections::BTreeMap;

use botarmy_testkit::Tokens;
use serde_json::Value;

use crate::support::*;
use fleet::{ANTHROPIC_KEY, Fleet, GEMINI_KEY, GPU_BOX_KEY, Mock, OPENAI_KEY};

const IDEA: &str = "a command-line todo app in Rust";
const MAX_TOKENS: u64 = 64;

/// The 17 documents of the builtin lifecycle, by the agent that writes them (the risk
/// agent has no route of its own: it asks the default provider, OpenAI, as the analyst).
const DOCUMENTS: [(&str, &[&str]); 6] = [
    (
        "analyst",
        &[
            "project-plan.md",
            "user-requirements.md",
            "success-criteria.md",
            "feature-breakdown.md",
            "acceptance-criteria.md",
        ],
    ),
    (
        "architect",
        &[
            "technical-architecture.md",
            "api-specification.md",
            "data-models.md",
        ],
    ),
    (
        "coder",
        &["source-code.md", "unit-tests.md", "documentation.md"],
    ),
    (
        "tester",
        &[
            "test-results.md",
            "quality-report.md",
            "performance-metrics.md",
        ],
    ),
    (
        "deployer",
        &[
            "deployment-plan.md",
            "environment-config.md",
            "monitoring-setup.md",
        ],
    ),
    ("risk", &["risk-cards.md"]),
];

/// How many calls the agents routed to `provider` make: their documents, and the
/// conflict checks when the reviewer is one of them.
fn documents_on(fleet: &Fleet, provider: &str) -> usize {
    let checks = if fleet.for_agent("reviewer").provider == provider {
        CONFLICT_CHECKS
    } else {
        0
    };
    DOCUMENTS
        .iter()
        .filter(|(a, _)| fleet.for_agent(a).provider == provider)
        .map(|(_, names)| names.len())
        .sum::<usize>()
        + checks
}

/// The reviewer's conflict check after each phase: one call each when it finds nothing
/// (the mocks answer with a document, which names no conflict).
const CONFLICT_CHECKS: usize = 6;

/// Calls of a whole run: one per document, one per conflict check.
const CALLS: usize = 18 + CONFLICT_CHECKS;

/// The events of one type.
fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-6)
}

/// Asserts what every request to a working mock looked like.
fn check_requests(fleet: &Fleet) {
    let openai = fleet.mock("openai").server.requests();
    for r in &openai {
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/v1/chat/completions")
        );
        assert_eq!(
            r.header("authorization"),
            Some(&*format!("Bearer {OPENAI_KEY}"))
        );
        let body = r.json();
        assert_eq!(body["model"], "gpt-4.1-mini");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], MAX_TOKENS);
        assert_eq!(body["messages"][0]["role"], "system");
    }
    for r in &fleet.mock("anthropic").server.requests() {
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/v1/messages")
        );
        assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY));
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(r.header("authorization"), None);
        let body = r.json();
        assert_eq!(body["model"], "claude-haiku-4-5");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], MAX_TOKENS);
        assert!(
            body["system"].is_string() || body["system"].is_array(),
            "{body}"
        );
    }
    for r in &fleet.mock("gemini").server.requests() {
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            (
                "POST",
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            )
        );
        assert_eq!(r.header("x-goog-api-key"), Some(GEMINI_KEY));
        assert_eq!(r.header("authorization"), None);
        let body = r.json();
        assert_eq!(body["generationConfig"]["maxOutputTokens"], MAX_TOKENS);
        assert!(body["systemInstruction"]["parts"][0]["text"].is_string());
    }
    for r in &fleet.mock("gpu-box").server.requests() {
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/v1/chat/completions")
        );
        assert_eq!(
            r.header("authorization"),
            Some(&*format!("Bearer {GPU_BOX_KEY}"))
        );
        let body = r.json();
        assert_eq!(body["model"], "qwen2.5-coder:7b");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], MAX_TOKENS);
    }
    let vertex = fleet.mock("vertex").server.requests();
    assert_eq!(vertex[0].target, "/token", "a token before the first call");
    for r in &vertex[1..] {
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            (
                "POST",
                "/v1/projects/acme-dev/locations/europe-west4/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
            )
        );
        assert_eq!(r.header("authorization"), Some("Bearer ya29.token-1"));
        assert_eq!(r.header("x-goog-api-key"), None);
        assert_eq!(r.json()["generationConfig"]["maxOutputTokens"], MAX_TOKENS);
    }
    assert_eq!(
        fleet.token.checks(),
        [Ok(())],
        "one token exchange, with a JWT signed by the service account"
    );
    // Every request was answered (none refused for a wrong key, path or body).
    for m in &fleet.mocks {
        let chats = m
            .server
            .requests()
            .iter()
            .filter(|r| r.path() != "/token")
            .count();
        assert_eq!(m.responder.answered().len(), chats, "{}", m.provider);
        assert!(
            m.responder
                .answered()
                .iter()
                .all(|a| a.model == m.model && a.streamed),
            "{}",
            m.provider
        );
    }
}

#[test]
fn every_agent_on_its_own_provider_through_the_whole_lifecycle() {
    let s = Sandbox::new();
    let fleet = Fleet::start(s.dir.path());
    let out = s.out("out");

    let o = ok(fleet
        .configure(&mut s.cmd())
        .args([
            "run",
            IDEA,
            "--yes",
            "--gate-policy",
            "auto",
            "--json",
            "--max-tokens",
            &MAX_TOKENS.to_string(),
            "--out",
        ])
        .arg(&out));

    let summary = json(&o);
    assert_eq!(summary["status"], "succeeded", "{summary}");
    let run = summary["run_id"].as_str().unwrap().to_owned();

    // Every step's document is on disk, written from its agent's provider.
    for (agent, names) in DOCUMENTS {
        let mock = fleet.for_agent(agent);
        for name in names {
            let text =
                std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(text.starts_with("# "), "{name}: {text}");
            assert!(
                text.contains(&format!("Written by `{}` at {}.", mock.model, mock.label())),
                "{name} comes from {}: {text}",
                mock.provider
            );
        }
    }

    // Each provider got its agents' calls, one per step, on its own wire.
    for (agent, _) in DOCUMENTS {
        let mock = fleet.for_agent(agent);
        assert_eq!(
            mock.responder.answered().len(),
            documents_on(&fleet, mock.provider),
            "{agent} on {}",
            mock.provider
        );
    }
    check_requests(&fleet);

    // The architect's first provider was down: every request to it is a recorded failed
    // attempt; the answers came from its failover.
    let events = events(&s, &run);
    let failed = of_type(&events, "llm_call_failed");
    let down = fleet.down.requests();
    assert!(!down.is_empty(), "the failing provider was tried");
    for r in &down {
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/v1/messages")
        );
        assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY));
        assert_eq!(r.json()["model"], "claude-sonnet-4-5");
    }
    assert!(!failed.is_empty());
    for f in &failed {
        assert_eq!(f["provider"], "anthropic-eu", "{f}");
        assert_eq!(f["model"], "claude-sonnet-4-5", "{f}");
        let message = f["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("503") || message.contains("circuit breaker"),
            "{f}"
        );
    }
    let tried = failed
        .iter()
        .filter(|f| {
            !f["error"]["message"]
                .as_str()
                .unwrap()
                .contains("circuit breaker")
        })
        .count();
    assert_eq!(
        tried,
        down.len(),
        "one failed-call record per request to the failing server"
    );
    assert!(
        failed.iter().any(|f| f["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temporarily unavailable")),
        "the provider's own message is kept: {failed:?}"
    );

    // Completed calls: one per step, from the expected provider and model.
    let completed = of_type(&events, "llm_call_completed");
    assert_eq!(completed.len(), CALLS);
    let show = json(&ok(s.cmd().args(["show", &run, "--json"])));
    let steps = show["steps"].as_array().unwrap();
    for c in &completed {
        let step = &steps[c["step"].as_u64().unwrap() as usize];
        let mock = fleet.for_agent(step["agent"].as_str().unwrap());
        assert_eq!(c["provider"], mock.provider, "{c}");
        assert_eq!(c["model"], mock.model, "{c}");
    }

    // The run cost what the answers' usage costs at the configured prices.
    let usage = &show["run"]["usage"];
    let expected = fleet.cost();
    let reported = usage["cost_usd"].as_f64().unwrap();
    assert!(expected > 0.0);
    assert!(
        close(reported, expected),
        "run cost {reported}, priced usage {expected}"
    );
    let tokens = fleet
        .mocks
        .iter()
        .map(Mock::tokens)
        .fold(Tokens::default(), |s, t| Tokens {
            input: s.input + t.input,
            cached: s.cached + t.cached,
            output: s.output + t.output,
        });
    assert_eq!(usage["input_tokens"], tokens.input);
    assert_eq!(usage["cached_tokens"], tokens.cached);
    assert_eq!(usage["output_tokens"], tokens.output);
    let runs = json(&ok(s.cmd().args(["runs", "--json"])));
    let listed = runs[0]["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        close(listed, expected),
        "runs says {listed}, priced usage {expected}"
    );
}

#[test]
fn a_budget_stops_the_run_and_a_larger_one_finishes_it_without_repeating_a_call() {
    let s = Sandbox::new();
    let fleet = Fleet::start(s.dir.path());
    let budget = 0.05;

    // One step at a time, so the run stops at the same call every time.
    let o = run(fleet.configure(&mut s.cmd()).args([
        "run",
        IDEA,
        "--yes",
        "--gate-policy",
        "auto",
        "--max-parallel",
        "1",
        "--max-tokens",
        &MAX_TOKENS.to_string(),
        "--budget-usd",
        &budget.to_string(),
    ]));

    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(75),
        "a run waiting on its budget exits with 75 (try again later):\n{err}"
    );
    assert!(
        err.contains("waiting: budget: the run budget of $0.05 would be exceeded"),
        "{err}"
    );
    let runs = json(&ok(s.cmd().args(["runs", "--json"])));
    assert_eq!(runs[0]["status"], "waiting");
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    let spent = runs[0]["usage"]["cost_usd"].as_f64().unwrap();
    assert!(spent <= budget, "spent {spent} of {budget}");
    assert!(
        close(spent, fleet.cost()),
        "spent {spent}, priced usage {}",
        fleet.cost()
    );
    let answered: BTreeMap<&str, usize> = fleet
        .mocks
        .iter()
        .map(|m| (m.provider, m.responder.answered().len()))
        .collect();
    let made = fleet.chat_requests();
    assert!(
        made > 0 && made < CALLS,
        "the budget lets some calls through, not all: {answered:?}"
    );
    let completed = of_type(&events(&s, &run_id), "llm_call_completed").len();
    assert_eq!(completed, made, "every call made is recorded");

    let o = ok(fleet.configure(&mut s.cmd()).args([
        "resume",
        &run_id,
        "--budget-usd",
        "100",
        "--json",
    ]));

    assert_eq!(json(&o)["status"], "succeeded");
    // Every step's call was made exactly once over both commands: the calls made before the
    // stop were not made again.
    for (agent, _) in DOCUMENTS {
        let mock = fleet.for_agent(agent);
        assert_eq!(
            mock.responder.answered().len(),
            documents_on(&fleet, mock.provider),
            "{agent}"
        );
    }
    assert_eq!(fleet.chat_requests(), CALLS);
    let events = events(&s, &run_id);
    assert_eq!(of_type(&events, "llm_call_completed").len(), CALLS);
    assert_eq!(of_type(&events, "budget_changed").len(), 1);
    let show = json(&ok(s.cmd().args(["show", &run_id, "--json"])));
    assert!(
        show["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["version"] == 1),
        "no document was written twice"
    );
    let total = show["run"]["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        close(total, fleet.cost()),
        "run cost {total}, priced usage {}",
        fleet.cost()
    );
}
