//! Repositories registered with BotArmy: the one place that decides what may be registered
//! and how (`botarmy repo add` and `POST /api/repositories` both call [`add_repository`]),
//! and how the repositories a run names become folders ([`resolve_repositories`]).
//!
//! A local checkout is registered where it is; a URL is cloned with the `git` command line
//! into `<clones>/<name>` (`$BOTARMY_HOME/repos/<name>`), and only such a clone is ever
//! deleted by BotArmy, and only when asked ([`remove_repository`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use botarmy_store::{RepositoryRecord, Store, StoreError, check_repository_name};
use botarmy_workspace::{Git, GitError};

/// The URL schemes that are cloned (besides `user@host:path`, git's scp-like form).
pub const URL_SCHEMES: &[&str] = &["https", "http", "ssh", "git", "file"];

/// How long a clone may take before it is stopped.
const CLONE_TIME_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Why a repository cannot be registered, removed or used, by what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The name given breaks the naming rule.
    #[error("repository name `{name}` {problem}")]
    BadName {
        /// The name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No acceptable name can be taken from the location; one must be given.
    #[error("cannot take a repository name from `{location}` ({problem}); give one")]
    NoName {
        /// The location given.
        location: String,
        /// Why the derived name does not do.
        problem: String,
    },
    /// The location is empty, relative, or a URL of a kind that is not cloned.
    #[error("location `{location}`: {problem}")]
    BadLocation {
        /// The location given.
        location: String,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// A local folder that is not the top of a git checkout.
    #[error("{} is not a git checkout (no .git in it)", path.display())]
    NotACheckout {
        /// The folder.
        path: PathBuf,
    },
    /// The name is registered already.
    #[error("a repository named `{name}` is registered already (at {path}); choose another name")]
    NameTaken {
        /// The name.
        name: String,
        /// Where the registered one is.
        path: String,
    },
    /// The folder a clone would go to exists.
    #[error(
        "cannot clone into {}: the folder exists already; remove it or choose another name",
        path.display()
    )]
    CloneFolderExists {
        /// The folder.
        path: PathBuf,
    },
    /// `git clone` failed.
    #[error("cloning {url} failed: {message}")]
    CloneFailed {
        /// The URL.
        url: String,
        /// What git said.
        message: String,
    },
    /// Removing the clone was asked for a repository BotArmy did not clone.
    #[error(
        "`{name}` is not a clone BotArmy made (it is the checkout at {path}); BotArmy never deletes it, so nothing was removed"
    )]
    NotAClone {
        /// The repository.
        name: String,
        /// Its folder.
        path: String,
    },
    /// A registered repository whose folder is gone.
    #[error("registered repository `{name}` is at {path}, which is not a git checkout any more")]
    Missing {
        /// The repository.
        name: String,
        /// Its folder.
        path: String,
    },
    /// A repository a run names that is neither registered nor a checkout.
    #[error("`{given}` is neither a registered repository nor a git checkout's folder; {}", registered_list(.registered))]
    Unknown {
        /// What was given.
        given: String,
        /// The registered names.
        registered: Vec<String>,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `git` command failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn registered_list(names: &[String]) -> String {
    if names.is_empty() {
        "no repositories are registered (`botarmy repo add PATH|URL`)".to_string()
    } else {
        format!("registered: {}", names.join(", "))
    }
}

/// Where a repository comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A URL that is cloned.
    Url(String),
    /// A local folder (absolute).
    Path(PathBuf),
}

