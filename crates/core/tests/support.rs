//! Shared helpers.

use std::path::PathBuf;

use botarmy_core::method::{Method, MethodSource};

/// The BMAD fixtures, read in place (never copied into the repo).
pub fn fixtures_dir() -> PathBuf {
    botarmy_testkit::fixtures::bmad_v4()
}

/// The builtin method's folder in the repo.
pub fn builtin_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/method"))
}

pub fn fixtures() -> Method {
    match Method::load(&fixtures_dir()) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

pub fn builtin() -> Method {
    match Method::builtin() {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// A method from in-memory files.
pub fn method_of(files: &[(&str, &str)]) -> Result<Method, botarmy_core::method::LoadErrors> {
    Method::from_files(
        MethodSource::Builtin,
        files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), t.as_bytes().to_vec()))
            .collect(),
    )
}
