use std::path::{Component, Path, PathBuf};

/// A path a tool may not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Absolute paths are refused: tools name files relative to the worktree.
    #[error("`{0}` is absolute; give a path relative to the worktree")]
    Absolute(String),
    /// The path climbs out of the worktree with `..`.
    #[error("`{0}` leaves the worktree")]
    Escapes(String),
    /// A symbolic link on the way leads outside the worktree.
    #[error("`{path}` leads outside the worktree through the link {link}")]
    Link {
        /// The path given.
        path: String,
        /// The link that leads out.
        link: String,
    },
    /// The worktree itself cannot be read.
    #[error("the worktree {0} cannot be read: {1}")]
    Root(String, String),
}

/// Resolves `relative` inside `root`, refusing absolute paths, `..` that climbs out, and
/// symbolic links (on any existing part of the path) that lead outside. The file need not
/// exist; the part of the path that exists is checked where it really leads.
pub fn resolve_inside(root: &Path, relative: &str) -> Result<PathBuf, PathError> {
    let given = relative.trim();
    let candidate = Path::new(given);
    if candidate.is_absolute() || given.starts_with('~') {
        return Err(PathError::Absolute(given.to_owned()));
    }
    let real_root = root
        .canonicalize()
        .map_err(|e| PathError::Root(root.display().to_string(), e.to_string()))?;
    // Lexically first: `a/../../b` is refused before anything is touched.
    let mut normal = PathBuf::new();
    for part in candidate.components() {
        match part {
            Component::Normal(p) => normal.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(PathError::Escapes(given.to_owned()));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Absolute(given.to_owned()));
            }
        }
    }
    // Then where the existing part really leads (links followed).
    let mut existing = real_root.clone();
    let mut rest = Vec::new();
    let mut parts = normal.components().peekable();
    while let Some(part) = parts.next() {
        let next = existing.join(part);
        if std::fs::symlink_metadata(&next).is_err() {
            rest.push(part.as_os_str().to_owned());
            rest.extend(parts.map(|p| p.as_os_str().to_owned()));
            break;
        }
        let real = next
            .canonicalize()
            .map_err(|_| PathError::Escapes(given.to_owned()))?;
        if !real.starts_with(&real_root) {
            return Err(PathError::Link {
                path: given.to_owned(),
                link: next.display().to_string(),
            });
        }
        existing = real;
    }
    let mut out = existing;
    for part in rest {
        out.push(part);
    }
    Ok(out)
}
