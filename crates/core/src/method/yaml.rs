//! A YAML document as a tree whose every node knows its line and column.
//!
//! The definitions loader works in two passes: this module parses the text (with
//! `saphyr-parser`, a YAML 1.2 parser) into a [`Node`] tree that keeps positions, and the
//! `decode` module converts the tree into typed definitions, collecting every problem with
//! the position of the node it is about. Aliases are expanded under a node budget and
//! nesting is bounded, so hostile input can not exhaust memory or the stack.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting of sequences and mappings accepted.
const MAX_DEPTH: usize = 64;
/// Most nodes one document may expand to (aliases included).
const MAX_NODES: usize = 200_000;

/// A position in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What it holds.
    pub value: Value,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null`, or nothing.
    Null,
    /// Any other scalar, as written; `plain` is false for quoted and block scalars, whose
    /// text is never read as a number or boolean.
    Scalar { text: String, plain: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key: its text and position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key as written (complex keys are rendered as text).
    pub text: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// A YAML syntax problem.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where it was found.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl Node {
    /// What kind of node this is, for messages ("a string", "a list", "a map", "nothing").
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { text, plain } => {
                if *plain && parse_bool(text).is_some() {
                    "a boolean"
                } else if *plain && text.parse::<f64>().is_ok() {
                    "a number"
                } else {
                    "a string"
                }
            }
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, if this is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is `null` or empty.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The value of `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(_, v)| v)
    }

    /// The key and value of `key`, if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(k, v)| (k, v))
    }

    /// Converts to JSON (scalars resolved by the YAML 1.2 core schema).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Scalar { text, plain } => {
                if !plain {
                    return serde_json::Value::String(text.clone());
                }
                if let Some(b) = parse_bool(text) {
                    return serde_json::Value::Bool(b);
                }
                if let Ok(i) = text.parse::<i64>() {
                    return serde_json::Value::from(i);
                }
                if let Some(n) = text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    return serde_json::Value::Number(n);
                }
                serde_json::Value::String(text.clone())
            }
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.text.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    /// Every scalar below this node joined into one text: maps as `key: value` lines, lists
    /// as lines. Used for free-form fields (command descriptions, notes).
    pub fn flatten_text(&self) -> String {
        let mut out = Vec::new();
        flatten_into(self, "", &mut out);
        out.join("\n")
    }

    fn count(&self) -> usize {
        match &self.value {
            Value::Null | Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + v.count()).sum::<usize>(),
        }
    }
}

fn flatten_into(node: &Node, indent: &str, out: &mut Vec<String>) {
    match &node.value {
        Value::Null => {}
        Value::Scalar { text, .. } => out.push(format!("{indent}{text}")),
        Value::Seq(items) => {
            for item in items {
                flatten_into(item, indent, out);
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                match &v.value {
                    Value::Scalar { text, .. } => out.push(format!("{indent}{}: {text}", k.text)),
                    Value::Null => out.push(format!("{indent}{}", k.text)),
                    _ => {
                        out.push(format!("{indent}{}:", k.text));
                        flatten_into(v, &format!("{indent}  "), out);
                    }
                }
            }
        }
    }
}

/// `true`/`false` in the spellings YAML 1.2 accepts.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn pos_of(span: &Span, line_offset: u32) -> Pos {
    let line = u32::try_from(span.start.line()).unwrap_or(u32::MAX);
    let column = u32::try_from(span.start.col()).unwrap_or(u32::MAX - 1);
    Pos {
        line: line.saturating_add(line_offset),
        column: column.saturating_add(1),
    }
}

/// A container being built.
enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
    },
}

struct Builder {
    line_offset: u32,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    docs: Vec<Node>,
}

impl Builder {
    /// Adds a finished node to its parent; `cost` is how many nodes it adds to the budget.
    fn push_node(&mut self, node: Node, anchor: usize, cost: usize) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(cost);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos: node.pos,
                message: format!(
                    "document too large: more than {MAX_NODES} nodes (aliases expanded)"
                ),
            });
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(key_of(&node)),
                Some(k) => {
                    if entries.iter().any(|(existing, _)| existing.text == k.text) {
                        return Err(SyntaxError {
                            pos: k.pos,
                            message: format!("duplicate key `{}`", k.text),
                        });
                    }
                    entries.push((k, node));
                }
            },
        }
        Ok(())
    }
}

