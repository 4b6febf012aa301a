//! Scoring a step's output for its gate: the agent's own confidence (a line it ends its
//! answer with), and measured quality (the template's sections present and filled, the
//! outputs produced, and the agent's checklist executed item by item).

use botarmy_protocol::{ChecklistItem, RiskCard, Score, Severity, Verdict};

use crate::prompt::ExpectedSection;

/// Splits the agent's self-assessment line (`Confidence: 0.8 - why`, the last such line)
/// off its answer: the answer without it, and the score it gives.
pub fn split_confidence(answer: &str) -> (String, Option<Score>) {
    let lines: Vec<&str> = answer.lines().collect();
    let found = lines
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, l)| parse_confidence(l).map(|s| (i, s)));
    match found {
        Some((i, score)) => {
            let mut kept: Vec<&str> = lines[..i].to_vec();
            kept.extend_from_slice(&lines[i + 1..]);
            while kept
                .last()
                .is_some_and(|l| l.trim().is_empty() || l.trim() == "---")
            {
                kept.pop();
            }
            (kept.join("\n"), Some(score))
        }
        None => (answer.to_owned(), None),
    }
}

/// `Confidence: 0.85 - reason` (also `**Confidence**: 85%`, `confidence = 0.7`).
fn parse_confidence(line: &str) -> Option<Score> {
    let t = line.trim().trim_start_matches(['-', '*', '>', '_', ' ']);
    let head = t.get(..10)?;
    if !head.eq_ignore_ascii_case("confidence") {
        return None;
    }
    let rest = t[10..].trim_start_matches(['*', '_', ' ']);
    let rest = rest
        .strip_prefix([':', '='])?
        .trim_start_matches(['*', '_', ' ']);
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let mut value: f64 = rest[..end].trim_end_matches('.').parse().ok()?;
    let mut tail = &rest[end..];
    if let Some(t) = tail.strip_prefix('%') {
        value /= 100.0;
        tail = t;
    } else if value > 1.0 && value <= 100.0 {
        value /= 100.0;
    }
    if !(0.0..=1.0).contains(&value) {
        return None;
    }
    let reason = tail
        .trim()
        .trim_start_matches(['-', '—', '–', ':', ',', '(', ' '])
        .trim_end_matches(')')
        .trim();
    Some(Score {
        value,
        reasons: if reason.is_empty() {
            Vec::new()
        } else {
            vec![reason.to_owned()]
        },
    })
}

/// How many of the template's required sections the document has, with content.
pub fn section_coverage(document: &str, expected: &[ExpectedSection]) -> Option<Score> {
    // A title that still holds a placeholder names a section the agent names itself.
    let required: Vec<&ExpectedSection> = expected
        .iter()
        .filter(|s| s.required && !s.title.contains("{{"))
        .collect();
    if required.is_empty() {
        return None;
    }
    let headings = headings(document);
    let mut missing = Vec::new();
    let mut empty = Vec::new();
    for s in &required {
        let want = normalize(&s.title);
        match headings.iter().find(|h| {
            let n = normalize(&h.text);
            !want.is_empty() && (n == want || n.contains(&want))
        }) {
            None => missing.push(s.title.clone()),
            Some(h) if !h.has_content => empty.push(s.title.clone()),
            Some(_) => {}
        }
    }
    let good = required.len() - missing.len() - empty.len();
    let mut reasons = Vec::new();
    if !missing.is_empty() {
        reasons.push(format!("sections missing: {}", missing.join(", ")));
    }
    if !empty.is_empty() {
        reasons.push(format!("sections empty: {}", empty.join(", ")));
    }
    Some(Score {
        value: good as f64 / required.len() as f64,
        reasons,
    })
}

struct Heading {
    text: String,
    has_content: bool,
}

/// The document's headings, each with whether text follows it before the next heading of
/// its level or above (its subsections' text counts). Fenced code is content, not headings.
fn headings(document: &str) -> Vec<Heading> {
    let mut found: Vec<(usize, String, usize)> = Vec::new();
    let lines: Vec<&str> = document.lines().collect();
    let mut fenced = false;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let level = t.chars().take_while(|c| *c == '#').count();
        if level > 0 && t[level..].starts_with(' ') {
            found.push((level, t[level..].trim().to_owned(), i));
        }
    }
    let mut out = Vec::new();
    for (k, (level, text, line)) in found.iter().enumerate() {
        let end = found[k + 1..]
            .iter()
            .find(|(l, _, _)| l <= level)
            .map_or(lines.len(), |(_, _, at)| *at);
        let has_content = lines[line + 1..end].iter().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && !t.contains("{{")
        });
        out.push(Heading {
            text: text.clone(),
            has_content,
        });
    }
    out
}

/// Lowercase words without numbering and punctuation (`2. Data Models:` → `data models`).
fn normalize(title: &str) -> String {
    title
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The items of a Markdown checklist (`- [ ] item`, `* [x] item`), in order, with the
/// section heading they sit under prefixed when there is one.
pub fn checklist_items(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let t = t.strip_prefix("- ").or_else(|| t.strip_prefix("* "))?;
            let t = t
                .strip_prefix("[ ]")
                .or_else(|| t.strip_prefix("[x]"))
                .or_else(|| t.strip_prefix("[X]"))?;
            let item = t.trim();
            (!item.is_empty()).then(|| item.to_owned())
        })
        .collect()
}

