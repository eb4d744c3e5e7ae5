//! Changes: what the log records. A change holds everything replay needs —
//! the assigned id, the new version, the timestamp and the new field values —
//! so replaying it never consults the clock or anything outside the log.
//!
//! The shape of these types is part of the on-disk format (see
//! `docs/FORMAT.md`): variants and fields are encoded by position. Append new
//! variants at the end; any other change needs a format version bump.

use serde::{Deserialize, Serialize};

use crate::domain::ticket::{Status, TicketDescription, TicketId, TicketTitle};
use crate::domain::time::Timestamp;

/// One accepted change to the store, as written in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Change {
    /// A ticket was created, at version 1 and status [`Status::ToDo`].
    Created {
        /// The id the server minted.
        id: TicketId,
        /// Its title.
        title: TicketTitle,
        /// Its description.
        description: TicketDescription,
        /// When the server accepted the command.
        at: Timestamp,
    },
    /// A ticket was changed; `None` fields were left as they were.
    Updated {
        /// The ticket.
        id: TicketId,
        /// Its version after the change (one more than before).
        version: u64,
        /// The new title, if changed.
        title: Option<TicketTitle>,
        /// The new description, if changed.
        description: Option<TicketDescription>,
        /// The new status, if changed.
        status: Option<Status>,
        /// When the server accepted the command.
        at: Timestamp,
    },
    /// A ticket was deleted.
    Deleted {
        /// The ticket.
        id: TicketId,
        /// Its version when it was deleted.
        version: u64,
        /// When the server accepted the command.
        at: Timestamp,
    },
    /// Not a change but a checkpoint: the digest of the state after every
    /// record before this one. The server writes one every so many records
    /// ([`Options::digest_every`](crate::Options::digest_every)); replay
    /// recomputes the digest there and fails loudly if it differs, so a
    /// replay that drifted from what the server did cannot go unnoticed.
    Digest {
        /// The state digest (see `docs/FORMAT.md`, "State digest").
        digest: u64,
        /// The id the next created ticket gets, at that point.
        next_id: TicketId,
        /// Live tickets at that point.
        tickets: u64,
    },
}

impl Change {
    /// The ticket the change is about; `None` for a [`Change::Digest`].
    pub fn ticket_id(&self) -> Option<TicketId> {
        match self {
            Change::Created { id, .. }
            | Change::Updated { id, .. }
            | Change::Deleted { id, .. } => Some(*id),
            Change::Digest { .. } => None,
        }
    }

    /// When the server accepted the command behind the change; `None` for a
    /// [`Change::Digest`].
    pub fn at(&self) -> Option<Timestamp> {
        match self {
            Change::Created { at, .. }
            | Change::Updated { at, .. }
            | Change::Deleted { at, .. } => Some(*at),
            Change::Digest { .. } => None,
        }
    }

    /// A short name for the kind of change: `created`, `updated`, `deleted`
    /// or `digest`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Created { .. } => "created",
            Change::Updated { .. } => "updated",
            Change::Deleted { .. } => "deleted",
            Change::Digest { .. } => "digest",
        }
    }
}
