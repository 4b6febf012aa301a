//! `botarmy serve`: the REST and WebSocket API (see the `botarmy-server` crate) on one
//! address, over the same store and models as `botarmy run`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Result;
use botarmy_server::{Server, ServerConfig};
use clap::Args;

use crate::config::Config;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. Only loopback addresses are accepted until authentication
    /// can be configured.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
}

pub async fn serve(config: &Config, args: ServeArgs) -> Result<ExitCode> {
    // Refuse an address other machines can reach before anything is opened.
    botarmy_server::check_address(args.addr)?;
    let (runtime, note) = crate::open_runtime(config, None).await?;
    let listener = botarmy_server::bind(args.addr).await?;
    let local = listener.local_addr()?;
    eprintln!("botarmy serving on http://{local}");
    eprintln!("  REST under /api (OpenAPI: /api/openapi.json), WebSocket /ws, /health, /ready");
    eprintln!("  {}", note.banner());
    let server_config = ServerConfig {
        clones: Some(config.clones_dir()),
        ..ServerConfig::default()
    };
    Server::new(runtime, server_config)
        .serve(listener, stop_signal())
        .await?;
    eprintln!("botarmy server stopped; runs it drove are paused (`botarmy resume` continues them)");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
