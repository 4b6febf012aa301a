//! `/api/definitions`: what the active method defines — agents, workflows, templates,
//! checklists — so a client can show what a run will do before starting one.
//!
//! Only the built-in method can be asked for: method folders are files on the server, and
//! runs of the API use only `builtin` (see `runs`), so no other method is active for any
//! tenant.

use axum::Json;
use axum::extract::State;
use botarmy_core::method::Method;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::input::{QueryParams, invalid_param};

/// The one method the API offers.
const BUILTIN: &str = "builtin";

/// An agent of the method.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentDefinition {
    /// Id (`analyst`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Title (`Business Analyst`).
    pub title: String,
    /// The tools it may use.
    pub tools: Vec<String>,
}

/// One item of a workflow's sequence.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowStepDefinition {
    /// The step's name, if it has one.
    pub step: Option<String>,
    /// The agent that does it.
    pub agent: Option<String>,
    /// What it creates.
    pub creates: Option<String>,
    /// Its phase.
    pub phase: Option<String>,
    /// Whether it runs only when asked for.
    pub optional: bool,
}

/// A workflow of the method.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowDefinition {
    /// Id (`sdlc`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Type (`greenfield`, `brownfield`, `sdlc`).
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is for.
    pub description: Option<String>,
    /// Phase ids, in order.
    pub phases: Vec<String>,
    /// Its sequence, summarised.
    pub steps: Vec<WorkflowStepDefinition>,
}

/// A section of a template.
#[derive(Debug, Serialize, ToSchema)]
pub struct SectionDefinition {
    /// Id.
    pub id: String,
    /// Title.
    pub title: Option<String>,
    /// Nesting depth, 0 for a top-level section.
    pub depth: u32,
}

/// A document template of the method.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateDefinition {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Every section, depth first.
    pub sections: Vec<SectionDefinition>,
}

/// What a method defines.
#[derive(Debug, Serialize, ToSchema)]
pub struct Definitions {
    /// The method (`builtin`).
    pub method: String,
    /// Digest of its definitions (runs record it in their plan).
    pub digest: String,
    /// The workflow a run uses when it names none.
    pub default_workflow: Option<String>,
    /// Agents, in the method's order.
    pub agents: Vec<AgentDefinition>,
    /// Workflows.
    pub workflows: Vec<WorkflowDefinition>,
    /// Document templates.
    pub templates: Vec<TemplateDefinition>,
    /// Checklist names.
    pub checklists: Vec<String>,
}

impl Definitions {
    fn of(method: &Method) -> Self {
        Self {
            method: method.source().to_string(),
            digest: method.digest().to_owned(),
            default_workflow: method.default_workflow().map(|w| w.id.clone()),
            agents: method
                .agents()
                .iter()
                .map(|a| AgentDefinition {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    title: a.title.clone(),
                    tools: a.tools.clone(),
                })
                .collect(),
            workflows: method
                .workflows()
                .iter()
                .map(|w| WorkflowDefinition {
                    id: w.id.clone(),
                    name: w.name.clone(),
                    kind: w.kind.clone(),
                    description: w.description.clone(),
                    phases: w.phases.iter().map(|p| p.id.clone()).collect(),
                    steps: w
                        .sequence
                        .iter()
                        .map(|item| WorkflowStepDefinition {
                            step: item.step.clone(),
                            agent: item.agent.clone(),
                            creates: item.creates.clone(),
                            phase: item.phase.clone(),
                            optional: item.optional,
                        })
                        .collect(),
                })
                .collect(),
            templates: method
                .templates()
                .iter()
                .map(|t| TemplateDefinition {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    sections: t
                        .walk()
                        .into_iter()
                        .map(|(depth, s)| SectionDefinition {
                            id: s.id.clone(),
                            title: s.title.clone(),
                            depth: u32::try_from(depth).unwrap_or(u32::MAX),
                        })
                        .collect(),
                })
                .collect(),
            checklists: method.checklists().iter().map(|c| c.name.clone()).collect(),
        }
    }
}

/// The definitions of the active method.
#[utoipa::path(get, path = "/api/definitions", tag = "definitions",
    params(("method" = Option<String>, Query, description = "the method: only `builtin` (the default) is offered; method folders are the server's, not a client's to name")),
    responses(
        (status = 200, description = "the method's agents, workflows, templates and checklists", body = Definitions),
        (status = 400, description = "a method other than `builtin`, or an unknown parameter", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    mut query: QueryParams,
) -> Result<Json<Definitions>, ApiError> {
    let method = query.take("method").unwrap_or_else(|| BUILTIN.into());
    query.finish()?;
    if method != BUILTIN {
        return Err(invalid_param(
            "method",
            format!("`{method}` cannot be read through the API; only `{BUILTIN}` is offered"),
        ));
    }
    let handle = state.runtime.method(BUILTIN)?;
    Ok(Json(Definitions::of(handle.method())))
}
