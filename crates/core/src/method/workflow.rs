//! Workflows: `workflows/<id>.yaml`, a `workflow` map with a `sequence` of steps.
//!
//! Sequence items come in BMAD's shapes: `- agent: pm` with `creates`/`updates`/
//! `validates`/`action`/`uses`/`requires`/…; `- step: name` with the same keys; and
//! one-key maps such as `- workflow_end: {action: …}` or `- classification_decision: text`.
//! BotArmy's extensions use keys BMAD does not: `phases` and `conflict_check` on the workflow; `phase`, `title`,
//! `template`, `instruction`, `depends_on`, `gate`, `tools`, `max_turns` on a step.

use std::collections::BTreeMap;

use super::agent::file_stem;
use super::decode::{Decoder, index, join};
use super::error::{LoadError, Location};
use super::resolve::humanize;
use super::template::slug;
use super::yaml::{self, Node, Value};

/// Keys a sequence item may have; a one-key map with any other key names a step.
const ITEM_KEYS: &[&str] = &[
    "agent",
    "step",
    "creates",
    "updates",
    "validates",
    "action",
    "uses",
    "requires",
    "condition",
    "optional",
    "optional_steps",
    "repeats",
    "notes",
    "routes",
    "phase",
    "title",
    "template",
    "instruction",
    "depends_on",
    "gate",
    "gate_timeout",
    "tools",
    "max_turns",
    "name",
    "description",
    "command",
    "task",
    "using_task",
    "implements",
    "input",
    "inputs",
    "output",
    "outputs",
    "duration",
];

/// A workflow definition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Workflow {
    /// File path relative to the method folder.
    pub file: String,
    /// Line of the `workflow:` key.
    pub line: u32,
    /// `workflow.id` (the file stem when absent).
    pub id: String,
    /// `workflow.name`.
    pub name: String,
    /// `workflow.description`.
    pub description: Option<String>,
    /// `workflow.type` (`greenfield`, `brownfield`, `sdlc`).
    pub kind: String,
    /// `workflow.project_types`.
    pub project_types: Vec<String>,
    /// `workflow.sequence`.
    pub sequence: Vec<SequenceItem>,
    /// `workflow.flow_diagram` (mermaid text).
    pub flow_diagram: Option<String>,
    /// `workflow.decision_guidance`, flattened to text.
    pub decision_guidance: Option<String>,
    /// `workflow.handoff_prompts`: name to text.
    pub handoff_prompts: Vec<(String, String)>,
    /// BotArmy extension `workflow.phases`.
    pub phases: Vec<Phase>,
    /// BotArmy extension `workflow.conflict_check`: who checks each phase's documents
    /// against the earlier ones (none: the method's `reviewer`, when it has one).
    pub conflict_check: Option<ConflictCheck>,
    /// Line of `conflict_check`.
    pub conflict_check_line: u32,
}

/// A workflow file that does not load: the method loads without it, `check` reports its
/// problems, and a run of it says why it cannot start.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenWorkflow {
    /// File path relative to the method folder.
    pub file: String,
    /// The id a run would name it by (the file stem).
    pub id: String,
    /// Every problem of the file.
    pub errors: Vec<LoadError>,
}

/// Whether and by whom a workflow's phases are checked for conflicting documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictCheck {
    /// `false`: no checks.
    Off,
    /// `true`: checked by the method's `reviewer`.
    On,
    /// An agent id: checked by that agent.
    Agent(String),
}

/// A lifecycle phase (BotArmy extension).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Phase {
    /// `id` (`discovery`).
    pub id: String,
    /// `name` (`Discovery`).
    pub name: String,
    /// `depends_on`: ids of phases that must finish first.
    pub depends_on: Vec<String>,
    /// `gate`: when the phase's outputs need a human's approval (none: the run's default).
    pub gate: Option<botarmy_protocol::GatePolicy>,
    /// `gate_timeout`: how long its approval may wait (`{after: 4h, then: approve}`).
    pub gate_timeout: Option<botarmy_protocol::GateTimeout>,
    /// `conflict_check: false` leaves the phase's documents unchecked.
    pub conflict_check: bool,
    /// Line of the phase.
    pub line: u32,
}