impl Location {
    /// Reads a location: a URL of one of [`URL_SCHEMES`], git's `user@host:path`, or an
    /// absolute folder.
    pub fn parse(location: &str) -> Result<Self, RepositoryError> {
        let bad = |problem: String| RepositoryError::BadLocation {
            location: location.to_string(),
            problem,
        };
        if location.trim().is_empty() {
            return Err(bad("must not be empty".into()));
        }
        if let Some((scheme, _)) = location.split_once("://") {
            if URL_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
                return Ok(Self::Url(location.to_string()));
            }
            return Err(bad(format!(
                "`{scheme}://` URLs are not cloned; expected one of {}, `user@host:path` or a folder",
                URL_SCHEMES
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if is_scp_like(location) {
            return Ok(Self::Url(location.to_string()));
        }
        let path = PathBuf::from(location);
        if !path.is_absolute() {
            return Err(bad(
                "a relative folder; expected an absolute one or a URL".into()
            ));
        }
        Ok(Self::Path(path))
    }

    /// The name a repository gets when none is given: the last part of the URL or folder,
    /// without `.git`.
    pub fn default_name(&self) -> Option<String> {
        let text = match self {
            Self::Url(url) => url.as_str(),
            Self::Path(path) => path.to_str()?,
        };
        let last = text
            .trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or_default();
        let name = last.strip_suffix(".git").unwrap_or(last);
        (!name.is_empty()).then(|| name.to_string())
    }
}

/// `user@host:path`, as git reads it: an `@` and then a `:` before any `/`.
fn is_scp_like(location: &str) -> bool {
    let Some((before, _)) = location.split_once(':') else {
        return false;
    };
    !before.contains('/') && before.contains('@') && !before.starts_with('@')
}

/// Registers the repository at `location` (a URL is cloned into `clones/<name>` first)
/// under `name`, or the name taken from the location. Nothing is registered or left on
/// disk when it fails.
pub async fn add_repository(
    store: &dyn Store,
    clones: &Path,
    location: &str,
    name: Option<&str>,
) -> Result<RepositoryRecord, RepositoryError> {
    let parsed = Location::parse(location)?;
    let name = match name {
        Some(n) => {
            check_repository_name(n).map_err(|problem| RepositoryError::BadName {
                name: n.to_string(),
                problem,
            })?;
            n.to_string()
        }
        None => {
            let derived = parsed
                .default_name()
                .ok_or_else(|| RepositoryError::NoName {
                    location: location.to_string(),
                    problem: "it has no last part".into(),
                })?;
            check_repository_name(&derived).map_err(|problem| RepositoryError::NoName {
                location: location.to_string(),
                problem: format!("`{derived}` {problem}"),
            })?;
            derived
        }
    };
    match store.get_repository(&name).await {
        Ok(existing) => {
            return Err(RepositoryError::NameTaken {
                name,
                path: existing.path,
            });
        }
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let (path, cloned) = match &parsed {
        Location::Path(folder) => {
            if !folder.join(".git").exists() {
                return Err(RepositoryError::NotACheckout {
                    path: folder.clone(),
                });
            }
            let path = std::fs::canonicalize(folder).map_err(|source| RepositoryError::Io {
                path: folder.clone(),
                source,
            })?;
            (path, false)
        }
        Location::Url(url) => (clone(url, clones, &name).await?, true),
    };
    let record = RepositoryRecord {
        name: name.clone(),
        location: location.to_string(),
        path: path.display().to_string(),
        added_at: botarmy_protocol::now_millis(),
    };
    match store.add_repository(record).await {
        Ok(record) => Ok(record),
        Err(e) => {
            if cloned {
                // Registered by someone else meanwhile, or the store failed: leave nothing.
                let _ = tokio::fs::remove_dir_all(&path).await;
            }
            match e {
                StoreError::AlreadyExists { .. } => {
                    let path = store
                        .get_repository(&name)
                        .await
                        .map(|r| r.path)
                        .unwrap_or_default();
                    Err(RepositoryError::NameTaken { name, path })
                }
                other => Err(other.into()),
            }
        }
    }
}

/// `git clone -- URL clones/NAME`, within [`CLONE_TIME_LIMIT`]; the clone's folder.
async fn clone(url: &str, clones: &Path, name: &str) -> Result<PathBuf, RepositoryError> {
    let target = clones.join(name);
    if target.exists() {
        return Err(RepositoryError::CloneFolderExists { path: target });
    }
    std::fs::create_dir_all(clones).map_err(|source| RepositoryError::Io {
        path: clones.to_path_buf(),
        source,
    })?;
    let failed = |message: String| RepositoryError::CloneFailed {
        url: url.to_string(),
        message,
    };
    let git = Git::new(clones);
    let args = [
        // A stalled HTTP transfer (under 1 KiB/s for a minute) is given up.
        "-c",
        "http.lowSpeedLimit=1024",
        "-c",
        "http.lowSpeedTime=60",
        "clone",
        "--quiet",
        "--",
        url,
        name,
    ];
    let cloning = git.run(&args);
    let outcome = tokio::time::timeout(CLONE_TIME_LIMIT, cloning).await;
    let result = match outcome {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(GitError::Failed { stderr, .. })) => Err(failed(stderr)),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!(
            "it took longer than {} minutes and was stopped",
            CLONE_TIME_LIMIT.as_secs() / 60
        ))),
    };
    if let Err(e) = result {
        // git removes what it made when it fails, but not when it is stopped.
        let _ = tokio::fs::remove_dir_all(&target).await;
        return Err(e);
    }
    std::fs::canonicalize(&target).map_err(|source| RepositoryError::Io {
        path: target,
        source,
    })
}

/// Whether BotArmy made `repository`'s folder: cloned from a URL into `clones/<name>`.
pub fn is_clone(repository: &RepositoryRecord, clones: &Path) -> bool {
    let expected = std::fs::canonicalize(clones)
        .unwrap_or_else(|_| clones.to_path_buf())
        .join(&repository.name);
    matches!(Location::parse(&repository.location), Ok(Location::Url(_)))
        && Path::new(&repository.path) == expected
}

/// What [`remove_repository`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The registration that was removed.
    pub repository: RepositoryRecord,
    /// The clone's folder, if it was deleted.
    pub deleted: Option<PathBuf>,
}

