#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "arbitrary")]
mod arbitrary;
mod change;
mod client;
mod codec;
mod command;
mod compaction;
mod digest;
mod error;
mod event;
mod history;
mod options;
mod progress;
mod restore;
#[doc(hidden)]
pub mod rng;
mod server;
mod snapshot;
mod state;
pub mod storage;
mod store;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
mod ticket;
mod time;
pub mod wal;

pub use change::Change;
pub use client::{Client, PendingReply};
pub use command::{CREATE_MANY_MAX, Command, ListQuery, Stats};
pub use compaction::CompactInfo;
pub use error::{ClientError, Damage, OpenError, StorageError, TicketError};
pub use event::Event;
pub use history::History;
pub use options::{
    BATCH_COMMANDS_MAX_DEFAULT, CHANNEL_CAPACITY_DEFAULT, DIGEST_EVERY_DEFAULT, Durability,
    Options, Retention, SEGMENT_BYTES_DEFAULT, SNAPSHOT_EVERY_DEFAULT,
    SNAPSHOT_WRITE_BYTES_PER_S_DEFAULT,
};
pub use progress::{Progress, ProgressStep};
pub use snapshot::{RejectedSnapshot, SnapshotInfo};
pub use store::{RecoveryReport, Store};
pub use ticket::{
    DESCRIPTION_BYTES_MAX, Status, TITLE_BYTES_MAX, Ticket, TicketDescription, TicketDraft,
    TicketId, TicketPatch, TicketTitle,
};
pub use time::Timestamp;
pub use wal::Recovery;

/// Hooks for the criterion benchmarks in `benches/`; not part of the API.
#[doc(hidden)]
pub mod bench_support {
    use crate::change::Change;
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
