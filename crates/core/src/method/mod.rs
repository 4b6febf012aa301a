//! Method definitions in BMAD-METHOD v4's formats: agents, document templates, workflows,
//! teams, tasks, checklists, data, utils and `core-config.yaml`, plus BotArmy's own prompt
//! templates under `prompts/`.
//!
//! [`Method::load`] reads a folder (a real `.bmad-core/` works as it is) and
//! [`Method::builtin`] the default method embedded in the binary. Loading is tolerant of the
//! format's quirks and reports every problem of every file with its file, line, column and
//! field; [`Method::check`] then validates the references between definitions, and
//! [`Method::plan`] resolves a workflow into the run [`Plan`](botarmy_protocol::Plan).

pub mod agent;
mod builtin;
mod check;
mod decode;
pub mod error;
mod loader;
mod plan;
mod resolve;
pub mod team;
pub mod template;
pub mod workflow;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use agent::{Agent, Command, Dependency, Persona, parse_agent};
pub use check::{Diagnostic, Severity};
pub use error::{LoadError, LoadErrors, Location};
pub use plan::PlanError;
pub use team::{Doc, Team, parse_team};
pub use template::{DocTemplate, Section, TableRow, parse_template};
pub use workflow::{BrokenWorkflow, Phase, Route, SequenceItem, Workflow, parse_workflow};

use crate::render::Prompts;

/// `(path relative to the method folder, contents)` of every file of the builtin method.
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    builtin::FILES
}

/// Where a method's definitions came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSource {
    /// The default method embedded in the binary.
    Builtin,
    /// A folder on disk.
    Dir(PathBuf),
}

impl fmt::Display for MethodSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin => f.write_str("builtin"),
            Self::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A loaded method: every definition of one folder, resolved and ready to plan runs.
#[derive(Debug, Clone)]
pub struct Method {
    source: MethodSource,
    digest: String,
    agents: Vec<Agent>,
    templates: Vec<DocTemplate>,
    workflows: Vec<Workflow>,
    broken_workflows: Vec<BrokenWorkflow>,
    teams: Vec<Team>,
    tasks: Vec<Doc>,
    checklists: Vec<Doc>,
    data: Vec<Doc>,
    utils: Vec<Doc>,
    prompt_files: BTreeMap<String, String>,
    prompts: Prompts,
    config: serde_json::Value,
    other_files: Vec<String>,
}

/// Finds a named item, accepting the name with or without its file extension.
fn find_named<'a, T>(items: &'a [T], name: &str, key: impl Fn(&T) -> &str) -> Option<&'a T> {
    let name = agent::strip_root(name);
    let stem = agent::file_stem(&name);
    items
        .iter()
        .find(|i| key(i) == name)
        .or_else(|| items.iter().find(|i| key(i) == stem))
}

impl Method {
    fn empty(source: MethodSource, digest: String) -> Self {
        Self {
            source,
            digest,
            agents: Vec::new(),
            templates: Vec::new(),
            workflows: Vec::new(),
            broken_workflows: Vec::new(),
            teams: Vec::new(),
            tasks: Vec::new(),
            checklists: Vec::new(),
            data: Vec::new(),
            utils: Vec::new(),
            prompt_files: BTreeMap::new(),
            prompts: Prompts::default(),
            config: serde_json::Value::Null,
            other_files: Vec::new(),
        }
    }

    /// Loads the method folder `dir`, reporting every problem of every file.
    ///
    /// A folder that yields no agent or no workflow is an error that says which shapes
    /// were looked for (and what the folder looks like instead, when it is a BMAD v6 one).
    pub fn load(dir: &Path) -> Result<Self, LoadErrors> {
        let files = loader::read_dir(dir)?;
        let v6 = loader::v6_markers(&files);
        let m = Self::from_files(MethodSource::Dir(dir.to_path_buf()), files)?;
        let mut missing = Vec::new();
        if m.agents.is_empty() {
            missing.push("no agent (looked for `agents/*.md`: markdown with one fenced ```yaml block holding `agent:`)");
        }
        if m.workflows.is_empty() && m.broken_workflows.is_empty() {
            missing.push("no workflow (looked for `workflows/*.yaml`: a `workflow:` map with a `sequence`, or `name` with `steps`, `sequence` or `phases` at the top level)");
        }
        if missing.is_empty() {
            return Ok(m);
        }
        let mut message = format!("the folder yields {}", missing.join(" and "));
        if !v6.is_empty() {
            message.push_str(&format!(
                "; it holds BMAD v6 files ({}), a format BotArmy does not read yet: point --method at a v4 `.bmad-core/` folder",
                v6.join(", ")
            ));
        }
        Err(LoadErrors {
            method: dir.display().to_string(),
            errors: vec![LoadError::Invalid {
                at: Location::file(&dir.display().to_string()),
                field: "(folder)".to_owned(),
                message,
            }],
        })
    }

    /// The default method (the six-phase SDLC), embedded in the binary.
    pub fn builtin() -> Result<Self, LoadErrors> {
        let files = builtin::FILES
            .iter()
            .map(|(p, t)| ((*p).to_owned(), t.as_bytes().to_vec()))
            .collect();
        Self::from_files(MethodSource::Builtin, files)
    }

