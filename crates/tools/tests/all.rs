//! The tools crate's integration tests, one binary.

mod builtin;
