//! Client sessions on SQLite: a row per session (its UI state and tabs as JSON) and a row
//! per session and run for the read position; written by the writer thread.

use std::collections::BTreeMap;

use botarmy_protocol::{RunId, SessionId, UnixMillis};
use rusqlite::{Connection, OptionalExtension, params};

use super::Fail;
use crate::projection::{sql_int, wire_int};
use crate::sessions::{self, COLUMNS, Row};
use crate::{SessionEdit, SessionRecord};

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        tenant: r.get(1)?,
        name: r.get(2)?,
        ui_state: r.get(3)?,
        tabs: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        last_seen_at: r.get(7)?,
    })
}

pub(crate) fn create(conn: &Connection, session: &SessionRecord) -> Result<(), Fail> {
    let (ui, tabs) = sessions::encode(session)?;
    conn.prepare_cached(&format!(
        "INSERT INTO client_sessions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        session.id.to_string(),
        session.tenant,
        session.name,
        ui,
        tabs,
        session.created_at,
        session.updated_at,
        session.last_seen_at,
    ])?;
    Ok(())
}

fn cursors(conn: &Connection, id: &str) -> Result<BTreeMap<RunId, u64>, Fail> {
    let mut stmt =
        conn.prepare_cached("SELECT run_id, acked_seq FROM session_cursors WHERE session_id = ?1")?;
    let rows = stmt
        .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = BTreeMap::new();
    for (run, seq) in rows {
        out.insert(sessions::cursor_run(&run)?, wire_int(seq));
    }
    Ok(out)
}

pub(crate) fn get(conn: &Connection, tenant: &str, id: SessionId) -> Result<SessionRecord, Fail> {
    let text = id.to_string();
    let found = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM client_sessions WHERE id = ?1 AND tenant = ?2"
        ))?
        .query_row(params![text, tenant], row)
        .optional()?
        .ok_or_else(|| sessions::not_found(id))?;
    let mut session = found.record()?;
    session.acked = cursors(conn, &text)?;
    Ok(session)
}

pub(crate) fn list(conn: &Connection, tenant: &str) -> Result<Vec<SessionRecord>, Fail> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM client_sessions WHERE tenant = ?1
         ORDER BY COALESCE(last_seen_at, updated_at) DESC, id"
    ))?;
    let rows = stmt
        .query_map([tenant], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut session = r.record()?;
        session.acked = cursors(conn, &session.id.to_string())?;
        out.push(session);
    }
    Ok(out)
}

pub(crate) fn update(
    conn: &Connection,
    tenant: &str,
    id: SessionId,
    at: UnixMillis,
    edit: SessionEdit,
) -> Result<SessionRecord, Fail> {
    let session = sessions::apply(get(conn, tenant, id)?, at, edit)?;
    let (ui, tabs) = sessions::encode(&session)?;
    conn.prepare_cached(
        "UPDATE client_sessions SET name = ?2, ui_state = ?3, tabs = ?4, updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![id.to_string(), session.name, ui, tabs, at])?;
    Ok(session)
}

pub(crate) fn ack(
    conn: &Connection,
    tenant: &str,
    id: SessionId,
    acks: &[(RunId, u64)],
    at: UnixMillis,
) -> Result<BTreeMap<RunId, u64>, Fail> {
    let text = id.to_string();
    let known: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM client_sessions WHERE id = ?1 AND tenant = ?2")?
        .query_row(params![text, tenant], |r| r.get(0))
        .optional()?;
    if known.is_none() {
        return Err(sessions::not_found(id).into());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO session_cursors (session_id, run_id, acked_seq, acked_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (session_id, run_id) DO UPDATE SET
             acked_seq = MAX(acked_seq, excluded.acked_seq),
             acked_at = excluded.acked_at",
    )?;
    for (run, seq) in acks {
        stmt.execute(params![text, run.to_string(), sql_int(*seq), at])?;
    }
    cursors(conn, &text)
}

pub(crate) fn touch(conn: &Connection, id: SessionId, at: UnixMillis) -> Result<(), Fail> {
    conn.prepare_cached("UPDATE client_sessions SET last_seen_at = MAX(COALESCE(last_seen_at, 0), ?2) WHERE id = ?1")?
        .execute(params![id.to_string(), at])?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, tenant: &str, id: SessionId) -> Result<(), Fail> {
    let gone = conn
        .prepare_cached("DELETE FROM client_sessions WHERE id = ?1 AND tenant = ?2")?
        .execute(params![id.to_string(), tenant])?;
    if gone == 0 {
        return Err(sessions::not_found(id).into());
    }
    Ok(())
}

pub(crate) fn expire(conn: &Connection, before: UnixMillis) -> Result<u64, Fail> {
    let gone = conn
        .prepare_cached(
            "DELETE FROM client_sessions WHERE COALESCE(last_seen_at, updated_at) < ?1",
        )?
        .execute([before])?;
    Ok(gone as u64)
}
