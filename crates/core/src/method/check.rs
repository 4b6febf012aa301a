//! Cross-reference validation of a loaded method: what `botarmy check` reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::Method;
use super::plan::PlanError;
use super::resolve::{artifact_name, is_work};
use super::workflow::{ConflictCheck, Workflow};
use crate::render::RenderError;
use botarmy_protocol::{BUILTIN_TOOLS, is_tool_entry};

fn unknown_tool(name: &str) -> String {
    format!(
        "unknown tool `{name}`; tools are {}, or an MCP server's as `mcp:<server>` or `mcp:<server>/<tool>`",
        BUILTIN_TOOLS.join(", ")
    )
}

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The method can not be used as it is.
    Error,
    /// Probably a mistake, but runs can go on.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// One finding of [`Method::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File relative to the method folder.
    pub file: String,
    /// Line, from 1 (0 when the whole file is meant).
    pub line: u32,
    /// Field path (`workflow.sequence[2].agent`).
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": {}: {}", self.field, self.message)
    }
}

struct Out(Vec<Diagnostic>);

/// An id, the file it is in and its line.
type IdAt<'a> = (&'a str, &'a str, u32);

impl Out {
    fn push(
        &mut self,
        severity: Severity,
        file: &str,
        line: u32,
        field: impl Into<String>,
        message: String,
    ) {
        self.0.push(Diagnostic {
            severity,
            file: file.to_owned(),
            line,
            field: field.into(),
            message,
        });
    }
}

impl Method {
    /// Validates the references between definitions: agents, `uses`, templates, ids,
    /// artifacts, phases and dependency cycles, and the prompt templates' syntax. Errors
    /// first, then warnings, each in file order.
    pub fn check(&self) -> Vec<Diagnostic> {
        let mut out = Out(Vec::new());
        self.check_duplicates(&mut out);
        for b in &self.broken_workflows {
            for e in &b.errors {
                let at = e.location();
                let (field, message) = e.field_and_message();
                out.push(Severity::Error, &at.file, at.line, field, message);
            }
        }
        self.check_agents(&mut out);
        for wf in &self.workflows {
            self.check_workflow(wf, &mut out);
        }
        self.check_teams(&mut out);
        for e in self.prompts.validate() {
            let (file, line, message) = match &e {
                RenderError::Syntax {
                    file,
                    line,
                    message,
                } => (
                    format!("prompts/{file}"),
                    *line,
                    format!("syntax error: {message}"),
                ),
                other => ("prompts".to_owned(), 0, other.to_string()),
            };
            let line = u32::try_from(line).unwrap_or(0);
            out.push(Severity::Error, &file, line, "(template)", message);
        }
        let mut v = out.0;
        v.sort_by(|a, b| (a.severity, &a.file, a.line).cmp(&(b.severity, &b.file, b.line)));
        v
    }

