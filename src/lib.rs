#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "arbitrary")]
mod arbitrary;
mod client;
mod codec;
mod command;
mod error;
mod event;
#[cfg(feature = "arbitrary")]
#[doc(hidden)]
pub mod fuzzing;
mod options;
mod server;
mod state;
pub mod storage;
mod store;
mod ticket;
mod time;
pub mod wal;

pub use client::{Client, PendingReply};
pub use command::{Command, ListQuery, Stats};
pub use error::{ClientError, Damage, OpenError, StorageError, TicketError};
pub use event::Event;
pub use options::{BATCH_COMMANDS_MAX_DEFAULT, CHANNEL_CAPACITY_DEFAULT, Options};
pub use store::{RecoveryReport, Store};
pub use ticket::{
    DESCRIPTION_BYTES_MAX, Status, TITLE_BYTES_MAX, Ticket, TicketDescription, TicketDraft,
    TicketId, TicketPatch, TicketTitle,
};
pub use time::Timestamp;
