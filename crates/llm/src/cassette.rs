//! Cassettes: recorded LLM exchanges, one JSON object per line, so a run can be replayed
//! exactly. A line is `{"digest": …, "request": ChatRequest, "response": ChatResponse}`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{ChatRequest, ChatResponse};

/// One recorded exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// [`ChatRequest::digest`] of the request.
    pub digest: String,
    /// The request as it was sent.
    pub request: ChatRequest,
    /// The answer.
    pub response: ChatResponse,
}

/// Errors reading or writing a cassette, naming the file (and line).
#[derive(Debug, thiserror::Error)]
pub enum CassetteError {
    /// The file could not be read or written.
    #[error("cassette {path}: {source}")]
    Io {
        /// The cassette.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not a recorded exchange.
    #[error("cassette {path}:{line}: {problem}")]
    Malformed {
        /// The cassette.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was found and what was expected.
        problem: String,
    },
}

/// Reads every exchange of the cassette at `path`, in recorded order. Blank lines are
/// skipped; any other line must be a complete exchange whose digest matches its request.
pub fn read_cassette(path: &Path) -> Result<Vec<Exchange>, CassetteError> {
    let io = |source| CassetteError::Io {
        path: path.to_owned(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut exchanges = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |problem: String| CassetteError::Malformed {
            path: path.to_owned(),
            line: index + 1,
            problem,
        };
        let exchange: Exchange = serde_json::from_str(&line).map_err(|e| {
            malformed(format!(
                "expected a JSON object with digest, request and response: {e}"
            ))
        })?;
        let digest = exchange.request.digest();
        if exchange.digest != digest {
            return Err(malformed(format!(
                "digest {} does not match its request (whose digest is {digest}); was the line edited?",
                exchange.digest
            )));
        }
        exchanges.push(exchange);
    }
    Ok(exchanges)
}

/// Appends exchanges to a cassette, one line each, written and synced as each call completes,
/// so a crash keeps everything recorded before it. Shared by every recording provider of a
/// run.
#[derive(Debug)]
pub struct CassetteWriter {
    path: PathBuf,
    file: Mutex<File>,
}

impl CassetteWriter {
    /// Opens (creating if needed) the cassette at `path` for appending.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, CassetteError> {
        let path = path.into();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| CassetteError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    /// The cassette's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one exchange as one line.
    pub fn append(&self, exchange: &Exchange) -> Result<(), CassetteError> {
        let io = |source| CassetteError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(exchange).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One write per line: appends from several processes never interleave within a line.
        file.write_all(&line).map_err(io)?;
        file.sync_data().map_err(io)
    }
}
