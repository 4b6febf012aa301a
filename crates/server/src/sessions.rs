//! `/api/sessions`: a client's session (a dashboard's tabs and UI state, and how far it
//! has read each run), kept across reconnects and server restarts.
//!
//! A client creates a session once and keeps its id. Its tabs name runs and projects; when
//! it connects with `/ws?session_id=S` it gets `session_restored` (the session and the
//! state of every run it follows), then per run the events it missed while offline
//! (`offline_event` with their count, then the events), the text of model calls still
//! streaming (`token_catchup`), and live events. It acknowledges what it has read (`ack`
//! over the socket or `POST /api/sessions/{id}/ack`); the next connection resumes after
//! the acknowledged events. Sessions not seen for the configured time are deleted.

use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use botarmy_protocol::{ProjectId, RunId, SessionId, UnixMillis};
use botarmy_runtime::Streaming;
use botarmy_store::{RunSummary, SessionRecord, SessionTab, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::input::{JsonBody, PathIds, QueryParams};
use crate::projects::check_name;
use crate::views::RunDetail;

/// Tabs a session may have.
pub const MAX_TABS: usize = 100;
/// Bytes a session's UI state may take, as JSON.
pub const MAX_UI_STATE_BYTES: usize = 64 * 1024;
/// Bytes one tab's state may take, as JSON.
pub const MAX_TAB_STATE_BYTES: usize = 16 * 1024;
/// Characters of a tab's title.
const MAX_TITLE_CHARS: usize = 200;
/// Characters of a tab's id.
const MAX_TAB_ID_CHARS: usize = 64;
/// Positions acknowledged in one request.
const MAX_ACKS: usize = 1_000;

/// One tab of a session, as given by the client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TabInput {
    /// The client's id for it, unique within the session: 1 to 64 letters, digits, `-`,
    /// `_`, `.` or `:` (one is made up if left out).
    #[serde(default)]
    pub id: Option<String>,
    /// Title (at most 200 characters).
    #[serde(default)]
    pub title: String,
    /// A run it shows: its events are streamed to the session.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub run_id: Option<RunId>,
    /// A project it shows: its runs' events are streamed to the session.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    /// Whether it is the tab in front (at most one is).
    #[serde(default)]
    pub active: bool,
    /// Whatever the client keeps for it (any JSON, at most 16 KiB).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
}

/// A new session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// What the client calls it (1 to 100 characters).
    pub name: String,
    /// Whatever the client keeps (a JSON object, at most 64 KiB).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub ui_state: Option<serde_json::Value>,
    /// Its tabs, in order (at most 100).
    #[serde(default)]
    pub tabs: Vec<TabInput>,
}

/// What to change of a session; a field left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSession {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// The new UI state (replaces the old one whole).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub ui_state: Option<serde_json::Value>,
    /// The new tabs (replace the old ones whole).
    #[serde(default)]
    pub tabs: Option<Vec<TabInput>>,
}

/// What to change of one tab; a field left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTab {
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// The run it shows (`null`: none).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub run_id: Option<Option<RunId>>,
    /// The project it shows (`null`: none).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<Option<ProjectId>>,
    /// Bring it to front (the others go back) or not.
    #[serde(default)]
    pub active: Option<bool>,
    /// Its new state (replaces the old one whole).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub state: Option<serde_json::Value>,
}

/// Reads a field that may be left out (`None`), `null` (`Some(None)`) or a value.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Read positions to record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckSession {
    /// Per run, the last event the client has read (a position never moves back).
    pub acks: Vec<AckInput>,
}

/// One read position.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckInput {
    /// The run.
    #[schema(value_type = String, format = Uuid)]
    pub run_id: RunId,
    /// Its last event read (a sequence number of its log).
    pub seq: u64,
}

/// One tab of a session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TabView {
    /// The client's id for it.
    pub id: String,
    /// Title.
    pub title: String,
    /// The run it shows.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub run_id: Option<RunId>,
    /// The project it shows.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    /// Whether it is in front.
    pub active: bool,
    /// What the client keeps for it.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
}

