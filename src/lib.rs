#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
#[cfg(feature = "arbitrary")]
mod arbitrary;
mod domain;
mod engine;
mod error;
pub mod log;
mod options;
mod progress;
#[doc(hidden)]
pub mod rng;
mod snapshot;
mod state;
pub mod storage;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

pub use api::client::{Client, PendingReply};
pub use api::inspect;
pub use api::store::Store;
pub use api::subscription::{NextEvent, Subscription};
pub use domain::change::Change;
pub use domain::command::{CREATE_MANY_MAX, Command, ListQuery, Stats};
pub use domain::event::{Event, Position, PositionError};
pub use domain::rejection::TicketError;
pub use domain::ticket::{
    DESCRIPTION_BYTES_MAX, Status, TITLE_BYTES_MAX, Ticket, TicketDescription, TicketDraft,
    TicketId, TicketPatch, TicketTitle,
};
pub use domain::time::Timestamp;
pub use engine::history::History;
pub use engine::request::ClientError;
pub use engine::restore::RecoveryReport;
pub use engine::retention::CompactInfo;
pub use error::{Damage, OpenError, StorageError};
pub use log::Recovery;
pub use options::{
    BATCH_COMMANDS_MAX_DEFAULT, CHANNEL_CAPACITY_DEFAULT, DIGEST_EVERY_DEFAULT, Durability,
    IN_DOUBT_DEADLINE_DEFAULT, JETSTREAM_MESSAGE_BYTES_DEFAULT, JetStreamOptions, LogBackend,
    Options, PREALLOCATE_BYTES_MAX, Retention, SEGMENT_BYTES_DEFAULT, SNAPSHOT_EVERY_DEFAULT,
    SNAPSHOT_WRITE_BYTES_PER_S_DEFAULT,
};
pub use progress::{Progress, ProgressStep};
pub use snapshot::{RejectedSnapshot, SnapshotInfo};

/// Hooks for the criterion benchmarks in `benches/`; not part of the API.
#[doc(hidden)]
pub mod bench_support {
    use crate::domain::change::Change;
    use crate::state::State;

    /// Applies `changes` in order to an empty state, as replay does; returns
    /// the number of live tickets.
    pub fn apply_all(changes: Vec<Change>) -> Result<u64, String> {
        let mut state = State::default();
        for change in changes {
            state.apply(change).map_err(|e| e.to_string())?;
        }
        Ok(state.stats().tickets())
    }
}
