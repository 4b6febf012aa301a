//! API tokens on PostgreSQL: plain rows, one statement per request.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::Fail;
use crate::{ApiTokenRecord, RateLimit, StoreError};

const COLUMNS: &str =
    "id, tenant, name, hash, created_at, last_used_at, revoked_at, rate_requests, rate_per_secs";

fn record(r: &Row) -> ApiTokenRecord {
    let requests: Option<i32> = r.get(7);
    let per_secs: Option<i32> = r.get(8);
    ApiTokenRecord {
        id: r.get(0),
        tenant: r.get(1),
        name: r.get(2),
        hash: r.get(3),
        created_at: r.get(4),
        last_used_at: r.get(5),
        revoked_at: r.get(6),
        rate_limit: requests
            .zip(per_secs)
            .map(|(requests, per_secs)| RateLimit {
                requests: u32::try_from(requests).unwrap_or(0),
                per_secs: u32::try_from(per_secs).unwrap_or(0),
            }),
    }
}

fn int(x: u32) -> i32 {
    i32::try_from(x).unwrap_or(i32::MAX)
}

pub(crate) async fn create(client: &Object, token: &ApiTokenRecord) -> Result<(), Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO api_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .await?;
    let requests = token.rate_limit.map(|l| int(l.requests));
    let per_secs = token.rate_limit.map(|l| int(l.per_secs));
    client
        .execute(
            &stmt,
            &[
                &token.id,
                &token.tenant,
                &token.name,
                &token.hash,
                &token.created_at,
                &token.last_used_at,
                &token.revoked_at,
                &requests,
                &per_secs,
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn list(
    client: &Object,
    tenant: Option<&str>,
) -> Result<Vec<ApiTokenRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE $1::TEXT IS NULL OR tenant = $1
             ORDER BY created_at, id"
        ))
        .await?;
    Ok(client
        .query(&stmt, &[&tenant])
        .await?
        .iter()
        .map(record)
        .collect())
}

pub(crate) async fn by_hash(client: &Object, hash: &str) -> Result<Option<ApiTokenRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = $1"))
        .await?;
    Ok(client
        .query_opt(&stmt, &[&hash])
        .await?
        .as_ref()
        .map(record))
}

pub(crate) async fn revoke(client: &Object, id: &str, at: i64) -> Result<ApiTokenRecord, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
             RETURNING {COLUMNS}"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&id, &at])
        .await?
        .as_ref()
        .map(record)
        .ok_or_else(|| {
            Fail::Store(StoreError::NotFound {
                what: "token",
                id: id.to_string(),
            })
        })
}

pub(crate) async fn touch(client: &Object, id: &str, at: i64) -> Result<(), Fail> {
    let stmt = client
        .prepare_cached(
            "UPDATE api_tokens SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .await?;
    client.execute(&stmt, &[&id, &at]).await?;
    Ok(())
}
