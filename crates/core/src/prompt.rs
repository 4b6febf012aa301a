//! Prompt assembly: from a plan step, the idea and the artifacts the step reads, the chat
//! messages for the model. A pure function of its inputs; the words come from the Jinja
//! templates `prompts/system.j2` and `prompts/user.j2` of the method (builtin defaults when
//! a folder has none).

use botarmy_protocol::PlanStep;
use serde::Serialize;

use crate::context::{Fitted, fit};
use crate::method::{Agent, DocTemplate, Method, Section};
use crate::render::{RenderError, fill_placeholders};

/// The messages for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The system message: who the agent is.
    pub system: String,
    /// The user message: the task, the document skeleton and the context.
    pub user: String,
    /// The sections the document is expected to have, in order (for quality checks).
    pub sections: Vec<ExpectedSection>,
    /// How each context item was fitted into the budget.
    pub context: Vec<ContextUse>,
}

/// A section the finished document should contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedSection {
    /// The title, with the known placeholders filled in.
    pub title: String,
    /// Heading depth below the document title (0 = `##`).
    pub depth: usize,
    /// False for sections with a `condition` (they may rightly be absent).
    pub required: bool,
}

/// What one context item cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextUse {
    /// Artifact (or resource) name.
    pub name: String,
    /// Estimated tokens before fitting.
    pub original_tokens: u32,
    /// Estimated tokens in the prompt.
    pub tokens: u32,
    /// Whether it was cut.
    pub trimmed: bool,
}

/// Why a prompt could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// The step names an agent the method does not define.
    #[error("step `{step}`: unknown agent `{agent}`")]
    UnknownAgent {
        /// Step key.
        step: String,
        /// Agent id.
        agent: String,
    },
    /// The step names a template the method does not define.
    #[error("step `{step}`: unknown template `{template}`")]
    UnknownTemplate {
        /// Step key.
        step: String,
        /// Template key.
        template: String,
    },
    /// A prompt template failed to render.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// A short project name from the idea: its first line, without a leading article, at most
/// about eight words, first letter upper-case (`a command-line todo app in Rust` →
/// `Command-line todo app in Rust`).
pub fn project_name(idea: &str) -> String {
    let line = idea
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut words: Vec<&str> = line.split_whitespace().collect();
    if words
        .first()
        .is_some_and(|w| ["a", "an", "the"].contains(&w.to_ascii_lowercase().as_str()))
        && words.len() > 1
    {
        words.remove(0);
    }
    words.truncate(8);
    let joined = words.join(" ");
    let joined = joined.trim_end_matches(['.', ',', ';', ':', '!', '?']);
    let mut c = joined.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => "Untitled project".to_owned(),
    }
}

#[derive(Serialize)]
struct AgentView<'a> {
    id: &'a str,
    name: &'a str,
    title: &'a str,
    when_to_use: Option<&'a str>,
    role: Option<&'a str>,
    style: Option<&'a str>,
    identity: Option<&'a str>,
    focus: Option<&'a str>,
    principles: &'a [String],
}

#[derive(Serialize)]
struct SectionView {
    depth: usize,
    heading: String,
    title: String,
    instruction: Option<String>,
    kind: Option<String>,
    skeleton: Option<String>,
    repeatable: bool,
    condition: Option<String>,
    choices: Vec<(String, String)>,
    columns: Vec<String>,
    items: Vec<String>,
    prefix: Option<String>,
    language: Option<String>,
    content: Option<String>,
    examples: Vec<String>,
}

#[derive(Serialize)]
struct TemplateView {
    key: String,
    name: String,
    title: String,
    sections: Vec<SectionView>,
    has_code_files: bool,
}

/// The step with every field present (absent ones as `none`), so templates can test them
/// under strict undefined checking.
#[derive(Serialize)]
struct StepView<'a> {
    key: &'a str,
    title: &'a str,
    phase: Option<&'a str>,
    agent: &'a str,
    creates: Option<&'a str>,
    template: Option<&'a str>,
    requires: &'a [String],
    optional: bool,
    condition: Option<&'a str>,
    instruction: Option<&'a str>,
    notes: Option<&'a str>,
}

