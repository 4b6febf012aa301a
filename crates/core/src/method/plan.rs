//! Resolving a workflow into a run [`Plan`]: which sequence items are steps, who executes
//! them, what they create from which template, what they read and what they wait for.

use std::collections::{BTreeMap, BTreeSet};

use botarmy_protocol::{Plan, PlanStep};

use super::template::slug;
use super::workflow::{SequenceItem, Workflow};
use super::{Agent, Method};

/// Why a workflow could not be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No workflow has that id.
    #[error("unknown workflow `{id}`; available: {}", available.join(", "))]
    UnknownWorkflow {
        /// The id asked for.
        id: String,
        /// The ids the method has.
        available: Vec<String>,
    },
    /// The workflow has no item that does work.
    #[error(
        "{file}:{line}: workflow `{id}` has no step with an agent that creates, updates, validates or does something"
    )]
    Empty {
        /// Workflow file.
        file: String,
        /// Line of `workflow:`.
        line: u32,
        /// Workflow id.
        id: String,
    },
    /// A step names a phase the workflow does not declare.
    #[error("{file}:{line}: {field}: unknown phase `{phase}`; declared phases: {}", declared.join(", "))]
    UnknownPhase {
        /// Workflow file.
        file: String,
        /// Line of the `phase` key.
        line: u32,
        /// Field path.
        field: String,
        /// The phase named.
        phase: String,
        /// Declared phase ids.
        declared: Vec<String>,
    },
    /// A `depends_on` entry names no step, phase or artifact.
    #[error(
        "{file}:{line}: {field}: `{name}` names no step key, step name or artifact of this workflow"
    )]
    UnknownDependency {
        /// Workflow file.
        file: String,
        /// Line of the `depends_on` key.
        line: u32,
        /// Field path.
        field: String,
        /// The name that did not resolve.
        name: String,
    },
    /// Dependencies form a cycle.
    #[error("{file}:{line}: {field}: dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// Workflow file.
        file: String,
        /// Line where the cycle is declared.
        line: u32,
        /// Field path.
        field: String,
        /// The keys on the cycle, first repeated at the end.
        cycle: Vec<String>,
    },
}

