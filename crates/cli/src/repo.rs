//! Repositories runs work in: `botarmy repo add|list|remove`, and the names a run gives.

use anyhow::{Context, Result};

use crate::config::Config;
use botarmy_runtime::files::absolute;

/// The folders of the repositories a run names: a git checkout's folder as it is.
pub async fn resolve_all(_config: &Config, given: &[String]) -> Result<Vec<String>> {
    given
        .iter()
        .map(|r| {
            let path = absolute(std::path::Path::new(r));
            anyhow::ensure!(
                path.join(".git").exists(),
                "--repo {r}: not a git checkout (no .git in {})",
                path.display()
            );
            Ok(path.display().to_string())
        })
        .collect::<Result<_>>()
        .context("the run's repositories")
}