impl<'a> StepView<'a> {
    fn new(s: &'a PlanStep) -> Self {
        Self {
            key: &s.key,
            title: &s.title,
            phase: s.phase.as_deref(),
            agent: &s.agent,
            creates: s.creates.as_deref(),
            template: s.template.as_deref(),
            requires: &s.requires,
            optional: s.optional,
            condition: s.condition.as_deref(),
            instruction: s.instruction.as_deref(),
            notes: s.notes.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct UserView<'a> {
    project_name: &'a str,
    idea: &'a str,
    step: StepView<'a>,
    agent: AgentView<'a>,
    template: Option<TemplateView>,
    context: Vec<Fitted>,
    context_tokens: u32,
    feedback: &'a [String],
}

fn agent_view(a: &Agent) -> AgentView<'_> {
    AgentView {
        id: &a.id,
        name: &a.name,
        title: &a.title,
        when_to_use: a.when_to_use.as_deref(),
        role: a.persona.role.as_deref(),
        style: a.persona.style.as_deref(),
        identity: a.persona.identity.as_deref(),
        focus: a.persona.focus.as_deref(),
        principles: &a.persona.core_principles,
    }
}

fn strip_root_refs(text: &str) -> String {
    text.replace("{root}/", "")
}

fn template_view(t: &DocTemplate, vars: &[(&str, &str)]) -> TemplateView {
    let fill = |s: &str| strip_root_refs(&fill_placeholders(s, vars));
    let sections = t
        .walk()
        .into_iter()
        .map(|(depth, s): (usize, &Section)| {
            let title = fill(s.title.as_deref().unwrap_or(&s.id));
            SectionView {
                depth,
                heading: format!("{} {title}", "#".repeat((depth + 2).min(6))),
                title,
                instruction: s.instruction.as_deref().map(|i| fill(i.trim())),
                kind: s.kind.clone(),
                skeleton: s.template.as_deref().map(|x| fill(x.trim_end())),
                repeatable: s.repeatable,
                condition: s.condition.clone(),
                choices: s
                    .choices
                    .iter()
                    .map(|(k, v)| (k.clone(), v.join(" | ")))
                    .collect(),
                columns: s.columns.clone(),
                items: s.items.iter().map(|i| fill(i)).collect(),
                prefix: s.prefix.clone(),
                language: s.language.clone(),
                content: s.content.as_deref().map(fill),
                examples: s.examples.iter().map(|e| fill(e.trim_end())).collect(),
            }
        })
        .collect();
    let has_code_files = t
        .walk()
        .iter()
        .any(|(_, s)| s.kind.as_deref() == Some("code-files"));
    TemplateView {
        key: t.key.clone(),
        name: t.name.clone(),
        title: fill(&t.title),
        sections,
        has_code_files,
    }
}

/// The sections a document from `t` should have.
pub fn expected_sections(t: &DocTemplate, project: &str) -> Vec<ExpectedSection> {
    let vars = [("project_name", project)];
    let mut out = Vec::new();
    let mut conditional_depth: Option<usize> = None;
    for (depth, s) in t.walk() {
        if conditional_depth.is_some_and(|d| depth <= d) {
            conditional_depth = None;
        }
        if s.condition.is_some() && conditional_depth.is_none() {
            conditional_depth = Some(depth);
        }
        let title = fill_placeholders(s.title.as_deref().unwrap_or(&s.id), &vars);
        out.push(ExpectedSection {
            title,
            depth,
            required: conditional_depth.is_none() && !s.repeatable,
        });
    }
    out
}

impl Method {
    /// Builds the messages for `step`: `artifacts` are `(name, content)` of what the step
    /// requires (missing ones are simply absent), fitted into `context_tokens` estimated
    /// tokens together with the task or checklist the step uses.
    pub fn prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        artifacts: &[(&str, &str)],
        context_tokens: u32,
    ) -> Result<Prompt, PromptError> {
        self.revision_prompt(step, idea, artifacts, context_tokens, &[])
    }

