//! `botarmy serve`: the REST and WebSocket API (see the `botarmy-server` crate) on one
//! address, over the same store and models as `botarmy run`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Result;
use botarmy_server::{AuthConfig, Server, ServerConfig};
use botarmy_store::RateLimit;
use clap::Args;

use crate::config::Config;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. An address other machines can reach needs authentication
    /// (`--auth-tokens`, or `[server.auth]` in botarmy.toml).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Accept API tokens (`botarmy token create`), as `[server.auth] tokens = true`.
    #[arg(long)]
    auth_tokens: bool,
    /// Requests per token for tokens without their own limit (N/s, N/min or N/h), over
    /// `[server.auth] rate_limit`.
    #[arg(long, value_name = "RATE")]
    rate_limit: Option<RateLimit>,
    /// Delete client sessions (`/api/sessions`) not seen for this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    session_ttl_days: u32,
}

/// The server's authentication from botarmy.toml and the flags, and whether it may listen
/// on `args.addr`: an address other machines can reach needs authentication.
pub fn auth_for(config: &Config, args: &ServeArgs) -> Result<AuthConfig> {
    let path = config.file_path.clone().unwrap_or_default();
    let auth = config
        .file
        .server
        .auth
        .auth_config(&path, args.auth_tokens, args.rate_limit)?;
    botarmy_server::check_address(args.addr, &auth)?;
    Ok(auth)
}

pub async fn serve(config: &Config, args: ServeArgs) -> Result<ExitCode> {
    // Refuse an address other machines can reach without authentication before anything
    // is opened.
    let auth = auth_for(config, &args)?;
    let browser = config
        .file
        .server
        .browser_policy(&config.file_path.clone().unwrap_or_default())?;
    let (runtime, note) = crate::open_runtime(config, None).await?;
    let listener = botarmy_server::bind(args.addr, &auth).await?;
    let local = listener.local_addr()?;
    eprintln!("botarmy serving on http://{local}");
    eprintln!(
        "  REST under /api (OpenAPI: /api/openapi.json, browsable at /api/docs), WebSocket /ws, /health, /ready"
    );
    eprintln!("  {}", describe(&auth));
    eprintln!("  {}", describe_browsers(&browser));
    eprintln!("  {}", note.banner());
    let server_config = ServerConfig {
        clones: Some(config.clones_dir()),
        auth,
        browser,
        session_ttl: std::time::Duration::from_secs(u64::from(args.session_ttl_days) * 86_400),
        ..ServerConfig::default()
    };
    Server::new(runtime, server_config)
        .serve(listener, stop_signal())
        .await?;
    eprintln!("botarmy server stopped; runs it drove are paused (`botarmy resume` continues them)");
    Ok(ExitCode::SUCCESS)
}

/// One line about who may call.
fn describe(auth: &AuthConfig) -> String {
    if !auth.is_enabled() {
        return "no authentication (loopback only): every caller is tenant `default`".into();
    }
    let mut ways = Vec::new();
    if auth.tokens {
        ways.push("API tokens".to_string());
    }
    if let Some(oidc) = &auth.oidc {
        ways.push(format!("JWTs of {}", oidc.issuer));
    }
    let limit = auth.rate_limit.map_or_else(
        || "no default rate limit".to_string(),
        |l| format!("{l} per token by default"),
    );
    format!("authentication: {} ({limit})", ways.join(" and "))
}

/// One line about which web pages may call.
fn describe_browsers(browser: &botarmy_server::BrowserPolicy) -> String {
    let mut line = "web pages: this server's own".to_string();
    if !browser.allowed_origins.is_empty() {
        let origins: Vec<String> = browser
            .allowed_origins
            .iter()
            .map(ToString::to_string)
            .collect();
        line.push_str(&format!(" and {} (CORS)", origins.join(", ")));
    }
    if !browser.allowed_hosts.is_empty() {
        line.push_str(&format!(
            "; also reached as {}",
            browser.allowed_hosts.join(", ")
        ));
    }
    line
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
