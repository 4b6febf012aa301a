//! Resolving a workflow into a run [`Plan`]: which sequence items are steps, who executes
//! them, what they create from which template, what they read and what they wait for.

use std::collections::{BTreeMap, BTreeSet};

use botarmy_protocol::{Plan, PlanGate, PlanStep, StepKind};

use super::Method;
use super::resolve::{artifact_name, is_work, means_everything, stem};
use super::template::slug;
use super::workflow::{ConflictCheck, SequenceItem, Workflow};

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
    /// The workflow's file does not load.
    #[error("workflow `{id}` cannot start: {file} does not load:{}", problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Broken {
        /// The workflow's file.
        file: String,
        /// The id asked for.
        id: String,
        /// Every problem of the file, located.
        problems: Vec<String>,
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

struct Draft<'w> {
    item: &'w SequenceItem,
    step: PlanStep,
    phase_id: Option<String>,
}

impl Method {
    /// Resolves workflow `workflow_id` into a [`Plan`].
    pub fn plan(&self, workflow_id: &str) -> Result<Plan, PlanError> {
        let wf = match self.workflow(workflow_id) {
            Some(wf) => wf,
            None => {
                return Err(match self.broken_workflow(workflow_id) {
                    Some(b) => PlanError::Broken {
                        file: b.file.clone(),
                        id: workflow_id.to_owned(),
                        problems: b.errors.iter().map(ToString::to_string).collect(),
                    },
                    None => PlanError::UnknownWorkflow {
                        id: workflow_id.to_owned(),
                        available: self.workflow_ids(),
                    },
                });
            }
        };
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
                    format!("{}.depends_on", d.item.path),
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
        let gates = gates_of(wf, &drafts);
        let phase_ids: Vec<Option<String>> = drafts.iter().map(|d| d.phase_id.clone()).collect();
        let steps: Vec<PlanStep> = drafts.into_iter().map(|d| d.step).collect();
        let (steps, gates) = match self.conflict_checker(wf) {
            Some(agent) => with_conflict_checks(wf, &agent, steps, &phase_ids, gates),
            None => (steps, gates),
        };
        Ok(Plan {
            gates,
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

    /// The agent that checks the phases' documents for conflicts (none: no checks: the
    /// workflow has no phases, turned them off, or names no agent and the method has no
    /// `reviewer`).
    fn conflict_checker(&self, wf: &Workflow) -> Option<String> {
        if wf.phases.is_empty() {
            return None;
        }
        let agent = match &wf.conflict_check {
            Some(ConflictCheck::Off) => return None,
            Some(ConflictCheck::Agent(a)) => a.as_str(),
            Some(ConflictCheck::On) | None => "reviewer",
        };
        self.agent(agent).map(|_| agent.to_owned())
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
                        field: format!("{}.phase", item.path),
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
            tools: if item.tools.is_empty() {
                agent_def.map(|a| a.tools.clone()).unwrap_or_default()
            } else {
                item.tools.clone()
            },
            max_turns: item.max_turns.or(agent_def.and_then(|a| a.max_turns)),
            kind: StepKind::Work,
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
                            field: format!("{}.depends_on", d.item.path),
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
}

/// The plan's gates: a step with a `gate` of its own gets one; the other steps of a phase
/// share their phase's; a step outside any phase has its own.
fn gates_of(wf: &Workflow, drafts: &[Draft<'_>]) -> Vec<PlanGate> {
    let mut gates = Vec::new();
    let own = |i: usize, d: &Draft<'_>| PlanGate {
        key: d.step.key.clone(),
        title: format!("`{}` ({})", d.step.key, d.step.title),
        steps: vec![i as u32],
        policy: d.item.gate,
        timeout: d.item.gate_timeout,
    };
    let mut phase_gates: Vec<PlanGate> = wf
        .phases
        .iter()
        .map(|p| PlanGate {
            key: format!("phase:{}", p.id),
            title: format!("the {} phase", p.name),
            steps: Vec::new(),
            policy: p.gate,
            timeout: p.gate_timeout,
        })
        .collect();
    for (i, d) in drafts.iter().enumerate() {
        let phase = d
            .phase_id
            .as_deref()
            .and_then(|id| wf.phases.iter().position(|p| p.id == id));
        match phase {
            Some(p) if d.item.gate.is_none() => phase_gates[p].steps.push(i as u32),
            _ => gates.push(own(i, d)),
        }
    }
    gates.extend(phase_gates.into_iter().filter(|g| !g.steps.is_empty()));
    gates.sort_by_key(|g| g.steps.first().copied());
    gates
}

/// The plan with a conflict check after the steps of each phase that has documents to
/// compare (its own and those of the phases it waits for, two at least): the check reads
/// them, waits for the phase's steps, and belongs to the phase's gate, so the phases after
/// it wait for its conflicts to be settled.
fn with_conflict_checks(
    wf: &Workflow,
    agent: &str,
    steps: Vec<PlanStep>,
    phase_ids: &[Option<String>],
    mut gates: Vec<PlanGate>,
) -> (Vec<PlanStep>, Vec<PlanGate>) {
    let deps: BTreeMap<&str, &[String]> = wf
        .phases
        .iter()
        .map(|p| (p.id.as_str(), p.depends_on.as_slice()))
        .collect();
    let in_phase = |id: &str| -> Vec<usize> {
        (0..steps.len())
            .filter(|&i| phase_ids[i].as_deref() == Some(id))
            .collect()
    };
    // New steps, each with the index of the step it follows.
    let mut checks: Vec<(usize, PlanStep)> = Vec::new();
    for phase in wf.phases.iter().filter(|p| p.conflict_check) {
        // The steps under the phase's gate (one with a gate of its own is left out: the
        // check joins the phase's gate, which a step outside it may wait for).
        let Some(gate) = gates
            .iter()
            .find(|g| g.key == format!("phase:{}", phase.id))
        else {
            continue;
        };
        let own: Vec<usize> = in_phase(&phase.id)
            .into_iter()
            .filter(|&i| gate.steps.contains(&(i as u32)))
            .collect();
        let Some(&last) = in_phase(&phase.id).last() else {
            continue;
        };
        // The phases it builds on, the nearest first.
        let ancestors = phase_ancestors(&deps, &phase.id);
        let earlier: Vec<usize> = wf
            .phases
            .iter()
            .rev()
            .filter(|p| ancestors.contains(p.id.as_str()))
            .flat_map(|p| in_phase(&p.id))
            .collect();
        let mut documents: Vec<String> = Vec::new();
        for &i in own.iter().chain(&earlier) {
            if let Some(c) = steps[i].creates.as_ref().filter(|c| c.ends_with(".md"))
                && !documents.contains(c)
            {
                documents.push(c.clone());
            }
        }
        if documents.len() < 2 {
            continue;
        }
        checks.push((
            last,
            PlanStep {
                key: format!("{}/conflict-check", phase.id),
                title: format!("Conflict check of the {} phase", phase.name),
                phase: Some(phase.name.clone()),
                agent: agent.to_owned(),
                creates: Some(format!("conflicts-{}.md", phase.id)),
                template: None,
                requires: documents,
                depends_on: own.iter().map(|&i| i as u32).collect(),
                optional: false,
                condition: None,
                instruction: None,
                notes: None,
                tools: Vec::new(),
                max_turns: None,
                kind: StepKind::ConflictCheck,
            },
        ));
    }
    if checks.is_empty() {
        return (steps, gates);
    }
    // Each check goes right after the last step of its phase; indices move up.
    let mut order: Vec<PlanStep> = Vec::with_capacity(steps.len() + checks.len());
    let mut new_index = vec![0u32; steps.len()];
    let mut placed: Vec<u32> = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        new_index[i] = order.len() as u32;
        order.push(step);
        for (after, check) in &checks {
            if *after == i {
                placed.push(order.len() as u32);
                order.push(check.clone());
            }
        }
    }
    for s in order.iter_mut() {
        for d in s.depends_on.iter_mut() {
            *d = new_index[*d as usize];
        }
    }
    for g in gates.iter_mut() {
        for d in g.steps.iter_mut() {
            *d = new_index[*d as usize];
        }
    }
    for at in placed {
        let phase_id = order[at as usize]
            .key
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let key = format!("phase:{phase_id}");
        if let Some(g) = gates.iter_mut().find(|g| g.key == key) {
            g.steps.push(at);
        }
    }
    gates.sort_by_key(|g| g.steps.first().copied());
    (order, gates)
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