fn key_of(node: &Node) -> Key {
    let text = match &node.value {
        Value::Null => "~".to_owned(),
        Value::Scalar { text, .. } => text.clone(),
        _ => node.flatten_text().replace('\n', " "),
    };
    Key {
        text,
        pos: node.pos,
    }
}

fn scalar(text: &str, style: ScalarStyle, pos: Pos) -> Node {
    let plain = matches!(style, ScalarStyle::Plain);
    let value = if plain && matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        Value::Null
    } else {
        Value::Scalar {
            text: text.to_owned(),
            plain,
        }
    };
    Node { pos, value }
}

/// Parses one YAML document. `line_offset` is added to every line number (for YAML
/// embedded in another file). An empty text gives a `Null` node.
pub fn parse(text: &str, line_offset: u32) -> Result<Node, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        line_offset,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        docs: Vec::new(),
    };
    let mut doc_start = Pos {
        line: 1 + line_offset,
        column: 1,
    };
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            pos: Pos {
                line: u32::try_from(e.marker().line())
                    .unwrap_or(u32::MAX)
                    .saturating_add(b.line_offset),
                column: u32::try_from(e.marker().col())
                    .unwrap_or(u32::MAX - 1)
                    .saturating_add(1),
            },
            message: e.info().to_owned(),
        })?;
        let pos = pos_of(&span, b.line_offset);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                if !b.docs.is_empty() {
                    return Err(SyntaxError {
                        pos,
                        message: "expected one YAML document, found a second one".to_owned(),
                    });
                }
                doc_start = pos;
            }
            Event::Alias(id) => {
                let node = b.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    pos,
                    message: "alias to an unknown anchor".to_owned(),
                })?;
                let cost = node.count();
                b.push_node(
                    Node {
                        pos,
                        value: node.value,
                    },
                    0,
                    cost,
                )?;
            }
            Event::Scalar(text, style, anchor, _) => {
                b.push_node(scalar(&text, style, pos), anchor, 1)?
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if b.stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                let frame = if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        pos,
                        anchor,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        pos,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    }
                };
                b.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match b.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (
                        Node {
                            pos,
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            pos,
                            value: Value::Map(entries),
                        },
                        anchor,
                    ),
                    None => {
                        return Err(SyntaxError {
                            pos,
                            message: "unbalanced end of collection".to_owned(),
                        });
                    }
                };
                b.push_node(node, anchor, 1)?;
            }
        }
    }
    Ok(b.docs.pop().unwrap_or(Node {
        pos: doc_start,
        value: Value::Null,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  - x\n  - {c: d}\n", 0).unwrap();
        let b = n.get("b").unwrap();
        assert_eq!(b.pos, Pos { line: 3, column: 3 });
        let items = b.as_seq().unwrap();
        assert_eq!(items[1].pos, Pos { line: 4, column: 5 });
        assert_eq!(n.get("a").unwrap().pos, Pos { line: 1, column: 4 });
    }

    #[test]
    fn offset_shifts_lines() {
        let n = parse("a: 1\n", 10).unwrap();
        assert_eq!(n.get("a").unwrap().pos.line, 11);
    }

    #[test]
    fn nulls_and_quoted_scalars() {
        let n = parse("a: ~\nb:\nc: 'null'\nd: 2.0\n", 0).unwrap();
        assert!(n.get("a").unwrap().is_null());
        assert!(n.get("b").unwrap().is_null());
        assert_eq!(n.get("c").unwrap().as_scalar(), Some("null"));
        assert_eq!(n.get("d").unwrap().as_scalar(), Some("2.0"));
    }

    #[test]
    fn duplicate_keys_and_bombs_are_errors() {
        let e = parse("a: 1\na: 2\n", 0).unwrap_err();
        assert_eq!(e.pos.line, 2);
        assert!(e.message.contains("duplicate key"));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        assert!(parse(&bomb, 0).unwrap_err().message.contains("too large"));
        let deep = "[".repeat(200);
        assert!(parse(&deep, 0).is_err());
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: 3\n", 0).unwrap_err();
        assert!(e.pos.line >= 1);
    }
}