    /// Builds a method from in-memory files: `(path relative to the method folder, bytes)`.
    pub fn from_files(
        source: MethodSource,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Self, LoadErrors> {
        let mut m = loader::from_files(source, files)?;
        let merged = loader::merged_prompts(&m.prompt_files, builtin::FILES);
        m.prompts = Prompts::new(merged);
        Ok(m)
    }

    /// Where the definitions came from (`builtin` or the folder).
    pub fn source(&self) -> &MethodSource {
        &self.source
    }

    /// Hex SHA-256 over every file of the method (paths and contents), stable across
    /// machines and load orders.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// All agents, sorted by file.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// The agent with this id (or file stem).
    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents
            .iter()
            .find(|a| a.id == id)
            .or_else(|| self.agents.iter().find(|a| agent::file_stem(&a.file) == id))
    }

    /// All document templates, sorted by file.
    pub fn templates(&self) -> &[DocTemplate] {
        &self.templates
    }

    /// The template with this key (file stem, with or without `.yaml`) or `template.id`.
    pub fn template(&self, name: &str) -> Option<&DocTemplate> {
        find_named(&self.templates, name, |t| t.key.as_str())
            .or_else(|| self.templates.iter().find(|t| t.id == name))
    }

    /// All workflows, sorted by file.
    pub fn workflows(&self) -> &[Workflow] {
        &self.workflows
    }

    /// The workflow with this id (or file stem, with or without `.yaml`).
    pub fn workflow(&self, id: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.id == id).or_else(|| {
            find_named(&self.workflows, id, |w| {
                w.file.rsplit('/').next().unwrap_or(&w.file)
            })
        })
    }

    /// Workflow files that do not load (the method loaded without them).
    pub fn broken_workflows(&self) -> &[BrokenWorkflow] {
        &self.broken_workflows
    }

    /// The broken workflow file a run of `id` would have used, if there is one.
    pub fn broken_workflow(&self, id: &str) -> Option<&BrokenWorkflow> {
        // `pack-workflow:game-jam` names a sequence of the file `pack-workflow.yaml`.
        let file = id.split(':').next().unwrap_or(id);
        let stem = agent::file_stem(&agent::strip_root(file));
        self.broken_workflows.iter().find(|b| b.id == stem)
    }

    /// Whether `file` holds a workflow (one that loaded, or one that did not).
    pub fn is_workflow_file(&self, file: &str) -> bool {
        self.workflows.iter().any(|w| w.file == file)
            || self.broken_workflows.iter().any(|b| b.file == file)
    }

    /// The workflow a run uses when none is named: `default_workflow` of `core-config.yaml`,
    /// else `sdlc`, else the first by id.
    pub fn default_workflow(&self) -> Option<&Workflow> {
        let configured = self.config.get("default_workflow").and_then(|v| v.as_str());
        configured
            .and_then(|id| self.workflow(id))
            .or_else(|| self.workflow("sdlc"))
            .or_else(|| self.workflows.iter().min_by(|a, b| a.id.cmp(&b.id)))
    }

    /// All teams.
    pub fn teams(&self) -> &[Team] {
        &self.teams
    }

    /// All tasks.
    pub fn tasks(&self) -> &[Doc] {
        &self.tasks
    }

    /// The task with this name (with or without `.md`).
    pub fn task(&self, name: &str) -> Option<&Doc> {
        find_named(&self.tasks, name, |d| d.name.as_str())
    }

    /// All checklists.
    pub fn checklists(&self) -> &[Doc] {
        &self.checklists
    }

    /// The checklist with this name (with or without `.md`).
    pub fn checklist(&self, name: &str) -> Option<&Doc> {
        find_named(&self.checklists, name, |d| d.name.as_str())
    }

    /// All data files.
    pub fn data(&self) -> &[Doc] {
        &self.data
    }

    /// All utils.
    pub fn utils(&self) -> &[Doc] {
        &self.utils
    }

    /// A resource by category (`tasks`, `checklists`, `data`, `utils`, `templates`,
    /// `workflows`) and name; `{root}/` prefixes are accepted. Templates and workflows
    /// answer with their file path.
    pub fn has_resource(&self, category: &str, name: &str) -> bool {
        match category {
            "tasks" => self.task(name).is_some(),
            "checklists" => self.checklist(name).is_some(),
            "data" => find_named(&self.data, name, |d| d.name.as_str()).is_some(),
            "utils" => find_named(&self.utils, name, |d| d.name.as_str()).is_some(),
            "templates" => self.template(name).is_some(),
            "workflows" => self.workflow(name).is_some(),
            _ => false,
        }
    }

    /// `core-config.yaml` as JSON (`null` when absent).
    pub fn config(&self) -> &serde_json::Value {
        &self.config
    }

    /// The prompt templates of this method (`prompts/`), over the builtin defaults.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// Files that are not definitions (README, LICENSE, …), kept for the digest only.
    pub fn other_files(&self) -> &[String] {
        &self.other_files
    }

    /// The ids of all workflows, sorted.
    pub fn workflow_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.workflows.iter().map(|w| w.id.clone()).collect();
        ids.sort();
        ids
    }
}
