//! API token secrets: made from the operating system's CSPRNG, shown once, stored only as
//! a SHA-256 hash. A secret carries 256 random bits, so a fast hash is enough: no one can
//! guess their way back from the hash.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use botarmy_store::{ApiTokenRecord, RateLimit, Store, StoreError};
use sha2::{Digest, Sha256};

/// What every API token starts with, so it is recognisable (in a leaked file, by a
/// secret scanner) and told apart from a JWT.
pub const TOKEN_PREFIX: &str = "bat_";

/// Random bytes per secret.
const SECRET_BYTES: usize = 32;

/// A token's secret, shown once. Its `Debug` does not show it.
pub struct Secret(String);

impl Secret {
    /// The secret itself, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The operating system gave no random bytes.
    #[error("the system's random number generator failed")]
    Random,
    /// The tenant's name is not acceptable.
    #[error("tenant `{tenant}` {problem}")]
    BadTenant {
        /// As given.
        tenant: String,
        /// What is wrong.
        problem: String,
    },
    /// The token's name is not acceptable.
    #[error("token name {problem}")]
    BadName {
        /// What is wrong.
        problem: String,
    },
    /// Storing it failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lowercase hex SHA-256 of a secret, as stored.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> Result<Secret, IssueError> {
    let mut bytes = [0_u8; SECRET_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IssueError::Random)?;
    Ok(Secret(format!("{TOKEN_PREFIX}{}", hex::encode(bytes))))
}

/// Makes a token for `tenant` and stores its hash; returns the record and the secret,
/// which exists nowhere else.
pub async fn issue_token(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    rate_limit: Option<RateLimit>,
    at: i64,
) -> Result<(ApiTokenRecord, Secret), IssueError> {
    botarmy_store::check_tenant(tenant).map_err(|problem| IssueError::BadTenant {
        tenant: tenant.to_string(),
        problem,
    })?;
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(IssueError::BadName {
            problem: "must be 1 to 200 characters without control characters".into(),
        });
    }
    let secret = new_secret()?;
    let record = ApiTokenRecord {
        id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
        tenant: tenant.to_string(),
        name: name.to_string(),
        hash: token_hash(secret.expose()),
        created_at: at,
        last_used_at: None,
        revoked_at: None,
        rate_limit,
    };
    store.create_token(record.clone()).await?;
    Ok((record, secret))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hidden_from_debug() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a.expose(), b.expose());
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
        assert_eq!(token_hash("abc").len(), 64);
        assert_ne!(token_hash(a.expose()), token_hash(b.expose()));
    }
}