impl From<SessionTab> for TabView {
    fn from(t: SessionTab) -> Self {
        Self {
            id: t.id,
            title: t.title,
            run_id: t.run_id,
            project_id: t.project_id,
            active: t.active,
            state: t.state,
        }
    }
}

/// A session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// Id (UUID): connect with `/ws?session_id=`.
    #[schema(value_type = String, format = Uuid)]
    pub id: SessionId,
    /// What the client calls it.
    pub name: String,
    /// What the client keeps.
    #[schema(value_type = Object)]
    pub ui_state: serde_json::Value,
    /// Its tabs, in order.
    pub tabs: Vec<TabView>,
    /// Per run (id), the last event acknowledged.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub acked: BTreeMap<RunId, u64>,
    /// Clients connected with it to this server process now.
    pub connected: u32,
    /// Creation time, Unix milliseconds.
    pub created_at: UnixMillis,
    /// When its name, UI state or tabs last changed.
    pub updated_at: UnixMillis,
    /// When a client last connected or disconnected with it.
    pub last_seen_at: Option<UnixMillis>,
}

impl SessionView {
    pub(crate) fn new(s: SessionRecord, state: &AppState) -> Self {
        Self {
            connected: state.sessions.connected(s.id),
            id: s.id,
            name: s.name,
            ui_state: s.ui_state,
            tabs: s.tabs.into_iter().map(TabView::from).collect(),
            acked: s.acked,
            created_at: s.created_at,
            updated_at: s.updated_at,
            last_seen_at: s.last_seen_at,
        }
    }
}

/// The caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Most recently seen first.
    pub items: Vec<SessionView>,
}

/// Read positions after an acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct AckedView {
    /// Per run (id), the last event acknowledged.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub acked: BTreeMap<RunId, u64>,
}

/// The text a model call has streamed so far, for a client that connects mid-call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamingView {
    /// The run.
    #[schema(value_type = String, format = Uuid)]
    pub run_id: RunId,
    /// Step index.
    pub step: u32,
    /// Attempt of the step.
    pub attempt: u32,
    /// The call within the attempt (from 0).
    pub call: u32,
    /// The agent answering.
    pub agent: String,
    /// When its first token came, Unix milliseconds.
    pub started_at: UnixMillis,
    /// The text so far (its newest 256 KiB).
    pub text: String,
    /// Bytes left out from the start.
    pub dropped_bytes: u64,
}

impl From<Streaming> for StreamingView {
    fn from(s: Streaming) -> Self {
        Self {
            run_id: s.run_id,
            step: s.step,
            attempt: s.attempt,
            call: s.call,
            agent: s.agent,
            started_at: s.started_at,
            text: s.text,
            dropped_bytes: s.dropped_bytes,
        }
    }
}

/// A run a session follows, as it is now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowedRun {
    /// The run with its phases, steps and attempts.
    pub run: RunDetail,
    /// The last event the session acknowledged (0: none).
    pub acked: u64,
    /// Events after it: what the client has not read.
    pub missed: u64,
    /// Text its models are streaming now.
    pub streaming: Vec<StreamingView>,
}

/// What a client needs to restore a session: the session and the state of every run it
/// follows (`/ws?session_id=` sends the same as `session_restored`, then the missed
/// events themselves).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionRestore {
    /// The session.
    pub session: SessionView,
    /// The runs its tabs show, and the runs of the projects they show that were active
    /// since it was last seen, oldest first.
    pub runs: Vec<FollowedRun>,
}