    /// [`Method::prompt`] for a step sent back with humans' `feedback` (oldest first),
    /// which the prompt asks the agent to address.
    pub fn revision_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        artifacts: &[(&str, &str)],
        context_tokens: u32,
        feedback: &[String],
    ) -> Result<Prompt, PromptError> {
        let agent = self
            .agent(&step.agent)
            .ok_or_else(|| PromptError::UnknownAgent {
                step: step.key.clone(),
                agent: step.agent.clone(),
            })?;
        let template = match &step.template {
            Some(k) => Some(
                self.template(k)
                    .ok_or_else(|| PromptError::UnknownTemplate {
                        step: step.key.clone(),
                        template: k.clone(),
                    })?,
            ),
            None => None,
        };
        let project = project_name(idea);
        let vars = [("project_name", project.as_str())];

        let mut items: Vec<(String, String)> = artifacts
            .iter()
            .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
            .collect();
        // A task or checklist the step uses is context too (`uses:` in the workflow).
        if let Some(doc) = self.uses_doc(step) {
            items.push((doc.file.clone(), strip_root_refs(&doc.text)));
        }
        let refs: Vec<(&str, &str)> = items
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .collect();
        let fitted = fit(&refs, context_tokens);
        let context = context_uses(&fitted);

        let system = self.prompts().render(
            "system.j2",
            serde_json::json!({ "agent": agent_view(agent), "project_name": project }),
        )?;
        let user = self.prompts().render(
            "user.j2",
            UserView {
                project_name: &project,
                idea: idea.trim(),
                step: StepView::new(step),
                agent: agent_view(agent),
                template: template.map(|t| template_view(t, &vars)),
                context: fitted,
                context_tokens,
                feedback,
            },
        )?;
        let sections = template
            .map(|t| expected_sections(t, &project))
            .unwrap_or_default();
        Ok(Prompt {
            system,
            user,
            sections,
            context,
        })
    }

    /// The project's name and the system message of `step`'s agent (who it is).
    pub(crate) fn system_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
    ) -> Result<(String, String), PromptError> {
        let agent = self
            .agent(&step.agent)
            .ok_or_else(|| PromptError::UnknownAgent {
                step: step.key.clone(),
                agent: step.agent.clone(),
            })?;
        let project = project_name(idea);
        let system = self.prompts().render(
            "system.j2",
            serde_json::json!({ "agent": agent_view(agent), "project_name": project }),
        )?;
        Ok((project, system))
    }

    /// Builds the messages that ask the step's agent whether `condition` holds (for steps
    /// with a free-text `condition`); the answer is read with [`parse_condition_answer`].
    pub fn condition_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        artifacts: &[(&str, &str)],
        condition: &str,
        context_tokens: u32,
    ) -> Result<Prompt, PromptError> {
        self.prompt_over(
            step,
            idea,
            "condition.j2",
            artifacts,
            context_tokens,
            serde_json::json!({
                "idea": idea.trim(),
                "step": StepView::new(step),
                "condition": condition,
            }),
        )
    }

    /// `step`'s agent's system message, and a user message rendered from `template` with
    /// `vars` (an object) and `project_name`, `context` (`documents` fitted into
    /// `context_tokens`) and `context_tokens`.
    pub(crate) fn prompt_over(
        &self,
        step: &PlanStep,
        idea: &str,
        template: &str,
        documents: &[(&str, &str)],
        context_tokens: u32,
        mut vars: serde_json::Value,
    ) -> Result<Prompt, PromptError> {
        let (project, system) = self.system_prompt(step, idea)?;
        let fitted = fit(documents, context_tokens);
        let context = context_uses(&fitted);
        if let Some(vars) = vars.as_object_mut() {
            vars.insert("project_name".into(), project.into());
            vars.insert("context".into(), serde_json::json!(fitted));
            vars.insert("context_tokens".into(), context_tokens.into());
        }
        let user = self.prompts().render(template, vars)?;
        Ok(Prompt {
            system,
            user,
            sections: Vec::new(),
            context,
        })
    }

    /// The checklist that measures the quality of `step`'s output: among its agent's
    /// checklists, the one named after the agent, else the first one listed that exists.
    pub fn checklist_for(&self, step: &PlanStep) -> Option<&crate::method::Doc> {
        let agent = self.agent(&step.agent)?;
        let names: Vec<&str> = agent.dependency_names("checklists").collect();
        names
            .iter()
            .find(|n| n.starts_with(&format!("{}-", agent.id)))
            .and_then(|n| self.checklist(n))
            .or_else(|| names.iter().find_map(|n| self.checklist(n)))
    }

    /// The messages that execute `checklist`'s `items` (a batch, numbered from 1) against
    /// the document `(name, text)` that `step` produced, fitted into `context_tokens`.
    pub fn checklist_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        checklist: &str,
        items: &[String],
        document: (&str, &str),
        context_tokens: u32,
    ) -> Result<Prompt, PromptError> {
        let (project, system) = self.system_prompt(step, idea)?;
        let fitted = fit(&[document], context_tokens);
        let context = context_uses(&fitted);
        let doc = fitted.first();
        let user = self.prompts().render(
            "checklist.j2",
            serde_json::json!({
                "project_name": project,
                "checklist": checklist,
                "items": items,
                "document": {
                    "name": document.0,
                    "text": doc.map_or(document.1, |d| d.text.as_str()),
                    "trimmed": doc.is_some_and(|d| d.trimmed),
                },
            }),
        )?;
        Ok(Prompt {
            system,
            user,
            sections: Vec::new(),
            context,
        })
    }

    /// The task or checklist the step's instruction names in backticks (the plan writes
    /// the workflow's `uses` that way: "… using the checklist `po-master-checklist`").
    fn uses_doc(&self, step: &PlanStep) -> Option<&crate::method::Doc> {
        let instruction = step.instruction.as_deref()?;
        instruction
            .split('`')
            .skip(1)
            .step_by(2)
            .find_map(|name| self.checklist(name).or_else(|| self.task(name)))
    }
}

