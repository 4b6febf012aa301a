//! Finishing documents and finding code files in them.

use botarmy_core::document::{CodeFile, extract_code_files, safe_relative_path, strip_chatter};

use crate::support::{builtin, fixtures};

#[test]
fn chatter_is_stripped() {
    let cases = [
        ("Sure, here is the plan:\n\n## Goals\nx", "## Goals\nx"),
        (
            "Certainly! Below is the document.\n# T\nbody\n\nLet me know if you need changes.",
            "# T\nbody",
        ),
        ("```markdown\n# T\nbody\n```", "# T\nbody"),
        ("# T\nbody<|im_end|>", "# T\nbody"),
        (
            "# Sure thing\nkeep headings that look chatty",
            "# Sure thing\nkeep headings that look chatty",
        ),
        (
            "Plain text stays.\n\nI hope is part of a sentence here? no: starts the last paragraph",
            "Plain text stays.",
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(strip_chatter(raw), want, "{raw:?}");
    }
}

#[test]
fn finished_documents_start_with_the_template_title() {
    let m = builtin();
    let plan = m.plan("sdlc").unwrap();
    let step = &plan.steps[0];
    let idea = "a command-line todo app in Rust";
    let want = "# Command-line todo app in Rust Project Plan\n\n## Overview\nA todo app.\n";
    assert_eq!(
        m.finish_document(step, idea, "Sure! Here it is:\n\n## Overview\nA todo app."),
        want
    );
    // the model's own H1 is replaced by the canonical title
    assert_eq!(
        m.finish_document(step, idea, "# My Plan\n\n## Overview\nA todo app.\n\n"),
        "# Command-line todo app in Rust Project Plan\n\n## Overview\nA todo app.\n"
    );
}

#[test]
fn a_title_with_unknown_placeholders_keeps_the_models_heading() {
    let m = fixtures();
    let plan = m.plan("greenfield-service").unwrap();
    let story = plan.steps.iter().find(|s| s.key == "create-story").unwrap();
    assert_eq!(
        m.finish_document(story, "x", "# Story 1.1: Login\n\nbody"),
        "# Story 1.1: Login\n\nbody\n"
    );
    assert_eq!(
        m.finish_document(story, "x", "body"),
        "# Story {{epic_num}}.{{story_num}}: {{story_title_short}}\n\nbody\n"
    );
    let prd = &plan.steps[1];
    assert_eq!(
        m.finish_document(prd, "an API for pets", "text"),
        "# API for pets Product Requirements Document (PRD)\n\ntext\n"
    );
}

#[test]
fn code_files_by_info_string_or_preceding_line() {
    let md = "\
# Source Code

```rust path=src/main.rs
fn main() {}
```

File: Cargo.toml
```toml
[package]
name = \"todo\"
```

**File:** `src/lib.rs`

```rust
pub fn f() {}
```

### tests/cli.rs
```rust
#[test] fn t() {}
```

```shell
cargo run
```

```rust path=../escape.rs
bad
```

```rust path=src/main.rs
fn main() { println!(\"v2\"); }
```
";
    let files = extract_code_files(md);
    let got: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.language.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("Cargo.toml", Some("toml")),
            ("src/lib.rs", Some("rust")),
            ("tests/cli.rs", Some("rust")),
            ("src/main.rs", Some("rust"))
        ]
    );
    assert_eq!(
        files[3],
        CodeFile {
            path: "src/main.rs".into(),
            language: Some("rust".into()),
            content: "fn main() { println!(\"v2\"); }\n".into()
        }
    );
    assert!(extract_code_files("```rust\nno path\n```\n").is_empty());
    assert_eq!(extract_code_files("```rust path=a.rs\nunclosed").len(), 1);
}

#[test]
fn unsafe_paths_are_refused() {
    for bad in ["/etc/passwd", "../x", "a/../../x", "C:\\x", "", "./"] {
        assert_eq!(safe_relative_path(bad), None, "{bad}");
    }
    assert_eq!(
        safe_relative_path("./src//main.rs").as_deref(),
        Some("src/main.rs")
    );
    assert_eq!(
        safe_relative_path("src\\lib.rs").as_deref(),
        Some("src/lib.rs")
    );
}

#[test]
fn multibyte_text_before_a_fence_is_no_problem() {
    assert!(extract_code_files("fil€x\n```\ncode\n```\n").is_empty());
    assert_eq!(
        extract_code_files("Fíle\n```rust path=é/ü.rs\nx\n```\n")[0].path,
        "é/ü.rs"
    );
}