/// One item of a workflow's `sequence`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SequenceItem {
    /// Position in the sequence, from 0.
    pub index: usize,
    /// Field path of the item in its file (`workflow.sequence[2]`, `phases.design[0]`).
    pub path: String,
    /// Line where the item starts.
    pub line: u32,
    /// Line of each key of the item (for diagnostics).
    pub key_lines: BTreeMap<String, u32>,
    /// `step` name, or the key of a one-key map item.
    pub step: Option<String>,
    /// `agent` (`pm`, `analyst/pm`, `various`).
    pub agent: Option<String>,
    /// `creates`, as written.
    pub creates: Option<String>,
    /// `updates`, as written.
    pub updates: Option<String>,
    /// `validates`, as written.
    pub validates: Option<String>,
    /// `action`.
    pub action: Option<String>,
    /// `uses`: a task, checklist or template name.
    pub uses: Option<String>,
    /// `requires`: a string or a list, as a list.
    pub requires: Vec<String>,
    /// `condition`.
    pub condition: Option<String>,
    /// `optional`.
    pub optional: bool,
    /// `optional_steps`.
    pub optional_steps: Vec<String>,
    /// `repeats`.
    pub repeats: Option<String>,
    /// `notes`.
    pub notes: Option<String>,
    /// `routes`: alternatives of a decision item.
    pub routes: Vec<Route>,
    /// Extension `phase`: the phase id.
    pub phase: Option<String>,
    /// Extension `title`.
    pub title: Option<String>,
    /// Extension `template`: the template that produces `creates`.
    pub template: Option<String>,
    /// Extension `instruction`: what to do, in a sentence or two.
    pub instruction: Option<String>,
    /// Extension `depends_on`: step keys or artifact names that must exist first.
    pub depends_on: Vec<String>,
    /// Extension `gate`: the step gets a gate of its own with this policy.
    pub gate: Option<botarmy_protocol::GatePolicy>,
    /// Extension `gate_timeout`: how long the approval of its own gate may wait.
    pub gate_timeout: Option<botarmy_protocol::GateTimeout>,
    /// Extension `tools`.
    pub tools: Vec<String>,
    /// Extension `max_turns`.
    pub max_turns: Option<u32>,
}

impl SequenceItem {
    /// The line of `key` in this item, or the item's line.
    pub fn line_of(&self, key: &str) -> u32 {
        self.key_lines.get(key).copied().unwrap_or(self.line)
    }
}

/// One alternative of a `routes` map.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    /// The route's name (`single_story`).
    pub name: String,
    /// `agent`.
    pub agent: Option<String>,
    /// `uses`.
    pub uses: Option<String>,
    /// `notes`.
    pub notes: Option<String>,
    /// Line of the route.
    pub line: u32,
}

/// The shapes a workflow file may take, for the message when a file has none of them.
const SHAPES: &str = "a `workflow:` map with `id`, `name` and `sequence`, or `name` with \
`steps`, `sequence` or `phases` at the top level";

/// What a workflow's steps may be listed under, for the message when none is there.
const STEP_LISTS: &str = "a list of steps: `sequence`, `steps`, a named `<name>_sequence`, \
or `phases` with steps";

/// Parses a workflow file; `file` is its path relative to the method folder.
///
/// A file defines one workflow, or one per named sequence (`prototype_sequence:` and
/// `game_jam_sequence:` are the workflows `<id>:prototype` and `<id>:game-jam`).
pub fn parse_workflow(file: &str, text: &str) -> Result<Vec<Workflow>, Vec<LoadError>> {
    let root = yaml::parse(text, 0).map_err(|e| {
        vec![LoadError::Syntax {
            at: Location::new(file, e.pos),
            message: e.message,
        }]
    })?;
    let mut d = Decoder::new(file);
    let w = decode_workflows(&mut d, &root);
    if d.errors.is_empty() {
        Ok(w)
    } else {
        Err(d.errors)
    }
}

