//! Turning a model's raw answer into the final Markdown document, and finding the source
//! files a Build-phase document carries.
//!
//! Code-block convention: a fenced block whose info string carries `path=<relative path>`
//! (```` ```rust path=src/main.rs ````) is the content of that file. For models that do not
//! follow it exactly, a block is also taken when the line just before it names the path
//! alone: `File: src/main.rs`, `**File:** `src/main.rs``, `### src/main.rs` or
//! `` `src/main.rs` ``. Paths must be relative and stay inside the output folder.

use botarmy_protocol::PlanStep;

use crate::method::Method;
use crate::prompt::project_name;
use crate::render::fill_placeholders;

/// A source file found in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFile {
    /// Relative path (`src/main.rs`), `/`-separated, no `.` or `..` parts.
    pub path: String,
    /// The language of the fence, if given.
    pub language: Option<String>,
    /// The file content (ends with a newline).
    pub content: String,
}

const SPECIAL_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|im_start|>assistant",
    "<|im_start|>",
    "<|endoftext|>",
    "</s>",
    "<s>",
];
const OPENERS: &[&str] = &[
    "sure",
    "certainly",
    "of course",
    "absolutely",
    "here is",
    "here's",
    "here are",
    "below is",
    "okay",
    "ok,",
    "ok.",
    "great",
    "i'll",
    "i will",
    "i have",
    "as requested",
    "alright",
];
const CLOSERS: &[&str] = &[
    "let me know",
    "i hope",
    "feel free",
    "if you need",
    "would you like",
    "if you have any",
    "happy to help",
];

fn starts_with_any(line: &str, list: &[&str]) -> bool {
    let l = line
        .trim()
        .trim_start_matches(['*', '_', '>'])
        .to_lowercase();
    list.iter().any(|p| l.starts_with(p))
}

