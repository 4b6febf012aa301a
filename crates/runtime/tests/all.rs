#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The runtime against a real SQLite store and an instant in-process provider.

mod support;

mod budget;
mod limits;
mod start;
mod timeouts;
mod tools;
