//! The OpenAPI document of the REST API, generated from the handlers' annotations so it
//! cannot drift from the routes' shapes.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::approvals::{
    AmendRun, ApprovalList, ApproveRun, GateList, PendingApproval, RejectRun, RestartStep,
};
use crate::conflicts::{ConflictList, SettledConflictList};
use crate::definitions::{
    AgentDefinition, Definitions, SectionDefinition, TemplateDefinition, WorkflowDefinition,
    WorkflowStepDefinition,
};
use crate::error::{ErrorBody, ErrorCode, FieldError};
use crate::projects::{CreateProject, UpdateProject};
use crate::repositories::{AddRepository, RepositoryList, RepositoryView};
use crate::runs::{AnswerRun, CancelRun, CreateRun, ResumeRun, RunOptionsBody};
use crate::sessions::{
    AckInput, AckSession, AckedView, CreateSession, FollowedRun, SessionList, SessionRestore,
    SessionView, StreamingView, TabInput, TabView, UpdateSession, UpdateTab,
};
use crate::views::{
    ArtifactList, ArtifactView, AttemptView, DeletedProjectView, EventPage, HealthView, PhaseView,
    ProjectPage, ProjectView, RunDetail, RunPage, RunUsage, RunView, StepView, UsageRowView,
    UsageView, VersionView,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "BotArmy API",
        description = "Start, steer and read BotArmy runs. Every error has the shape \
            `{code, message, details: [{path, message}]}`. Live events: the WebSocket \
            `/ws?run_id=ID&since=N` streams a run's stored events after N, then live ones; \
            `/ws?project_id=P` a project's runs and `/ws?scope=all` all of the caller's, \
            resumed with `since=RUN:N,RUN:N`; `/ws?session_id=S` restores a client session \
            (see `/api/sessions` and the server crate's `ws` module). Every \
            route but `/health`, `/ready`, `/api/openapi.json` and `/api/docs` (this \
            document, for people) needs `Authorization: Bearer <token>` when the server has \
            authentication on: an API token (`botarmy token create`) or a JWT of the \
            configured OpenID issuer. A caller sees only its own tenant's projects, runs, \
            events and artifacts; another tenant's answer 404 like missing ones. `/metrics` \
            (Prometheus text format) covers every tenant, so it needs a caller of an admin \
            tenant when authentication is on. Every POST must declare \
            `Content-Type: application/json`, with a body or without one (415 otherwise). \
            Requests from web pages of other origins (an `Origin` that is not the server's \
            own nor listed in `[server] allowed_origins`) and requests whose `Host` does not \
            name the server are refused with 403."
    ),
    modifiers(&BearerAuth),
    paths(
        crate::meta::health,
        crate::meta::ready,
        crate::meta::version,
        crate::meta::openapi,
        crate::projects::create,
        crate::projects::list,
        crate::projects::get,
        crate::projects::update,
        crate::projects::delete,
        crate::definitions::list,
        crate::metrics::scrape,
        crate::runs::create,
        crate::runs::list,
        crate::runs::get,
        crate::runs::delete,
        crate::runs::pause,
        crate::runs::resume,
        crate::runs::cancel,
        crate::runs::answer,
        crate::approvals::pending,
        crate::approvals::gates,
        crate::approvals::approve,
        crate::approvals::reject,
        crate::approvals::amend,
        crate::approvals::restart,
        crate::conflicts::of_run,
        crate::conflicts::of_project,
        crate::events::page,
        crate::events::usage,
        crate::artifacts::list,
        crate::artifacts::get,
        crate::artifacts::raw,
        crate::artifacts::versions,
        crate::repositories::add,
        crate::repositories::list,
        crate::repositories::get,
        crate::repositories::remove,
        crate::sessions::create,
        crate::sessions::list,
        crate::sessions::get,
        crate::sessions::update,
        crate::sessions::delete,
        crate::sessions::add_tab,
        crate::sessions::update_tab,
        crate::sessions::remove_tab,
        crate::sessions::ack,
        crate::sessions::restore,
    ),
    components(schemas(
        ErrorBody, ErrorCode, FieldError, CreateProject, CreateRun, RunOptionsBody, ResumeRun,
        CancelRun, AnswerRun, ArtifactList, ArtifactView, AttemptView, EventPage, HealthView, PhaseView,
        ProjectPage, ProjectView, RunDetail, RunPage, RunUsage, RunView, StepView,
        UsageRowView, UsageView, VersionView, AddRepository, RepositoryList, RepositoryView,
        ApprovalList, PendingApproval, GateList, ApproveRun, RejectRun, RestartStep, AmendRun,
        UpdateProject, DeletedProjectView, Definitions, AgentDefinition, WorkflowDefinition,
        WorkflowStepDefinition, TemplateDefinition, SectionDefinition, ConflictList,
        SettledConflictList, CreateSession, UpdateSession, TabInput, UpdateTab, AckSession,
        AckInput, TabView, SessionView, SessionList, AckedView, StreamingView, FollowedRun,
        SessionRestore,
    )),
    tags(
        (name = "server", description = "health, readiness, version, Prometheus metrics"),
        (name = "definitions", description = "what the method defines: agents, workflows, templates, checklists"),
        (name = "projects", description = "projects; every run belongs to one"),
        (name = "runs", description = "runs, their control, event log and usage"),
        (name = "approvals", description = "gates: what waits for a human, approve, reject with feedback, restart a step"),
        (name = "artifacts", description = "the documents and code runs produce"),
        (name = "repositories", description = "repositories registered for runs to work in"),
        (name = "sessions", description = "client sessions: tabs and UI state kept across reconnects, read positions, restore"),
    )
)]
struct ApiDoc;

/// The bearer security scheme, required everywhere but on the routes that are open.
struct BearerAuth;

/// Routes that answer without a credential.
const OPEN: [&str; 3] = ["/health", "/ready", "/api/openapi.json"];

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API token (`bat_…`, from `botarmy token create`) or a JWT of the configured OpenID issuer",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        // Every POST declares JSON (see the `browser` module): one without a body of its
        // own takes an empty object, so that the document says what a client must send.
        for item in openapi.paths.paths.values_mut() {
            if let Some(post) = item.post.as_mut()
                && post.request_body.is_none()
            {
                post.request_body = Some(empty_json_body().into());
            }
        }
        for path in OPEN {
            if let Some(item) = openapi.paths.paths.get_mut(path)
                && let Some(get) = item.get.as_mut()
            {
                // An empty requirement: no credential needed.
                get.security = Some(vec![SecurityRequirement::default()]);
            }
        }
    }
}

/// The body of a POST that takes none: `Content-Type: application/json` with nothing, or
/// with `{}`.
fn empty_json_body() -> utoipa::openapi::request_body::RequestBody {
    use utoipa::openapi::schema::AdditionalProperties;
    use utoipa::openapi::{ContentBuilder, ObjectBuilder, Required, Type};
    let empty = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(
            AdditionalProperties::<utoipa::openapi::Schema>::FreeForm(false),
        ))
        .build();
    utoipa::openapi::request_body::RequestBodyBuilder::new()
        .description(Some(
            "none: send `Content-Type: application/json` with no body (or `{}`), as every POST must",
        ))
        .required(Some(Required::False))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(empty)).build(),
        )
        .build()
}

/// The OpenAPI document, as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
