//! Fitting artifacts into a token budget, fairly and outline first.

use botarmy_core::context::{CUT_MARKER, estimate_tokens, fit, trim_to};

fn doc(sections: usize, paras: usize, words: usize) -> String {
    let mut s = String::from("# Title\n\nIntro paragraph.\n");
    for i in 1..=sections {
        s.push_str(&format!("\n## Section {i}\n"));
        for p in 1..=paras {
            let body: Vec<String> = (0..words).map(|w| format!("s{i}p{p}w{w}")).collect();
            s.push_str(&format!("\n{}\n", body.join(" ")));
        }
    }
    s
}

#[test]
fn tokens_are_four_characters() {
    assert_eq!(estimate_tokens(""), 0);
    assert_eq!(estimate_tokens("abcd"), 1);
    assert_eq!(estimate_tokens("abcde"), 2);
    assert_eq!(estimate_tokens("éééé"), 1, "characters, not bytes");
}

#[test]
fn everything_fits_untouched() {
    let f = fit(&[("a.md", "short"), ("b.md", "also short")], 100);
    assert!(f.iter().all(|x| !x.trimmed));
    assert_eq!(f[1].text, "also short");
}

#[test]
fn the_budget_is_shared_fairly() {
    let big = doc(10, 5, 30);
    let small = "tiny doc";
    let f = fit(
        &[("big1.md", &big), ("small.md", small), ("big2.md", &big)],
        1_000,
    );
    assert!(!f[1].trimmed, "a short artifact is kept whole");
    assert!(f[0].trimmed && f[2].trimmed);
    let total: usize = f.iter().map(|x| x.text.chars().count()).sum();
    assert!(total <= 4_000, "{total}");
    // the two big ones get the same share, and together use most of what is left
    let (a, b) = (f[0].text.chars().count(), f[2].text.chars().count());
    assert_eq!(a, b);
    assert!(a > 1_500, "{a}");
}

#[test]
fn trimming_keeps_headings_and_first_paragraphs_first() {
    let text = doc(4, 3, 20);
    let out = trim_to(&text, 1_200);
    assert!(out.chars().count() <= 1_200);
    for i in 1..=4 {
        assert!(out.contains(&format!("## Section {i}")), "{out}");
        assert!(
            out.contains(&format!("s{i}p1w19")),
            "first paragraph of section {i} kept whole:\n{out}"
        );
    }
    assert!(out.contains(CUT_MARKER), "{out}");
    assert!(!out.contains("s4p3w0"), "{out}");
}

#[test]
fn when_even_the_outline_is_too_long_the_text_is_cut() {
    let text = doc(50, 1, 5);
    let out = trim_to(&text, 200);
    assert!(out.chars().count() <= 200, "{}", out.len());
    assert!(out.ends_with(CUT_MARKER));
    assert!(out.starts_with("# Title"));
}

#[test]
fn code_fences_stay_whole_or_go_whole() {
    let text = "# Code\n\nIntro.\n\n```rust\nfn a() {}\n\nfn b() {}\n```\n\nAfter the code there is a long paragraph that takes space.\n";
    let out = trim_to(text, 60);
    assert!(
        !out.contains("fn a") || out.contains("fn b() {}\n```"),
        "{out}"
    );
}

#[test]
fn zero_budget_gives_empty_context() {
    let f = fit(&[("a.md", "some text")], 0);
    assert!(f[0].trimmed);
    assert!(f[0].text.chars().count() <= CUT_MARKER.len() + 1);
}
