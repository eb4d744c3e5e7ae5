//! Events: one change of one ticket, as its history reports it — the
//! [`Change`] the log recorded, together with where it sits in the log (its
//! LSN) and the version the ticket had after it.
//!
//! An `Event` is derived from the log on demand; it is never written anywhere
//! itself, so its shape is not part of the on-disk format.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::domain::change::Change;
use crate::domain::ticket::TicketId;
use crate::domain::time::Timestamp;

/// Where an event sits in the log: the record's LSN and the change's index
/// in that record (a create-many record carries several events under one
/// LSN). Positions are totally ordered; a subscription resumed after a
/// position delivers exactly the events after it. Written `"<lsn>.<index>"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    /// The log sequence number of the record.
    pub lsn: u64,
    /// The change's index within the record, from 0.
    pub index: u32,
}

impl Position {
    /// The position just before every event of the record at `lsn`.
    pub fn before_lsn(lsn: u64) -> Option<Position> {
        lsn.checked_sub(1)
            .filter(|&prev| prev > 0)
            .map(|prev| Position {
                lsn: prev,
                index: u32::MAX,
            })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.lsn, self.index)
    }
}

/// A position that is not `"<lsn>.<index>"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("position {input:?} is not valid: use <lsn>.<index>, e.g. 12.0")]
pub struct PositionError {
    /// What was given.
    pub input: String,
}

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Position, PositionError> {
        let error = || PositionError {
            input: s.chars().take(64).collect(),
        };
        let (lsn, index) = s.split_once('.').ok_or_else(error)?;
        let digits =
            |d: &str| !d.is_empty() && d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(lsn) || !digits(index) {
            return Err(error());
        }
        Ok(Position {
            lsn: lsn.parse().map_err(|_| error())?,
            index: index.parse().map_err(|_| error())?,
        })
    }
}

/// One change of one ticket, with its place in the log.
///
/// Fields and methods share names, so `event.version` and
/// `event.version()` both work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The log sequence number of the record that carries the change.
    pub lsn: u64,
    /// The change's index within its record (0 but in a create-many).
    pub index: u32,
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
    /// The event for `change`, the `index`th change of the record at `lsn`;
    /// `None` for a change that is about no ticket (a digest record).
    pub fn from_change(lsn: u64, index: u32, change: Change) -> Option<Event> {
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
            index,
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

    /// Where the event sits in the log; a subscription resumed after it
    /// delivers exactly the events that follow.
    pub fn position(&self) -> Position {
        Position {
            lsn: self.lsn,
            index: self.index,
        }
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
            0,
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

    #[test]
    fn positions_print_parse_and_order() {
        let p = Position { lsn: 12, index: 3 };
        assert_eq!(p.to_string(), "12.3");
        assert_eq!("12.3".parse::<Position>(), Ok(p));
        for bad in [
            "",
            "12",
            "12.",
            ".3",
            "a.b",
            "1.2.3",
            "-1.0",
            "99999999999999999999999.0",
            "1.99999999999",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
        assert!(Position { lsn: 1, index: 9 } < Position { lsn: 2, index: 0 });
        assert_eq!(Position::before_lsn(0), None);
        assert_eq!(Position::before_lsn(1), None);
        assert_eq!(
            Position::before_lsn(5),
            Some(Position {
                lsn: 4,
                index: u32::MAX
            })
        );
    }
}
