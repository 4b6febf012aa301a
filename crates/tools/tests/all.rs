//! The tools crate's integration tests, one binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod builtin;
mod mcp;
mod run_tests;