/// Whether a file without a `workflow:` root holds a workflow at its top level.
fn is_top_level_workflow(root: &Node) -> bool {
    root.as_map().is_some_and(|entries| {
        entries.iter().any(|(k, _)| {
            matches!(k.text.as_str(), "steps" | "sequence" | "phases") || is_named_sequence(&k.text)
        })
    })
}

fn is_named_sequence(key: &str) -> bool {
    key.len() > "_sequence".len() && key.ends_with("_sequence")
}

fn decode_workflows(d: &mut Decoder<'_>, root: &Node) -> Vec<Workflow> {
    let stem = file_stem(d.file());
    let (m, base, line) = match root.entry("workflow") {
        Some((k, v)) => match d.map(Some(v), "workflow") {
            Some(m) => (m, "workflow", k.pos.line),
            None => {
                if v.is_null() {
                    d.missing(root, "workflow", SHAPES);
                }
                return Vec::new();
            }
        },
        None if is_top_level_workflow(root) => (root, "", root.pos.line),
        None => {
            d.missing(root, "workflow", SHAPES);
            return Vec::new();
        }
    };
    let f = |k: &str| join(base, k);
    let mut w = Workflow {
        file: d.file().to_owned(),
        line,
        ..Workflow::default()
    };
    w.id = d.string(m.get("id"), &f("id")).unwrap_or(stem);
    w.name = d
        .string(m.get("name"), &f("name"))
        .or_else(|| d.string(m.get("title"), &f("title")))
        .unwrap_or_else(|| w.id.clone());
    w.description = d.string(m.get("description"), &f("description"));
    w.kind = d.string(m.get("type"), &f("type")).unwrap_or_default();
    w.project_types = d.string_or_list(m.get("project_types"), &f("project_types"));
    w.flow_diagram = d.string(m.get("flow_diagram"), &f("flow_diagram"));
    w.decision_guidance = m.get("decision_guidance").map(Node::flatten_text);
    if let Some(h) = d.map(m.get("handoff_prompts"), &f("handoff_prompts")) {
        for (k, v) in h.as_map().unwrap_or_default() {
            w.handoff_prompts.push((k.text.clone(), v.flatten_text()));
        }
    }
    // `agents:` of the top-level shape: who works on the steps that name no agent.
    let crew = agents_of(d, m.get("agents"), &f("agents"));
    decode_conflict_check(d, m, &f("conflict_check"), &mut w);
    let phase_steps = decode_phases(d, m.get("phases"), &f("phases"), &mut w);

    // The step lists: `sequence`, `steps`, and the named sequences, in file order.
    let mut lists: Vec<(Option<String>, &Node, String)> = Vec::new();
    for (k, v) in m.as_map().unwrap_or_default() {
        let key = k.text.as_str();
        if key == "sequence" || key == "steps" {
            lists.push((None, v, f(key)));
        } else if is_named_sequence(key) {
            let name = slug(key.trim_end_matches("_sequence"));
            lists.push((Some(name), v, f(key)));
        }
    }
    if lists.is_empty() && phase_steps.is_empty() {
        d.missing(m, &f("sequence"), STEP_LISTS);
        return vec![w];
    }
    let fill_agent = |mut it: SequenceItem| {
        if it.agent.is_none()
            && let Some(first) = crew.first()
        {
            it.agent = Some(first.clone());
        }
        it
    };
    if lists.is_empty() {
        w.sequence = phase_steps.into_iter().map(fill_agent).collect();
        return vec![w];
    }
    let several = lists.len() > 1;
    let mut out = Vec::with_capacity(lists.len());
    for (name, node, field) in lists {
        let mut one = w.clone();
        if several && let Some(name) = &name {
            one.id = format!("{}:{name}", w.id);
            one.name = format!("{} ({})", w.name, humanize(name));
        }
        one.sequence = phase_steps.iter().cloned().map(fill_agent).collect();
        let offset = one.sequence.len();
        for (i, item) in d.seq(Some(node), &field).iter().enumerate() {
            if let Some(it) = decode_item(d, item, index(&field, i), offset + i) {
                one.sequence.push(fill_agent(it));
            }
        }
        out.push(one);
    }
    out
}