/// What each fitted context item cost, for [`Prompt::context`].
pub(crate) fn context_uses(fitted: &[crate::context::Fitted]) -> Vec<ContextUse> {
    fitted
        .iter()
        .map(|f| ContextUse {
            name: f.name.clone(),
            original_tokens: f.original_tokens,
            tokens: f.tokens,
            trimmed: f.trimmed,
        })
        .collect()
}

/// Reads a YES/NO answer to a [`Method::condition_prompt`]: the first word decides
/// (`yes`/`true`/`y` or `no`/`false`/`n`, any case, punctuation ignored); `None` when the
/// answer is neither.
pub fn parse_condition_answer(text: &str) -> Option<bool> {
    let word: String = text
        .split_whitespace()
        .next()?
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    match word.as_str() {
        "yes" | "y" | "true" => Some(true),
        "no" | "n" | "false" => Some(false),
        _ => None,
    }
}

fn borrowed(inputs: &[(String, String)]) -> Vec<(&str, &str)> {
    inputs
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect()
}

/// [`Method::prompt`] for owned `(name, content)` inputs.
pub fn step_prompt(
    method: &Method,
    step: &PlanStep,
    idea: &str,
    inputs: &[(String, String)],
    context_tokens: u32,
    feedback: &[String],
) -> Result<Prompt, PromptError> {
    method.revision_prompt(step, idea, &borrowed(inputs), context_tokens, feedback)
}

/// [`Method::condition_prompt`] for owned `(name, content)` inputs.
pub fn condition_prompt(
    method: &Method,
    step: &PlanStep,
    idea: &str,
    inputs: &[(String, String)],
    condition: &str,
    context_tokens: u32,
) -> Result<Prompt, PromptError> {
    method.condition_prompt(step, idea, &borrowed(inputs), condition, context_tokens)
}

/// [`Method::finish_document`] as a function.
pub fn finish_document(method: &Method, step: &PlanStep, idea: &str, raw: &str) -> String {
    method.finish_document(step, idea, raw)
}
