//! Integration tests of botarmy-core (one binary, one module per concern).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod builtin;
mod check;
mod context;
mod document;
mod fixtures;
mod loader;
mod plan;
mod prompt;
mod render;
mod workflow_shapes;