/// The agent ids of an `agents:` list (strings, or maps with an `id` or `name`).
fn agents_of(d: &mut Decoder<'_>, node: Option<&Node>, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, a) in d.seq(node, field).iter().enumerate() {
        match &a.value {
            Value::Scalar { text, .. } => out.push(text.clone()),
            Value::Map(_) => {
                let at = index(field, i);
                if let Some(id) = d
                    .string(a.get("id"), &join(&at, "id"))
                    .or_else(|| d.string(a.get("name"), &join(&at, "name")))
                {
                    out.push(id);
                }
            }
            _ => d.wrong(a, &index(field, i), "an agent id"),
        }
    }
    out
}

fn decode_conflict_check(d: &mut Decoder<'_>, m: &Node, field: &str, w: &mut Workflow) {
    let Some((key, node)) = m.entry("conflict_check") else {
        return;
    };
    w.conflict_check_line = key.pos.line;
    w.conflict_check = match &node.value {
        Value::Null => None,
        Value::Scalar { text, .. } => Some(match text.trim() {
            "false" | "no" | "off" => ConflictCheck::Off,
            "true" | "yes" | "on" => ConflictCheck::On,
            agent => ConflictCheck::Agent(agent.to_owned()),
        }),
        _ => {
            d.wrong(
                node,
                field,
                "true, false, or the id of the agent that checks",
            );
            None
        }
    };
}

/// Reads `phases` into `w.phases`, in its three shapes, and returns the steps listed in
/// them (each with its phase):
/// - BotArmy's list of phase definitions (`- id: design`, `depends_on`, `gate`), whose
///   steps name their phase;
/// - a list of phases with their steps (`- name: analysis` with `steps:`), or of phases
///   that are one step each (`- name: analysis` with `agent:`);
/// - a map from phase name to its list of steps (or to a map with `steps`).
///
/// Phases of the last two shapes run in the order written, each after the one before.
fn decode_phases(
    d: &mut Decoder<'_>,
    node: Option<&Node>,
    field: &str,
    w: &mut Workflow,
) -> Vec<SequenceItem> {
    let mut steps = Vec::new();
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return steps;
    };
    // (name, the phase's own node, its steps' node, field path)
    let mut listed: Vec<(String, &Node, Option<&Node>, String)> = Vec::new();
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let at = join(field, &k.text);
                let list = if v.as_seq().is_some() {
                    Some(v)
                } else {
                    v.get("steps")
                };
                listed.push((k.text.clone(), v, list, at));
            }
        }
        Value::Seq(items) => {
            for (i, p) in items.iter().enumerate() {
                let at = index(field, i);
                if p.as_map().is_none() {
                    d.wrong(p, &at, "a phase (a map with `id`, `name`, `depends_on`)");
                    continue;
                }
                let defines =
                    p.get("id").is_some() && p.get("steps").is_none() && p.get("agent").is_none();
                if defines {
                    w.phases.push(phase_definition(d, p, &at));
                    continue;
                }
                let Some(name) = d
                    .string(p.get("name"), &join(&at, "name"))
                    .or_else(|| d.string(p.get("id"), &join(&at, "id")))
                else {
                    d.missing(p, &join(&at, "name"), "the phase's name");
                    continue;
                };
                listed.push((name, p, p.get("steps"), at));
            }
        }
        _ => {
            d.wrong(
                node,
                field,
                "a list of phases, or a map from phase name to its steps",
            );
            return steps;
        }
    }
    let mut previous: Option<String> = None;
    for (name, phase_node, list, at) in listed {
        let id = slug(&name);
        let mut phase = Phase {
            id: id.clone(),
            name: humanize(&name),
            depends_on: previous.iter().cloned().collect(),
            conflict_check: true,
            line: phase_node.pos.line,
            ..Phase::default()
        };
        if phase_node.as_map().is_some() {
            phase.gate = d.gate(
                phase_node.get("gate").filter(|g| g.as_seq().is_none()),
                &join(&at, "gate"),
            );
        }
        let items: Vec<(Node, String)> = match list {
            Some(l) => {
                let f = if l.as_seq().is_some() && phase_node.as_seq().is_some() {
                    at.clone()
                } else {
                    join(&at, "steps")
                };
                d.seq(Some(l), &f)
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), index(&f, i)))
                    .collect()
            }
            // A phase that is one step.
            None => vec![(phase_node.clone(), at.clone())],
        };
        for (n, path) in items {
            let i = steps.len();
            if let Some(mut it) = decode_item(d, &n, path, i) {
                if it.step.is_none() && list.is_none() {
                    it.step = Some(name.clone());
                }
                it.phase.get_or_insert_with(|| id.clone());
                steps.push(it);
            }
        }
        w.phases.push(phase);
        previous = Some(id);
    }
    steps
}

