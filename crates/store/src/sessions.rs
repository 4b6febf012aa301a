//! What both backends share about client sessions: how a session's JSON columns are
//! written and read back.

use botarmy_protocol::{RunId, SessionId};

use crate::projection::bad_value;
use crate::{SessionRecord, SessionTab, StoreError};

/// The stored text of a session's UI state and tabs.
pub(crate) fn encode(session: &SessionRecord) -> Result<(String, String), StoreError> {
    let ui =
        serde_json::to_string(&session.ui_state).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let tabs =
        serde_json::to_string(&session.tabs).map_err(|e| StoreError::Backend(Box::new(e)))?;
    Ok((ui, tabs))
}

/// A session's columns, as read.
pub(crate) struct Row {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub ui_state: String,
    pub tabs: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seen_at: Option<i64>,
}

/// The columns of `client_sessions`, in the order [`Row`] is read.
pub(crate) const COLUMNS: &str =
    "id, tenant, name, ui_state, tabs, created_at, updated_at, last_seen_at";

impl Row {
    pub(crate) fn record(self) -> Result<SessionRecord, StoreError> {
        let id: SessionId = self
            .id
            .parse()
            .map_err(|_| bad_value("client_sessions", "id", &self.id))?;
        let ui_state = serde_json::from_str(&self.ui_state)
            .map_err(|_| bad_value("client_sessions", "ui_state", &self.ui_state))?;
        let tabs: Vec<SessionTab> = serde_json::from_str(&self.tabs)
            .map_err(|_| bad_value("client_sessions", "tabs", &self.tabs))?;
        Ok(SessionRecord {
            id,
            tenant: self.tenant,
            name: self.name,
            ui_state,
            tabs,
            acked: std::collections::BTreeMap::new(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_seen_at: self.last_seen_at,
        })
    }
}

/// A cursor's run id, as read.
pub(crate) fn cursor_run(text: &str) -> Result<RunId, StoreError> {
    text.parse()
        .map_err(|_| bad_value("session_cursors", "run_id", text))
}

/// Applies an edit, keeping what is the store's: id, tenant, creation, positions.
pub(crate) fn apply(
    mut session: SessionRecord,
    at: i64,
    edit: crate::SessionEdit,
) -> Result<SessionRecord, StoreError> {
    let (id, tenant, created, acked, seen) = (
        session.id,
        session.tenant.clone(),
        session.created_at,
        session.acked.clone(),
        session.last_seen_at,
    );
    edit(&mut session)?;
    session.id = id;
    session.tenant = tenant;
    session.created_at = created;
    session.acked = acked;
    session.last_seen_at = seen;
    session.updated_at = at;
    Ok(session)
}

pub(crate) fn not_found(id: SessionId) -> StoreError {
    StoreError::NotFound {
        what: "session",
        id: id.to_string(),
    }
}
