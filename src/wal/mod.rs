//! The write-ahead log: record framing ([`record`]), the writer the server
//! thread appends through, the reader, and recovery.
//!
//! The public part is read-only: [`read_log`] checks and lists a log without
//! changing it (what `ticketlog log verify` and `log dump` use).

pub(crate) mod reader;
pub mod record;
pub(crate) mod recovery;
pub(crate) mod writer;

use std::path::Path;

pub use recovery::{LOG_FILE_NAME, LogEntry, LogScan, TornTail};

use crate::codec;
use crate::error::{Damage, OpenError, StorageError};
use crate::event::Event;
use crate::state::State;
use crate::storage::{FileSystem, OpenMode, Storage};
use crate::store::LOCK_FILE_NAME;
use crate::ticket::TicketId;

/// What [`read_log`] found: the scan, and the state the log replays to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogReport {
    /// Records, bytes, and any torn tail.
    pub scan: LogScan,
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
        match storage.try_lock(&lock_path) {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => {
                return Err(OpenError::AlreadyOpen {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(OpenError::io("lock", &lock_path, e)),
        }
    } else {
        None
    };
    let path = dir.join(LOG_FILE_NAME);
    let mut file = storage
        .open_file(&path, OpenMode::ReadOnly)
        .map_err(|e| OpenError::io("open", &path, e))?;
    let mut state = State::default();
    let scan = recovery::scan_log(file.as_mut(), &path, |entry| {
        for event in &entry.events {
            state.apply(event)?;
        }
        on_entry(&entry);
        Ok(())
    })?;
    Ok(LogReport {
        scan,
        next_id: state.next_id(),
        tickets: state.stats().tickets(),
    })
}

/// Appends one framed record carrying `events` to `out`, exactly as the
/// writer frames it (for tools, tests and fuzzers that build logs by hand).
pub fn frame_record(
    out: &mut Vec<u8>,
    lsn: u64,
    unsynced_before: u32,
    events: &[Event],
) -> Result<(), StorageError> {
    let mut payload = Vec::new();
    encode_payload(events, &mut payload)?;
    record::encode_record(out, lsn, unsynced_before, &payload);
    Ok(())
}

/// One record decoded by [`decode_record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Its header, after every framing check passed.
    pub header: record::RecordHeader,
    /// The events its payload carries.
    pub events: Vec<Event>,
}

/// Decodes the record at the start of `bytes` with the checks replay applies
/// to each record (header checksum, length bound, the record fitting in
/// `bytes`, payload checksum, payload decoding); bytes after the record are
/// not looked at. Sequence numbers and consistency with a state are not
/// checked: they depend on the records before it.
///
/// The inverse of [`frame_record`], for tools, tests and fuzzers.
pub fn decode_record(bytes: &[u8]) -> Result<DecodedRecord, Damage> {
    let truncated = |len: u64| Damage::Truncated { len };
    let header_bytes: &[u8; record::RECORD_HEADER_LEN] = bytes
        .get(..record::RECORD_HEADER_LEN)
        .and_then(|header| header.try_into().ok())
        .ok_or(truncated(record::RECORD_HEADER_LEN as u64))?;
    let header = record::RecordHeader::decode(header_bytes)?;
    // The header check bounded the length by RECORD_PAYLOAD_BYTES_MAX.
    let payload = usize::try_from(header.record_len())
        .ok()
        .and_then(|record_len| bytes.get(record::RECORD_HEADER_LEN..record_len))
        .ok_or(truncated(header.record_len()))?;
    header.verify_payload(header_bytes, payload)?;
    let events = codec::decode_events(payload).map_err(Damage::Undecodable)?;
    Ok(DecodedRecord { header, events })
}

/// Encodes `events` into `payload` (cleared first), refusing a payload over
/// [`record::RECORD_PAYLOAD_BYTES_MAX`].
pub(crate) fn encode_payload(events: &[Event], payload: &mut Vec<u8>) -> Result<(), StorageError> {
    payload.clear();
    // The codec's size limit is the record limit, so its only failure on
    // well-formed events is a payload that would be too large.
    codec::encode_events(events, payload).map_err(|_| StorageError::RecordTooLarge {
        len: payload.len().max(record::RECORD_PAYLOAD_BYTES_MAX + 1),
        max: record::RECORD_PAYLOAD_BYTES_MAX,
    })?;
    debug_assert!(payload.len() <= record::RECORD_PAYLOAD_BYTES_MAX);
    Ok(())
}
