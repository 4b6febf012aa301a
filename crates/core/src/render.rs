//! Template rendering with minijinja (Jinja2-compatible) for BotArmy's own prompt templates,
//! and plain placeholder filling for the text of BMAD document templates.
//!
//! Two kinds of `{{…}}` live in a method folder and must not be confused:
//! - `prompts/*.j2` are BotArmy's prompt templates. They are rendered strictly: variables,
//!   conditionals, loops, `include`/`extends`/`import` between files of `prompts/`, and an
//!   undefined variable or a syntax error is an error naming the file and line.
//! - the sections of `templates/*.yaml` hold `{{project_name}}`-style placeholders that the
//!   *model* fills in. Those are never rendered as Jinja; [`fill_placeholders`] substitutes
//!   only the variables BotArmy knows and leaves every other placeholder as written.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

/// Bound on the work one render may do (minijinja fuel), so a looping template stops.
const FUEL: u64 = 2_000_000;

/// A problem rendering a prompt template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template text is not valid Jinja.
    #[error("{file}:{line}: syntax error: {message}")]
    Syntax {
        /// Template file, relative to `prompts/`.
        file: String,
        /// Line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The template uses a variable the caller did not provide.
    #[error("{file}:{line}: undefined variable `{name}`")]
    Undefined {
        /// Template file, relative to `prompts/`.
        file: String,
        /// Line, from 1.
        line: usize,
        /// The expression that was undefined (`project_nam`, `step.titel`).
        name: String,
    },
    /// No template of that name (from the caller or an `include`).
    #[error(
        "{file}prompt template `{name}` not found (looked in prompts/ of the method and the builtin defaults)"
    )]
    NotFound {
        /// `file:line: ` of the include, or empty when the caller asked for it.
        file: String,
        /// The missing name.
        name: String,
    },
    /// Any other rendering failure (bad filter argument, fuel exhausted, …).
    #[error("{file}:{line}: {message}")]
    Failed {
        /// Template file, relative to `prompts/`.
        file: String,
        /// Line, from 1 (0 when unknown).
        line: usize,
        /// What went wrong.
        message: String,
    },
}

/// The prompt templates of a method: file name (relative to `prompts/`) to source.
#[derive(Debug, Clone)]
pub struct Prompts {
    files: Arc<BTreeMap<String, String>>,
    env: Environment<'static>,
}

impl Default for Prompts {
    fn default() -> Self {
        Self::new(BTreeMap::new())
    }
}

impl Prompts {
    /// Prompt templates from `(name, source)` pairs.
    pub fn new(files: BTreeMap<String, String>) -> Self {
        let files = Arc::new(files);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_auto_escape_callback(|_| AutoEscape::None);
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        let shared = Arc::clone(&files);
        env.set_loader(move |name| Ok(shared.get(name).cloned()));
        Self { files, env }
    }

    /// The names of the templates, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The source of a template.
    pub fn source(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }

    /// Renders the template `name` with `ctx`.
    pub fn render<S: Serialize>(&self, name: &str, ctx: S) -> Result<String, RenderError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| self.map_error(&e, name))?;
        tmpl.render(minijinja::value::Serde(ctx))
            .map_err(|e| self.map_error(&e, name))
    }

    /// Compiles every template and returns the syntax errors.
    pub fn validate(&self) -> Vec<RenderError> {
        self.files
            .keys()
            .filter_map(|name| {
                self.env
                    .get_template(name)
                    .err()
                    .map(|e| self.map_error(&e, name))
            })
            .collect()
    }

    fn map_error(&self, outer: &minijinja::Error, asked: &str) -> RenderError {
        // An error inside an included template is wrapped; the innermost one says where.
        let mut e = outer;
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(outer);
        while let Some(c) = cur {
            if let Some(inner) = c.downcast_ref::<minijinja::Error>() {
                e = inner;
            }
            cur = c.source();
        }
        let file = e.name().unwrap_or(asked).to_owned();
        let line = e.line().unwrap_or(0);
        match e.kind() {
            ErrorKind::SyntaxError => RenderError::Syntax {
                file,
                line,
                message: e.detail().unwrap_or("invalid template syntax").to_owned(),
            },
            ErrorKind::UndefinedError => {
                let name = e
                    .range()
                    .and_then(|r| self.files.get(&file).and_then(|src| src.get(r)))
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "(unknown)".to_owned());
                RenderError::Undefined { file, line, name }
            }
            ErrorKind::TemplateNotFound => {
                let missing = e
                    .detail()
                    .and_then(|d| d.split(['"', '\'']).nth(1))
                    .unwrap_or(asked)
                    .to_owned();
                let at = if missing == asked || line == 0 {
                    String::new()
                } else {
                    format!("{file}:{line}: ")
                };
                RenderError::NotFound {
                    file: at,
                    name: missing,
                }
            }
            _ => RenderError::Failed {
                file,
                line,
                message: e.detail().map_or_else(|| e.to_string(), str::to_owned),
            },
        }
    }
}

/// Renders one template source (no other files to include) strictly with `ctx`.
pub fn render_str<S: Serialize>(name: &str, source: &str, ctx: S) -> Result<String, RenderError> {
    let mut files = BTreeMap::new();
    files.insert(name.to_owned(), source.to_owned());
    Prompts::new(files).render(name, ctx)
}

/// Replaces the `{{name}}` placeholders (spaces inside the braces allowed) whose name is in
/// `vars`, and leaves every other `{{…}}` exactly as written.
pub fn fill_placeholders(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let inner = after[..end].trim();
                match vars.iter().find(|(k, _)| *k == inner) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push_str("{{");
                        out.push_str(&after[..end]);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}
