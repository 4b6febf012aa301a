//! The BMAD assets that tests read in place from `shared/fixtures`, the folder beside this
//! repository's (they are test input, never copied into the project).

use std::path::{Path, PathBuf};

/// The folder of shared fixtures: `<repository>/../shared/fixtures`.
pub fn shared() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    repo.parent()
        .unwrap_or(repo)
        .join("shared")
        .join("fixtures")
}

/// BMAD-METHOD v4's core assets, laid out as an installed `.bmad-core/`.
pub fn bmad_v4() -> PathBuf {
    fixture("bmad-core")
}

/// BMAD-METHOD v6 (its `src/` modules and docs).
pub fn bmad_v6() -> PathBuf {
    fixture("bmad-v6")
}

/// `shared/fixtures/<name>`; a test that needs it and finds it missing fails with one line
/// that says so and where it is expected, instead of an unrelated error deep inside it.
#[allow(clippy::panic)] // A test's failure is how a missing fixture is reported.
fn fixture(name: &str) -> PathBuf {
    match locate(&shared(), name) {
        Ok(dir) => dir,
        Err(missing) => panic!("{missing}"),
    }
}

/// `base/name` if it is a folder, else the one line that says what is missing.
fn locate(base: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = base.join(name);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "test fixtures missing: expected the folder {} (`shared/fixtures/{name}` beside this \
             repository's folder, as CI lays it out)",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_fixture_is_named_in_one_line() {
        let missing = locate(Path::new("/nonexistent/shared/fixtures"), "bmad-core").unwrap_err();
        assert!(!missing.contains('\n'), "{missing}");
        assert!(
            missing.contains("/nonexistent/shared/fixtures/bmad-core"),
            "{missing}"
        );
        assert!(missing.starts_with("test fixtures missing"), "{missing}");
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(locate(here, "src").unwrap(), here.join("src"));
    }
}
