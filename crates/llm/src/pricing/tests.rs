//! Tests of the price table: the built-in file, matching, costs, overrides, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn usage(input: u64, cached: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_tokens: cached,
        ..Usage::default()
    }
}

fn priced(table: &PriceTable, provider: &str, model: &str) -> Price {
    match table.lookup(provider, model) {
        PriceLookup::Priced(p) => p,
        other => panic!("{provider}/{model}: expected a price, got {other:?}"),
    }
}

#[test]
fn builtin_table_parses() {
    let table = PriceTable::from_toml(BUILTIN, "pricing.toml").unwrap();
    assert_eq!(table.as_of(), Some("2026-11-21"));
    assert!(table.entries().len() > 30, "{:?}", table.entries());
    assert_eq!(PriceTable::builtin(), table);
}

#[test]
fn builtin_table_covers_the_current_models_of_each_provider() {
    let t = PriceTable::builtin();
    for (provider, model) in [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1"),
        ("openai", "gpt-4.1-mini"),
        ("openai", "gpt-4.1-nano"),
        ("openai", "o3"),
        ("openai", "o4-mini"),
        ("openai", "gpt-5"),
        ("openai", "gpt-5-mini"),
        ("openai", "gpt-5-nano"),
        ("anthropic", "claude-opus-4-1-20250805"),
        ("anthropic", "claude-opus-4-5-20251101"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5"),
        ("anthropic", "claude-3-5-haiku-20241022"),
        ("gemini", "gemini-2.5-pro"),
        ("gemini", "gemini-2.5-flash"),
        ("gemini", "gemini-2.0-flash"),
        ("vertex", "gemini-2.5-pro"),
    ] {
        let p = priced(&t, provider, model);
        assert!(
            p.input_per_mtok > 0.0 && p.output_per_mtok >= p.input_per_mtok,
            "{provider}/{model}: {p:?}"
        );
        if let Some(c) = p.cached_input_per_mtok {
            assert!(c < p.input_per_mtok, "{provider}/{model}: {p:?}");
        }
    }
    for (provider, model) in [
        ("local", "smollm2-135m-instruct"),
        ("replay", "anything"),
        ("ollama", "llama3.2"),
    ] {
        assert_eq!(t.lookup(provider, model), PriceLookup::Free);
    }
    assert_eq!(priced(&t, "gemini", "gemini-2.5-pro").as_of, "2025-10-08");
    assert_eq!(priced(&t, "openai", "gpt-4o").as_of, "2026-11-21");
}

#[test]
fn cached_tokens_are_part_of_the_input_and_billed_at_the_cached_rate() {
    let p = Price {
        input_per_mtok: 2.0,
        output_per_mtok: 8.0,
        cached_input_per_mtok: Some(0.5),
        as_of: "2026-01-01".into(),
    };
    // 600k fresh at $2 + 400k cached at $0.50 + 100k out at $8.
    let cost = p.cost(&usage(1_000_000, 400_000, 100_000));
    assert!((cost - (1.2 + 0.2 + 0.8)).abs() < 1e-12, "{cost}");
    // More cached than input (a provider's rounding) bills no negative fresh tokens.
    let cost = p.cost(&usage(100, 500, 0));
    assert!((cost - 100.0 * 0.5 / MTOK).abs() < 1e-15, "{cost}");
    // Without a cached rate every input token costs the input rate.
    let plain = Price {
        cached_input_per_mtok: None,
        ..p
    };
    let cost = plain.cost(&usage(1_000_000, 400_000, 0));
    assert!((cost - 2.0).abs() < 1e-12, "{cost}");
    assert_eq!(plain.cost(&Usage::default()), 0.0);
}

#[test]
fn models_match_exactly_then_by_the_longest_prefix_at_a_dash() {
    let t = PriceTable::builtin();
    let mini = priced(&t, "openai", "gpt-4o-mini");
    assert_eq!(mini.input_per_mtok, 0.15);
    assert_eq!(priced(&t, "openai", "gpt-4o-mini-2024-07-18"), mini);
    let four_o = priced(&t, "openai", "gpt-4o-2024-08-06");
    assert_eq!(four_o.input_per_mtok, 2.50);
    assert_eq!(priced(&t, "openai", "GPT-4o"), four_o, "case is ignored");
    // `gpt-5.4` does not extend `gpt-5` at a dash: it has its own row.
    assert_eq!(priced(&t, "openai", "gpt-5.4").input_per_mtok, 2.50);
    assert_eq!(priced(&t, "openai", "gpt-5").input_per_mtok, 1.25);
    // No row is a dash-prefix of these.
    assert_eq!(t.lookup("openai", "gpt-4"), PriceLookup::Unknown);
    assert_eq!(t.lookup("openai", "gpt-4ox"), PriceLookup::Unknown);
    assert_eq!(
        priced(&t, "gemini", "gemini-2.5-flash-lite-preview-06-17").input_per_mtok,
        0.10
    );
    assert_eq!(
        priced(&t, "gemini", "models/gemini-2.5-flash").input_per_mtok,
        0.30
    );
    assert_eq!(t.lookup("nobody", "gpt-4o"), PriceLookup::Unknown);
}

#[test]
fn overrides_win_and_custom_providers_are_priced_under_their_own_id() {
    let mut t = PriceTable::builtin();
    assert_eq!(t.lookup("my-vllm", "qwen3-8b"), PriceLookup::Unknown);
    let overrides = PriceTable::from_toml(
        r#"
        as_of = "2026-11-01"
        [providers.openai.models."gpt-4o"]
        input_per_mtok = 2.0
        output_per_mtok = 9.0
        [providers.my-vllm.models."qwen3-8b"]
        input_per_mtok = 0.01
        output_per_mtok = 0.02
        as_of = "2026-10-31"
        [providers.ollama.models."llama3.3-70b"]
        input_per_mtok = 0.5
        output_per_mtok = 0.5
        [providers.gemini]
        free = true
        "#,
        "botarmy.toml [pricing]",
    )
    .unwrap();
    t.merge(overrides);
    let four_o = priced(&t, "openai", "gpt-4o-2024-08-06");
    assert_eq!(
        (four_o.input_per_mtok, four_o.cached_input_per_mtok),
        (2.0, None)
    );
    assert_eq!(four_o.as_of, "2026-11-01");
    assert_eq!(priced(&t, "openai", "gpt-4o-mini").input_per_mtok, 0.15);
    let qwen = priced(&t, "my-vllm", "qwen3-8b");
    assert_eq!(
        (qwen.output_per_mtok, qwen.as_of.as_str()),
        (0.02, "2026-10-31")
    );
    // A priced model of a free provider costs its price; the others stay free.
    assert_eq!(priced(&t, "ollama", "llama3.3-70b").input_per_mtok, 0.5);
    assert_eq!(t.lookup("ollama", "llama3.2"), PriceLookup::Free);
    // Gemini is now free for unpriced models; its priced rows keep their price.
    assert_eq!(t.lookup("gemini", "gemini-9"), PriceLookup::Free);
    assert_eq!(t.lookup("vertex", "gemini-9"), PriceLookup::Free);
    assert_eq!(priced(&t, "vertex", "gemini-2.5-pro").input_per_mtok, 1.25);
}

#[test]
fn unknown_models_cost_nothing_and_warn_once_per_pair() {
    let t = PriceTable::builtin();
    let u = usage(1000, 0, 1000);
    let (cost, warning) = t.cost_or_warn("openai", "gpt-9", &u);
    assert_eq!(cost, 0.0);
    let warning = warning.unwrap();
    assert!(warning.contains("openai/gpt-9"), "{warning}");
    assert_eq!(t.cost_or_warn("openai", "gpt-9", &u), (0.0, None));
    assert!(t.cost_or_warn("openai", "gpt-10", &u).1.is_some());
    assert_eq!(t.cost_or_warn("local", "smollm2", &u), (0.0, None));
    let (cost, warning) = t.cost_or_warn("openai", "gpt-4o", &u);
    assert!(warning.is_none());
    assert!((cost - (1000.0 * 2.5 + 1000.0 * 10.0) / MTOK).abs() < 1e-15);
    // A clone starts with no warnings given.
    assert!(t.clone().cost_or_warn("openai", "gpt-9", &u).1.is_some());
}

#[test]
fn alias_cycles_end_as_unknown() {
    let t = PriceTable::from_toml(
        r#"
        [providers.a]
        prices_as = "b"
        [providers.b]
        prices_as = "a"
        "#,
        "t",
    )
    .unwrap();
    assert_eq!(t.lookup("a", "m"), PriceLookup::Unknown);
    let err = PriceTable::from_toml("[providers.a]\nprices_as = \"A\"\n", "t").unwrap_err();
    assert!(
        err.to_string().starts_with("t:2: providers.a.prices_as:"),
        "{err}"
    );
}

#[test]
fn errors_name_the_origin_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "as_of = \"2026-01-01\"\n[providers.openai.models.\"gpt-4.1\"]\ninput_per_mtok = -1.0\noutput_per_mtok = 1.0\n",
            "cfg.toml:3: providers.openai.models.\"gpt-4.1\".input_per_mtok: -1 is not a price",
        ),
        (
            "as_of = \"2026-01-01\"\n[providers.openai.models.m]\ninput_per_mtok = 1.0\noutput_per_mtok = nan\n",
            "cfg.toml:4: providers.openai.models.m.output_per_mtok: NaN is not a price",
        ),
        (
            "as_of = \"yesterday\"\n",
            "cfg.toml:1: as_of: `yesterday` is not a date; expected YYYY-MM-DD",
        ),
        (
            "[providers.openai.models.m]\ninput_per_mtok = 1.0\noutput_per_mtok = 1.0\n",
            "cfg.toml:2: providers.openai.models.m: no as_of date",
        ),
        (
            "[providers.openai.models.m]\ninput_per_mtok = 1.0\noutput_per_mtok = 1.0\nas_of = \"2026-02-30\"\n",
            "cfg.toml:4: providers.openai.models.m.as_of: `2026-02-30` is not a date",
        ),
    ];
    for (text, expected) in cases {
        let err = PriceTable::from_toml(text, "cfg.toml").unwrap_err();
        assert!(
            err.to_string().starts_with(expected),
            "got `{err}`, expected it to start with `{expected}`"
        );
    }
    // Shape errors come from the parser, still with the origin and the line.
    let err = PriceTable::from_toml(
        "as_of = \"2026-01-01\"\n[providers.openai.models.m]\ninput_per_mtok = 1.0\noutput_pre_mtok = 1.0\n",
        "cfg.toml",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("cfg.toml:4: "), "{text}");
    assert!(text.contains("output_pre_mtok"), "{text}");
    let err = PriceTable::from_toml(
        "[providers.openai.models.m]\ninput_per_mtok = \"cheap\"\n",
        "cfg.toml",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("cfg.toml:2: "), "{err}");
    let err = PriceTable::from_toml("[providers\n", "cfg.toml").unwrap_err();
    assert!(err.to_string().starts_with("cfg.toml:1: "), "{err}");
}
