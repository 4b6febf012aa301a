//! How a sequence item is read: artifact names, step titles and instructions, and the
//! template that produces a step's document.

use super::template::slug;
use super::workflow::SequenceItem;
use super::{Agent, Method};

/// Artifact file name from a `creates`/`updates`/`requires` value: the text before a
/// parenthesis (`prd.md (if needed)` → `prd.md`), words joined by `-`, and `.md` added when
/// there is no extension (`sharded_docs` → `sharded_docs.md`).
pub(crate) fn artifact_name(raw: &str) -> Option<String> {
    let head = raw.split(" (").next().unwrap_or(raw).trim();
    let head = head.strip_prefix("{root}/").unwrap_or(head);
    // A folder (`prototype-stories/`) is made as one document of that name.
    let head = head.trim_end_matches('/');
    if head.is_empty() {
        return None;
    }
    let name = if head.contains(char::is_whitespace) {
        slug(head)
    } else {
        head.to_owned()
    };
    let file = name.rsplit('/').next().unwrap_or(&name);
    if file.contains('.') {
        Some(name)
    } else {
        Some(format!("{name}.md"))
    }
}

/// Whether a `requires`/`validates` value means "everything made so far".
pub(crate) fn means_everything(raw: &str) -> bool {
    raw.trim().starts_with("all_artifacts") || raw.trim() == "all_documents"
}

/// `shard_documents` → `Shard documents`.
pub(crate) fn humanize(text: &str) -> String {
    let spaced = text.replace('_', " ");
    let mut c = spaced.trim().chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub(crate) fn stem(name: &str) -> &str {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.rsplit_once('.').map_or(file, |(s, _)| s)
}

/// Whether a sequence item does work (and so becomes a step).
pub(crate) fn is_work(item: &SequenceItem) -> bool {
    item.agent.is_some()
        && (item.creates.is_some()
            || item.updates.is_some()
            || item.validates.is_some()
            || item.action.is_some()
            || item.uses.is_some()
            || item.template.is_some()
            || item.instruction.is_some())
}

impl Method {
    /// The template that produces a step's document, chosen deterministically: the step's
    /// own `template`; a template named by `uses`; for a step that creates a document, the
    /// template named after it (`prd.md` → `prd-tmpl`, the agent's own first), one whose
    /// output file has that name, one the notes mention (`using prd-tmpl`), or one an agent
    /// command ties to it (`create-prd: … prd-tmpl.yaml`).
    pub(crate) fn resolve_template(
        &self,
        item: &SequenceItem,
        agent: Option<&Agent>,
        creates: Option<&str>,
    ) -> Option<String> {
        if let Some(t) = item.template.as_deref().and_then(|t| self.template(t)) {
            return Some(t.key.clone());
        }
        if let Some(t) = item.uses.as_deref().and_then(|u| self.template(u)) {
            return Some(t.key.clone());
        }
        item.creates.as_ref()?;
        let creates = creates?;
        let want = stem(creates);
        let owned = |key: &str| {
            agent.is_some_and(|a| a.dependency_names("templates").any(|n| stem(n) == key))
        };
        let by_stem: Vec<&str> = self
            .templates
            .iter()
            .map(|t| t.key.as_str())
            .filter(|k| *k == format!("{want}-tmpl") || *k == want)
            .collect();
        if let Some(k) = by_stem.iter().find(|k| owned(k)).or(by_stem.first()) {
            return Some((*k).to_owned());
        }
        if let Some(t) = self.templates.iter().find(|t| {
            t.filename
                .as_deref()
                .is_some_and(|f| f.rsplit('/').next() == Some(creates))
        }) {
            return Some(t.key.clone());
        }
        if let Some(notes) = &item.notes {
            for word in notes.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            {
                if let Some(t) = self
                    .template(word.trim_end_matches('.'))
                    .filter(|_| word.contains("-tmpl"))
                {
                    return Some(t.key.clone());
                }
            }
        }
        let a = agent?;
        a.commands
            .iter()
            .filter(|c| c.name.contains(want))
            .flat_map(|c| c.description.split_whitespace())
            .find_map(|w| {
                self.template(
                    w.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.')),
                )
                .map(|t| t.key.clone())
            })
    }

    pub(crate) fn title_of(
        &self,
        item: &SequenceItem,
        template: Option<&str>,
        creates: Option<&str>,
    ) -> String {
        if let Some(a) = &item.action {
            return humanize(a);
        }
        if let Some(u) = &item.updates {
            return format!("Update {}", u.replace('_', " "));
        }
        if let Some(v) = &item.validates {
            return format!("Validate {}", humanize(v).to_lowercase());
        }
        if let Some(t) = template.and_then(|t| self.template(t)) {
            return t.name.clone();
        }
        creates.map_or_else(
            || humanize(item.step.as_deref().unwrap_or("step")),
            |c| humanize(stem(c)),
        )
    }

    pub(crate) fn instruction_of(
        &self,
        item: &SequenceItem,
        updated: Option<&str>,
    ) -> Option<String> {
        if let Some(i) = &item.instruction {
            return Some(i.clone());
        }
        let verb = if let Some(v) = &item.validates {
            format!(
                "Validate {} for consistency and completeness",
                humanize(v).to_lowercase()
            )
        } else if let Some(u) = &item.updates {
            match updated {
                Some(doc) => format!("Update {doc} and write out the complete revised document"),
                None => format!("Update {}", u.replace('_', " ")),
            }
        } else if let Some(a) = &item.action {
            humanize(a)
        } else {
            return None;
        };
        let uses = item.uses.as_deref().map(|u| {
            let kind = if self.checklist(u).is_some() {
                "checklist"
            } else if self.task(u).is_some() {
                "task"
            } else if self.template(u).is_some() {
                "template"
            } else {
                "resource"
            };
            format!(" using the {kind} `{u}`")
        });
        let cond = item
            .condition
            .as_deref()
            .map(|c| format!(" (only if {})", c.replace('_', " ")))
            .unwrap_or_default();
        Some(format!("{verb}{}{cond}.", uses.unwrap_or_default()))
    }
}
