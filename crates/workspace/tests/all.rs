//! Worktrees, setup detection and path confinement against real git repositories and real
//! folders made by the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod paths;
mod sandbox;
mod worktrees;
