//! Reading a GGUF file's header and metadata, enough to tell a model file from anything else
//! before handing it to llama.cpp, and to describe it in `botarmy model list`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

/// What a GGUF file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufInfo {
    /// Format version (2 or 3).
    pub version: u32,
    /// Number of tensors.
    pub tensors: u64,
    /// `general.architecture` (for example `llama`).
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `<architecture>.context_length`: the context the model was trained with.
    pub context_length: Option<u64>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// Why a file is not a usable GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not GGUF.
    #[error("not a GGUF file: {0}")]
    Format(String),
}

const MAGIC: &[u8; 4] = b"GGUF";
/// Strings longer than this are taken as corruption rather than allocated.
const MAX_STRING: u64 = 64 << 20;
/// Metadata entries beyond this count are taken as corruption.
const MAX_KV: u64 = 1 << 20;

/// Reads the header and metadata of the GGUF file at `path` (not the tensors).
pub fn read_info(path: &Path) -> Result<GgufInfo, GgufError> {
    let mut r = Reader {
        inner: BufReader::new(File::open(path)?),
    };
    let mut magic = [0u8; 4];
    r.inner.read_exact(&mut magic).map_err(eof_is_format)?;
    if &magic != MAGIC {
        return Err(GgufError::Format(format!(
            "expected the magic bytes \"GGUF\" at its start, found {magic:02x?}"
        )));
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Format(format!(
            "unsupported GGUF version {version} (expected 2 or 3)"
        )));
    }
    let tensors = r.u64()?;
    let kv_count = r.u64()?;
    if kv_count > MAX_KV {
        return Err(GgufError::Format(format!(
            "implausible metadata count {kv_count}"
        )));
    }
    let mut info = GgufInfo {
        version,
        tensors,
        architecture: None,
        name: None,
        context_length: None,
        chat_template: None,
    };
    let mut context_lengths: Vec<(String, u64)> = Vec::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let kind = r.u32()?;
        match (key.as_str(), kind) {
            ("general.architecture", STRING) => info.architecture = Some(r.string()?),
            ("general.name", STRING) => info.name = Some(r.string()?),
            ("tokenizer.chat_template", STRING) => info.chat_template = Some(r.string()?),
            (k, UINT32 | UINT64) if k.ends_with(".context_length") => {
                let value = if kind == UINT32 {
                    u64::from(r.u32()?)
                } else {
                    r.u64()?
                };
                context_lengths.push((k.trim_end_matches(".context_length").to_owned(), value));
            }
            _ => r.skip_value(kind)?,
        }
    }
    info.context_length = context_lengths
        .into_iter()
        .find(|(arch, _)| Some(arch) == info.architecture.as_ref())
        .map(|(_, n)| n);
    Ok(info)
}

const UINT32: u32 = 4;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const UINT64: u32 = 10;

/// Size in bytes of a fixed-size GGUF value type.
fn fixed_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1), // u8, i8, bool
        2 | 3 => Some(2),     // u16, i16
        4..=6 => Some(4),     // u32, i32, f32
        10..=12 => Some(8),   // u64, i64, f64
        _ => None,
    }
}

fn eof_is_format(err: io::Error) -> GgufError {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        GgufError::Format("the file ends inside its header".to_owned())
    } else {
        GgufError::Io(err)
    }
}

struct Reader<R> {
    inner: R,
}

impl<R: Read + Seek> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(eof_is_format)?;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(GgufError::Format(format!(
                "implausible string length {len}"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).map_err(eof_is_format)?;
        String::from_utf8(buf)
            .map_err(|_| GgufError::Format("a metadata string is not UTF-8".to_owned()))
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        let n =
            i64::try_from(n).map_err(|_| GgufError::Format("implausible value size".to_owned()))?;
        self.inner.seek_relative(n)?;
        Ok(())
    }

    fn skip_value(&mut self, kind: u32) -> Result<(), GgufError> {
        if let Some(size) = fixed_size(kind) {
            return self.skip(size);
        }
        match kind {
            STRING => {
                let len = self.u64()?;
                if len > MAX_STRING {
                    return Err(GgufError::Format(format!(
                        "implausible string length {len}"
                    )));
                }
                self.skip(len)
            }
            ARRAY => {
                let item = self.u32()?;
                let count = self.u64()?;
                if let Some(size) = fixed_size(item) {
                    let total = size
                        .checked_mul(count)
                        .ok_or_else(|| GgufError::Format("implausible array length".to_owned()))?;
                    self.skip(total)
                } else if item == STRING {
                    for _ in 0..count {
                        self.skip_value(STRING)?;
                    }
                    Ok(())
                } else {
                    Err(GgufError::Format(format!(
                        "unsupported array item type {item}"
                    )))
                }
            }
            other => Err(GgufError::Format(format!(
                "unknown metadata value type {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Writes a minimal GGUF file: header and string metadata, no tensors.
    pub(crate) fn write_minimal(path: &Path, metadata: &[(&str, &str)]) -> io::Result<()> {
        fn put_str(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata {
            put_str(&mut out, key);
            out.extend_from_slice(&STRING.to_le_bytes());
            put_str(&mut out, value);
        }
        std::fs::write(path, out)
    }

    #[test]
    fn minimal_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        write_minimal(
            &path,
            &[("general.architecture", "llama"), ("general.name", "tiny")],
        )
        .unwrap();
        let info = read_info(&path).unwrap();
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.name.as_deref(), Some("tiny"));
        assert_eq!(info.tensors, 0);
        assert_eq!(info.chat_template, None);
    }

    #[test]
    fn other_bytes_are_rejected_with_what_was_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"PK\x03\x04 not a model").unwrap();
        let err = read_info(&path).unwrap_err().to_string();
        assert!(err.contains("magic bytes"), "{err}");

        std::fs::write(&path, b"GGUF\x03\x00").unwrap();
        let err = read_info(&path).unwrap_err().to_string();
        assert!(err.contains("ends inside its header"), "{err}");
    }

    #[test]
    fn truncated_metadata_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        write_minimal(&path, &[("general.name", "tiny")]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        assert!(matches!(read_info(&path), Err(GgufError::Format(_))));
    }
}