    fn check_duplicates(&self, out: &mut Out) {
        let groups: [(&str, Vec<IdAt<'_>>); 3] = [
            (
                "agent.id",
                self.agents
                    .iter()
                    .map(|a| (a.id.as_str(), a.file.as_str(), a.line))
                    .collect(),
            ),
            (
                "template.id",
                self.templates
                    .iter()
                    .map(|t| (t.id.as_str(), t.file.as_str(), t.line))
                    .collect(),
            ),
            (
                "workflow.id",
                self.workflows
                    .iter()
                    .map(|w| (w.id.as_str(), w.file.as_str(), w.line))
                    .collect(),
            ),
        ];
        for (field, items) in groups {
            let mut first: BTreeMap<&str, &str> = BTreeMap::new();
            for (id, file, line) in items {
                if let Some(prev) = first.insert(id, file) {
                    out.push(
                        Severity::Error,
                        file,
                        line,
                        field,
                        format!("duplicate id `{id}` (also in {prev})"),
                    );
                }
            }
        }
    }

    fn check_agents(&self, out: &mut Out) {
        for a in &self.agents {
            for t in a.tools.iter().filter(|t| !is_tool_entry(t)) {
                out.push(Severity::Error, &a.file, 0, "tools", unknown_tool(t));
            }
            for (category, deps) in &a.dependencies {
                for d in deps {
                    if !self.has_resource(category, &d.name) {
                        let what = if category == "templates" {
                            "template"
                        } else {
                            "file"
                        };
                        out.push(
                            Severity::Warning,
                            &a.file,
                            d.line,
                            format!("dependencies.{category}"),
                            format!("{what} `{}` does not exist in {category}/", d.name),
                        );
                    }
                }
            }
        }
    }

    fn agent_ok(&self, name: &str) -> bool {
        name == "various"
            || name
                .split('/')
                .all(|part| self.agent(part.trim()).is_some())
    }

    fn uses_ok(&self, name: &str) -> bool {
        self.task(name).is_some() || self.checklist(name).is_some() || self.template(name).is_some()
    }

    fn check_workflow(&self, wf: &Workflow, out: &mut Out) {
        let f = wf.file.as_str();
        let mut phase_ids = BTreeSet::new();
        for (i, p) in wf.phases.iter().enumerate() {
            if !phase_ids.insert(p.id.as_str()) {
                out.push(
                    Severity::Error,
                    f,
                    p.line,
                    format!("workflow.phases[{i}].id"),
                    format!("duplicate phase id `{}`", p.id),
                );
            }
        }
        for (i, p) in wf.phases.iter().enumerate() {
            for d in &p.depends_on {
                if !wf.phases.iter().any(|q| q.id == *d) {
                    out.push(
                        Severity::Error,
                        f,
                        p.line,
                        format!("workflow.phases[{i}].depends_on"),
                        format!("unknown phase `{d}`"),
                    );
                }
            }
        }
        match &wf.conflict_check {
            Some(ConflictCheck::Agent(a)) if self.agent(a).is_none() => out.push(
                Severity::Error,
                f,
                wf.conflict_check_line,
                "workflow.conflict_check",
                format!(
                    "unknown agent `{a}` (expected true, false or an agent id); known: {}",
                    self.agent_list()
                ),
            ),
            Some(ConflictCheck::On)
                if !wf.phases.is_empty() && self.agent("reviewer").is_none() =>
            {
                out.push(
                    Severity::Error,
                    f,
                    wf.conflict_check_line,
                    "workflow.conflict_check",
                    format!(
                        "`true` means the agent `reviewer`, which this method does not have; name the agent that checks (known: {})",
                        self.agent_list()
                    ),
                );
            }
            _ => {}
        }
        if let Some(cycle) = phase_cycle(wf) {
            out.push(
                Severity::Error,
                f,
                wf.line,
                "workflow.phases",
                format!("phase dependency cycle: {}", cycle.join(" -> ")),
            );
        }
        let mut created: BTreeSet<String> = BTreeSet::new();
        for it in &wf.sequence {
            let at = |k: &str| format!("{}.{k}", it.path);
            for t in it.tools.iter().filter(|t| !is_tool_entry(t)) {
                out.push(
                    Severity::Error,
                    f,
                    it.line_of("tools"),
                    at("tools"),
                    unknown_tool(t),
                );
            }
            if let Some(a) = &it.agent
                && !self.agent_ok(a)
            {
                out.push(
                    Severity::Error,
                    f,
                    it.line_of("agent"),
                    at("agent"),
                    format!("unknown agent `{a}`; known: {}", self.agent_list()),
                );
            }
            for r in &it.routes {
                if let Some(a) = r.agent.as_deref().filter(|a| !self.agent_ok(a)) {
                    out.push(
                        Severity::Error,
                        f,
                        r.line,
                        at(&format!("routes.{}.agent", r.name)),
                        format!("unknown agent `{a}`"),
                    );
                }
                if let Some(u) = r.uses.as_deref().filter(|u| !self.uses_ok(u)) {
                    out.push(
                        Severity::Error,
                        f,
                        r.line,
                        at(&format!("routes.{}.uses", r.name)),
                        format!("`{u}` is no task, checklist or template of this method"),
                    );
                }
            }
            if let Some(u) = it.uses.as_deref().filter(|u| !self.uses_ok(u)) {
                out.push(
                    Severity::Error,
                    f,
                    it.line_of("uses"),
                    at("uses"),
                    format!("`{u}` is no task, checklist or template of this method"),
                );
            }
            if let Some(t) = it
                .template
                .as_deref()
                .filter(|t| self.template(t).is_none())
            {
                out.push(
                    Severity::Error,
                    f,
                    it.line_of("template"),
                    at("template"),
                    format!("unknown template `{t}`"),
                );
            }
            if let Some(p) = it
                .phase
                .as_deref()
                .filter(|p| !wf.phases.iter().any(|q| q.id == *p || q.name == *p))
            {
                out.push(
                    Severity::Error,
                    f,
                    it.line_of("phase"),
                    at("phase"),
                    format!("unknown phase `{p}`; declare it under workflow.phases"),
                );
            }
            if !wf.phases.is_empty() && it.phase.is_none() && is_work(it) {
                out.push(
                    Severity::Warning,
                    f,
                    it.line,
                    at("phase"),
                    "the workflow declares phases but this step names none".to_owned(),
                );
            }
            for r in &it.requires {
                let name = artifact_name(r).unwrap_or_default();
                if !r.starts_with("all_artifacts") && !created.contains(&name) {
                    out.push(
                        Severity::Warning,
                        f,
                        it.line_of("requires"),
                        at("requires"),
                        format!(
                            "`{r}` is created by no earlier step; the step will run without it"
                        ),
                    );
                }
            }
            for c in it.creates.iter().chain(it.updates.iter()) {
                if let Some(n) = artifact_name(c) {
                    created.insert(n);
                }
            }
        }
        match self.plan(&wf.id) {
            Ok(_) | Err(PlanError::UnknownPhase { .. }) => {}
            Err(PlanError::Cycle { cycle: _, .. }) if phase_cycle(wf).is_some() => {}
            Err(e) => {
                let (line, field) = match &e {
                    PlanError::UnknownDependency { line, field, .. }
                    | PlanError::Cycle { line, field, .. } => (*line, field.clone()),
                    _ => (wf.line, "workflow.sequence".to_owned()),
                };
                let msg = e.to_string();
                let msg = msg
                    .rsplit_once(&format!("{field}: "))
                    .map_or(msg.clone(), |(_, m)| m.to_owned());
                out.push(Severity::Error, f, line, field, msg);
            }
        }
    }

    fn check_teams(&self, out: &mut Out) {
        for t in &self.teams {
            for (a, line) in &t.agents {
                if a != "*" && self.agent(a).is_none() {
                    out.push(
                        Severity::Warning,
                        &t.file,
                        *line,
                        "agents",
                        format!("unknown agent `{a}`"),
                    );
                }
            }
            for (w, line) in &t.workflows {
                if self.workflow(w).is_none() {
                    out.push(
                        Severity::Warning,
                        &t.file,
                        *line,
                        "workflows",
                        format!("unknown workflow `{w}`"),
                    );
                }
            }
        }
    }

    fn agent_list(&self) -> String {
        let mut ids: Vec<&str> = self.agents.iter().map(|a| a.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.push("various");
        ids.join(", ")
    }
}

/// A cycle among a workflow's phases, as ids (first repeated at the end).
fn phase_cycle(wf: &Workflow) -> Option<Vec<String>> {
    fn visit<'a>(
        wf: &'a Workflow,
        id: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| *p == id) {
            let mut c: Vec<String> = path[pos..].iter().map(|s| (*s).to_owned()).collect();
            c.push(id.to_owned());
            return Some(c);
        }
        if done.contains(id) || path.len() > wf.phases.len() {
            return None;
        }
        path.push(id);
        let deps = wf
            .phases
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.depends_on.as_slice())
            .unwrap_or_default();
        for d in deps {
            if let Some(c) = visit(wf, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(id);
        None
    }
    let mut done = BTreeSet::new();
    wf.phases
        .iter()
        .find_map(|p| visit(wf, &p.id, &mut Vec::new(), &mut done))
}