/// Removes the model's chatter around a document: special tokens, a fence wrapping the
/// whole answer, a leading "Sure, here is …" line and a closing "Let me know …" paragraph.
pub fn strip_chatter(raw: &str) -> String {
    let mut text = raw.to_owned();
    for t in SPECIAL_TOKENS {
        text = text.replace(t, "");
    }
    let mut lines: Vec<&str> = text.lines().collect();
    while lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    for _ in 0..3 {
        match lines.first() {
            Some(l)
                if !l.trim_start().starts_with('#')
                    && l.len() < 240
                    && starts_with_any(l, OPENERS) =>
            {
                lines.remove(0);
                while lines.first().is_some_and(|l| l.trim().is_empty()) {
                    lines.remove(0);
                }
            }
            _ => break,
        }
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    // A fence around everything.
    if lines.len() >= 2 {
        let first = lines[0].trim();
        let last = lines[lines.len() - 1].trim();
        if (first == "```" || first == "```markdown" || first == "```md") && last == "```" {
            lines.remove(0);
            lines.pop();
        }
    }
    // A closing pleasantry (last paragraph).
    if let Some(start) = lines
        .iter()
        .rposition(|l| l.trim().is_empty())
        .map(|p| p + 1)
        && start < lines.len()
        && starts_with_any(lines[start], CLOSERS)
        && !lines[start].trim_start().starts_with('#')
    {
        lines.truncate(start);
    }
    while lines
        .last()
        .is_some_and(|l| l.trim().is_empty() || l.trim() == "---")
    {
        lines.pop();
    }
    lines.join("\n")
}

impl Method {
    /// The final Markdown for `step` from the model's raw answer: chatter stripped, and the
    /// document starting with the template's title heading (`{{project_name}}` filled from
    /// the idea). A title still holding unknown placeholders gives way to the model's own
    /// first heading, if it wrote one. Everything else is kept as the model wrote it.
    pub fn finish_document(&self, step: &PlanStep, idea: &str, raw: &str) -> String {
        let project = project_name(idea);
        let title = match step.template.as_deref().and_then(|t| self.template(t)) {
            Some(t) => fill_placeholders(&t.title, &[("project_name", &project)]),
            None => step.title.clone(),
        };
        let body = strip_chatter(raw);
        let mut lines: Vec<&str> = body.lines().collect();
        let has_h1 = lines.first().is_some_and(|l| l.starts_with("# "));
        let resolved = !title.contains("{{");
        let heading = format!("# {title}");
        if has_h1 {
            if resolved {
                lines[0] = &heading;
            }
        } else {
            lines.insert(0, "");
            lines.insert(0, &heading);
        }
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
}

/// The path a fence info string names (`rust path=src/main.rs` → `src/main.rs`).
fn path_in_info(info: &str) -> Option<&str> {
    info.split_whitespace().find_map(|w| {
        ["path=", "file=", "filename=", "title="]
            .iter()
            .find_map(|p| w.strip_prefix(p))
            .map(|v| v.trim_matches(['"', '\'']))
    })
}

/// The path a line before a fence names, if the line is only a path (with decorations).
fn path_in_line(line: &str) -> Option<String> {
    let mut t = line
        .trim()
        .trim_start_matches('#')
        .trim()
        .trim_matches(['*', '_'])
        .trim();
    for prefix in ["file:", "path:", "filename:"] {
        if t.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        {
            t = t[prefix.len()..]
                .trim()
                .trim_start_matches(['*', '_'])
                .trim();
        }
    }
    let t = t.trim_matches(['`', '*', '_', ':']).trim();
    let looks_like_path = !t.is_empty()
        && !t.contains(char::is_whitespace)
        && (t.contains('/') || t.contains('.'))
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
    looks_like_path.then(|| t.to_owned())
}

/// Normalizes a relative path; `None` if it is absolute or leaves its folder.
pub fn safe_relative_path(path: &str) -> Option<String> {
    let p = path.trim().replace('\\', "/");
    if p.starts_with('/') || p.contains(':') {
        return None;
    }
    let mut parts = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

/// The source files a document carries, by the code-block convention (see the module
/// docs). A path given twice keeps its last block.
pub fn extract_code_files(markdown: &str) -> Vec<CodeFile> {
    let mut out: Vec<CodeFile> = Vec::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let Some(info) = t.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let info = info.trim();
        let end = (i + 1..lines.len()).find(|&j| lines[j].trim() == "```");
        let body_end = end.unwrap_or(lines.len());
        let before = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
        let path = path_in_info(info)
            .map(str::to_owned)
            .or_else(|| before.and_then(|l| path_in_line(l)));
        if let Some(path) = path.as_deref().and_then(safe_relative_path) {
            let language = info
                .split_whitespace()
                .next()
                .filter(|w| !w.contains('='))
                .map(str::to_owned);
            let mut content = lines[i + 1..body_end].join("\n");
            content.push('\n');
            out.retain(|f| f.path != path);
            out.push(CodeFile {
                path,
                language,
                content,
            });
        }
        i = body_end + 1;
    }
    out
}

/// A question a model without tool calling asks instead of writing its document: a line
/// `CLARIFY: <question>` among the first lines of its answer, optionally followed by
/// `OPTIONS: <a> | <b>`. Returns the question and the options.
pub fn clarification_marker(answer: &str) -> Option<(String, Vec<String>)> {
    let lines: Vec<&str> = answer
        .lines()
        .map(|l| l.trim().trim_matches(['*', '`', '_']).trim())
        .filter(|l| !l.is_empty())
        .take(4)
        .collect();
    let (at, question) = lines.iter().enumerate().find_map(|(i, l)| {
        let rest = strip_label(l, "clarify")?;
        // A small model may echo the instruction's placeholder: that is not a question.
        let echoed = rest.contains('<') && rest.contains('>');
        (!rest.is_empty() && !echoed).then(|| (i, rest.to_owned()))
    })?;
    let options = lines
        .get(at + 1)
        .and_then(|l| strip_label(l, "options"))
        .map(|rest| {
            rest.split('|')
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some((question, options))
}

/// The answer without `CLARIFY:` and `OPTIONS:` lines (what is left when a marker was not
/// a real question, or a second one came).
pub fn without_clarify_lines(answer: &str) -> String {
    answer
        .lines()
        .filter(|l| {
            let t = l.trim().trim_matches(['*', '`', '_']).trim();
            strip_label(t, "clarify").is_none() && strip_label(t, "options").is_none()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `label: rest` (any case) → `rest`, trimmed.
fn strip_label<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let head = line.get(..label.len())?;
    if !head.eq_ignore_ascii_case(label) {
        return None;
    }
    let rest = line[label.len()..].trim_start().strip_prefix(':')?;
    Some(rest.trim().trim_start_matches(['*', '_']).trim())
}

#[cfg(test)]
mod tests {
    use super::{clarification_marker, without_clarify_lines};

    #[test]
    fn a_clarification_marker_is_read_with_its_options() {
        assert_eq!(
            clarification_marker("CLARIFY: Which license?\nOPTIONS: MIT | Apache-2.0\n"),
            Some((
                "Which license?".to_owned(),
                vec!["MIT".to_owned(), "Apache-2.0".to_owned()]
            ))
        );
        assert_eq!(
            clarification_marker("\n**Clarify:** Who are the users?"),
            Some(("Who are the users?".to_owned(), vec![]))
        );
        // Deep in a document, or without a question, it is not one.
        assert_eq!(
            clarification_marker("# Plan\n\na\n\nb\n\nc\n\nd\nCLARIFY: late?"),
            None
        );
        assert_eq!(clarification_marker("CLARIFY:"), None);
        // The instruction's placeholder echoed back is not a question; its lines go.
        let echoed = "CLARIFY: <your question>\nOPTIONS: <option> | <option>\n# Doc\n\nText.";
        assert_eq!(clarification_marker(echoed), None);
        assert_eq!(without_clarify_lines(echoed), "# Doc\n\nText.");
        assert_eq!(
            clarification_marker("# Plan\n\nClarifying the scope."),
            None
        );
    }
}
