//! `botarmy providers`: which provider and model answer for each agent, where keys come
//! from (masked), the limits in force, and with `--ping` whether each endpoint answers.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use botarmy_llm::settings::{ProviderSource, mask};

use crate::config::Config;

/// Prints the resolved mapping; with `ping`, checks each provider too (exit 1 if one fails).
pub async fn show(config: &Config, ping: bool, json: bool) -> Result<ExitCode> {
    let resolved = config.resolve_llm(&[])?;
    let mut failed = false;
    let mut rows = Vec::new();
    for p in &resolved.providers {
        let (kind, endpoint, key) = match &p.source {
            ProviderSource::Local => (
                "local".to_string(),
                config
                    .local_model_file()
                    .map_or_else(|| "embedded model".into(), |f| f.display().to_string()),
                None,
            ),
            ProviderSource::Replay => (
                "replay".to_string(),
                config.cassette.as_ref().map_or_else(
                    || "(BOTARMY_CASSETTE not set)".into(),
                    |c| c.display().to_string(),
                ),
                None,
            ),
            ProviderSource::Cloud(c) => (
                c.kind.to_string(),
                c.base_url
                    .clone()
                    .or_else(|| c.kind.default_base_url().map(str::to_owned))
                    .unwrap_or_else(|| "(derived from region)".into()),
                c.api_key.as_deref().map(mask),
            ),
        };
        let status = if ping {
            Some(match ping_one(config, &p.source).await {
                Ok(what) => format!("ok: {what}"),
                Err(e) => {
                    failed = true;
                    format!("FAILED: {e}")
                }
            })
        } else {
            None
        };
        rows.push(serde_json::json!({
            "id": p.id,
            "kind": kind,
            "endpoint": endpoint,
            "key": key,
            "key_from": p.key_from,
            "requests_per_minute": p.policy.limits.requests_per_minute,
            "tokens_per_minute": p.policy.limits.tokens_per_minute,
            "max_retries": p.policy.retry.max_retries,
            "ping": status,
        }));
    }
    let chain = |specs: &[botarmy_llm::settings::RouteSpec]| -> Vec<String> {
        specs.iter().map(ToString::to_string).collect()
    };
    let agents: serde_json::Map<String, serde_json::Value> = resolved
        .agents
        .iter()
        .map(|(a, c)| (a.clone(), serde_json::json!(chain(c))))
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        let doc = serde_json::json!({
            "config_file": config.file_path,
            "default": chain(&resolved.default),
            "agents": agents,
            "providers": rows,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        match &config.file_path {
            Some(p) => writeln!(out, "configuration: environment and {}", p.display())?,
            None => writeln!(out, "configuration: environment (no botarmy.toml found)")?,
        }
        writeln!(out, "default: {}", chain(&resolved.default).join(" -> "))?;
        for (agent, c) in &resolved.agents {
            writeln!(out, "  {agent}: {}", chain(c).join(" -> "))?;
        }
        writeln!(out, "providers:")?;
        for row in &rows {
            let text = |k: &str| row[k].as_str().map(str::to_owned);
            let limit = |k: &str| row[k].as_u64().map_or("-".into(), |n| n.to_string());
            writeln!(
                out,
                "  {:<12} {:<18} {}  key {}  rpm {} tpm {} retries {}",
                text("id").unwrap_or_default(),
                text("kind").unwrap_or_default(),
                text("endpoint").unwrap_or_default(),
                match (text("key"), text("key_from")) {
                    (Some(k), Some(from)) => format!("{k} (from {from})"),
                    (None, Some(from)) => format!("from {from}"),
                    _ => "-".into(),
                },
                limit("requests_per_minute"),
                limit("tokens_per_minute"),
                limit("max_retries"),
            )?;
            if let Some(status) = text("ping") {
                writeln!(out, "      {status}")?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn ping_one(config: &Config, source: &ProviderSource) -> Result<String> {
    use botarmy_llm::Provider;
    match source {
        ProviderSource::Cloud(c) => {
            let provider = botarmy_llm::CloudProvider::new((**c).clone())?;
            Ok(provider.ping().await?)
        }
        ProviderSource::Local => {
            let spec = botarmy_llm::ModelSpec::smollm2_135m_instruct();
            let path = config.local_model_file().unwrap_or_else(|| {
                botarmy_llm::ModelStore::new(config.models_dir()).path_of(&spec)
            });
            let checked = botarmy_llm::model_store::check_user_file(&path)?;
            Ok(format!(
                "model file {} ({} bytes)",
                checked.path.display(),
                checked.size
            ))
        }
        ProviderSource::Replay => {
            let path = config
                .cassette
                .clone()
                .ok_or_else(|| anyhow::anyhow!("BOTARMY_CASSETTE is not set"))?;
            let exchanges = botarmy_llm::read_cassette(&path)?;
            Ok(format!(
                "cassette {} ({} exchanges)",
                path.display(),
                exchanges.len()
            ))
        }
    }
}