/// Artifact file name from a `creates`/`updates`/`requires` value: the text before a
/// parenthesis (`prd.md (if needed)` → `prd.md`), words joined by `-`, and `.md` added when
/// there is no extension (`sharded_docs` → `sharded_docs.md`).
pub(crate) fn artifact_name(raw: &str) -> Option<String> {
    let head = raw.split(" (").next().unwrap_or(raw).trim();
    let head = head.strip_prefix("{root}/").unwrap_or(head);
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
fn means_everything(raw: &str) -> bool {
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

fn stem(name: &str) -> &str {
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

struct Draft<'w> {
    item: &'w SequenceItem,
    step: PlanStep,
    phase_id: Option<String>,
}

impl Method {
    /// Resolves workflow `workflow_id` into a [`Plan`].
    pub fn plan(&self, workflow_id: &str) -> Result<Plan, PlanError> {
        let wf = self
            .workflow(workflow_id)
            .ok_or_else(|| PlanError::UnknownWorkflow {
                id: workflow_id.to_owned(),
                available: self.workflow_ids(),
            })?;
        let items: Vec<&SequenceItem> = wf.sequence.iter().filter(|i| is_work(i)).collect();
        if items.is_empty() {
            return Err(PlanError::Empty {
                file: wf.file.clone(),
                line: wf.line,
                id: wf.id.clone(),
            });
        }
        let mut drafts: Vec<Draft<'_>> = Vec::with_capacity(items.len());
        let mut keys = BTreeSet::new();
        for item in items {
            let d = self.draft(wf, item, &drafts, &mut keys)?;
            drafts.push(d);
        }
        self.link(wf, &mut drafts)?;
        let plain: Vec<&PlanStep> = drafts.iter().map(|d| &d.step).collect();
        if let Some(cycle) = find_cycle(&plain) {
            let explicit = cycle
                .iter()
                .map(|&i| &drafts[i])
                .find(|d| !d.item.depends_on.is_empty());
            let (line, field) = match explicit {
                Some(d) => (
                    d.item.line_of("depends_on"),
                    format!("workflow.sequence[{}].depends_on", d.item.index),
                ),
                None => {
                    let phase = cycle.first().and_then(|&i| drafts[i].phase_id.as_deref());
                    let p = wf.phases.iter().position(|p| Some(p.id.as_str()) == phase);
                    (
                        p.map_or(wf.line, |p| wf.phases[p].line),
                        p.map_or_else(
                            || "workflow.phases".to_owned(),
                            |p| format!("workflow.phases[{p}].depends_on"),
                        ),
                    )
                }
            };
            let mut keys: Vec<String> = cycle.iter().map(|&i| drafts[i].step.key.clone()).collect();
            if let Some(first) = keys.first().cloned() {
                keys.push(first);
            }
            return Err(PlanError::Cycle {
                file: wf.file.clone(),
                line,
                field,
                cycle: keys,
            });
        }
        let steps: Vec<PlanStep> = drafts.into_iter().map(|d| d.step).collect();
        Ok(Plan {
            workflow_id: wf.id.clone(),
            workflow_name: wf.name.clone(),
            cycle_type: if wf.kind.is_empty() {
                "sdlc".to_owned()
            } else {
                wf.kind.clone()
            },
            method_digest: self.digest.clone(),
            steps,
        })
    }

    fn draft<'w>(
        &self,
        wf: &'w Workflow,
        item: &'w SequenceItem,
        earlier: &[Draft<'w>],
        keys: &mut BTreeSet<String>,
    ) -> Result<Draft<'w>, PlanError> {
        let mut notes: Vec<String> = item.notes.iter().cloned().collect();
        let agent_raw = item.agent.clone().unwrap_or_default();
        let agent = if agent_raw == "various" {
            let chosen = earlier
                .iter()
                .rev()
                .find(|d| {
                    d.item.agent.as_deref() != Some("various")
                        && (d.item.creates.is_some() || d.item.updates.is_some())
                })
                .map(|d| d.step.agent.clone())
                .or_else(|| earlier.first().map(|d| d.step.agent.clone()))
                .unwrap_or_else(|| "analyst".to_owned());
            notes.push(format!(
                "The workflow gives this step to `various` agents; BotArmy assigns it to `{chosen}`, the last agent that wrote a document."
            ));
            chosen
        } else {
            agent_raw
                .split('/')
                .next()
                .unwrap_or(&agent_raw)
                .trim()
                .to_owned()
        };
        let made: Vec<&str> = earlier
            .iter()
            .filter_map(|d| d.step.creates.as_deref())
            .collect();
        let updated = item
            .updates
            .as_deref()
            .and_then(artifact_name)
            .filter(|u| made.contains(&u.as_str()));

        // What the step reads.
        let mut requires: Vec<String> = Vec::new();
        let mut absent: Vec<String> = Vec::new();
        let everything = item
            .requires
            .iter()
            .chain(item.validates.iter())
            .any(|r| means_everything(r));
        for raw in item
            .requires
            .iter()
            .chain(item.validates.iter())
            .filter(|r| !means_everything(r))
        {
            match artifact_name(raw) {
                Some(n) if made.contains(&n.as_str()) => requires.push(n),
                Some(_)
                    if item.validates.as_deref() == Some(raw.as_str())
                        && !item.requires.contains(raw) => {}
                Some(_) => absent.push(raw.clone()),
                None => {}
            }
        }
        if everything {
            requires.extend(made.iter().map(|s| (*s).to_owned()));
        }
        if let Some(u) = &updated {
            requires.push(u.clone());
        }
        let mut seen = BTreeSet::new();
        requires.retain(|r| seen.insert(r.clone()));
        if !absent.is_empty() {
            notes.push(format!(
                "Expected inputs that no earlier step produces: {}.",
                absent.join(", ")
            ));
        }

        // Phase.
        let phase = match &item.phase {
            None => None,
            Some(p) => Some(
                wf.phases
                    .iter()
                    .find(|ph| ph.id == *p || ph.name == *p)
                    .ok_or_else(|| PlanError::UnknownPhase {
                        file: wf.file.clone(),
                        line: item.line_of("phase"),
                        field: format!("workflow.sequence[{}].phase", item.index),
                        phase: p.clone(),
                        declared: wf.phases.iter().map(|ph| ph.id.clone()).collect(),
                    })?,
            ),
        };

        // What it makes.
        let creates_named = item
            .creates
            .as_deref()
            .and_then(artifact_name)
            .or(updated.clone());
        let base = if let Some(s) = &item.step {
            slug(s)
        } else if let (Some(c), None) = (&item.creates, &item.action) {
            slug(stem(&artifact_name(c).unwrap_or_default()))
        } else if let Some(a) = &item.action {
            slug(a)
        } else if let Some(u) = &item.updates {
            format!(
                "update-{}",
                slug(stem(&artifact_name(u).unwrap_or_default()))
            )
        } else if let Some(v) = &item.validates {
            format!("validate-{}", slug(v))
        } else {
            slug(item.uses.as_deref().unwrap_or("step"))
        };
        let base = match phase {
            Some(p) => format!(
                "{}/{}",
                p.id,
                if base.is_empty() {
                    "step".to_owned()
                } else {
                    base
                }
            ),
            None if base.is_empty() => "step".to_owned(),
            None => base,
        };
        let mut key = base.clone();
        let mut n = 2;
        while !keys.insert(key.clone()) {
            key = format!("{base}-{n}");
            n += 1;
        }
        let creates = creates_named
            .or_else(|| Some(format!("{}.md", key.rsplit('/').next().unwrap_or(&key))));
        let agent_def = self.agent(&agent);
        let template = self.resolve_template(item, agent_def, creates.as_deref());
        let title = item
            .title
            .clone()
            .unwrap_or_else(|| self.title_of(item, template.as_deref(), creates.as_deref()));

        if !item.optional_steps.is_empty() {
            notes.push(format!(
                "Optional work before this step, if useful: {}.",
                item.optional_steps.join(", ")
            ));
        }
        if let Some(r) = &item.repeats {
            notes.push(format!("The workflow repeats this step ({r}); BotArmy plans it once, so cover every case in one document."));
        }
        let step = PlanStep {
            key,
            title,
            phase: phase.map(|p| p.name.clone()),
            agent,
            creates,
            template,
            requires,
            depends_on: Vec::new(),
            optional: item.optional,
            condition: item.condition.clone(),
            instruction: self.instruction_of(item, updated.as_deref()),
            notes: if notes.is_empty() {
                None
            } else {
                Some(notes.join("\n\n"))
            },
        };
        Ok(Draft {
            item,
            step,
            phase_id: phase.map(|p| p.id.clone()),
        })
    }

    /// Fills `depends_on` of every step.
    fn link(&self, wf: &Workflow, drafts: &mut [Draft<'_>]) -> Result<(), PlanError> {
        let phased = !wf.phases.is_empty();
        let phase_deps: BTreeMap<&str, &[String]> = wf
            .phases
            .iter()
            .map(|p| (p.id.as_str(), p.depends_on.as_slice()))
            .collect();
        let mut all = Vec::with_capacity(drafts.len());
        for (i, d) in drafts.iter().enumerate() {
            let mut deps = BTreeSet::new();
            // Phases this step's phase waits for, directly or not.
            let ancestors = d
                .phase_id
                .as_deref()
                .map(|p| phase_ancestors(&phase_deps, p))
                .unwrap_or_default();
            // Creators of what the step reads: the latest earlier step that makes each
            // (unless its phase is already waited for as a whole).
            for r in &d.step.requires {
                if let Some(j) = (0..i)
                    .rev()
                    .find(|&j| drafts[j].step.creates.as_deref() == Some(r.as_str()))
                    && !drafts[j]
                        .phase_id
                        .as_deref()
                        .is_some_and(|p| ancestors.contains(p))
                {
                    deps.insert(j);
                }
            }
            if phased {
                if let Some(p) = &d.phase_id {
                    let mut wanted = BTreeSet::new();
                    let mut stack: Vec<&str> = phase_deps
                        .get(p.as_str())
                        .map(|v| v.iter().map(String::as_str).collect())
                        .unwrap_or_default();
                    let mut visited = BTreeSet::new();
                    while let Some(q) = stack.pop() {
                        if !visited.insert(q) {
                            continue;
                        }
                        let members: Vec<usize> = (0..drafts.len())
                            .filter(|&j| drafts[j].phase_id.as_deref() == Some(q))
                            .collect();
                        if members.is_empty() {
                            stack.extend(
                                phase_deps
                                    .get(q)
                                    .into_iter()
                                    .flat_map(|v| v.iter().map(String::as_str)),
                            );
                        } else {
                            wanted.extend(members);
                        }
                    }
                    deps.extend(wanted);
                } else if i > 0 {
                    deps.insert(i - 1);
                }
            } else if deps.is_empty() && i > 0 {
                deps.insert(i - 1);
            }
            for name in &d.item.depends_on {
                let found = drafts.iter().position(|o| {
                    o.step.key == *name
                        || o.item.step.as_deref() == Some(name.as_str())
                        || o.step.creates.as_deref() == artifact_name(name).as_deref()
                        || o.phase_id.as_deref() == Some(name.as_str())
                });
                match found {
                    Some(j) if drafts[j].phase_id.as_deref() == Some(name.as_str()) => {
                        deps.extend(
                            (0..drafts.len())
                                .filter(|&k| drafts[k].phase_id.as_deref() == Some(name.as_str())),
                        );
                    }
                    Some(j) => {
                        deps.insert(j);
                    }
                    None => {
                        return Err(PlanError::UnknownDependency {
                            file: wf.file.clone(),
                            line: d.item.line_of("depends_on"),
                            field: format!("workflow.sequence[{}].depends_on", d.item.index),
                            name: name.clone(),
                        });
                    }
                }
            }
            deps.remove(&i);
            all.push(
                deps.into_iter()
                    .filter_map(|j| u32::try_from(j).ok())
                    .collect::<Vec<u32>>(),
            );
        }
        for (d, deps) in drafts.iter_mut().zip(all) {
            d.step.depends_on = deps;
        }
        Ok(())
    }

    /// The template that produces a step's document, chosen deterministically: the step's
    /// own `template`; a template named by `uses`; for a step that creates a document, the
    /// template named after it (`prd.md` → `prd-tmpl`, the agent's own first), one whose
    /// output file has that name, one the notes mention (`using prd-tmpl`), or one an agent
    /// command ties to it (`create-prd: … prd-tmpl.yaml`).
    fn resolve_template(
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

    fn title_of(
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

    fn instruction_of(&self, item: &SequenceItem, updated: Option<&str>) -> Option<String> {
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

/// Every phase `phase` waits for, directly or through others.
fn phase_ancestors<'a>(deps: &BTreeMap<&'a str, &'a [String]>, phase: &str) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<&str> = deps
        .get(phase)
        .map(|v| v.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(p) = stack.pop() {
        if let Some((&key, more)) = deps.get_key_value(p)
            && out.insert(key)
        {
            stack.extend(more.iter().map(String::as_str));
        }
    }
    out
}

/// The indices of the steps on a cycle of `depends_on`, if there is one.
fn find_cycle(steps: &[&PlanStep]) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done
    let mut state = vec![0u8; steps.len()];
    for start in 0..steps.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            let deps = &steps[node].depends_on;
            if next < deps.len() {
                top.1 += 1;
                let dep = deps[next] as usize;
                if dep >= steps.len() {
                    continue;
                }
                match state[dep] {
                    0 => {
                        state[dep] = 1;
                        stack.push((dep, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        return Some(stack[pos..].iter().map(|(n, _)| *n).collect());
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    None
}
