//! The file tools' work inside one worktree: read, write (whole file or one exact
//! replacement), list and search. Every path goes through [`resolve_inside`] first.

use std::path::{Path, PathBuf};

use crate::paths::{PathError, resolve_inside};

/// Largest file the tools read or search (bigger ones are named, not loaded).
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Most search matches returned.
pub const MAX_MATCHES: usize = 200;

/// Why a file tool failed; every message names the path as the agent gave it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path may not be used.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is too large or not text.
    #[error("{path}: {problem}")]
    Unreadable {
        /// The path given.
        path: String,
        /// Why.
        problem: String,
    },
    /// The path is git's own (`.git`), which tools never write.
    #[error("{path}: git's own files (.git) are not written by tools; use the git tool")]
    GitInternals {
        /// The path given.
        path: String,
    },
    /// An edit's text to replace is not in the file exactly once.
    #[error("{path}: the text to replace occurs {count} times; it must occur exactly once")]
    EditNotUnique {
        /// The path given.
        path: String,
        /// How often it occurs.
        count: usize,
    },
}

/// What a write did, for the `file_changed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The file is new.
    Created,
    /// The file existed and was changed.
    Modified,
}

/// One file changed by a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The path relative to the worktree.
    pub path: String,
    /// Created or modified.
    pub kind: ChangeKind,
    /// Size after the change.
    pub bytes: u64,
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name, with `/` at the end for folders.
    pub name: String,
    /// Size in bytes (0 for folders).
    pub bytes: u64,
}

/// One line that matches a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The file, relative to the worktree.
    pub path: String,
    /// Line number, from 1.
    pub line: usize,
    /// The line's text.
    pub text: String,
}

/// A worktree as the file tools see it.
#[derive(Debug, Clone)]
pub struct Files {
    root: PathBuf,
}

impl Files {
    /// File tools confined to `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn io(path: &str) -> impl FnOnce(std::io::Error) -> FileError + '_ {
        move |source| FileError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The text of a file.
    pub fn read(&self, path: &str) -> Result<String, FileError> {
        let full = resolve_inside(&self.root, path)?;
        let meta = std::fs::metadata(&full).map_err(Self::io(path))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(FileError::Unreadable {
                path: path.to_owned(),
                problem: format!(
                    "{} bytes is more than the {MAX_FILE_BYTES} a tool reads",
                    meta.len()
                ),
            });
        }
        let bytes = std::fs::read(&full).map_err(Self::io(path))?;
        String::from_utf8(bytes).map_err(|_| FileError::Unreadable {
            path: path.to_owned(),
            problem: "not UTF-8 text".into(),
        })
    }

    /// Writes a whole file (creating its folders). Paths through a `.git` are refused: the
    /// worktree's link to its repository is BotArmy's to keep, and a nested repository's
    /// settings could name programs git would run.
    pub fn write(&self, path: &str, content: &str) -> Result<FileChange, FileError> {
        let full = resolve_inside(&self.root, path)?;
        // Nor a `.git` further down: a nested repository's configuration is code git runs.
        let relative = self.relative(&full);
        if relative.split('/').any(|part| part == ".git") {
            return Err(FileError::GitInternals {
                path: path.to_owned(),
            });
        }
        let kind = if full.exists() {
            ChangeKind::Modified
        } else {
            ChangeKind::Created
        };
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(Self::io(path))?;
        }
        // The folders just made may not have changed where the path leads; check again.
        let full = resolve_inside(&self.root, path)?;
        std::fs::write(&full, content).map_err(Self::io(path))?;
        Ok(FileChange {
            path: self.relative(&full),
            kind,
            bytes: content.len() as u64,
        })
    }

    /// Replaces the one occurrence of `old` in a file with `new`.
    pub fn edit(&self, path: &str, old: &str, new: &str) -> Result<FileChange, FileError> {
        let text = self.read(path)?;
        let count = if old.is_empty() {
            0
        } else {
            text.matches(old).count()
        };
        if count != 1 {
            return Err(FileError::EditNotUnique {
                path: path.to_owned(),
                count,
            });
        }
        self.write(path, &text.replacen(old, new, 1))
    }

    /// The entries of a folder, folders first, each group by name.
    pub fn list(&self, path: &str) -> Result<Vec<Entry>, FileError> {
        let full = resolve_inside(&self.root, if path.trim().is_empty() { "." } else { path })?;
        let mut entries = Vec::new();
        for item in std::fs::read_dir(&full).map_err(Self::io(path))? {
            let item = item.map_err(Self::io(path))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            let meta = item.metadata().map_err(Self::io(path))?;
            entries.push(if meta.is_dir() {
                Entry {
                    name: format!("{name}/"),
                    bytes: 0,
                }
            } else {
                Entry {
                    name,
                    bytes: meta.len(),
                }
            });
        }
        entries.sort_by(|a, b| {
            (!a.name.ends_with('/'), &a.name).cmp(&(!b.name.ends_with('/'), &b.name))
        });
        Ok(entries)
    }

    /// Lines containing `needle` in the text files under `path` (`.git` and files over
    /// [`MAX_FILE_BYTES`] skipped), at most [`MAX_MATCHES`], in path order.
    pub fn search(&self, needle: &str, path: &str) -> Result<Vec<Match>, FileError> {
        let start = resolve_inside(&self.root, if path.trim().is_empty() { "." } else { path })?;
        let mut files = Vec::new();
        collect(&start, &mut files).map_err(Self::io(path))?;
        files.sort();
        let mut out = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                if line.contains(needle) {
                    out.push(Match {
                        path: self.relative(&file),
                        line: i + 1,
                        text: line.to_owned(),
                    });
                    if out.len() == MAX_MATCHES {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    fn relative(&self, full: &Path) -> String {
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        full.strip_prefix(&root)
            .unwrap_or(full)
            .display()
            .to_string()
    }
}

/// Regular files under `dir`, not following links (a link could lead out), `.git` skipped.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.is_file() {
        if meta.len() <= MAX_FILE_BYTES {
            out.push(dir.to_path_buf());
        }
        return Ok(());
    }
    if !meta.is_dir() {
        return Ok(());
    }
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        if item.file_name() == ".git" {
            continue;
        }
        collect(&item.path(), out)?;
    }
    Ok(())
}
