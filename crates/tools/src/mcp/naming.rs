//! The names models see for MCP tools: `<server>_<tool>`, made to fit the strictest rule
//! among providers (`^[a-zA-Z0-9_-]{1,64}$`) and unique within a server.

use std::collections::BTreeSet;

/// The longest tool name providers accept.
pub const MAX_TOOL_NAME: usize = 64;

/// `<server>_<tool>` with every character outside `[a-zA-Z0-9_-]` replaced by `_`, cut to
/// [`MAX_TOOL_NAME`] characters.
pub fn exposed_name(server: &str, tool: &str) -> String {
    let mut name: String = format!("{server}_{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_TOOL_NAME);
    name
}

/// The exposed names of `tools` of `server`, in order; a name already taken (two tools that
/// differ only in replaced or cut characters) gets a `_2`, `_3`… suffix.
pub(crate) fn exposed_names<'a>(
    server: &str,
    tools: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut taken = BTreeSet::new();
    tools
        .into_iter()
        .map(|tool| {
            let base = exposed_name(server, tool);
            let mut name = base.clone();
            let mut n = 2u32;
            while taken.contains(&name) {
                let suffix = format!("_{n}");
                let mut stem = base.clone();
                stem.truncate(MAX_TOOL_NAME - suffix.len());
                name = stem + &suffix;
                n += 1;
            }
            taken.insert(name.clone());
            name
        })
        .collect()
}
