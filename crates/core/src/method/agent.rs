//! Agents: `agents/<id>.md`, a markdown preamble followed by one fenced ```yaml block with
//! `agent`, `persona`, `commands`, `dependencies` and friends.

use std::collections::BTreeMap;

use super::decode::{Decoder, index, join};
use super::error::{LoadError, Location};
use super::yaml::{self, Node, Value};

/// An agent definition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Agent {
    /// File path relative to the method folder.
    pub file: String,
    /// Line of the `agent:` key in the file (0 if absent).
    pub line: u32,
    /// `agent.id` (the file stem when absent).
    pub id: String,
    /// `agent.name`.
    pub name: String,
    /// `agent.title`.
    pub title: String,
    /// `agent.icon`.
    pub icon: Option<String>,
    /// `agent.whenToUse`.
    pub when_to_use: Option<String>,
    /// `persona` (with `core_principles` wherever they were written).
    pub persona: Persona,
    /// `commands`, in any of their shapes.
    pub commands: Vec<Command>,
    /// `dependencies`: category (`tasks`, `templates`, …) to file names.
    pub dependencies: BTreeMap<String, Vec<Dependency>>,
    /// `activation-instructions` (IDE behaviour; kept, not used in prompts).
    pub activation_instructions: Vec<String>,
    /// BotArmy extension `tools`: tool names the agent may call.
    pub tools: Vec<String>,
    /// BotArmy extension `max_turns`: bound on tool-use turns per step.
    pub max_turns: Option<u32>,
    /// The markdown text before the yaml block.
    pub preamble: String,
}

/// How an agent thinks and speaks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Persona {
    /// `role`.
    pub role: Option<String>,
    /// `style`.
    pub style: Option<String>,
    /// `identity`.
    pub identity: Option<String>,
    /// `focus`.
    pub focus: Option<String>,
    /// `core_principles`, from `persona` or the top level.
    pub core_principles: Vec<String>,
}

/// One `*command` of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The command name (`create-prd`).
    pub name: String,
    /// Argument placeholders written after the name (`{topic}`), if any.
    pub args: Option<String>,
    /// What the command does (nested values flattened to text).
    pub description: String,
}

/// One entry of an agent's `dependencies`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    /// File name (`create-doc.md`), `{root}/` removed.
    pub name: String,
    /// Line where it is listed.
    pub line: u32,
}

impl Agent {
    /// The names of the dependencies of one category (`templates`, `tasks`, …).
    pub fn dependency_names(&self, category: &str) -> impl Iterator<Item = &str> {
        self.dependencies
            .get(category)
            .into_iter()
            .flatten()
            .map(|d| d.name.as_str())
    }
}

/// Finds the fenced yaml block: its text and the line of the opening fence (1-based).
fn yaml_block(text: &str) -> Option<(String, u32, String)> {
    let mut lines = text.lines().enumerate();
    let mut preamble = Vec::new();
    let open = loop {
        let (i, line) = lines.next()?;
        let t = line.trim();
        if t == "```yaml" || t == "```yml" {
            break i;
        }
        preamble.push(line);
    };
    let mut body = Vec::new();
    for (_, line) in lines {
        if line.trim_end() == "```" {
            let open_line = u32::try_from(open + 1).unwrap_or(u32::MAX);
            return Some((body.join("\n"), open_line, preamble.join("\n")));
        }
        body.push(line);
    }
    None
}

/// Parses an agent file. `file` is its path relative to the method folder, used in
/// messages and for the default id.
pub fn parse_agent(file: &str, text: &str) -> Result<Agent, Vec<LoadError>> {
    let Some((body, fence_line, preamble)) = yaml_block(text) else {
        return Err(vec![LoadError::NoYamlBlock {
            at: Location::file(file),
        }]);
    };
    let root = yaml::parse(&body, fence_line).map_err(|e| {
        vec![LoadError::Syntax {
            at: Location::new(file, e.pos),
            message: e.message,
        }]
    })?;
    let mut d = Decoder::new(file);
    let agent = decode_agent(&mut d, &root, preamble);
    if d.errors.is_empty() {
        Ok(agent)
    } else {
        Err(d.errors)
    }
}

