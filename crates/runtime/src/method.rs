//! The methods runs are made from, loaded once per source and checked before use.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use botarmy_core::method::{Method, Severity};
use botarmy_llm::ChatMessage;
use botarmy_protocol::{ErrorInfo, ErrorKind, Plan, PlanStep, RunOptions};

use crate::RuntimeError;

/// A prompt as the messages of a chat request.
pub(crate) fn messages(prompt: botarmy_core::prompt::Prompt) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(prompt.system),
        ChatMessage::user(prompt.user),
    ]
}

/// A loaded, checked method, shared by the steps of every run that uses it.
#[derive(Clone)]
pub struct MethodHandle {
    method: Arc<Method>,
}

impl MethodHandle {
    /// Loads `source` (`builtin` or a folder) and checks it; errors list every problem.
    pub fn load(source: &str) -> Result<Self, RuntimeError> {
        let loaded = if source == "builtin" {
            Method::builtin()
        } else {
            Method::load(Path::new(source))
        };
        let method = loaded.map_err(|errors| RuntimeError::Method {
            source_name: source.to_string(),
            message: errors.to_string(),
        })?;
        // A workflow's own problems stop only runs of that workflow (see `plan`).
        let problems: Vec<String> = method
            .check()
            .into_iter()
            .filter(|d| d.severity == Severity::Error && !method.is_workflow_file(&d.file))
            .map(|d| d.to_string())
            .collect();
        if !problems.is_empty() {
            return Err(RuntimeError::Method {
                source_name: source.to_string(),
                message: problems.join("\n"),
            });
        }
        Ok(Self {
            method: Arc::new(method),
        })
    }

    /// The definitions.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Resolves a workflow into a plan; a workflow whose file has errors does not start,
    /// and the error lists them.
    pub fn plan(&self, workflow: &str) -> Result<Plan, RuntimeError> {
        let failed = |message: String| RuntimeError::Method {
            source_name: self.method.source().to_string(),
            message,
        };
        let plan = self
            .method
            .plan(workflow)
            .map_err(|e| failed(e.to_string()))?;
        if let Some(wf) = self.method.workflow(&plan.workflow_id) {
            let problems: Vec<String> = self
                .method
                .check()
                .into_iter()
                .filter(|d| d.severity == Severity::Error && d.file == wf.file)
                .map(|d| format!("\n  {d}"))
                .collect();
            if !problems.is_empty() {
                return Err(failed(format!(
                    "workflow `{}` cannot start: {} has errors:{}",
                    wf.id,
                    wf.file,
                    problems.concat()
                )));
            }
        }
        Ok(plan)
    }

    /// The messages that ask the step's agent to produce its document.
    pub(crate) fn step_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        inputs: &[(String, String)],
        options: &RunOptions,
        feedback: &[String],
    ) -> Result<Vec<ChatMessage>, ErrorInfo> {
        let prompt = botarmy_core::prompt::step_prompt(
            &self.method,
            step,
            idea,
            inputs,
            options.context_tokens,
            feedback,
        )
        .map_err(|e| ErrorInfo::new(ErrorKind::Fatal, e.to_string()))?;
        Ok(messages(prompt))
    }

    /// The messages that ask the step's agent whether the step's condition holds.
    pub(crate) fn condition_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        inputs: &[(String, String)],
        condition: &str,
        options: &RunOptions,
    ) -> Result<Vec<ChatMessage>, ErrorInfo> {
        let prompt = botarmy_core::prompt::condition_prompt(
            &self.method,
            step,
            idea,
            inputs,
            condition,
            options.context_tokens,
        )
        .map_err(|e| ErrorInfo::new(ErrorKind::Fatal, e.to_string()))?;
        Ok(messages(prompt))
    }

    /// The messages that execute a batch of checklist items against a step's document.
    pub(crate) fn checklist_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        checklist: &str,
        items: &[String],
        document: (&str, &str),
        options: &RunOptions,
    ) -> Result<Vec<ChatMessage>, ErrorInfo> {
        let prompt = self
            .method
            .checklist_prompt(
                step,
                idea,
                checklist,
                items,
                document,
                options.context_tokens,
            )
            .map_err(|e| ErrorInfo::new(ErrorKind::Fatal, e.to_string()))?;
        Ok(messages(prompt))
    }

    /// The checklist that measures `step`'s quality, by name, with its items (none: the
    /// agent has no checklist, or it has no items).
    pub(crate) fn checklist_items(&self, step: &PlanStep) -> Option<(String, Vec<String>)> {
        let doc = self.method.checklist_for(step)?;
        let items = botarmy_core::assess::checklist_items(&doc.text);
        (!items.is_empty()).then(|| (format!("{}.md", doc.name), items))
    }

    /// The sections a document of `step`'s template should have.
    pub(crate) fn expected_sections(
        &self,
        step: &PlanStep,
        idea: &str,
    ) -> Vec<botarmy_core::prompt::ExpectedSection> {
        step.template
            .as_deref()
            .and_then(|t| self.method.template(t))
            .map(|t| {
                botarmy_core::prompt::expected_sections(
                    t,
                    &botarmy_core::prompt::project_name(idea),
                )
            })
            .unwrap_or_default()
    }

    /// Whether `step`'s template asks for source files.
    pub(crate) fn wants_code_files(&self, step: &PlanStep) -> bool {
        step.template
            .as_deref()
            .and_then(|t| self.method.template(t))
            .is_some_and(|t| {
                t.walk()
                    .iter()
                    .any(|(_, s)| s.kind.as_deref() == Some("code-files"))
            })
    }

    /// Turns the model's text into the stored document.
    pub(crate) fn finish_document(&self, step: &PlanStep, idea: &str, text: &str) -> String {
        botarmy_core::prompt::finish_document(&self.method, step, idea, text)
    }
}

/// Methods by source, loaded on first use.
#[derive(Default)]
pub(crate) struct MethodCache {
    loaded: Mutex<HashMap<String, MethodHandle>>,
}

impl MethodCache {
    pub(crate) fn get(&self, source: &str) -> Result<MethodHandle, RuntimeError> {
        if let Some(found) = self.loaded.lock().ok().and_then(|m| m.get(source).cloned()) {
            return Ok(found);
        }
        let handle = MethodHandle::load(source)?;
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(source.to_string(), handle.clone());
        }
        Ok(handle)
    }
}
