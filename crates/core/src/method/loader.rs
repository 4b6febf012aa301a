//! Reading a method folder (or the embedded builtin files) into a [`Method`], collecting the
//! problems of every file rather than stopping at the first.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::agent::parse_agent;
use super::error::{LoadError, LoadErrors, Location};
use super::team::{Doc, parse_team};
use super::template::parse_template;
use super::workflow::{BrokenWorkflow, parse_workflow};
use super::{Method, MethodSource, yaml};

/// Deepest folder nesting walked inside a method folder.
const MAX_DIR_DEPTH: usize = 8;

/// Reads every file under `dir` (hidden entries skipped) as `(relative path, bytes)`.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, LoadErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    walk(dir, "", 0, &mut files, &mut errors);
    if files.is_empty() && errors.is_empty() {
        errors.push(LoadError::Read {
            at: Location::file(&dir.display().to_string()),
            message: "the folder holds no definition files".to_owned(),
        });
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(LoadErrors {
            method: dir.display().to_string(),
            errors,
        })
    }
}

fn walk(
    dir: &Path,
    rel: &str,
    depth: usize,
    files: &mut Vec<(String, Vec<u8>)>,
    errors: &mut Vec<LoadError>,
) {
    let shown = if rel.is_empty() {
        dir.display().to_string()
    } else {
        rel.to_owned()
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(LoadError::Read {
                at: Location::file(&shown),
                message: e.to_string(),
            });
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel_path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        if path.is_dir() {
            if depth < MAX_DIR_DEPTH {
                walk(&path, &rel_path, depth + 1, files, errors);
            }
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => files.push((rel_path, bytes)),
                Err(e) => errors.push(LoadError::Read {
                    at: Location::file(&rel_path),
                    message: e.to_string(),
                }),
            }
        }
    }
}

/// The files that mark a BMAD v6 folder (`module.yaml`, `module-help.csv`, `SKILL.md`),
/// the first of each kind, for the message when such a folder yields no v4 definitions.
pub(crate) fn v6_markers(files: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["module.yaml", "module-help.csv", "SKILL.md"] {
        if let Some((path, _)) = files
            .iter()
            .find(|(p, _)| p.rsplit('/').next() == Some(marker))
        {
            found.push(path.clone());
        }
    }
    found
}

/// Hex SHA-256 over the files sorted by path (path, length and bytes of each).
pub(crate) fn digest(files: &[(String, Vec<u8>)]) -> String {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (path, bytes) in sorted {
        h.update(path.as_bytes());
        h.update([0u8]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    hex::encode(h.finalize())
}

/// What a file of a method folder is, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Agent,
    Template,
    Workflow,
    Team,
    Task,
    Checklist,
    Data,
    Util,
    Prompt,
    Config,
    Other,
}

fn kind_of(path: &str) -> Kind {
    let (folder, name) = path.split_once('/').unwrap_or(("", path));
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let flat = !name.contains('/');
    match folder {
        "" if name == "core-config.yaml" => Kind::Config,
        "agents" if flat && name.ends_with(".md") => Kind::Agent,
        "templates" if flat && yaml => Kind::Template,
        "workflows" if flat && yaml => Kind::Workflow,
        "agent-teams" if flat && yaml => Kind::Team,
        "tasks" if flat && name.ends_with(".md") => Kind::Task,
        "checklists" if flat && name.ends_with(".md") => Kind::Checklist,
        "data" if flat => Kind::Data,
        "utils" if flat => Kind::Util,
        "prompts" => Kind::Prompt,
        _ => Kind::Other,
    }
}

/// Builds a method from its files; `source` is `builtin` or the folder path.
pub(crate) fn from_files(
    source: MethodSource,
    files: Vec<(String, Vec<u8>)>,
) -> Result<Method, LoadErrors> {
    let mut m = Method::empty(source, digest(&files));
    let mut errors = Vec::new();
    let mut sorted = files;
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, bytes) in &sorted {
        let kind = kind_of(path);
        if kind == Kind::Other {
            m.other_files.push(path.clone());
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            errors.push(LoadError::Syntax {
                at: Location::file(path),
                message: "the file is not valid UTF-8".to_owned(),
            });
            continue;
        };
        let mut push = |r: Result<(), Vec<LoadError>>| {
            if let Err(e) = r {
                errors.extend(e);
            }
        };
        match kind {
            Kind::Agent => push(parse_agent(path, text).map(|a| m.agents.push(a))),
            Kind::Template => push(parse_template(path, text).map(|t| m.templates.push(t))),
            // One workflow that cannot be read does not stop the others.
            Kind::Workflow => match parse_workflow(path, text) {
                Ok(ws) => m.workflows.extend(ws),
                Err(e) => m.broken_workflows.push(BrokenWorkflow {
                    file: path.clone(),
                    id: super::agent::file_stem(path),
                    errors: e,
                }),
            },
            Kind::Team => push(parse_team(path, text).map(|t| m.teams.push(t))),
            Kind::Task => m.tasks.push(Doc::new(path, text)),
            Kind::Checklist => m.checklists.push(Doc::new(path, text)),
            Kind::Data => m.data.push(Doc::new(path, text)),
            Kind::Util => m.utils.push(Doc::new(path, text)),
            Kind::Prompt => {
                let name = path.strip_prefix("prompts/").unwrap_or(path);
                m.prompt_files.insert(name.to_owned(), text.to_owned());
            }
            Kind::Config => match yaml::parse(text, 0) {
                Ok(node) => m.config = node.to_json(),
                Err(e) => errors.push(LoadError::Syntax {
                    at: Location::new(path, e.pos),
                    message: e.message,
                }),
            },
            Kind::Other => {}
        }
    }
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(LoadErrors {
            method: m.source.to_string(),
            errors,
        })
    }
}

/// The prompt files of `method` over the builtin ones (a method's own file wins).
pub(crate) fn merged_prompts(
    own: &BTreeMap<String, String>,
    builtin: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = builtin
        .iter()
        .filter_map(|(p, t)| {
            p.strip_prefix("prompts/")
                .map(|n| (n.to_owned(), (*t).to_owned()))
        })
        .collect();
    out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}
