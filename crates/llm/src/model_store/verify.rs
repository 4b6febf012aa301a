//! A file being fetched: written to a temporary file beside its destination, hashed as it is
//! written, and renamed into place only when its size and checksum are right. Dropped before
//! that, it leaves nothing behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::{Expected, ModelError};

pub(super) struct VerifiedFile {
    tmp: NamedTempFile,
    hasher: Sha256,
    written: u64,
    dest: PathBuf,
    expected: Option<Expected>,
    what: String,
}

impl VerifiedFile {
    /// Starts a file that will become `dest`; `expected` is checked as bytes arrive and at the
    /// end; `what` names the origin in errors.
    pub(super) fn create(
        dest: &Path,
        expected: Option<&Expected>,
        what: &str,
    ) -> Result<Self, ModelError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(dir)
            .map_err(|source| ModelError::Io {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self {
            tmp,
            hasher: Sha256::new(),
            written: 0,
            dest: dest.to_owned(),
            expected: expected.cloned(),
            what: what.to_owned(),
        })
    }

    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// Appends bytes.
    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), ModelError> {
        self.tmp.write_all(bytes).map_err(|source| ModelError::Io {
            path: self.tmp.path().to_owned(),
            source,
        })?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        match &self.expected {
            // Stop early rather than fill the disk with the wrong file.
            Some(expected) if self.written > expected.size => Err(ModelError::ChecksumMismatch {
                what: self.what.clone(),
                expected_size: expected.size,
                found_size: self.written,
                expected_sha256: expected.sha256.clone(),
                found_sha256: "(not computed: stopped at the excess byte)".to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Checks the bytes against the expected size and checksum (if any), makes them durable
    /// and renames the file into place. Returns the size.
    pub(super) fn finish(self) -> Result<u64, ModelError> {
        let sha = hex::encode(self.hasher.finalize());
        if let Some(expected) = &self.expected
            && (self.written != expected.size || sha != expected.sha256)
        {
            return Err(ModelError::ChecksumMismatch {
                what: self.what,
                expected_size: expected.size,
                found_size: self.written,
                expected_sha256: expected.sha256.clone(),
                found_sha256: sha,
            });
        }
        let tmp_path = self.tmp.path().to_owned();
        // Temporary files are private (0600); a model file is ordinary data.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(0o644)).map_err(
                |source| ModelError::Io {
                    path: tmp_path.clone(),
                    source,
                },
            )?;
        }
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|source| ModelError::Io {
                path: tmp_path.clone(),
                source,
            })?;
        self.tmp.persist(&self.dest).map_err(|err| ModelError::Io {
            path: self.dest.clone(),
            source: err.error,
        })?;
        if let Some(dir) = self.dest.parent() {
            // Make the rename itself durable; not every filesystem allows syncing a folder.
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(self.written)
    }
}