/// Reads a checklist answer: one line per item, `N: pass|fail|partial|n/a` (numbers from
/// 1 within the batch). Items without a line get no verdict.
pub fn parse_checklist_answer(answer: &str, items: usize) -> Vec<Option<Verdict>> {
    let mut out = vec![None; items];
    for line in answer.lines() {
        let t = line.trim().trim_start_matches(['-', '*', ' ']);
        let Some((num, verdict)) = t.split_once([':', '.', ')']) else {
            continue;
        };
        let Ok(n) = num.trim().parse::<usize>() else {
            continue;
        };
        let v = verdict.trim().to_lowercase();
        let v = v.trim_matches(['*', '`', ' ']);
        let verdict = if v.starts_with("pass") || v.starts_with("yes") {
            Verdict::Pass
        } else if v.starts_with("partial") {
            Verdict::Partial
        } else if v.starts_with("n/a") || v.starts_with("na") || v.starts_with("not applicable") {
            Verdict::NotApplicable
        } else if v.starts_with("fail") || v.starts_with("no") {
            Verdict::Fail
        } else {
            continue;
        };
        if let Some(slot) = n.checked_sub(1).and_then(|i| out.get_mut(i)) {
            *slot = Some(verdict);
        }
    }
    out
}

/// The checklist's pass rate: pass 1, partial ½, fail 0, items that do not apply left out
/// (and items the answer skipped counted as failed, since nobody checked them).
pub fn checklist_score(name: &str, items: &[ChecklistItem], unanswered: usize) -> Option<Score> {
    let counted: Vec<&ChecklistItem> = items
        .iter()
        .filter(|i| i.verdict != Verdict::NotApplicable)
        .collect();
    let total = counted.len() + unanswered;
    if total == 0 {
        return None;
    }
    let points: f64 = counted
        .iter()
        .map(|i| match i.verdict {
            Verdict::Pass => 1.0,
            Verdict::Partial => 0.5,
            _ => 0.0,
        })
        .sum();
    let count = |v: Verdict| items.iter().filter(|i| i.verdict == v).count();
    let mut reasons = vec![format!(
        "checklist {name}: {} pass, {} partial, {} fail, {} n/a{}",
        count(Verdict::Pass),
        count(Verdict::Partial),
        count(Verdict::Fail),
        count(Verdict::NotApplicable),
        if unanswered > 0 {
            format!(", {unanswered} not answered")
        } else {
            String::new()
        }
    )];
    reasons.extend(
        items
            .iter()
            .filter(|i| i.verdict == Verdict::Fail)
            .take(3)
            .map(|i| format!("failed: {}", i.item)),
    );
    Some(Score {
        value: points / total as f64,
        reasons,
    })
}

