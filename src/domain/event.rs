//! Events: one change of one ticket, as its history reports it — the
//! [`Change`] the log recorded, together with where it sits in the log (its
//! LSN) and the version the ticket had after it.
//!
//! An `Event` is derived from the log on demand; it is never written anywhere
//! itself, so its shape is not part of the on-disk format.

use serde::Serialize;

use crate::domain::change::Change;
use crate::domain::ticket::TicketId;
use crate::domain::time::Timestamp;

/// One change of one ticket, with its place in the log.
///
/// Fields and methods share names, so `event.version` and
/// `event.version()` both work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The log sequence number of the record that carries the change.
    pub lsn: u64,
    /// The ticket's version after the change (1 for a creation; for a
    /// deletion, the version the ticket had when it was deleted).
    pub version: u64,
    /// When the server accepted the command.
    pub at: Timestamp,
    /// The ticket.
    pub ticket_id: TicketId,
    /// What changed: for an update, only the fields that were set.
    pub change: Change,
}

impl Event {
    /// The event for `change`, carried by the record at `lsn`; `None` for a
    /// change that is about no ticket (a digest record).
    pub fn from_change(lsn: u64, change: Change) -> Option<Event> {
        let (ticket_id, version, at) = match &change {
            Change::Created { id, at, .. } => (*id, 1, *at),
            Change::Updated {
                id, version, at, ..
            }
            | Change::Deleted { id, version, at } => (*id, *version, *at),
            Change::Digest { .. } => return None,
        };
        Some(Event {
            lsn,
            version,
            at,
            ticket_id,
            change,
        })
    }

    /// The log sequence number of the record that carries the change.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// The ticket's version after the change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When the server accepted the command.
    pub fn at(&self) -> Timestamp {
        self.at
    }

    /// The ticket the change is about.
    pub fn ticket_id(&self) -> TicketId {
        self.ticket_id
    }

    /// The change itself.
    pub fn change(&self) -> &Change {
        &self.change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_methods_agree() {
        let event = Event::from_change(
            7,
            Change::Deleted {
                id: TicketId::from(3),
                version: 4,
                at: Timestamp::from_unix_millis(10),
            },
        )
        .unwrap();
        assert_eq!((event.lsn, event.lsn()), (7, 7));
        assert_eq!((event.version, event.version()), (4, 4));
        assert_eq!(event.ticket_id(), TicketId::from(3));
        assert_eq!(event.at(), Timestamp::from_unix_millis(10));
    }
}
