//! Document templates: `templates/<name>.yaml` with `template` (id, name, version, output),
//! `workflow` (mode) and nested `sections`.
//!
//! The `{{placeholders}}` inside a template are for the model to fill in; they are kept as
//! written (see [`crate::render::fill_placeholders`] for the ones BotArmy knows).

use super::agent::file_stem;
use super::decode::{Decoder, index, join};
use super::error::{LoadError, Location};
use super::yaml::{self, Node, Value};

/// A document template.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocTemplate {
    /// File path relative to the method folder.
    pub file: String,
    /// The file stem (`prd-tmpl`): how agents and workflows refer to the template.
    pub key: String,
    /// `template.id` (`prd-template-v2`).
    pub id: String,
    /// `template.name`.
    pub name: String,
    /// `template.version`, as written.
    pub version: Option<String>,
    /// `template.output.format` (`markdown` when absent).
    pub format: String,
    /// `template.output.filename`.
    pub filename: Option<String>,
    /// `template.output.title` (the name when absent); may hold `{{placeholders}}`.
    pub title: String,
    /// `workflow.mode` (`interactive`, `non-interactive`).
    pub mode: Option<String>,
    /// `workflow.elicitation` (a task name).
    pub elicitation: Option<String>,
    /// The document's sections, in order.
    pub sections: Vec<Section>,
    /// Line of the `template:` key.
    pub line: u32,
}

/// One section of a template (sections nest).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// `id` (derived from the title when absent).
    pub id: String,
    /// `title`; may hold `{{placeholders}}`.
    pub title: Option<String>,
    /// `instruction`: what the author of the section should do.
    pub instruction: Option<String>,
    /// `template`: the skeleton text of the section.
    pub template: Option<String>,
    /// `type` (`paragraphs`, `bullet-list`, `numbered-list`, `table`, `code`, …).
    pub kind: Option<String>,
    /// `repeatable`.
    pub repeatable: bool,
    /// `condition` (free text).
    pub condition: Option<String>,
    /// `elicit`.
    pub elicit: bool,
    /// `choices`: name to options (an empty name when `choices` is a plain list).
    pub choices: Vec<(String, Vec<String>)>,
    /// `content`: fixed text.
    pub content: Option<String>,
    /// `examples`.
    pub examples: Vec<String>,
    /// `owner`.
    pub owner: Option<String>,
    /// `editors`.
    pub editors: Vec<String>,
    /// `prefix` for numbered items (`FR`).
    pub prefix: Option<String>,
    /// `columns` of a table.
    pub columns: Vec<String>,
    /// `rows` of a table, in either shape.
    pub rows: Vec<TableRow>,
    /// `items` of a list or checklist (strings, or the `template` of item maps).
    pub items: Vec<String>,
    /// `item_template`.
    pub item_template: Option<String>,
    /// `language` of a code section.
    pub language: Option<String>,
    /// `mermaid_type` of a diagram section.
    pub mermaid_type: Option<String>,
    /// Nested sections.
    pub sections: Vec<Section>,
    /// Line where the section starts.
    pub line: u32,
}

/// A table row: plain cells, or a category with rows of cells.
#[derive(Debug, Clone, PartialEq)]
pub enum TableRow {
    /// `- [a, b, c]`
    Cells(Vec<String>),
    /// `- category: X` with `items: [[a, b], …]`
    Group {
        /// The category name.
        category: String,
        /// Its rows.
        rows: Vec<Vec<String>>,
    },
}

