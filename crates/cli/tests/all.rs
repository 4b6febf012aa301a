//! End-to-end tests of the `botarmy` binary: real processes, real SQLite files, the real
//! embedded model or recorded cassettes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod check;
mod conflicts_e2e;
mod crash;
mod gates_e2e;
mod providers_e2e;
mod replay;
mod repos;
mod support;
mod tokens;
mod tools_e2e;
mod usage;