fn decode_agent(d: &mut Decoder<'_>, root: &Node, preamble: String) -> Agent {
    let stem = file_stem(d.file());
    let mut a = Agent {
        file: d.file().to_owned(),
        preamble,
        ..Agent::default()
    };
    if root.as_map().is_none() {
        d.wrong(
            root,
            "(yaml block)",
            "a map with `agent`, `persona`, `commands`, `dependencies`",
        );
        return a;
    }
    a.line = root.entry("agent").map_or(0, |(k, _)| k.pos.line);
    match d.map(root.get("agent"), "agent") {
        Some(m) => {
            a.id = d
                .string(m.get("id"), "agent.id")
                .unwrap_or_else(|| stem.clone());
            a.name = d
                .string(m.get("name"), "agent.name")
                .unwrap_or_else(|| a.id.clone());
            a.title = d
                .string(m.get("title"), "agent.title")
                .unwrap_or_else(|| a.name.clone());
            a.icon = d.string(m.get("icon"), "agent.icon");
            a.when_to_use = d.string(m.get("whenToUse"), "agent.whenToUse");
        }
        None => {
            if root.get("agent").is_none() {
                d.missing(root, "agent", "a map with `id`, `name`, `title`");
            }
            a.id = stem.clone();
            a.name = stem.clone();
            a.title = stem;
        }
    }
    if let Some(p) = d.map(root.get("persona"), "persona") {
        a.persona.role = d.string(p.get("role"), "persona.role");
        a.persona.style = d.string(p.get("style"), "persona.style");
        a.persona.identity = d.string(p.get("identity"), "persona.identity");
        a.persona.focus = d.string(p.get("focus"), "persona.focus");
        a.persona.core_principles =
            d.text_list(p.get("core_principles"), "persona.core_principles");
    }
    let outside = d.text_list(root.get("core_principles"), "core_principles");
    a.persona.core_principles.extend(outside);
    a.commands = decode_commands(d, root.get("commands"));
    a.activation_instructions = d.text_list(
        root.get("activation-instructions"),
        "activation-instructions",
    );
    if let Some(deps) = d.map(root.get("dependencies"), "dependencies") {
        for (k, v) in deps.as_map().unwrap_or_default() {
            let field = join("dependencies", &k.text);
            let mut list = Vec::new();
            for (i, item) in d.seq(Some(v), &field).iter().enumerate() {
                if let Some(name) = d.string(Some(item), &index(&field, i)) {
                    list.push(Dependency {
                        name: strip_root(&name),
                        line: item.pos.line,
                    });
                }
            }
            a.dependencies.insert(k.text.clone(), list);
        }
    }
    a.tools = d.string_or_list(root.get("tools"), "tools");
    a.max_turns = d.u32(root.get("max_turns"), "max_turns");
    a
}

/// `commands` as a list of one-key maps, a map, or plain strings.
fn decode_commands(d: &mut Decoder<'_>, node: Option<&Node>) -> Vec<Command> {
    let Some(node) = node else { return Vec::new() };
    let mut out = Vec::new();
    match &node.value {
        Value::Null => {}
        Value::Map(entries) => {
            for (k, v) in entries {
                out.push(command(&k.text, v.flatten_text()));
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                match &item.value {
                    Value::Null => {}
                    Value::Scalar { text, .. } => match text.split_once(':') {
                        Some((name, desc)) => out.push(command(name, desc.trim().to_owned())),
                        None => out.push(command(text, String::new())),
                    },
                    Value::Map(entries) => {
                        for (k, v) in entries {
                            out.push(command(&k.text, v.flatten_text()));
                        }
                    }
                    Value::Seq(_) => d.wrong(
                        item,
                        &index("commands", i),
                        "a command (`name: description`)",
                    ),
                }
            }
        }
        Value::Scalar { .. } => d.wrong(node, "commands", "a list or a map of commands"),
    }
    out
}

fn command(raw_name: &str, description: String) -> Command {
    let raw = raw_name.trim().trim_start_matches('*');
    let (name, args) = match raw.split_once(char::is_whitespace) {
        Some((n, rest)) => (n.to_owned(), Some(rest.trim().to_owned())),
        None => (raw.to_owned(), None),
    };
    Command {
        name,
        args,
        description,
    }
}

/// Removes BMAD's `{root}/` prefix and any folder part from a dependency name.
pub(crate) fn strip_root(name: &str) -> String {
    let n = name.trim();
    let n = n.strip_prefix("{root}/").unwrap_or(n);
    n.rsplit('/').next().unwrap_or(n).to_owned()
}

/// The file name without folders and extension.
pub(crate) fn file_stem(file: &str) -> String {
    let name = file.rsplit('/').next().unwrap_or(file);
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_owned(),
        _ => name.to_owned(),
    }
}
