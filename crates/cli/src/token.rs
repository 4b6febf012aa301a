//! `botarmy token create|list|revoke`: API tokens for `botarmy serve`. A token's secret is
//! printed once, when it is made; the store keeps only its hash.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use botarmy_protocol::format_millis;
use botarmy_store::RateLimit;
use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::inspect::out;

/// `botarmy token …`.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make an API token for a tenant; its secret is printed once (on stdout), never again.
    Create {
        /// The tenant whose projects, runs and artifacts the token reaches.
        #[arg(long)]
        tenant: String,
        /// What the token is for (shown in `token list`).
        #[arg(long)]
        name: String,
        /// Its own rate limit: N/s, N/min or N/h (default: the server's
        /// `[server.auth] rate_limit`).
        #[arg(long, value_name = "RATE")]
        rate_limit: Option<RateLimit>,
        /// JSON output (the secret is the `token` field).
        #[arg(long)]
        json: bool,
    },
    /// The tokens (never their secrets): id, tenant, name, created, last used, revoked.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: the server refuses it from then on.
    Revoke {
        /// Its id (`tok_…`, from `token list`).
        id: String,
    },
}

pub async fn token(config: &Config, command: TokenCommand) -> Result<ExitCode> {
    let store = botarmy_store::open(&config.database_url).await?;
    let mut w = out();
    match command {
        TokenCommand::Create {
            tenant,
            name,
            rate_limit,
            json,
        } => {
            let (record, secret) = botarmy_server::auth::issue_token(
                store.as_ref(),
                &tenant,
                &name,
                rate_limit,
                botarmy_protocol::now_millis(),
            )
            .await
            .context("cannot create the token")?;
            if json {
                let shown = json!({
                    "id": record.id,
                    "tenant": record.tenant,
                    "name": record.name,
                    "created_at": record.created_at,
                    "rate_limit": record.rate_limit.map(|l| l.to_string()),
                    "token": secret.expose(),
                });
                serde_json::to_writer_pretty(&mut w, &shown)?;
                writeln!(w)?;
            } else {
                eprintln!(
                    "created token {} for tenant `{}` ({}); its secret, shown only this once:",
                    record.id, record.tenant, record.name
                );
                writeln!(w, "{}", secret.expose())?;
                eprintln!("send it as `Authorization: Bearer <secret>`");
            }
        }
        TokenCommand::List { tenant, json } => {
            let all = store.list_tokens(tenant.as_deref()).await?;
            if json {
                let shown: Vec<_> = all
                    .iter()
                    .map(|t| {
                        json!({
                            "id": t.id,
                            "tenant": t.tenant,
                            "name": t.name,
                            "created_at": t.created_at,
                            "last_used_at": t.last_used_at,
                            "revoked_at": t.revoked_at,
                            "rate_limit": t.rate_limit.map(|l| l.to_string()),
                        })
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut w, &shown)?;
                writeln!(w)?;
            } else if all.is_empty() {
                writeln!(
                    w,
                    "no tokens; make one with `botarmy token create --tenant T --name N`"
                )?;
            } else {
                let tenant_w = all.iter().map(|t| t.tenant.len()).max().unwrap_or(6).max(6);
                let name_w = all.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
                writeln!(
                    w,
                    "{:<36}  {:<tenant_w$}  {:<name_w$}  {:<19}  {:<19}  {:<19}  RATE",
                    "ID", "TENANT", "NAME", "CREATED", "LAST USED", "REVOKED"
                )?;
                let when = |t: Option<i64>| t.map_or_else(|| "-".to_string(), format_millis);
                for t in all {
                    writeln!(
                        w,
                        "{:<36}  {:<tenant_w$}  {:<name_w$}  {:<19}  {:<19}  {:<19}  {}",
                        t.id,
                        t.tenant,
                        t.name,
                        format_millis(t.created_at),
                        when(t.last_used_at),
                        when(t.revoked_at),
                        t.rate_limit
                            .map_or_else(|| "default".to_string(), |l| l.to_string()),
                    )?;
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let revoked = store
                .revoke_token(id.trim(), botarmy_protocol::now_millis())
                .await
                .with_context(|| format!("cannot revoke the token `{id}`"))?;
            writeln!(
                w,
                "revoked token {} (tenant `{}`, {})",
                revoked.id, revoked.tenant, revoked.name
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
