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

/// Parses a workflow file; `file` is its path relative to the method folder.
pub fn parse_workflow(file: &str, text: &str) -> Result<Workflow, Vec<LoadError>> {
    let root = yaml::parse(text, 0).map_err(|e| {
        vec![LoadError::Syntax {
            at: Location::new(file, e.pos),
            message: e.message,
        }]
    })?;
    let mut d = Decoder::new(file);
    let w = decode_workflow(&mut d, &root);
    if d.errors.is_empty() {
        Ok(w)
    } else {
        Err(d.errors)
    }
}

fn decode_workflow(d: &mut Decoder<'_>, root: &Node) -> Workflow {
    let stem = file_stem(d.file());
    let mut w = Workflow {
        file: d.file().to_owned(),
        ..Workflow::default()
    };
    w.line = root.entry("workflow").map_or(0, |(k, _)| k.pos.line);
    let Some(m) = d.map(root.get("workflow"), "workflow") else {
        if root.get("workflow").is_none() {
            d.missing(root, "workflow", "a map with `id`, `name` and `sequence`");
        }
        w.id = stem;
        return w;
    };
    w.id = d.string(m.get("id"), "workflow.id").unwrap_or(stem);
    w.name = d
        .string(m.get("name"), "workflow.name")
        .unwrap_or_else(|| w.id.clone());
    w.description = d.string(m.get("description"), "workflow.description");
    w.kind = d.string(m.get("type"), "workflow.type").unwrap_or_default();
    w.project_types = d.string_or_list(m.get("project_types"), "workflow.project_types");
    w.flow_diagram = d.string(m.get("flow_diagram"), "workflow.flow_diagram");
    w.decision_guidance = m.get("decision_guidance").map(Node::flatten_text);
    if let Some(h) = d.map(m.get("handoff_prompts"), "workflow.handoff_prompts") {
        for (k, v) in h.as_map().unwrap_or_default() {
            w.handoff_prompts.push((k.text.clone(), v.flatten_text()));
        }
    }
    for (i, p) in d.seq(m.get("phases"), "workflow.phases").iter().enumerate() {
        let field = index("workflow.phases", i);
        if p.as_map().is_none() {
            d.wrong(p, &field, "a phase (a map with `id`, `name`, `depends_on`)");
            continue;
        }
        let id = d.required_string(p, "id", &field).unwrap_or_default();
        let name = d
            .string(p.get("name"), &join(&field, "name"))
            .unwrap_or_else(|| id.clone());
        let depends_on = d.string_or_list(p.get("depends_on"), &join(&field, "depends_on"));
        let gate = d.gate(p.get("gate"), &join(&field, "gate"));
        let gate_timeout = d.gate_timeout(p.get("gate_timeout"), &join(&field, "gate_timeout"));
        let conflict_check = p
            .get("conflict_check")
            .is_none_or(|n| n.is_null() || d.bool(Some(n), &join(&field, "conflict_check")));
        w.phases.push(Phase {
            id,
            name,
            depends_on,
            gate,
            gate_timeout,
            conflict_check,
            line: p.pos.line,
        });
    }
    if let Some((key, node)) = m.entry("conflict_check") {
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
                    "workflow.conflict_check",
                    "true, false, or the id of the agent that checks",
                );
                None
            }
        };
    }
    match m.get("sequence") {
        None => d.missing(m, "workflow.sequence", "a list of steps"),
        Some(seq) => {
            for (i, item) in d.seq(Some(seq), "workflow.sequence").iter().enumerate() {
                if let Some(it) = decode_item(d, item, i) {
                    w.sequence.push(it);
                }
            }
        }
    }
    w
}

fn decode_item(d: &mut Decoder<'_>, node: &Node, i: usize) -> Option<SequenceItem> {
    let path = index("workflow.sequence", i);
    let mut it = SequenceItem {
        index: i,
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
    let f = |k: &str| join(&path, k);
    if let Some(step) = d.string(body.get("step"), &f("step")) {
        it.step = Some(step);
    }
    it.agent = d.string(body.get("agent"), &f("agent"));
    it.creates = d.string(body.get("creates"), &f("creates"));
    it.updates = d.string(body.get("updates"), &f("updates"));
    it.validates = d.string(body.get("validates"), &f("validates"));
    it.action = d.string(body.get("action"), &f("action"));
    it.uses = d.string(body.get("uses"), &f("uses"));
    it.requires = d.string_or_list(body.get("requires"), &f("requires"));
    it.condition = d.string(body.get("condition"), &f("condition"));
    it.optional = d.bool(body.get("optional"), &f("optional"));
    it.optional_steps = d.text_list(body.get("optional_steps"), &f("optional_steps"));
    it.repeats = d.string(body.get("repeats"), &f("repeats"));
    it.notes = body
        .get("notes")
        .map(Node::flatten_text)
        .filter(|n| !n.is_empty());
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
    it.gate = d.gate(body.get("gate"), &f("gate"));
    it.gate_timeout = d.gate_timeout(body.get("gate_timeout"), &f("gate_timeout"));
    it.tools = d.string_or_list(body.get("tools"), &f("tools"));
    it.max_turns = d.u32(body.get("max_turns"), &f("max_turns"));
    Some(it)
}
