//! The second pass of the loader: reading typed values out of a positioned [`Node`] tree,
//! tolerantly, and collecting every problem (not only the first) with its position.

use super::error::{LoadError, Location};
use super::yaml::{Node, Value, parse_bool};

/// Reads values from one file's tree and collects the problems.
pub(crate) struct Decoder<'f> {
    file: &'f str,
    /// Problems found so far.
    pub errors: Vec<LoadError>,
}

/// `path.key`, or `key` at the root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[index]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

impl<'f> Decoder<'f> {
    pub(crate) fn new(file: &'f str) -> Self {
        Self {
            file,
            errors: Vec::new(),
        }
    }

    pub(crate) fn file(&self) -> &'f str {
        self.file
    }

    pub(crate) fn at(&self, node: &Node) -> Location {
        Location::new(self.file, node.pos)
    }

    pub(crate) fn wrong(&mut self, node: &Node, field: &str, expected: &str) {
        self.errors.push(LoadError::WrongType {
            at: self.at(node),
            field: field.to_owned(),
            expected: expected.to_owned(),
            found: found(node),
        });
    }

    pub(crate) fn missing(&mut self, map: &Node, field: &str, expected: &str) {
        self.errors.push(LoadError::Missing {
            at: self.at(map),
            field: field.to_owned(),
            expected: expected.to_owned(),
        });
    }

    /// A scalar as text (numbers and booleans as written); `None` for absent or null.
    pub(crate) fn string(&mut self, node: Option<&Node>, field: &str) -> Option<String> {
        let node = node?;
        match &node.value {
            Value::Null => None,
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.wrong(node, field, "a string");
                None
            }
        }
    }

    /// `map.key` as text, reporting it when absent.
    pub(crate) fn required_string(&mut self, map: &Node, key: &str, path: &str) -> Option<String> {
        let field = join(path, key);
        match map.get(key) {
            None => {
                self.missing(map, &field, "a string");
                None
            }
            Some(n) if n.is_null() => {
                self.missing(n, &field, "a string");
                None
            }
            n => self.string(n, &field),
        }
    }

    /// A boolean (`true`/`false`); absent or null is `false`.
    pub(crate) fn bool(&mut self, node: Option<&Node>, field: &str) -> bool {
        let Some(node) = node else { return false };
        match &node.value {
            Value::Null => false,
            Value::Scalar { text, .. } => match parse_bool(text.trim()) {
                Some(b) => b,
                None => {
                    self.wrong(node, field, "true or false");
                    false
                }
            },
            _ => {
                self.wrong(node, field, "true or false");
                false
            }
        }
    }

    /// A gate policy: `auto`, `always`, `confidence_below=0.8`, or a map of thresholds.
    pub(crate) fn gate(
        &mut self,
        node: Option<&Node>,
        field: &str,
    ) -> Option<botarmy_protocol::GatePolicy> {
        let node = node?;
        let parsed = match &node.value {
            Value::Null => return None,
            Value::Scalar { text, .. } => botarmy_protocol::GatePolicy::parse(text),
            Value::Map(_) => serde_json::from_value(node.to_json()).map_err(|e| e.to_string()),
            _ => Err(String::new()),
        };
        match parsed {
            Ok(p) => Some(p),
            Err(why) => {
                let mut expected = "a gate policy: `auto`, `always`, or thresholds such as \
                                    `{confidence_below: 0.8, quality_below: 0.85}`"
                    .to_owned();
                if !why.is_empty() {
                    expected = format!("{expected} ({why})");
                }
                self.wrong(node, field, &expected);
                None
            }
        }
    }

    /// A gate timeout: `{after: 4h, then: remind|escalate|approve|fail}`.
    pub(crate) fn gate_timeout(
        &mut self,
        node: Option<&Node>,
        field: &str,
    ) -> Option<botarmy_protocol::GateTimeout> {
        let node = node?;
        if node.is_null() {
            return None;
        }
        match serde_json::from_value(node.to_json()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.wrong(
                    node,
                    field,
                    &format!(
                        "a gate timeout such as `{{after: 4h, then: approve}}` (then: remind, escalate, approve or fail) ({e})"
                    ),
                );
                None
            }
        }
    }

    /// A non-negative integer.
    pub(crate) fn u32(&mut self, node: Option<&Node>, field: &str) -> Option<u32> {
        let node = node?;
        match &node.value {
            Value::Null => None,
            Value::Scalar { text, .. } => match text.trim().parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.wrong(node, field, "a whole number");
                    None
                }
            },
            _ => {
                self.wrong(node, field, "a whole number");
                None
            }
        }
    }

    /// A string or a list of strings (the `requires` quirk); empty when absent or null.
    pub(crate) fn string_or_list(&mut self, node: Option<&Node>, field: &str) -> Vec<String> {
        let Some(node) = node else { return Vec::new() };
        match &node.value {
            Value::Null => Vec::new(),
            Value::Scalar { text, .. } => vec![text.clone()],
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match &item.value {
                        Value::Scalar { text, .. } => out.push(text.clone()),
                        Value::Null => {}
                        _ => self.wrong(item, &index(field, i), "a string"),
                    }
                }
                out
            }
            Value::Map(_) => {
                self.wrong(node, field, "a string or a list of strings");
                Vec::new()
            }
        }
    }

    /// A list whose items are strings, or one-key maps / nested values read as text
    /// (`- Title: explanation` becomes `Title: explanation`). A single string is a
    /// one-item list.
    pub(crate) fn text_list(&mut self, node: Option<&Node>, field: &str) -> Vec<String> {
        let Some(node) = node else { return Vec::new() };
        match &node.value {
            Value::Null => Vec::new(),
            Value::Scalar { text, .. } => vec![text.clone()],
            Value::Seq(items) => items
                .iter()
                .filter(|i| !i.is_null())
                .map(|i| i.flatten_text())
                .collect(),
            Value::Map(_) => {
                self.wrong(node, field, "a list");
                Vec::new()
            }
        }
    }

    /// The items of a list (empty when absent or null).
    pub(crate) fn seq<'n>(&mut self, node: Option<&'n Node>, field: &str) -> &'n [Node] {
        let Some(node) = node else { return &[] };
        match &node.value {
            Value::Null => &[],
            Value::Seq(items) => items,
            _ => {
                self.wrong(node, field, "a list");
                &[]
            }
        }
    }

    /// The node if it is a map; `None` (reported) otherwise, `None` (silent) when absent.
    pub(crate) fn map<'n>(&mut self, node: Option<&'n Node>, field: &str) -> Option<&'n Node> {
        let node = node?;
        match &node.value {
            Value::Null => None,
            Value::Map(_) => Some(node),
            _ => {
                self.wrong(node, field, "a map");
                None
            }
        }
    }
}

/// How a found value is described in messages.
pub(crate) fn found(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } => {
            let mut shown: String = text.chars().take(40).collect();
            if shown.len() < text.len() {
                shown.push('…');
            }
            format!("{} `{shown}`", node.kind_name())
        }
        _ => node.kind_name().to_owned(),
    }
}
