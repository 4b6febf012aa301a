//! Artifacts on disk: written under the run's output folder, never outside it.

use std::io;
use std::path::{Path, PathBuf};

use botarmy_core::document::safe_relative_path;

/// Writes `content` to `root/relative` (creating folders), replacing any previous file
/// atomically. Paths that are absolute or leave `root` are refused.
pub fn write_under(root: &Path, relative: &str, content: &[u8]) -> io::Result<PathBuf> {
    let Some(rel) = safe_relative_path(relative) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{relative}` is not a relative path inside the output folder"),
        ));
    };
    let target = root.join(&rel);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = target.with_extension(format!(
        "{}.botarmy-tmp",
        target.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, &target)?;
    Ok(target)
}

/// Makes `path` absolute against the current folder (unchanged if it already is, or if
/// the current folder cannot be read).
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Creates the run's output folder and writes its manifest (`run.json`: which run, which
/// idea), which also proves the folder is writable before the run is stored.
pub fn prepare_out_dir(dir: &Path, manifest: &serde_json::Value) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    std::fs::write(dir.join("run.json"), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_under(dir.path(), "code/src/main.rs", b"fn main() {}").unwrap();
        assert_eq!(std::fs::read_to_string(written).unwrap(), "fn main() {}");
        // A name no other program uses, beside the root.
        let name = format!(
            "escaped-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        assert!(write_under(dir.path(), &format!("../{name}"), b"no").is_err());
        let absolute = dir.path().parent().unwrap().join(&name);
        assert!(write_under(dir.path(), &absolute.to_string_lossy(), b"no").is_err());
        assert!(!absolute.exists());
    }

    #[test]
    fn an_unwritable_folder_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        assert!(prepare_out_dir(&file.join("out"), &serde_json::json!({})).is_err());
        prepare_out_dir(&dir.path().join("out"), &serde_json::json!({"run_id": "x"})).unwrap();
        let written = std::fs::read_to_string(dir.path().join("out/run.json")).unwrap();
        assert!(written.contains("\"run_id\": \"x\""), "{written}");
    }
}
