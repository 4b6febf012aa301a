//! Fitting artifacts into a step's prompt under a token budget.
//!
//! Tokens are estimated without a tokenizer: one token per [`CHARS_PER_TOKEN`] characters
//! (about right for English prose and code with BPE vocabularies; it errs on the safe side
//! for the small local model). The budget is shared fairly: every artifact gets an equal
//! share, and what a short artifact does not use goes to the longer ones (max-min
//! fairness). An artifact over its share keeps its outline first — every heading and the
//! first paragraph of every section — then further paragraphs in order while they fit.
//! Omitted blocks are marked with a `[...]` line and a shortened paragraph ends in ` [...]`.

/// Characters per estimated token.
pub const CHARS_PER_TOKEN: usize = 4;

/// The marker line put where blocks were left out.
pub const CUT_MARKER: &str = "[...]";

/// Estimated tokens of a text (characters / 4, rounded up).
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count();
    u32::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(u32::MAX)
}

/// One artifact after fitting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fitted {
    /// Artifact name.
    pub name: String,
    /// The text put into the prompt.
    pub text: String,
    /// Whether anything was cut.
    pub trimmed: bool,
    /// Estimated tokens of the original.
    pub original_tokens: u32,
    /// Estimated tokens of `text`.
    pub tokens: u32,
}

/// Fits `(name, text)` items into `budget_tokens` in total, fairly.
pub fn fit(items: &[(&str, &str)], budget_tokens: u32) -> Vec<Fitted> {
    let budget = (budget_tokens as usize).saturating_mul(CHARS_PER_TOKEN);
    let lens: Vec<usize> = items.iter().map(|(_, t)| t.chars().count()).collect();
    let mut alloc = vec![0usize; items.len()];
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    let mut remaining = budget;
    for (k, &i) in order.iter().enumerate() {
        let share = remaining / (items.len() - k);
        alloc[i] = lens[i].min(share);
        remaining -= alloc[i];
    }
    items
        .iter()
        .zip(alloc)
        .zip(lens)
        .map(|(((name, text), cap), len)| {
            let out = if len <= cap {
                (*text).to_owned()
            } else {
                trim_to(text, cap)
            };
            Fitted {
                name: (*name).to_owned(),
                trimmed: len > cap,
                original_tokens: estimate_tokens(text),
                tokens: estimate_tokens(&out),
                text: out,
            }
        })
        .collect()
}

#[derive(Debug)]
struct Block {
    text: String,
    /// 0 = heading, 1 = first paragraph of its section, 2.. = later paragraphs.
    rank: usize,
}

/// Splits markdown into headings and paragraphs (fenced code blocks stay whole).
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut in_fence = false;
    let mut para_in_section = 0usize;
    let flush = |cur: &mut Vec<&str>, out: &mut Vec<Block>, n: &mut usize| {
        if !cur.is_empty() {
            *n += 1;
            out.push(Block {
                text: cur.join("\n"),
                rank: *n,
            });
            cur.clear();
        }
    };
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            cur.push(line);
            if !in_fence {
                flush(&mut cur, &mut out, &mut para_in_section);
            }
            continue;
        }
        if in_fence {
            cur.push(line);
        } else if t.starts_with('#') {
            flush(&mut cur, &mut out, &mut para_in_section);
            out.push(Block {
                text: line.to_owned(),
                rank: 0,
            });
            para_in_section = 0;
        } else if t.is_empty() {
            flush(&mut cur, &mut out, &mut para_in_section);
        } else {
            cur.push(line);
        }
    }
    flush(&mut cur, &mut out, &mut para_in_section);
    out
}

fn render(blocks: &[Block], keep: &[bool], cut: Option<(usize, &str)>) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut dropped = false;
    for (i, b) in blocks.iter().enumerate() {
        if let Some((_, partial)) = cut.filter(|(j, _)| *j == i) {
            parts.push(partial);
            dropped = false;
        } else if keep[i] {
            parts.push(&b.text);
            dropped = false;
        } else if !dropped {
            parts.push(CUT_MARKER);
            dropped = true;
        }
    }
    parts.join("\n\n")
}

/// The length [`render`] would produce (without a partial block).
fn rendered_len(lens: &[usize], keep: &[bool]) -> usize {
    let mut total = 0usize;
    let mut parts = 0usize;
    let mut dropped = false;
    for (l, k) in lens.iter().zip(keep) {
        if *k {
            total += l;
            parts += 1;
            dropped = false;
        } else if !dropped {
            total += CUT_MARKER.len();
            parts += 1;
            dropped = true;
        }
    }
    total + 2 * parts.saturating_sub(1)
}

/// Shortens markdown `text` to at most `cap` characters, keeping its outline first.
pub fn trim_to(text: &str, cap: usize) -> String {
    let blocks = blocks(text);
    let mut keep = vec![false; blocks.len()];
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    order.sort_by_key(|&i| (blocks[i].rank.min(2), i));
    let len = |s: &str| s.chars().count();
    let lens: Vec<usize> = blocks.iter().map(|b| len(&b.text)).collect();
    for &i in &order {
        keep[i] = true;
        if rendered_len(&lens, &keep) > cap {
            keep[i] = false;
        }
    }
    // Use what is left to show the start of the first omitted paragraph.
    let base = render(&blocks, &keep, None);
    if let Some(i) = order
        .iter()
        .copied()
        .find(|&i| !keep[i] && blocks[i].rank > 0)
    {
        let room = cap.saturating_sub(len(&base) + 8);
        if room >= 40 {
            let head: String = blocks[i].text.chars().take(room).collect();
            let head = match head.rfind(char::is_whitespace) {
                Some(p) if p > room / 2 => head[..p].to_owned(),
                _ => head,
            };
            let partial = format!("{} {CUT_MARKER}", head.trim_end());
            let with = render(&blocks, &keep, Some((i, &partial)));
            if len(&with) <= cap {
                return with;
            }
        }
    }
    if len(&base) <= cap {
        return base;
    }
    // Not even the headings fit: a plain cut.
    let mut s: String = text
        .chars()
        .take(cap.saturating_sub(CUT_MARKER.len() + 1))
        .collect();
    s.push(' ');
    s.push_str(CUT_MARKER);
    s
}
