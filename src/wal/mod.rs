//! The write-ahead log: record framing ([`record`]), the writer the server
//! thread appends through, the reader, and recovery.
//!
//! The public part is read-only: [`read_log`] checks and lists a log without
//! changing it (what `ticketlog log verify` and `log dump` use).

pub(crate) mod reader;
pub mod record;
pub(crate) mod recovery;
pub(crate) mod segment;
pub(crate) mod writer;

use std::io;
use std::path::Path;

pub use recovery::{LOG_FILE_NAME, LogEntry, LogScan, TornTail};
pub use segment::{SEGMENT_EXTENSION, parse_segment_file_name, segment_file_name};

use crate::change::Change;
use crate::codec;
use crate::error::{Damage, OpenError, StorageError};
use crate::state::State;
use crate::storage::{FileSystem, OpenMode, Storage};
use crate::store::{LOCK_FILE_NAME, lock_dir};
use crate::ticket::TicketId;

/// What [`read_log`] found: the scans, and the state the log replays to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogReport {
    /// The last segment: where the log ends, and any torn tail.
    pub scan: LogScan,
    /// Every segment, in LSN order (the last is [`Self::scan`]).
    pub segments: Vec<LogScan>,
    /// Good records in all segments.
    pub records: u64,
    /// Bytes in all segments.
    pub bytes: u64,
    /// The id the next created ticket would get.
    pub next_id: TicketId,
    /// Live tickets after replay.
    pub tickets: u64,
}

/// Reads and checks the log in `dir` without changing anything on disk,
/// calling `on_entry` for each good record in order.
///
/// Every record is replayed into a scratch state, so a log whose records
/// contradict each other is reported as corrupt just as opening it would.
/// A torn tail is reported in [`LogScan::torn_tail`], not cut off. If a store
/// has the directory open, this fails with [`OpenError::AlreadyOpen`] rather
/// than read a log that is being written.
pub fn read_log(dir: &Path, mut on_entry: impl FnMut(&LogEntry)) -> Result<LogReport, OpenError> {
    let storage = FileSystem;
    let lock_path = dir.join(LOCK_FILE_NAME);
    // Lock only if a store has ever run here: creating the lock file would
    // change the directory, and this must change nothing.
    let _lock = if storage
        .exists(&lock_path)
        .map_err(|e| OpenError::io("stat", &lock_path, e))?
    {
        Some(lock_dir(&storage, dir)?)
    } else {
        None
    };
    let segments = segment::list_segments(&storage, dir)
        .map_err(|e| OpenError::io("list directory", dir, e))?;
    let Some(first) = segments.first() else {
        let path = dir.join(LOG_FILE_NAME);
        return Err(OpenError::io(
            "open",
            &path,
            io::Error::new(
                io::ErrorKind::NotFound,
                "the directory holds no log segment",
            ),
        ));
    };
    if first.first_lsn != 1 {
        return Err(OpenError::Corrupt {
            file: dir.join(LOG_FILE_NAME),
            offset: 0,
            damage: Damage::MissingRecords {
                first: 1,
                last: first.first_lsn - 1,
            },
        });
    }
    let mut state = State::default();
    let (scans, _) = recovery::scan_segments(
        &storage,
        dir,
        &segments,
        0,
        0,
        OpenMode::ReadOnly,
        |entry| {
            // Cloned: this is the inspection path, and the entry goes to
            // `on_entry` only once it has replayed cleanly.
            for change in &entry.changes {
                state.apply(change.clone()).map_err(Damage::Inconsistent)?;
            }
            on_entry(&entry);
            Ok(())
        },
    )?;
    let scan = scans
        .last()
        .expect("scan_segments scans at least one segment")
        .clone();
    Ok(LogReport {
        records: scans.iter().map(|scan| scan.records).sum(),
        bytes: scans.iter().map(|scan| scan.file_bytes).sum(),
        scan,
        segments: scans,
        next_id: state.next_id(),
        tickets: state.stats().tickets(),
    })
}

/// Appends one framed record carrying `changes` to `out`, exactly as the
/// writer frames it (for tools, tests and fuzzers that build logs by hand).
pub fn frame_record(
    out: &mut Vec<u8>,
    unsynced_before: u32,
    changes: &[Change],
) -> Result<(), StorageError> {
    let mut payload = Vec::new();
    encode_payload(changes, &mut payload)?;
    record::encode_record(out, unsynced_before, &payload);
    Ok(())
}

/// Checks and decodes the framed record at the start of `bytes`, as recovery
/// does: header checksum, length bound, the record fitting in `bytes`, payload
/// checksum, then the payload codec. Returns the header and the changes; the
/// record occupies `header.record_len()` bytes.
pub fn decode_record(bytes: &[u8]) -> Result<(record::RecordHeader, Vec<Change>), Damage> {
    let Some(header_bytes) = bytes.get(..record::RECORD_HEADER_LEN) else {
        return Err(Damage::Truncated {
            len: record::RECORD_HEADER_LEN as u64,
        });
    };
    let header_bytes: &[u8; record::RECORD_HEADER_LEN] = header_bytes
        .try_into()
        .expect("the slice is exactly RECORD_HEADER_LEN long");
    let header = record::RecordHeader::decode(header_bytes)?;
    let payload = bytes
        .get(record::RECORD_HEADER_LEN..)
        .and_then(|rest| rest.get(..header.payload_len as usize))
        .ok_or(Damage::Truncated {
            len: header.record_len(),
        })?;
    header.verify_payload(header_bytes, payload)?;
    let changes = codec::decode_changes(payload).map_err(Damage::Undecodable)?;
    Ok((header, changes))
}

/// Encodes `changes` into `payload` (cleared first), refusing a payload over
/// [`record::RECORD_PAYLOAD_BYTES_MAX`].
pub(crate) fn encode_payload(
    changes: &[Change],
    payload: &mut Vec<u8>,
) -> Result<(), StorageError> {
    payload.clear();
    // The codec's size limit is the record limit, so its only failure on
    // well-formed changes is a payload that would be too large.
    codec::encode_changes(changes, payload).map_err(|_| StorageError::RecordTooLarge {
        len: payload.len().max(record::RECORD_PAYLOAD_BYTES_MAX + 1),
        max: record::RECORD_PAYLOAD_BYTES_MAX,
    })?;
    debug_assert!(payload.len() <= record::RECORD_PAYLOAD_BYTES_MAX);
    Ok(())
}