/// Checks a session's tabs; `at` is the field path of the list.
async fn tabs_of(
    state: &AppState,
    caller: &Caller,
    input: Vec<TabInput>,
    at: &str,
) -> Result<Vec<SessionTab>, ApiError> {
    let mut problems = Vec::new();
    if input.len() > MAX_TABS {
        problems.push(field(at, format!("at most {MAX_TABS} tabs")));
    }
    if input.iter().filter(|t| t.active).count() > 1 {
        problems.push(field(at, "at most one tab is active".into()));
    }
    let mut tabs = Vec::with_capacity(input.len());
    let mut ids = HashSet::new();
    for (i, tab) in input.into_iter().enumerate() {
        let path = format!("{at}[{i}]");
        if let Some(id) = &tab.id
            && !ids.insert(id.clone())
        {
            problems.push(field(
                &within(&path, "id"),
                format!("`{id}` is the id of an earlier tab"),
            ));
        }
        tabs.extend(check_tab(state, caller, tab, &path, &mut problems).await?);
    }
    if problems.is_empty() {
        Ok(tabs)
    } else {
        Err(ApiError::validation(problems))
    }
}

fn field(path: &str, message: String) -> FieldError {
    FieldError {
        path: path.to_owned(),
        message,
    }
}

/// The path of `name` within the object at `path` (the body itself: empty).
fn within(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Checks one tab, at `path` of the body: its id, title, state, and that its run and
/// project are the caller's. What is wrong goes to `problems`; the tab comes back if
/// nothing is. An error of the store itself is returned as such.
async fn check_tab(
    state: &AppState,
    caller: &Caller,
    tab: TabInput,
    path: &str,
    problems: &mut Vec<FieldError>,
) -> Result<Option<SessionTab>, ApiError> {
    let before = problems.len();
    let id = tab
        .id
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    if let Some(problem) = check_tab_id(&id) {
        problems.push(field(&within(path, "id"), problem));
    }
    if let Some(problem) = check_title(&tab.title) {
        problems.push(field(&within(path, "title"), problem));
    }
    if let Some(problem) = check_size(&tab.state, MAX_TAB_STATE_BYTES) {
        problems.push(field(&within(path, "state"), problem));
    }
    check_targets(state, caller, tab.run_id, tab.project_id, path, problems).await?;
    Ok((problems.len() == before).then(|| SessionTab {
        id,
        title: tab.title,
        run_id: tab.run_id,
        project_id: tab.project_id,
        active: tab.active,
        state: tab.state,
    }))
}

/// Checks that a tab's run and project are the caller's; a missing one goes to
/// `problems`, an error of the store is returned.
async fn check_targets(
    state: &AppState,
    caller: &Caller,
    run: Option<RunId>,
    project: Option<ProjectId>,
    path: &str,
    problems: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    if let Some(run) = run {
        match state.store.get_run_in(&caller.tenant, run).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                problems.push(field(&within(path, "run_id"), format!("no run `{run}`")));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(project) = project {
        match state.store.get_project_in(&caller.tenant, project).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => problems.push(field(
                &within(path, "project_id"),
                format!("no project `{project}`"),
            )),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn check_tab_id(id: &str) -> Option<String> {
    if id.is_empty() || id.chars().count() > MAX_TAB_ID_CHARS {
        Some(format!("must be 1 to {MAX_TAB_ID_CHARS} characters"))
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        Some("may hold letters, digits, `-`, `_`, `.` and `:` only".into())
    } else {
        None
    }
}

fn check_title(title: &str) -> Option<String> {
    if title.chars().count() > MAX_TITLE_CHARS {
        Some(format!("must be at most {MAX_TITLE_CHARS} characters"))
    } else if title.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

fn check_size(value: &serde_json::Value, max: usize) -> Option<String> {
    let size = serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
    (size > max).then(|| format!("takes {size} bytes as JSON; at most {max} are kept"))
}

fn check_ui_state(value: &serde_json::Value) -> Option<FieldError> {
    if !value.is_object() {
        return Some(field("ui_state", "must be a JSON object".into()));
    }
    check_size(value, MAX_UI_STATE_BYTES).map(|problem| field("ui_state", problem))
}

/// Creates a session.
#[utoipa::path(post, path = "/api/sessions", tag = "sessions", request_body = CreateSession,
    responses(
        (status = 201, description = "created", body = SessionView),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 422, description = "a value is not acceptable (the field is named)", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<impl IntoResponse, ApiError> {
    let mut problems: Vec<FieldError> = check_name(&body.name, "name").into_iter().collect();
    let ui_state = body
        .ui_state
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    problems.extend(check_ui_state(&ui_state));
    let tabs = match tabs_of(&state, &caller, body.tabs, "tabs").await {
        Ok(tabs) => Some(tabs),
        Err(e) => {
            problems.extend(e.into_details());
            None
        }
    };
    let Some(tabs) = tabs.filter(|_| problems.is_empty()) else {
        return Err(ApiError::validation(problems));
    };
    let now = botarmy_protocol::now_millis();
    let session = SessionRecord {
        id: SessionId::new(),
        tenant: caller.tenant.clone(),
        name: body.name,
        ui_state,
        tabs,
        acked: BTreeMap::new(),
        created_at: now,
        updated_at: now,
        last_seen_at: None,
    };
    state.store.create_session(session.clone()).await?;
    let view = SessionView::new(session, &state);
    Ok((
        StatusCode::CREATED,
        [(LOCATION, format!("/api/sessions/{}", view.id))],
        Json(view),
    ))
}

/// Lists the caller's sessions.
#[utoipa::path(get, path = "/api/sessions", tag = "sessions",
    responses((status = 200, description = "the sessions, most recently seen first", body = SessionList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<SessionList>, ApiError> {
    query.finish()?;
    let items = state
        .store
        .list_sessions_in(&caller.tenant)
        .await?
        .into_iter()
        .map(|s| SessionView::new(s, &state))
        .collect();
    Ok(Json(SessionList { items }))
}

/// One session.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "session id (UUID)")),
    responses(
        (status = 200, description = "the session", body = SessionView),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such session", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<SessionView>, ApiError> {
    let id: SessionId = path.get("id")?;
    let session = state.store.get_session_in(&caller.tenant, id).await?;
    Ok(Json(SessionView::new(session, &state)))
}

/// Renames a session, replaces its UI state or its tabs.
#[utoipa::path(patch, path = "/api/sessions/{id}", tag = "sessions", request_body = UpdateSession,
    params(("id" = uuid::Uuid, Path, description = "session id (UUID)")),
    responses(
        (status = 200, description = "the session as it is now", body = SessionView),
        (status = 400, description = "malformed body or not an id", body = ErrorBody),
        (status = 404, description = "no such session", body = ErrorBody),
        (status = 422, description = "a value is not acceptable (the field is named)", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    JsonBody(body): JsonBody<UpdateSession>,
) -> Result<Json<SessionView>, ApiError> {
    let id: SessionId = path.get("id")?;
    let mut problems: Vec<FieldError> = Vec::new();
    if let Some(name) = &body.name {
        problems.extend(check_name(name, "name"));
    }
    if let Some(ui) = &body.ui_state {
        problems.extend(check_ui_state(ui));
    }
    let tabs = match body.tabs {
        Some(tabs) => match tabs_of(&state, &caller, tabs, "tabs").await {
            Ok(tabs) => Some(tabs),
            Err(e) => {
                problems.extend(e.into_details());
                None
            }
        },
        None => None,
    };
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let (name, ui_state) = (body.name, body.ui_state);
    edit(&state, &caller, id, move |s| {
        if let Some(name) = name {
            s.name = name;
        }
        if let Some(ui) = ui_state {
            s.ui_state = ui;
        }
        if let Some(tabs) = tabs {
            s.tabs = tabs;
        }
        Ok(())
    })
    .await
}

/// Changes a session in the store and tells its open streams.
async fn edit(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
    change: impl FnOnce(&mut SessionRecord) -> Result<(), StoreError> + Send + 'static,
) -> Result<Json<SessionView>, ApiError> {
    let session = state
        .store
        .update_session_in(
            &caller.tenant,
            id,
            botarmy_protocol::now_millis(),
            Box::new(change),
        )
        .await?;
    state.sessions.changed(id);
    Ok(Json(SessionView::new(session, state)))
}

/// Deletes a session.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "session id (UUID)")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such session", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<StatusCode, ApiError> {
    let id: SessionId = path.get("id")?;
    state.store.delete_session_in(&caller.tenant, id).await?;
    state.sessions.changed(id);
    Ok(StatusCode::NO_CONTENT)
}

/// Opens a tab (appended after the others).
#[utoipa::path(post, path = "/api/sessions/{id}/tabs", tag = "sessions", request_body = TabInput,
    params(("id" = uuid::Uuid, Path, description = "session id (UUID)")),
    responses(
        (status = 201, description = "the session with the tab", body = SessionView),
        (status = 400, description = "malformed body, not an id, or the session has 100 tabs", body = ErrorBody),
        (status = 404, description = "no such session", body = ErrorBody),
        (status = 409, description = "the session has a tab with this id", body = ErrorBody),
        (status = 422, description = "a value is not acceptable (the field is named)", body = ErrorBody),
    ))]
pub async fn add_tab(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    JsonBody(body): JsonBody<TabInput>,
) -> Result<impl IntoResponse, ApiError> {
    let id: SessionId = path.get("id")?;
    let mut problems = Vec::new();
    let Some(tab) = check_tab(&state, &caller, body, "", &mut problems).await? else {
        return Err(ApiError::validation(problems));
    };
    let view = edit(&state, &caller, id, move |s| {
        if s.tabs.iter().any(|t| t.id == tab.id) {
            return Err(StoreError::AlreadyExists {
                what: "tab",
                id: tab.id,
            });
        }
        if s.tabs.len() >= MAX_TABS {
            return Err(StoreError::InvalidInput {
                detail: format!("the session has {MAX_TABS} tabs, as many as it may"),
            });
        }
        if tab.active {
            for other in &mut s.tabs {
                other.active = false;
            }
        }
        s.tabs.push(tab);
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, view))
}

/// Changes one tab.
#[utoipa::path(patch, path = "/api/sessions/{id}/tabs/{tab}", tag = "sessions", request_body = UpdateTab,
    params(
        ("id" = uuid::Uuid, Path, description = "session id (UUID)"),
        ("tab" = String, Path, description = "the tab's id"),
    ),
    responses(
        (status = 200, description = "the session as it is now", body = SessionView),
        (status = 400, description = "malformed body or not an id", body = ErrorBody),
        (status = 404, description = "no such session or tab", body = ErrorBody),
        (status = 422, description = "a value is not acceptable (the field is named)", body = ErrorBody),
    ))]
pub async fn update_tab(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    JsonBody(body): JsonBody<UpdateTab>,
) -> Result<Json<SessionView>, ApiError> {
    let id: SessionId = path.get("id")?;
    let tab_id = path.text("tab").to_owned();
    let mut problems = Vec::new();
    if let Some(problem) = body.title.as_deref().and_then(check_title) {
        problems.push(field("title", problem));
    }
    if let Some(problem) = body
        .state
        .as_ref()
        .and_then(|s| check_size(s, MAX_TAB_STATE_BYTES))
    {
        problems.push(field("state", problem));
    }
    check_targets(
        &state,
        &caller,
        body.run_id.flatten(),
        body.project_id.flatten(),
        "",
        &mut problems,
    )
    .await?;
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    edit(&state, &caller, id, move |s| {
        let i = s
            .tabs
            .iter()
            .position(|t| t.id == tab_id)
            .ok_or_else(|| StoreError::NotFound {
                what: "tab",
                id: tab_id.clone(),
            })?;
        if body.active == Some(true) {
            for other in &mut s.tabs {
                other.active = false;
            }
        }
        let tab = &mut s.tabs[i];
        if let Some(title) = body.title {
            tab.title = title;
        }
        if let Some(run) = body.run_id {
            tab.run_id = run;
        }
        if let Some(project) = body.project_id {
            tab.project_id = project;
        }
        if let Some(active) = body.active {
            tab.active = active;
        }
        if let Some(tab_state) = body.state {
            tab.state = tab_state;
        }
        Ok(())
    })
    .await
}

/// Closes a tab.
#[utoipa::path(delete, path = "/api/sessions/{id}/tabs/{tab}", tag = "sessions",
    params(
        ("id" = uuid::Uuid, Path, description = "session id (UUID)"),
        ("tab" = String, Path, description = "the tab's id"),
    ),
    responses(
        (status = 200, description = "the session without the tab", body = SessionView),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such session or tab", body = ErrorBody),
    ))]
pub async fn remove_tab(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<SessionView>, ApiError> {
    let id: SessionId = path.get("id")?;
    let tab_id = path.text("tab").to_owned();
    edit(&state, &caller, id, move |s| {
        let before = s.tabs.len();
        s.tabs.retain(|t| t.id != tab_id);
        if s.tabs.len() == before {
            return Err(StoreError::NotFound {
                what: "tab",
                id: tab_id,
            });
        }
        Ok(())
    })
    .await
}

/// Records how far the client has read runs; the next connection of the session resumes
/// after these events.
#[utoipa::path(post, path = "/api/sessions/{id}/ack", tag = "sessions", request_body = AckSession,
    params(("id" = uuid::Uuid, Path, description = "session id (UUID)")),
    responses(
        (status = 200, description = "every read position of the session now", body = AckedView),
        (status = 400, description = "malformed body or not an id", body = ErrorBody),
        (status = 404, description = "no such session", body = ErrorBody),
        (status = 422, description = "an unknown run, or a position past the run's last event", body = ErrorBody),
    ))]
pub async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    JsonBody(body): JsonBody<AckSession>,
) -> Result<Json<AckedView>, ApiError> {
    let id: SessionId = path.get("id")?;
    let acks: Vec<(RunId, u64)> = body.acks.iter().map(|a| (a.run_id, a.seq)).collect();
    let acked = record_acks(&state, &caller.tenant, id, acks).await?;
    Ok(Json(AckedView { acked }))
}

