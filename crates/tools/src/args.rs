//! Reading a call's JSON arguments, with messages the model can act on.

use serde_json::Value;

/// A call's arguments: a JSON object whose fields are looked up by name.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    tool: &'a str,
    value: &'a Value,
}

impl<'a> Args<'a> {
    /// The arguments of a call of `tool`.
    pub fn new(tool: &'a str, value: &'a Value) -> Self {
        Self { tool, value }
    }

    fn field(&self, name: &str) -> Option<&'a Value> {
        self.value.get(name).filter(|v| !v.is_null())
    }

    /// A required string field.
    pub fn string(&self, name: &str) -> Result<&'a str, String> {
        match self.field(name) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.wrong(name, "a string", other)),
            None => Err(self.missing(name)),
        }
    }

    /// An optional string field.
    pub fn opt_string(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.field(name) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(name, "a string", other)),
            None => Ok(None),
        }
    }

    /// An optional non-negative integer field.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, String> {
        match self.field(name) {
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a non-negative integer", v)),
            None => Ok(None),
        }
    }

    /// An optional list of strings.
    pub fn opt_strings(&self, name: &str) -> Result<Vec<&'a str>, String> {
        match self.field(name) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .ok_or_else(|| self.wrong(name, "a list of strings", i))
                })
                .collect(),
            Some(other) => Err(self.wrong(name, "a list of strings", other)),
            None => Ok(Vec::new()),
        }
    }

    fn missing(&self, name: &str) -> String {
        if !self.value.is_object() {
            return format!(
                "{}: the arguments must be a JSON object, found {}",
                self.tool,
                kind(self.value)
            );
        }
        format!("{}: argument `{name}` is missing", self.tool)
    }

    fn wrong(&self, name: &str, expected: &str, found: &Value) -> String {
        format!(
            "{}: argument `{name}` must be {expected}, found {}",
            self.tool,
            kind(found)
        )
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