/// Forgets the repository `name`; with `delete_clone`, also deletes its folder, which must
/// be a clone BotArmy made (see [`is_clone`]; a user's own checkout is never deleted, and
/// nothing is removed when one is asked to be).
pub async fn remove_repository(
    store: &dyn Store,
    clones: &Path,
    name: &str,
    delete_clone: bool,
) -> Result<Removed, RepositoryError> {
    if delete_clone {
        let repository = store.get_repository(name).await?;
        if !is_clone(&repository, clones) {
            return Err(RepositoryError::NotAClone {
                name: repository.name,
                path: repository.path,
            });
        }
    }
    let repository = store.remove_repository(name).await?;
    let mut deleted = None;
    if delete_clone {
        let path = PathBuf::from(&repository.path);
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => deleted = Some(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RepositoryError::Io { path, source }),
        }
    }
    Ok(Removed {
        repository,
        deleted,
    })
}

/// The folders of the repositories a run names: each one a registered name (its folder)
/// or a git checkout's folder (absolute; relative ones are taken from `cwd`). A name that is
/// registered wins over a folder of the same name.
pub async fn resolve_repositories(
    store: &dyn Store,
    given: &[String],
    cwd: &Path,
) -> Result<Vec<String>, RepositoryError> {
    let mut folders = Vec::with_capacity(given.len());
    for value in given {
        if check_repository_name(value).is_ok() {
            match store.get_repository(value).await {
                Ok(repository) => {
                    if !Path::new(&repository.path).join(".git").exists() {
                        return Err(RepositoryError::Missing {
                            name: repository.name,
                            path: repository.path,
                        });
                    }
                    folders.push(repository.path);
                    continue;
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let folder = cwd.join(value);
        if !folder.join(".git").exists() {
            let registered = store
                .list_repositories()
                .await?
                .into_iter()
                .map(|r| r.name)
                .collect();
            return Err(RepositoryError::Unknown {
                given: value.clone(),
                registered,
            });
        }
        let folder = std::fs::canonicalize(&folder).map_err(|source| RepositoryError::Io {
            path: folder,
            source,
        })?;
        folders.push(folder.display().to_string());
    }
    Ok(folders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_as_urls_or_absolute_folders() {
        for url in [
            "https://github.com/org/app.git",
            "HTTP://h/x",
            "ssh://git@h:22/org/app",
            "git://h/app",
            "file:///tmp/origin.git",
            "git@github.com:org/app.git",
        ] {
            assert_eq!(Location::parse(url).unwrap(), Location::Url(url.into()));
        }
        assert_eq!(
            Location::parse("/src/app").unwrap(),
            Location::Path("/src/app".into())
        );
        for (bad, expected) in [
            ("", "must not be empty"),
            ("app", "a relative folder"),
            ("./a:b", "a relative folder"),
            ("ext::sh -c x", "a relative folder"),
            (
                "ftp://h/x",
                "`ftp://` URLs are not cloned; expected one of https://",
            ),
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains(expected), "{bad}: {e}");
            assert!(e.contains(&format!("`{bad}`")), "{bad}: {e}");
        }
    }

    #[test]
    fn default_names_are_the_last_part_without_dot_git() {
        for (location, name) in [
            ("https://github.com/org/app.git", Some("app")),
            ("https://github.com/org/app/", Some("app")),
            ("git@github.com:app.git", Some("app")),
            ("git@github.com:org/my.lib.git", Some("my.lib")),
            ("file:///tmp/x/origin.git", Some("origin")),
            ("/src/web/", Some("web")),
            ("/", None),
        ] {
            let parsed = Location::parse(location).unwrap();
            assert_eq!(parsed.default_name().as_deref(), name, "{location}");
        }
    }
}
