//! Which model answers the agents, and the `model` commands.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use botarmy_llm::model_store::{Checksum, PullEvent};
use botarmy_llm::settings::{ProviderSource, RouteSpec};
use botarmy_llm::{
    CassetteWriter, CloudProvider, LocalModelConfig, LocalProvider, ModelSpec, ModelStore,
    Provider, RecordingProvider, ReplayProvider, Route, Router,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;

/// What the user should know about the model behind a run.
pub struct ModelNote {
    banner: String,
    demo: bool,
}

impl ModelNote {
    /// One line shown when a run starts.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// A hint shown after a run, if any.
    pub fn after_run(&self) -> Option<&'static str> {
        self.demo.then_some(
            "note: this run used the embedded demo model (SmolLM2-135M, 135 million parameters): it shows the whole \
             lifecycle offline, but its documents wander and repeat. Point agents at a real model for real work \
             (BOTARMY_PROVIDER=openai|anthropic|gemini|ollama with its key, per-agent routes in botarmy.toml, or any GGUF file via BOTARMY_MODEL=/path/model.gguf).",
        )
    }
}

/// Builds the router for this configuration: every agent's chain of providers (the
/// embedded model by default, fetched on first use; a replayed cassette; cloud providers),
/// their limits and the price table; wrapped in a recorder if asked. Every configuration
/// problem is reported at once, before anything runs.
pub async fn router(
    config: &Config,
    record: Option<&PathBuf>,
    agents: &[String],
) -> Result<(Router, ModelNote)> {
    let resolved = config.resolve_llm(agents)?;
    let pricing = config.pricing()?;
    let mut built: Vec<(String, Arc<dyn Provider>)> = Vec::new();
    let mut banners = Vec::new();
    let mut demo = false;
    for p in &resolved.providers {
        let provider: Arc<dyn Provider> = match &p.source {
            ProviderSource::Replay => {
                let path = config
                    .cassette
                    .clone()
                    .context("BOTARMY_CASSETTE is not set: the replay provider needs the path of a cassette recorded with `botarmy run --record FILE`")?;
                let replay = ReplayProvider::open(&path)
                    .with_context(|| format!("cannot open the cassette {}", path.display()))?;
                banners.push(format!("replay of {}", path.display()));
                Arc::new(replay)
            }
            ProviderSource::Local => {
                let (local, banner, is_demo) = local_provider(config).await?;
                banners.push(banner);
                demo |= is_demo;
                local
            }
            ProviderSource::Cloud(cloud) => {
                let provider = CloudProvider::new((**cloud).clone())
                    .with_context(|| format!("provider `{}`", p.id))?;
                Arc::new(provider)
            }
        };
        built.push((p.id.clone(), provider));
    }
    let route = |spec: &RouteSpec| -> Result<Route> {
        let provider = built
            .iter()
            .find(|(id, _)| *id == spec.provider)
            .map(|(_, p)| Arc::clone(p))
            .with_context(|| format!("provider `{}` was not built", spec.provider))?;
        // The local provider serves one model file; its routes use its name.
        let model = if provider.id() == "local" {
            String::new()
        } else {
            spec.model.clone()
        };
        Ok(Route::new(provider, model))
    };
    let default: Vec<Route> = resolved.default.iter().map(&route).collect::<Result<_>>()?;
    let first = default
        .first()
        .map(|r| format!("{r:?}"))
        .unwrap_or_default();
    let mut router = Router::new(Arc::clone(&default[0].provider))
        .with_default_chain(default)
        .with_pricing(pricing)
        .with_warnings(|w| eprintln!("warning: {w}"));
    for (agent, chain) in &resolved.agents {
        let chain = chain.iter().map(&route).collect::<Result<Vec<_>>>()?;
        router = router.with_agent_chain(agent.clone(), chain);
    }
    for p in &resolved.providers {
        router = router.with_policy(p.id.clone(), p.policy);
    }
    if let Some(path) = record {
        let writer =
            Arc::new(CassetteWriter::open(path.clone()).with_context(|| {
                format!("--record {}: cannot open the cassette", path.display())
            })?);
        router =
            router.map_providers(|inner| Arc::new(RecordingProvider::new(inner, writer.clone())));
    }
    let banner = if resolved.agents.is_empty() {
        format!("model: {}", banners.first().cloned().unwrap_or(first))
    } else {
        format!(
            "models: {first} by default; {} agent(s) routed elsewhere (`botarmy providers` shows them)",
            resolved.agents.len()
        )
    };
    Ok((router, ModelNote { banner, demo }))
}

