//! Recovery: reading a log from its start, replaying each record, and
//! deciding what any damage means.
//!
//! The rules (see `docs/FORMAT.md`, "Recovery"):
//! - A record that fails a framing check (header checksum, length bound,
//!   running past the end, payload checksum) is *damage at its offset*.
//! - Damage is a **torn tail** when no later valid record proves that the
//!   damaged bytes had been synced; recovery then truncates the file back to
//!   the end of the last good record and reports the bytes dropped.
//! - Otherwise it is **mid-log corruption**: open fails naming the file and
//!   offset, and nothing on disk is changed.
//! - A record that passes its checksums but does not decode, or contradicts
//!   the replayed state, is corruption: its bytes are exactly what was
//!   written, so cutting it would lose data.

use std::io;
use std::path::{Path, PathBuf};

use crate::change::Change;
use crate::codec;
use crate::error::{Damage, OpenError};
use crate::storage::{OpenMode, Storage, StorageFile};
use crate::wal::reader::LogReader;
use crate::wal::record::{FILE_HEADER_LEN, FileHeader};
use crate::wal::writer::LogWriter;

/// The log file inside a data directory. The number is the log sequence
/// number of its first record, so later formats can split the log into
/// segments named the same way.
pub const LOG_FILE_NAME: &str = "00000000000000000001.wal";

/// One record as read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its log sequence number (1 for the first record).
    pub lsn: u64,
    /// Byte offset of the record in the file.
    pub offset: u64,
    /// Bytes the record takes on disk, header included.
    pub len: u64,
    /// The changes it carries, applied together.
    pub changes: Vec<Change>,
}

/// A damaged or incomplete end of the log, which opening the store cuts off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the damage starts: the end of the last good record.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// What was wrong at `offset`.
    pub damage: Damage,
}

/// What a full read of the log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogScan {
    /// The log file.
    pub path: PathBuf,
    /// Good records.
    pub records: u64,
    /// The file's length.
    pub file_bytes: u64,
    /// Where the good part ends (header and good records).
    pub valid_bytes: u64,
    /// The LSN the next record would get.
    pub next_lsn: u64,
    /// A torn tail, if there is one.
    pub torn_tail: Option<TornTail>,
}

/// Reads the whole log at `path`, calling `on_entry` for each good record in
/// order. `on_entry` may reject an entry (it contradicts the state built so
/// far), which makes the log corrupt at that record.
///
/// A missing or header-only-and-torn file reads as an empty log. Never writes.
pub(crate) fn scan_log(
    file: &mut dyn StorageFile,
    path: &Path,
    mut on_entry: impl FnMut(LogEntry) -> Result<(), String>,
) -> Result<LogScan, OpenError> {
    let io_error = |e: io::Error| OpenError::io("read", path, e);
    let corrupt = |offset: u64, damage: Damage| OpenError::Corrupt {
        file: path.to_path_buf(),
        offset,
        damage,
    };
    let mut reader = LogReader::new(file).map_err(io_error)?;
    let file_bytes = reader.file_len();
    let mut scan = LogScan {
        path: path.to_path_buf(),
        records: 0,
        file_bytes,
        valid_bytes: 0,
        next_lsn: 1,
        torn_tail: None,
    };

    // The file header. One that is incomplete, or damaged with nothing after
    // it, is a creation that never completed: no record can have been written
    // (records are appended only after the header is durable).
    let header = match reader.bytes(0, FILE_HEADER_LEN).map_err(io_error)? {
        None => Err(Damage::Truncated {
            len: FILE_HEADER_LEN as u64,
        }),
        Some(bytes) => FileHeader::decode(
            bytes
                .try_into()
                .expect("bytes() returns exactly the length asked for"),
        ),
    };
    let header = match header {
        Ok(header) => header,
        Err(damage @ Damage::UnsupportedVersion { .. }) => return Err(corrupt(0, damage)),
        Err(damage) if file_bytes <= FILE_HEADER_LEN as u64 => {
            if file_bytes > 0 {
                scan.torn_tail = Some(TornTail {
                    offset: 0,
                    bytes: file_bytes,
                    damage,
                });
            }
            return Ok(scan);
        }
        Err(damage) => return Err(corrupt(0, damage)),
    };
    scan.next_lsn = header.first_lsn;
    let mut offset = FILE_HEADER_LEN as u64;

    while offset < file_bytes {
        let raw = match reader.record_at(offset).map_err(io_error)? {
            Ok(raw) => raw,
            Err(damage) => {
                return match reader.find_durable_record_after(offset).map_err(io_error)? {
                    Some(next_valid) => Err(corrupt(
                        offset,
                        Damage::MidLog {
                            first: Box::new(damage),
                            next_valid,
                        },
                    )),
                    None => {
                        scan.valid_bytes = offset;
                        scan.torn_tail = Some(TornTail {
                            offset,
                            bytes: file_bytes - offset,
                            damage,
                        });
                        Ok(scan)
                    }
                };
            }
        };
        let header = raw.header;
        let changes = codec::decode_changes(raw.payload)
            .map_err(|e| corrupt(offset, Damage::Undecodable(e)))?;
        on_entry(LogEntry {
            lsn: scan.next_lsn,
            offset,
            len: header.record_len(),
            changes,
        })
        .map_err(|e| corrupt(offset, Damage::Inconsistent(e)))?;
        scan.records += 1;
        scan.next_lsn += 1;
        offset += header.record_len();
    }
    debug_assert_eq!(
        offset, file_bytes,
        "records end exactly at the end of the file"
    );
    scan.valid_bytes = offset;
    Ok(scan)
}

/// Opens (or creates) the log in `dir` for writing, replaying every record
/// through `on_entry`, and cuts off a torn tail. Returns the writer, ready to
/// append after the last good record, and what the scan found.
pub(crate) fn open_log(
    storage: &dyn Storage,
    dir: &Path,
    on_entry: impl FnMut(LogEntry) -> Result<(), String>,
) -> Result<(LogWriter, LogScan), OpenError> {
    let path = dir.join(LOG_FILE_NAME);
    let existed = storage
        .exists(&path)
        .map_err(|e| OpenError::io("stat", &path, e))?;
    let mut file = storage
        .open_file(&path, OpenMode::CreateReadWrite)
        .map_err(|e| OpenError::io("open", &path, e))?;
    if !existed {
        // The new file's directory entry must be durable before anything in
        // it is acknowledged.
        storage
            .sync_dir(dir)
            .map_err(|e| OpenError::io("fsync directory", dir, e))?;
    }
    let scan = scan_log(file.as_mut(), &path, on_entry)?;

    if let Some(torn) = &scan.torn_tail {
        debug_assert_eq!(torn.offset, scan.valid_bytes);
        file.set_len(scan.valid_bytes)
            .map_err(|e| OpenError::io("truncate", &path, e))?;
    }
    let mut len = scan.valid_bytes;
    if len == 0 {
        let header = FileHeader { first_lsn: 1 }.encode();
        file.write_all_at(0, &header)
            .map_err(|e| OpenError::io("write", &path, e))?;
        len = header.len() as u64;
    }
    // Make what survived (a crash may have left it only in the page cache)
    // durable before the writer's first record claims it is: that record's
    // `unsynced_before` of 0 tells recovery everything before it was synced.
    file.sync_data()
        .map_err(|e| OpenError::io("fdatasync", &path, e))?;
    let writer = LogWriter::new(file, path, len, scan.next_lsn, scan.records);
    Ok((writer, scan))
}
