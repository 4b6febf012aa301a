//! API tokens on SQLite: plain rows, written by the writer thread and read on a reader
//! connection.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Fail;
use crate::projection::wire_u32;
use crate::{ApiTokenRecord, RateLimit, StoreError};

const COLUMNS: &str =
    "id, tenant, name, hash, created_at, last_used_at, revoked_at, rate_requests, rate_per_secs";

fn record(r: &Row<'_>) -> rusqlite::Result<ApiTokenRecord> {
    let requests: Option<i64> = r.get(7)?;
    let per_secs: Option<i64> = r.get(8)?;
    Ok(ApiTokenRecord {
        id: r.get(0)?,
        tenant: r.get(1)?,
        name: r.get(2)?,
        hash: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
        rate_limit: requests
            .zip(per_secs)
            .map(|(requests, per_secs)| RateLimit {
                requests: wire_u32(requests),
                per_secs: wire_u32(per_secs),
            }),
    })
}

pub(crate) fn create(conn: &Connection, token: &ApiTokenRecord) -> Result<(), Fail> {
    conn.prepare_cached(&format!(
        "INSERT INTO api_tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        token.id,
        token.tenant,
        token.name,
        token.hash,
        token.created_at,
        token.last_used_at,
        token.revoked_at,
        token.rate_limit.map(|l| i64::from(l.requests)),
        token.rate_limit.map(|l| i64::from(l.per_secs)),
    ])?;
    Ok(())
}

pub(crate) fn list(conn: &Connection, tenant: Option<&str>) -> Result<Vec<ApiTokenRecord>, Fail> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE ?1 IS NULL OR tenant = ?1
         ORDER BY created_at, id"
    ))?;
    let rows = stmt
        .query_map([tenant], record)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn by_hash(conn: &Connection, hash: &str) -> Result<Option<ApiTokenRecord>, Fail> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = ?1"))?
        .query_row([hash], record)
        .optional()?)
}

pub(crate) fn revoke(conn: &Connection, id: &str, at: i64) -> Result<ApiTokenRecord, Fail> {
    conn.prepare_cached(&format!(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1
         RETURNING {COLUMNS}"
    ))?
    .query_row(params![id, at], record)
    .optional()?
    .ok_or_else(|| {
        Fail::Store(StoreError::NotFound {
            what: "token",
            id: id.to_string(),
        })
    })
}

pub(crate) fn touch(conn: &Connection, id: &str, at: i64) -> Result<(), Fail> {
    conn.prepare_cached(
        "UPDATE api_tokens SET last_used_at = ?2
         WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
    )?
    .execute(params![id, at])?;
    Ok(())
}
