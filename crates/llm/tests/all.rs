//! The crate's one integration-test binary. `local_model` needs the real model file
//! (`BOTARMY_TEST_MODEL`); filter it with `cargo test -p botarmy-llm -- local_model`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cloud;
mod local_model;
mod model_store;
mod replay;
mod router;