/// One phase of BotArmy's list of phase definitions.
fn phase_definition(d: &mut Decoder<'_>, p: &Node, field: &str) -> Phase {
    let id = d.required_string(p, "id", field).unwrap_or_default();
    let name = d
        .string(p.get("name"), &join(field, "name"))
        .unwrap_or_else(|| id.clone());
    let depends_on = d.string_or_list(p.get("depends_on"), &join(field, "depends_on"));
    let gate = d.gate(p.get("gate"), &join(field, "gate"));
    let gate_timeout = d.gate_timeout(p.get("gate_timeout"), &join(field, "gate_timeout"));
    let conflict_check = p
        .get("conflict_check")
        .is_none_or(|n| n.is_null() || d.bool(Some(n), &join(field, "conflict_check")));
    Phase {
        id,
        name,
        depends_on,
        gate,
        gate_timeout,
        conflict_check,
        line: p.pos.line,
    }
}

fn decode_item(d: &mut Decoder<'_>, node: &Node, path: String, i: usize) -> Option<SequenceItem> {
    let mut it = SequenceItem {
        index: i,
        path: path.clone(),
        line: node.pos.line,
        ..SequenceItem::default()
    };
    let entries = match &node.value {
        Value::Map(entries) => entries,
        Value::Scalar { text, .. } => {
            // A bare name: a step with no details.
            it.step = Some(text.clone());
            return Some(it);
        }
        _ => {
            d.wrong(
                node,
                &path,
                "a step (a map such as `agent: pm` with `creates: prd.md`)",
            );
            return None;
        }
    };
    // `- step_name: {…}` or `- step_name: text`
    let (body, path) = match entries.as_slice() {
        [(k, v)] if !ITEM_KEYS.contains(&k.text.as_str()) => {
            it.step = Some(k.text.clone());
            let inner = join(&path, &k.text);
            match &v.value {
                Value::Map(_) => (v, inner),
                Value::Null => return Some(it),
                _ => {
                    it.notes = Some(v.flatten_text());
                    return Some(it);
                }
            }
        }
        _ => (node, path),
    };
    for (k, _) in body.as_map().unwrap_or_default() {
        it.key_lines.insert(k.text.clone(), k.pos.line);
    }
    it.path = path.clone();
    let f = |k: &str| join(&path, k);
    if let Some(step) = d
        .string(body.get("step"), &f("step"))
        .or_else(|| d.string(body.get("name"), &f("name")))
    {
        it.step = Some(step);
    }
    it.agent = d.string(body.get("agent"), &f("agent"));
    // `output`/`outputs` (community packs) say what `creates` says: the first is the
    // document, the others are named in the notes.
    let mut outputs = d.string_or_list(body.get("output"), &f("output"));
    outputs.extend(outputs_of(d, body.get("outputs"), &f("outputs")));
    it.creates = d
        .string(body.get("creates"), &f("creates"))
        .or_else(|| outputs.first().cloned());
    it.updates = d.string(body.get("updates"), &f("updates"));
    it.validates = d.string(body.get("validates"), &f("validates"));
    it.action = d
        .string(body.get("action"), &f("action"))
        .or_else(|| d.string(body.get("command"), &f("command")))
        .or_else(|| {
            d.string(body.get("implements"), &f("implements"))
                .map(|what| format!("implement {what}"))
        });
    it.uses = d
        .string(body.get("uses"), &f("uses"))
        .or_else(|| d.string(body.get("task"), &f("task")))
        .or_else(|| d.string(body.get("using_task"), &f("using_task")));
    it.requires = split_names(d.string_or_list(body.get("requires"), &f("requires")));
    for key in ["input", "inputs"] {
        it.requires
            .extend(split_names(d.text_list(body.get(key), &f(key))));
    }
    it.condition = d.string(body.get("condition"), &f("condition"));
    it.optional = d.bool(body.get("optional"), &f("optional"));
    it.optional_steps = d.text_list(body.get("optional_steps"), &f("optional_steps"));
    it.repeats = d.string(body.get("repeats"), &f("repeats"));
    let mut notes: Vec<String> = ["notes", "description"]
        .iter()
        .filter_map(|k| body.get(k).map(Node::flatten_text))
        .filter(|n| !n.is_empty())
        .collect();
    if outputs.len() > 1 {
        notes.push(format!("Also produce: {}.", outputs[1..].join(", ")));
    }
    if let Some(t) = d.string(body.get("duration"), &f("duration")) {
        notes.push(format!("Time box: {t}."));
    }
    // A list under `gate` is the criteria a phase must meet, not a gate policy.
    let criteria = body.get("gate").filter(|g| g.as_seq().is_some());
    if let Some(c) = criteria {
        notes.push(format!(
            "Done when: {}.",
            d.text_list(Some(c), &f("gate")).join("; ")
        ));
    }
    it.notes = (!notes.is_empty()).then(|| notes.join("\n\n"));
    if let Some(r) = d.map(body.get("routes"), &f("routes")) {
        for (k, v) in r.as_map().unwrap_or_default() {
            let rf = join(&f("routes"), &k.text);
            let mut route = Route {
                name: k.text.clone(),
                line: k.pos.line,
                ..Route::default()
            };
            if let Some(rm) = d.map(Some(v), &rf) {
                route.agent = d.string(rm.get("agent"), &join(&rf, "agent"));
                route.uses = d.string(rm.get("uses"), &join(&rf, "uses"));
                route.notes = rm.get("notes").map(Node::flatten_text);
            }
            it.routes.push(route);
        }
    }
    it.phase = d.string(body.get("phase"), &f("phase"));
    it.title = d.string(body.get("title"), &f("title"));
    it.template = d.string(body.get("template"), &f("template"));
    it.instruction = d.string(body.get("instruction"), &f("instruction"));
    it.depends_on = d.string_or_list(body.get("depends_on"), &f("depends_on"));
    if criteria.is_none() {
        it.gate = d.gate(body.get("gate"), &f("gate"));
    }
    it.gate_timeout = d.gate_timeout(body.get("gate_timeout"), &f("gate_timeout"));
    it.tools = d.string_or_list(body.get("tools"), &f("tools"));
    it.max_turns = d.u32(body.get("max_turns"), &f("max_turns"));
    Some(it)
}

/// `outputs` of a step: names, or maps with a `path` (or `file`/`name`).
fn outputs_of(d: &mut Decoder<'_>, node: Option<&Node>, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(node) = node else { return out };
    if let Some(items) = node.as_seq() {
        for (i, o) in items.iter().enumerate() {
            let at = index(field, i);
            match &o.value {
                Value::Scalar { text, .. } => out.push(text.clone()),
                Value::Map(_) => {
                    if let Some(p) = ["path", "file", "name"]
                        .iter()
                        .find_map(|k| d.string(o.get(k), &join(&at, k)))
                    {
                        out.push(p);
                    }
                }
                _ => d.wrong(o, &at, "a file name, or a map with `path`"),
            }
        }
    } else {
        out.extend(d.string_or_list(Some(node), field));
    }
    out
}

/// Names written as one comma-separated string (`a.md, b.md`) split into a list; text
/// that is not a list of file names is kept whole.
fn split_names(values: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let parts: Vec<&str> = v.split(',').map(str::trim).collect();
        let names = parts.len() > 1
            && parts
                .iter()
                .all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
        if names {
            out.extend(parts.into_iter().map(str::to_owned));
        } else {
            out.push(v);
        }
    }
    out
}
