//! Client sessions on PostgreSQL: a row per session (UI state and tabs as JSONB) and a
//! row per session and run for the read position.

use std::collections::BTreeMap;

use botarmy_protocol::{RunId, SessionId, UnixMillis};
use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row as PgRow;

use super::Fail;
use crate::projection::{sql_int, wire_int};
use crate::sessions::{self, Row};
use crate::{SessionEdit, SessionRecord};

/// The columns read, JSON as text (the shared decoding reads text).
const SELECT: &str = "SELECT id, tenant, name, ui_state::TEXT, tabs::TEXT, created_at, \
     updated_at, last_seen_at FROM client_sessions";

fn row(r: &PgRow) -> Row {
    Row {
        id: r.get::<_, uuid::Uuid>(0).to_string(),
        tenant: r.get(1),
        name: r.get(2),
        ui_state: r.get(3),
        tabs: r.get(4),
        created_at: r.get(5),
        updated_at: r.get(6),
        last_seen_at: r.get(7),
    }
}

pub(crate) async fn create(client: &Object, session: &SessionRecord) -> Result<(), Fail> {
    let (ui, tabs) = sessions::encode(session)?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO client_sessions
                 (id, tenant, name, ui_state, tabs, created_at, updated_at, last_seen_at)
             VALUES ($1, $2, $3, $4::TEXT::JSONB, $5::TEXT::JSONB, $6, $7, $8)",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &session.id.0,
                &session.tenant,
                &session.name,
                &ui,
                &tabs,
                &session.created_at,
                &session.updated_at,
                &session.last_seen_at,
            ],
        )
        .await?;
    Ok(())
}

async fn cursors(client: &impl GenericClient, id: SessionId) -> Result<BTreeMap<RunId, u64>, Fail> {
    let stmt = client
        .prepare_cached("SELECT run_id, acked_seq FROM session_cursors WHERE session_id = $1")
        .await?;
    Ok(client
        .query(&stmt, &[&id.0])
        .await?
        .iter()
        .map(|r| (RunId(r.get(0)), wire_int(r.get(1))))
        .collect())
}

async fn load(
    client: &impl GenericClient,
    tenant: &str,
    id: SessionId,
    lock: bool,
) -> Result<SessionRecord, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "{SELECT} WHERE id = $1 AND tenant = $2{}",
            if lock { " FOR UPDATE" } else { "" }
        ))
        .await?;
    let found = client
        .query_opt(&stmt, &[&id.0, &tenant])
        .await?
        .ok_or_else(|| sessions::not_found(id))?;
    let mut session = row(&found).record()?;
    session.acked = cursors(client, id).await?;
    Ok(session)
}

pub(crate) async fn get(
    client: &Object,
    tenant: &str,
    id: SessionId,
) -> Result<SessionRecord, Fail> {
    load(client, tenant, id, false).await
}

pub(crate) async fn list(client: &Object, tenant: &str) -> Result<Vec<SessionRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "{SELECT} WHERE tenant = $1 ORDER BY COALESCE(last_seen_at, updated_at) DESC, id"
        ))
        .await?;
    let mut out = Vec::new();
    for r in client.query(&stmt, &[&tenant]).await? {
        let mut session = row(&r).record()?;
        session.acked = cursors(client, session.id).await?;
        out.push(session);
    }
    Ok(out)
}

pub(crate) async fn update(
    client: &mut Object,
    tenant: &str,
    id: SessionId,
    at: UnixMillis,
    edit: SessionEdit,
) -> Result<SessionRecord, Fail> {
    let tx = client.transaction().await?;
    // Locked until the commit: a change made meanwhile waits and then applies to this one.
    let session = sessions::apply(load(&tx, tenant, id, true).await?, at, edit)?;
    let (ui, tabs) = sessions::encode(&session)?;
    let stmt = tx
        .prepare_cached(
            "UPDATE client_sessions SET name = $2, ui_state = $3::TEXT::JSONB,
                 tabs = $4::TEXT::JSONB, updated_at = $5
             WHERE id = $1",
        )
        .await?;
    tx.execute(&stmt, &[&id.0, &session.name, &ui, &tabs, &at])
        .await?;
    tx.commit().await?;
    Ok(session)
}

pub(crate) async fn ack(
    client: &mut Object,
    tenant: &str,
    id: SessionId,
    acks: &[(RunId, u64)],
    at: UnixMillis,
) -> Result<BTreeMap<RunId, u64>, Fail> {
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached("SELECT 1 FROM client_sessions WHERE id = $1 AND tenant = $2")
        .await?;
    if tx.query_opt(&stmt, &[&id.0, &tenant]).await?.is_none() {
        return Err(sessions::not_found(id).into());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO session_cursors (session_id, run_id, acked_seq, acked_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_id, run_id) DO UPDATE SET
                 acked_seq = GREATEST(session_cursors.acked_seq, excluded.acked_seq),
                 acked_at = excluded.acked_at",
        )
        .await?;
    for (run, seq) in acks {
        tx.execute(&stmt, &[&id.0, &run.0, &sql_int(*seq), &at])
            .await?;
    }
    let out = cursors(&tx, id).await?;
    tx.commit().await?;
    Ok(out)
}

pub(crate) async fn touch(client: &Object, id: SessionId, at: UnixMillis) -> Result<(), Fail> {
    let stmt = client
        .prepare_cached(
            "UPDATE client_sessions SET last_seen_at = GREATEST(COALESCE(last_seen_at, 0), $2)
             WHERE id = $1",
        )
        .await?;
    client.execute(&stmt, &[&id.0, &at]).await?;
    Ok(())
}

pub(crate) async fn delete(client: &Object, tenant: &str, id: SessionId) -> Result<(), Fail> {
    let stmt = client
        .prepare_cached("DELETE FROM client_sessions WHERE id = $1 AND tenant = $2")
        .await?;
    if client.execute(&stmt, &[&id.0, &tenant]).await? == 0 {
        return Err(sessions::not_found(id).into());
    }
    Ok(())
}

pub(crate) async fn expire(client: &Object, before: UnixMillis) -> Result<u64, Fail> {
    let stmt = client
        .prepare_cached("DELETE FROM client_sessions WHERE COALESCE(last_seen_at, updated_at) < $1")
        .await?;
    Ok(client.execute(&stmt, &[&before]).await?)
}
