//! Fuzzes template rendering: the input is a Jinja prompt template rendered strictly with a
//! fixed context, and the same text goes through the plain-text helpers (placeholder
//! filling, context trimming, chatter stripping, code-file extraction).
#![no_main]

use botarmy_core::context::trim_to;
use botarmy_core::document::{extract_code_files, strip_chatter};
use botarmy_core::render::{fill_placeholders, render_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ctx = serde_json::json!({
        "project_name": "Fuzz",
        "idea": "an idea",
        "items": ["a", "b", "c"],
        "step": {"key": "k", "title": "T", "phase": null, "notes": "n"},
        "n": 3,
    });
    let _ = render_str("fuzz.j2", &text, &ctx);
    let _ = fill_placeholders(&text, &[("project_name", "Fuzz")]);
    let cap = data.first().map_or(0, |b| usize::from(*b) * 8);
    let trimmed = trim_to(&text, cap);
    assert!(trimmed.chars().count() <= cap.max(6), "trim_to exceeded its cap");
    let _ = strip_chatter(&text);
    for f in extract_code_files(&text) {
        assert!(!f.path.starts_with('/') && !f.path.split('/').any(|p| p == ".."));
    }
});