/// The risk cards of a risk review: each heading followed by a `Severity:` line (high,
/// medium or low), with its `Description:` and `Mitigation:`; the heading's `Risk:` prefix
/// is dropped.
pub fn risk_cards(document: &str) -> Vec<RiskCard> {
    let mut cards = Vec::new();
    let mut current: Option<(String, Option<Severity>, String, String)> = None;
    let mut finish = |c: Option<(String, Option<Severity>, String, String)>| {
        if let Some((title, Some(severity), description, mitigation)) = c {
            cards.push(RiskCard {
                title,
                severity,
                description,
                mitigation,
            });
        }
    };
    for line in document.lines() {
        let t = line.trim();
        let level = t.chars().take_while(|c| *c == '#').count();
        if level > 0 && t[level..].starts_with(' ') {
            finish(current.take());
            let title = t[level..].trim();
            let title = title
                .get(..5)
                .filter(|h| h.eq_ignore_ascii_case("risk:"))
                .map_or(title, |_| title[5..].trim());
            current = Some((title.to_owned(), None, String::new(), String::new()));
            continue;
        }
        let Some(card) = current.as_mut() else {
            continue;
        };
        let plain = t.trim_start_matches(['-', '*', ' ']).replace("**", "");
        let field = |name: &str| {
            plain
                .get(..name.len())
                .filter(|h| h.eq_ignore_ascii_case(name))
                .and_then(|_| plain[name.len()..].trim_start().strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        if let Some(v) = field("severity") {
            let word = v.to_lowercase();
            card.1 = if word.starts_with("high") || word.starts_with("critical") {
                Some(Severity::High)
            } else if word.starts_with("medium") {
                Some(Severity::Medium)
            } else if word.starts_with("low") {
                Some(Severity::Low)
            } else {
                card.1
            };
        } else if let Some(v) = field("description") {
            card.2 = v;
        } else if let Some(v) = field("mitigation") {
            card.3 = v;
        }
    }
    finish(current);
    cards
}

/// Quality from its parts: the mean of the scores measured, their reasons together, the
/// weakest part's first.
pub fn combine(parts: &[Option<Score>]) -> Option<Score> {
    let mut present: Vec<&Score> = parts.iter().flatten().collect();
    if present.is_empty() {
        return None;
    }
    let value = present.iter().map(|s| s.value).sum::<f64>() / present.len() as f64;
    present.sort_by(|a, b| a.value.total_cmp(&b.value));
    Some(Score {
        value,
        reasons: present
            .iter()
            .flat_map(|s| s.reasons.iter().cloned())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confidence_line_is_read_and_removed() {
        let (doc, score) =
            split_confidence("# Plan\n\nText.\n\nConfidence: 0.72 - the budget is a guess\n");
        assert_eq!(doc, "# Plan\n\nText.");
        let score = score.unwrap();
        assert!((score.value - 0.72).abs() < 1e-9);
        assert_eq!(score.reasons, ["the budget is a guess"]);
        for (line, value) in [
            ("**Confidence:** 85% (tests are thin)", 0.85),
            ("confidence = 0.9", 0.9),
            ("Confidence: 60", 0.6),
        ] {
            let (_, s) = split_confidence(line);
            assert!((s.unwrap().value - value).abs() < 1e-9, "{line}");
        }
        for line in [
            "Confidence: high",
            "Our confidence in this is 0.9",
            "Confidence: 250",
        ] {
            assert_eq!(split_confidence(line).1, None, "{line}");
        }
    }

    fn section(title: &str, required: bool) -> ExpectedSection {
        ExpectedSection {
            title: title.into(),
            depth: 0,
            required,
        }
    }

    #[test]
    fn sections_count_when_present_and_filled() {
        let expected = [
            section("{{feature_name}}", true),
            section("Goals", true),
            section("Scope", true),
            section("Risks", true),
            section("Appendix", false),
        ];
        let doc =
            "# Plan\n\n## 1. Goals\n\nShip it.\n\n## Scope\n\n## Risks\n### Technical\nLlama.\n";
        let s = section_coverage(doc, &expected).unwrap();
        assert!((s.value - 2.0 / 3.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.reasons, ["sections empty: Scope"]);
        let s = section_coverage("# Plan\n\n## Goals\nx\n", &expected).unwrap();
        assert_eq!(s.reasons, ["sections missing: Scope, Risks"]);
        assert_eq!(section_coverage("x", &[section("A", false)]), None);
    }

    #[test]
    fn checklists_are_read_and_scored() {
        let items = checklist_items("# C\n\n- [ ] One\n  - [x] Two\n* [ ] Three\n- not an item\n");
        assert_eq!(items, ["One", "Two", "Three"]);
        let v = parse_checklist_answer("1: pass\n2: PARTIAL\nthree: fail\n3: n/a\n9: fail\n", 4);
        assert_eq!(
            v,
            [
                Some(Verdict::Pass),
                Some(Verdict::Partial),
                Some(Verdict::NotApplicable),
                None
            ]
        );
        let judged = [
            ChecklistItem {
                item: "One".into(),
                verdict: Verdict::Pass,
            },
            ChecklistItem {
                item: "Two".into(),
                verdict: Verdict::Partial,
            },
            ChecklistItem {
                item: "Three".into(),
                verdict: Verdict::Fail,
            },
            ChecklistItem {
                item: "Four".into(),
                verdict: Verdict::NotApplicable,
            },
        ];
        let s = checklist_score("c.md", &judged, 1).unwrap();
        assert!((s.value - 1.5 / 4.0).abs() < 1e-9, "{s:?}");
        assert_eq!(
            s.reasons,
            [
                "checklist c.md: 1 pass, 1 partial, 1 fail, 1 n/a, 1 not answered",
                "failed: Three"
            ]
        );
    }

    #[test]
    fn risk_cards_are_read_from_their_headings() {
        let doc = "# Risks\n\n## Summary\n\nFine.\n\n### Risk: Data loss\n**Severity:** high\n**Description:** the disk fills\n**Mitigation:** alerts\n\n### Slow start\n- Severity: Medium\n- Mitigation: cache\n\n### Not a risk\nSeverity: unclear\n";
        let cards = risk_cards(doc);
        assert_eq!(cards.len(), 2, "{cards:?}");
        assert_eq!(cards[0].title, "Data loss");
        assert_eq!(cards[0].severity, Severity::High);
        assert_eq!(cards[0].description, "the disk fills");
        assert_eq!(cards[0].mitigation, "alerts");
        assert_eq!(cards[1].title, "Slow start");
        assert_eq!(cards[1].severity, Severity::Medium);
    }

    #[test]
    fn quality_is_the_mean_of_its_parts_weakest_reasons_first() {
        let a = Score {
            value: 1.0,
            reasons: vec!["fine".into()],
        };
        let b = Score {
            value: 0.5,
            reasons: vec!["weak".into()],
        };
        let q = combine(&[Some(a), None, Some(b)]).unwrap();
        assert!((q.value - 0.75).abs() < 1e-9);
        assert_eq!(q.reasons, ["weak", "fine"]);
        assert_eq!(combine(&[None]), None);
    }
}