/// Checks read positions (runs of the tenant, not past their last event) and stores them.
pub(crate) async fn record_acks(
    state: &AppState,
    tenant: &str,
    id: SessionId,
    acks: Vec<(RunId, u64)>,
) -> Result<BTreeMap<RunId, u64>, ApiError> {
    if acks.len() > MAX_ACKS {
        return Err(ApiError::validation(vec![field(
            "acks",
            format!("at most {MAX_ACKS} positions at once"),
        )]));
    }
    let mut problems = Vec::new();
    let mut last: BTreeMap<RunId, u64> = BTreeMap::new();
    for (i, (run, seq)) in acks.iter().enumerate() {
        let known = match last.get(run) {
            Some(n) => Some(*n),
            None => match state.store.get_run_in(tenant, *run).await {
                Ok(r) => {
                    last.insert(*run, r.last_seq);
                    Some(r.last_seq)
                }
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
        };
        match known {
            None => problems.push(field(
                &format!("acks[{i}].run_id"),
                format!("no run `{run}`"),
            )),
            Some(n) if *seq > n => problems.push(field(
                &format!("acks[{i}].seq"),
                format!("{seq} is past the run's last event, {n}"),
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    Ok(state
        .store
        .ack_session_in(tenant, id, acks, botarmy_protocol::now_millis())
        .await?)
}

/// The session and the state of every run it follows.
#[utoipa::path(get, path = "/api/sessions/{id}/restore", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "session id (UUID)")),
    responses(
        (status = 200, description = "the session and its runs", body = SessionRestore),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such session", body = ErrorBody),
    ))]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<SessionRestore>, ApiError> {
    let id: SessionId = path.get("id")?;
    let session = state.store.get_session_in(&caller.tenant, id).await?;
    let runs = followed(&state, &caller.tenant, &session, 0).await?;
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        let streaming = state.runtime.streaming(run.id);
        out.push(followed_run(&state, &caller, &session, run.id, streaming).await?);
    }
    Ok(Json(SessionRestore {
        session: SessionView::new(session, &state),
        runs: out,
    }))
}

/// What a session follows of one run now.
pub(crate) async fn followed_run(
    state: &AppState,
    caller: &Caller,
    session: &SessionRecord,
    run: RunId,
    streaming: Vec<Streaming>,
) -> Result<FollowedRun, ApiError> {
    let acked = session.acked.get(&run).copied().unwrap_or(0);
    let detail = crate::runs::detail(state, caller, run).await?;
    Ok(FollowedRun {
        acked,
        missed: detail.run.last_seq.saturating_sub(acked),
        run: detail,
        streaming: streaming.into_iter().map(StreamingView::from).collect(),
    })
}

/// The runs a session follows: those its tabs show, and the runs of the projects they
/// show that are not finished or were created or finished since it was last seen; oldest
/// first. `newest`: of each project, only that many of its newest runs are looked at (0:
/// all).
pub(crate) async fn followed(
    state: &AppState,
    tenant: &str,
    session: &SessionRecord,
    newest: u32,
) -> Result<Vec<RunSummary>, ApiError> {
    let mut runs: BTreeMap<RunId, RunSummary> = BTreeMap::new();
    for tab in &session.tabs {
        if let Some(run) = tab.run_id
            && !runs.contains_key(&run)
        {
            match state.store.get_run_in(tenant, run).await {
                Ok(summary) => {
                    runs.insert(run, summary);
                }
                // A tab whose run was deleted shows nothing.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let seen = session.last_seen_at.unwrap_or(session.created_at);
    let projects: HashSet<ProjectId> = session.tabs.iter().filter_map(|t| t.project_id).collect();
    for project in projects {
        let filter = botarmy_store::RunFilter {
            tenant: Some(tenant.to_owned()),
            project: Some(project),
            limit: newest,
            ..botarmy_store::RunFilter::default()
        };
        for run in state.store.list_runs(&filter).await? {
            let recent = !run.status.is_terminal()
                || run.created_at >= seen
                || run.finished_at.is_some_and(|f| f >= seen);
            if recent {
                runs.entry(run.id).or_insert(run);
            }
        }
    }
    let mut out: Vec<RunSummary> = runs.into_values().collect();
    out.sort_by_key(|r| (r.created_at, r.id));
    Ok(out)
}

/// The sessions connected to this process, and news of changes to them.
pub(crate) struct Sessions {
    connected: std::sync::Mutex<std::collections::HashMap<SessionId, u32>>,
    changes: broadcast::Sender<SessionId>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            connected: std::sync::Mutex::default(),
            changes: broadcast::channel(256).0,
        }
    }
}

impl Sessions {
    /// Clients connected with the session now.
    pub(crate) fn connected(&self, id: SessionId) -> u32 {
        self.lock().get(&id).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<SessionId, u32>> {
        self.connected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a client in until the guard drops.
    pub(crate) fn connect(self: &std::sync::Arc<Self>, id: SessionId) -> Connected {
        *self.lock().entry(id).or_insert(0) += 1;
        Connected {
            sessions: std::sync::Arc::clone(self),
            id,
        }
    }

    /// Tells open streams the session changed (its tabs may name other runs).
    pub(crate) fn changed(&self, id: SessionId) {
        let _ = self.changes.send(id);
    }

    /// News of changed sessions.
    pub(crate) fn watch(&self) -> broadcast::Receiver<SessionId> {
        self.changes.subscribe()
    }
}

/// A client connected with a session.
pub(crate) struct Connected {
    sessions: std::sync::Arc<Sessions>,
    id: SessionId,
}

impl Drop for Connected {
    fn drop(&mut self) {
        let mut connected = self.sessions.lock();
        if let Some(n) = connected.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                connected.remove(&self.id);
            }
        }
    }
}
