//! Fetches the default embedded model into a models folder and prints its path:
//! `cargo run -p botarmy-llm --example pull -- <models-dir>` (what `botarmy model pull` does).
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};

use botarmy_llm::model_store::PullEvent;
use botarmy_llm::{ModelSpec, ModelStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        anyhow::bail!("usage: pull <models-dir>");
    };
    let store = ModelStore::new(dir);
    let spec = ModelSpec::smollm2_135m_instruct();
    let last_tenth = AtomicU64::new(0);
    let pulled = store
        .pull(&spec, None, &|event| match event {
            PullEvent::Trying(source) => eprintln!("trying {source}"),
            PullEvent::Verifying(path) => eprintln!("verifying {}", path.display()),
            PullEvent::Failed { source, error } => eprintln!("{source} failed: {error}"),
            PullEvent::Progress { done, total } => {
                let tenth = (done * 10).checked_div(total).unwrap_or(0);
                if last_tenth.swap(tenth, Ordering::Relaxed) != tenth {
                    eprintln!("{}%", tenth * 10);
                }
            }
        })
        .await?;
    eprintln!("{} bytes, from {:?}", pulled.size, pulled.origin);
    println!("{}", pulled.path.display());
    Ok(())
}