/// The embedded model, or a GGUF file named by `BOTARMY_MODEL` when the local provider is
/// the default one.
async fn local_provider(config: &Config) -> Result<(Arc<dyn Provider>, String, bool)> {
    let spec = ModelSpec::smollm2_135m_instruct();
    let named = config.local_model_file();
    let path = match &named {
        Some(file) => {
            botarmy_llm::model_store::check_user_file(file)
                .with_context(|| format!("BOTARMY_MODEL={}", file.display()))?;
            file.clone()
        }
        None => ensure_default_model(config, &spec).await?,
    };
    let demo = named.is_none();
    let mut local = LocalModelConfig::new(&path);
    if demo {
        local = local.with_name(spec.name.clone());
    }
    local.threads = config.threads;
    let banner = if demo {
        format!("embedded demo model {} (local CPU, no API key)", spec.name)
    } else {
        format!("local GGUF {}", path.display())
    };
    Ok((Arc::new(LocalProvider::new(local)), banner, demo))
}

async fn ensure_default_model(config: &Config, spec: &ModelSpec) -> Result<PathBuf> {
    let store = ModelStore::new(config.models_dir());
    let path = store.path_of(spec);
    if path.exists() {
        return Ok(path);
    }
    eprintln!(
        "the embedded model is not in {} yet; fetching it once ({} MB)",
        store.dir().display(),
        spec.size / 1_000_000
    );
    pull_with_progress(&store, spec).await
}

async fn pull_with_progress(store: &ModelStore, spec: &ModelSpec) -> Result<PathBuf> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(spec.size);
        bar.set_style(
            ProgressStyle::with_template("  {bar:30} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let on_event = |event: PullEvent| match event {
        PullEvent::Trying(source) => {
            let line = format!("  trying {source}");
            match &bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
        PullEvent::Progress { done, .. } => {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        }
        PullEvent::Failed { source, error } => {
            let line = format!("  {source} failed: {error}");
            match &bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
        PullEvent::Verifying(path) => {
            let line = format!("  verifying {}", path.display());
            match &bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
    };
    let pulled = store.pull(spec, None, &on_event).await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let pulled = pulled.context("cannot fetch the embedded model")?;
    eprintln!(
        "  model ready: {} ({} bytes, sha256 verified)",
        pulled.path.display(),
        pulled.size
    );
    Ok(pulled.path)
}

pub async fn pull(config: &Config) -> Result<ExitCode> {
    let spec = ModelSpec::smollm2_135m_instruct();
    let store = ModelStore::new(config.models_dir());
    if let Some(file) = &config.local_model_file() {
        let checked = botarmy_llm::model_store::check_user_file(file)?;
        eprintln!(
            "BOTARMY_MODEL={} is a readable GGUF file ({} bytes); nothing to fetch",
            checked.path.display(),
            checked.size
        );
        return Ok(ExitCode::SUCCESS);
    }
    pull_with_progress(&store, &spec).await?;
    Ok(ExitCode::SUCCESS)
}

pub fn list(config: &Config, json: bool) -> Result<ExitCode> {
    let spec = ModelSpec::smollm2_135m_instruct();
    let store = ModelStore::new(config.models_dir());
    let models = store.list(&spec)?;
    let mut w = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "file": m.file_name, "path": m.path, "bytes": m.size, "default": m.default,
                    "checksum": checksum_label(&m.checksum),
                    "gguf": m.gguf.as_ref().map(|g| format!("{g:?}")).map_err(Clone::clone).ok(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut w, &rows)?;
        writeln!(w)?;
        return Ok(ExitCode::SUCCESS);
    }
    if models.is_empty() {
        writeln!(
            w,
            "no models in {}; `botarmy model pull` fetches the default ({})",
            store.dir().display(),
            spec.file_name
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for m in &models {
        writeln!(
            w,
            "{} {:<40} {:>11} bytes  {}",
            if m.default { "*" } else { " " },
            m.file_name,
            m.size,
            checksum_label(&m.checksum)
        )?;
    }
    writeln!(w, "(* = default model; folder {})", store.dir().display())?;
    Ok(ExitCode::SUCCESS)
}

fn checksum_label(c: &Checksum) -> String {
    format!("{c:?}").to_lowercase()
}
