//! Per-ticket history, read from the log: every change of one ticket, in LSN
//! order, across every segment still on disk.
//!
//! The server thread does not read the log for a history query. It asks the
//! log for a [`LogReader`] of what is appended so far (for the local log, a
//! read-only handle on each segment and how much of it to read), between
//! batches, and sends that back; the client's own thread then reads. So a
//! history query costs the server a few `open` calls, and a long read holds
//! up no one else.
//!
//! The read checks every record (both checksums) and decodes only the records
//! that can concern the ticket ([`codec::peek_payload_ticket`] reads the
//! ticket id at the start of a payload), so it costs about one sequential read
//! of the log. With [`Retention::Compact`](crate::Retention::Compact), history
//! starts at the oldest remaining segment ([`History::first_lsn`]).

use std::ops::ControlFlow;
use std::path::PathBuf;

use crate::domain::change::Change;
use crate::domain::codec::{self, PayloadTicket};
use crate::domain::event::Event;
use crate::domain::ticket::TicketId;
use crate::error::{Damage, StorageError};
use crate::log::LogReader;

/// A ticket's history as the log still holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct History {
    /// The LSN of the oldest record still in the log. Changes before it were
    /// removed by compaction: 1 means nothing was.
    pub first_lsn: u64,
    /// Every change of the ticket from `first_lsn` on, in LSN order.
    pub events: Vec<Event>,
}

impl History {
    /// Whether the history goes back to the ticket's creation.
    pub fn is_complete(&self) -> bool {
        self.first_lsn == 1
            || self
                .events
                .first()
                .is_some_and(|event| matches!(event.change, Change::Created { .. }))
    }
}

/// Reads the history of ticket `id` from `log`.
pub(crate) fn read_history(
    mut log: Box<dyn LogReader>,
    id: TicketId,
) -> Result<History, StorageError> {
    let mut events = Vec::new();
    let first_lsn = log.first_lsn();
    log.read(first_lsn, &mut |record| {
        let wanted = match codec::peek_payload_ticket(record.payload) {
            PayloadTicket::One(ticket) => ticket == id.get(),
            PayloadTicket::Nothing => false,
            PayloadTicket::Decode => true,
        };
        if wanted {
            let changes =
                codec::decode_changes(record.payload).map_err(|reason| StorageError::Corrupt {
                    path: PathBuf::from(format!("log record {}", record.lsn)),
                    offset: record.place.offset,
                    damage: Damage::Undecodable(reason),
                })?;
            events.extend(
                (0u32..)
                    .zip(changes)
                    .filter(|(_, change)| change.ticket_id() == Some(id))
                    .filter_map(|(index, change)| Event::from_change(record.lsn, index, change)),
            );
        }
        Ok(ControlFlow::Continue(()))
    })?;
    debug_assert!(events.windows(2).all(|w| w[0].lsn < w[1].lsn));
    debug_assert!(events.windows(2).all(|w| w[0].version <= w[1].version));
    Ok(History { first_lsn, events })
}
