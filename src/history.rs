//! Per-ticket history, read from the log: every change of one ticket, in LSN
//! order, across every segment still on disk.
//!
//! The server thread does not read the log for a history query. It opens a
//! read-only handle on each segment and notes how many bytes of the current
//! one are written (a [`HistorySource`]), all between batches, and sends
//! that back; the client's own thread then reads the segments. So a history
//! query costs the server a few `open` calls, and a long read holds up no one
//! else. Handles stay valid if compaction removes a file meanwhile.
//!
//! The read checks every record (both checksums) and decodes only the records
//! that can concern the ticket ([`codec::peek_payload_ticket`] reads the
//! ticket id at the start of a payload), so it costs about one sequential read
//! of the log. With [`Retention::Compact`](crate::Retention::Compact), history
//! starts at the oldest remaining segment ([`History::first_lsn`]).

use std::path::PathBuf;

use crate::change::Change;
use crate::codec::{self, PayloadTicket};
use crate::error::{Damage, StorageError};
use crate::event::Event;
use crate::storage::StorageFile;
use crate::ticket::TicketId;
use crate::wal::reader::LogReader;
use crate::wal::record::{FILE_HEADER_LEN, FileHeader};

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

/// One segment, opened for a history read.
#[derive(Debug)]
pub(crate) struct SegmentView {
    pub first_lsn: u64,
    pub path: PathBuf,
    pub file: Box<dyn StorageFile>,
    /// Bytes to read: the segment as it was when the query was answered.
    pub len: u64,
}

/// What the server hands a history query: every segment, oldest first.
#[derive(Debug)]
pub(crate) struct HistorySource {
    pub first_lsn: u64,
    pub segments: Vec<SegmentView>,
}

/// Reads the history of ticket `id` from `source`.
pub(crate) fn read_history(source: HistorySource, id: TicketId) -> Result<History, StorageError> {
    let mut events = Vec::new();
    let mut next_lsn = source.first_lsn;
    for mut segment in source.segments {
        let path = segment.path;
        let corrupt = |offset: u64, damage: Damage| StorageError::Corrupt {
            path: path.clone(),
            offset,
            damage,
        };
        if segment.first_lsn != next_lsn {
            return Err(corrupt(
                0,
                Damage::MissingRecords {
                    first: next_lsn,
                    last: segment.first_lsn.saturating_sub(1),
                },
            ));
        }
        let mut reader = LogReader::with_len(segment.file.as_mut(), segment.len)
            .map_err(|e| StorageError::io("read", &path, e))?;
        let header = reader
            .bytes(0, FILE_HEADER_LEN)
            .map_err(|e| StorageError::io("read", &path, e))?
            .ok_or(corrupt(
                0,
                Damage::Truncated {
                    len: FILE_HEADER_LEN as u64,
                },
            ))?;
        let header = FileHeader::decode(
            header
                .try_into()
                .expect("bytes() returns exactly the length asked for"),
        )
        .map_err(|damage| corrupt(0, damage))?;
        if header.first_lsn != segment.first_lsn {
            return Err(corrupt(
                0,
                Damage::Misnamed {
                    named: segment.first_lsn,
                    header: header.first_lsn,
                },
            ));
        }
        let mut offset = FILE_HEADER_LEN as u64;
        while offset < reader.file_len() {
            let record = reader
                .record_at(offset)
                .map_err(|e| StorageError::io("read", &path, e))?
                .map_err(|damage| corrupt(offset, damage))?;
            let record_len = record.header.record_len();
            let wanted = match codec::peek_payload_ticket(record.payload) {
                PayloadTicket::One(ticket) => ticket == id.get(),
                PayloadTicket::Nothing => false,
                PayloadTicket::Decode => true,
            };
            if wanted {
                let changes = codec::decode_changes(record.payload)
                    .map_err(|reason| corrupt(offset, Damage::Undecodable(reason)))?;
                events.extend(
                    changes
                        .into_iter()
                        .filter(|change| change.ticket_id() == Some(id))
                        .filter_map(|change| Event::from_change(next_lsn, change)),
                );
            }
            next_lsn += 1;
            offset += record_len;
        }
    }
    debug_assert!(events.windows(2).all(|w| w[0].lsn < w[1].lsn));
    debug_assert!(events.windows(2).all(|w| w[0].version <= w[1].version));
    Ok(History {
        first_lsn: source.first_lsn,
        events,
    })
}
