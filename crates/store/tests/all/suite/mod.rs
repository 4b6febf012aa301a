//! The store suite: every case runs against each backend (see the macro in `main.rs`).

mod conflicts;
mod log;
mod projection;
mod query;
mod removal;
mod repositories;
mod sessions;
mod tenants;
mod usage;
mod wait;

use std::sync::Arc;

use botarmy_protocol::{Event, RunId};
use botarmy_store::Store;

pub use conflicts::*;
pub use log::*;
pub use projection::*;
pub use query::*;
pub use removal::*;
pub use repositories::*;
pub use sessions::*;
pub use tenants::*;
pub use usage::*;
pub use wait::*;

/// The run's whole log as (sequence number, event).
pub(crate) async fn log(store: &Arc<dyn Store>, run: RunId) -> Vec<(u64, Event)> {
    store
        .read_events(run, 0, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.event))
        .collect()
}
