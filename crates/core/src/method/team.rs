//! Agent teams (`agent-teams/<id>.yaml`) and the markdown resources (tasks, checklists,
//! data, utils) that agents and workflows refer to by name.

use super::agent::{file_stem, strip_root};
use super::decode::{Decoder, index};
use super::error::{LoadError, Location};
use super::yaml;

/// A team: a named set of agents and the workflows they can run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Team {
    /// File path relative to the method folder.
    pub file: String,
    /// The file stem (`team-fullstack`).
    pub id: String,
    /// `bundle.name`.
    pub name: String,
    /// `bundle.icon`.
    pub icon: Option<String>,
    /// `bundle.description`.
    pub description: Option<String>,
    /// `agents` (`*` means every agent), with their lines.
    pub agents: Vec<(String, u32)>,
    /// `workflows` (file names or ids), with their lines.
    pub workflows: Vec<(String, u32)>,
}

/// A markdown resource: a task, checklist, data file or util.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// File path relative to the method folder.
    pub file: String,
    /// The file stem (`create-doc`).
    pub name: String,
    /// The whole text.
    pub text: String,
}

impl Doc {
    /// A resource from its file path and text.
    pub fn new(file: &str, text: &str) -> Self {
        Self {
            file: file.to_owned(),
            name: file_stem(file),
            text: text.to_owned(),
        }
    }

    /// The first markdown heading, or the name.
    pub fn title(&self) -> &str {
        self.text
            .lines()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix('#')
                    .map(|h| h.trim_start_matches('#').trim())
            })
            .filter(|h| !h.is_empty() && !h.starts_with("<!--"))
            .unwrap_or(&self.name)
    }
}

/// Parses a team file; `file` is its path relative to the method folder.
pub fn parse_team(file: &str, text: &str) -> Result<Team, Vec<LoadError>> {
    let root = yaml::parse(text, 0).map_err(|e| {
        vec![LoadError::Syntax {
            at: Location::new(file, e.pos),
            message: e.message,
        }]
    })?;
    let mut d = Decoder::new(file);
    let mut t = Team {
        file: file.to_owned(),
        id: file_stem(file),
        ..Team::default()
    };
    if root.as_map().is_none() {
        d.wrong(
            &root,
            "(document)",
            "a map with `bundle`, `agents` and `workflows`",
        );
        return Err(d.errors);
    }
    if let Some(b) = d.map(root.get("bundle"), "bundle") {
        t.name = d.string(b.get("name"), "bundle.name").unwrap_or_default();
        t.icon = d.string(b.get("icon"), "bundle.icon");
        t.description = d.string(b.get("description"), "bundle.description");
    }
    if t.name.is_empty() {
        t.name = t.id.clone();
    }
    for (field, out) in [("agents", &mut t.agents), ("workflows", &mut t.workflows)] {
        for (i, n) in d.seq(root.get(field), field).iter().enumerate() {
            if let Some(s) = d.string(Some(n), &index(field, i)) {
                out.push((strip_root(&s), n.pos.line));
            }
        }
    }
    if d.errors.is_empty() {
        Ok(t)
    } else {
        Err(d.errors)
    }
}