impl DocTemplate {
    /// Every section, depth first, with its depth (0 for top level).
    pub fn walk(&self) -> Vec<(usize, &Section)> {
        fn go<'a>(sections: &'a [Section], depth: usize, out: &mut Vec<(usize, &'a Section)>) {
            for s in sections {
                out.push((depth, s));
                go(&s.sections, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        go(&self.sections, 0, &mut out);
        out
    }
}

/// Parses a template file; `file` is its path relative to the method folder.
pub fn parse_template(file: &str, text: &str) -> Result<DocTemplate, Vec<LoadError>> {
    let root = yaml::parse(text, 0).map_err(|e| {
        vec![LoadError::Syntax {
            at: Location::new(file, e.pos),
            message: e.message,
        }]
    })?;
    let mut d = Decoder::new(file);
    let t = decode_template(&mut d, &root);
    if d.errors.is_empty() {
        Ok(t)
    } else {
        Err(d.errors)
    }
}

fn decode_template(d: &mut Decoder<'_>, root: &Node) -> DocTemplate {
    let mut t = DocTemplate {
        file: d.file().to_owned(),
        key: file_stem(d.file()),
        ..DocTemplate::default()
    };
    if root.as_map().is_none() {
        d.wrong(root, "(document)", "a map with `template` and `sections`");
        return t;
    }
    t.line = root.entry("template").map_or(0, |(k, _)| k.pos.line);
    match d.map(root.get("template"), "template") {
        Some(m) => {
            t.id = d.required_string(m, "id", "template").unwrap_or_default();
            t.name = d.required_string(m, "name", "template").unwrap_or_default();
            t.version = d.string(m.get("version"), "template.version");
            if let Some(o) = d.map(m.get("output"), "template.output") {
                t.format = d
                    .string(o.get("format"), "template.output.format")
                    .unwrap_or_default();
                t.filename = d.string(o.get("filename"), "template.output.filename");
                t.title = d
                    .string(o.get("title"), "template.output.title")
                    .unwrap_or_default();
            }
        }
        None => {
            if root.get("template").is_none() {
                d.missing(root, "template", "a map with `id`, `name` and `output`");
            }
        }
    }
    if t.format.is_empty() {
        t.format = "markdown".to_owned();
    }
    if t.title.is_empty() {
        t.title = t.name.clone();
    }
    if let Some(w) = d.map(root.get("workflow"), "workflow") {
        t.mode = d.string(w.get("mode"), "workflow.mode");
        t.elicitation = d.string(w.get("elicitation"), "workflow.elicitation");
    }
    t.sections = decode_sections(d, root.get("sections"), "sections");
    t
}

fn decode_sections(d: &mut Decoder<'_>, node: Option<&Node>, path: &str) -> Vec<Section> {
    let items = d.seq(node, path);
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = index(path, i);
        if item.as_map().is_none() {
            d.wrong(item, &field, "a section (a map with `id` and `title`)");
            continue;
        }
        out.push(decode_section(d, item, &field, i));
    }
    out
}

fn decode_section(d: &mut Decoder<'_>, m: &Node, path: &str, i: usize) -> Section {
    let f = |k: &str| join(path, k);
    let mut s = Section {
        line: m.pos.line,
        ..Section::default()
    };
    s.title = d.string(m.get("title"), &f("title"));
    s.id = match d.string(m.get("id"), &f("id")) {
        Some(id) => id,
        None => s
            .title
            .as_deref()
            .map(slug)
            .unwrap_or_else(|| format!("section-{}", i + 1)),
    };
    s.instruction = d.string(m.get("instruction"), &f("instruction"));
    s.template = d.string(m.get("template"), &f("template"));
    s.kind = d.string(m.get("type"), &f("type"));
    s.repeatable = d.bool(m.get("repeatable"), &f("repeatable"));
    s.condition = d.string(m.get("condition"), &f("condition"));
    s.elicit = d.bool(m.get("elicit"), &f("elicit"));
    match m.get("choices").map(|c| &c.value) {
        // `choices: {accessibility: [None, WCAG AA]}`: named groups of options
        Some(Value::Map(entries)) => {
            for (k, v) in entries {
                let options = d.string_or_list(Some(v), &join(&f("choices"), &k.text));
                s.choices.push((k.text.clone(), options));
            }
        }
        // `choices: [Draft, Approved]`: the options of the section itself (empty name)
        Some(_) => {
            let options = d.string_or_list(m.get("choices"), &f("choices"));
            if !options.is_empty() {
                s.choices.push((String::new(), options));
            }
        }
        None => {}
    }
    s.content = d.string(m.get("content"), &f("content"));
    s.examples = d.text_list(m.get("examples"), &f("examples"));
    s.owner = d.string(m.get("owner"), &f("owner"));
    s.editors = d.string_or_list(m.get("editors"), &f("editors"));
    s.prefix = d.string(m.get("prefix"), &f("prefix"));
    s.columns = d.string_or_list(m.get("columns"), &f("columns"));
    s.rows = decode_rows(d, m.get("rows"), &f("rows"));
    for item in d.seq(m.get("items"), &f("items")) {
        match item.get("template") {
            Some(t) => s.items.push(t.flatten_text()),
            None => s.items.push(item.flatten_text()),
        }
    }
    s.item_template = d.string(m.get("item_template"), &f("item_template"));
    s.language = d.string(m.get("language"), &f("language"));
    s.mermaid_type = d.string(m.get("mermaid_type"), &f("mermaid_type"));
    s.sections = decode_sections(d, m.get("sections"), &f("sections"));
    s
}

fn decode_rows(d: &mut Decoder<'_>, node: Option<&Node>, path: &str) -> Vec<TableRow> {
    let mut out = Vec::new();
    for (i, row) in d.seq(node, path).iter().enumerate() {
        let field = index(path, i);
        match &row.value {
            Value::Seq(_) => out.push(TableRow::Cells(d.string_or_list(Some(row), &field))),
            Value::Map(_) => {
                let category = d
                    .string(row.get("category"), &join(&field, "category"))
                    .unwrap_or_default();
                let items_field = join(&field, "items");
                let mut rows = Vec::new();
                for (j, cells) in d.seq(row.get("items"), &items_field).iter().enumerate() {
                    rows.push(d.string_or_list(Some(cells), &index(&items_field, j)));
                }
                out.push(TableRow::Group { category, rows });
            }
            _ => d.wrong(
                row,
                &field,
                "a list of cells or a map with `category` and `items`",
            ),
        }
    }
    out
}

/// Lower-case words joined by `-` (ASCII letters and digits only).
pub(crate) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}
