//! The write-ahead log: record framing ([`record`]), the writer the server
//! thread appends through, the reader, and recovery.
//!
//! The public part is for tools: [`read_log`] checks and lists a log without
//! changing it (what `ticketlog log verify` and `log dump` use), and
//! [`repair_log`] cuts a damaged log offline (`ticketlog log repair`).

pub(crate) mod reader;
pub mod record;
pub(crate) mod recovery;
mod repair;
pub(crate) mod segment;
pub(crate) mod writer;

use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

pub use recovery::{LOG_FILE_NAME, LogEntry, LogScan, Recovery, TornTail};
pub use repair::{Repair, RepairAction, RepairReport, repair_log};
pub use segment::{SEGMENT_EXTENSION, parse_segment_file_name, segment_file_name};

use crate::change::Change;
use crate::codec;
use crate::error::{Damage, OpenError, StorageError};
use crate::snapshot::{self, SnapshotInfo};
use crate::state::State;
use crate::storage::{FileSystem, OpenMode, Storage};
use crate::store::{LOCK_FILE_NAME, lock_dir};
use crate::ticket::TicketId;

/// What [`read_log`] found: the scans, the snapshots, and the state the log
/// replays to.
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
    /// The snapshot replay started from, when compaction removed the start
    /// of the log (`None`: replay started from an empty state at LSN 1).
    pub base_snapshot: Option<SnapshotInfo>,
    /// Every snapshot file, oldest first, and what checking it found.
    pub snapshots: Vec<SnapshotCheck>,
    /// The id the next created ticket would get.
    pub next_id: TicketId,
    /// Live tickets after replay.
    pub tickets: u64,
}

/// What [`read_log`] found when it checked one snapshot file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotCheck {
    /// The snapshot file.
    pub path: PathBuf,
    /// The LSN it is named for.
    pub lsn: u64,
    /// `Ok` if it passed its own checks and, where the log still holds the
    /// records up to its LSN, its digest equals the digest replay reached
    /// there; otherwise where it is damaged and how.
    pub result: Result<(), (u64, Damage)>,
}

/// Reads and checks the log in `dir` without changing anything on disk,
/// calling `on_entry` for each good record in order. See [`read_log_range`].
pub fn read_log(dir: &Path, on_entry: impl FnMut(&LogEntry)) -> Result<LogReport, OpenError> {
    read_log_range(dir, 1..=u64::MAX, on_entry)
}

/// Reads and checks the log in `dir` without changing anything on disk,
/// calling `on_entry` for each good record whose LSN is in `lsns`, in order.
///
/// Every record is checked and replayed into a scratch state (from LSN 1, or
/// from the newest good snapshot if compaction removed the start of the
/// log), so a log whose records contradict each other — or a digest record
/// — is reported as corrupt just as opening it would. Every snapshot is
/// checked too, and compared with the replayed state at its LSN. A torn tail
/// is reported in [`LogScan::torn_tail`], not cut off. If a store has the
/// directory open, this fails with [`OpenError::AlreadyOpen`] rather than
/// read a log that is being written.
pub fn read_log_range(
    dir: &Path,
    lsns: RangeInclusive<u64>,
    on_entry: impl FnMut(&LogEntry),
) -> Result<LogReport, OpenError> {
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
    read_log_locked(&storage, dir, lsns, on_entry)
}

/// [`read_log_range`] for a caller that already holds the directory (or
/// knows no store can have it open).
pub(crate) fn read_log_locked(
    storage: &FileSystem,
    dir: &Path,
    lsns: RangeInclusive<u64>,
    mut on_entry: impl FnMut(&LogEntry),
) -> Result<LogReport, OpenError> {
    let storage = *storage;
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
    let first_lsn = first.first_lsn;
    let (snapshot_files, _) = snapshot::list_snapshots(&storage, dir)
        .map_err(|e| OpenError::io("list directory", dir, e))?;

    // Check every snapshot on its own; keep the newest good one that can
    // stand in for the records compaction removed.
    let mut checks = Vec::with_capacity(snapshot_files.len());
    let mut base: Option<(State, SnapshotInfo)> = None;
    let mut snapshot_digests = Vec::new();
    for (lsn, path) in &snapshot_files {
        let result = snapshot::load_snapshot(&storage, path, *lsn, &mut |_, _| {});
        checks.push(SnapshotCheck {
            path: path.clone(),
            lsn: *lsn,
            result: result.as_ref().map(|_| ()).map_err(Clone::clone),
        });
        if let Ok((state, info)) = result {
            snapshot_digests.push((info.lsn, info.digest, checks.len() - 1));
            if first_lsn > 1 && info.lsn + 1 >= first_lsn {
                base = Some((state, info));
            }
        }
    }
    let (mut state, base_snapshot) = if first_lsn == 1 {
        (State::default(), None)
    } else if let Some((state, info)) = base {
        (state, Some(info))
    } else {
        let damaged = checks
            .iter()
            .rev()
            .find_map(|c| c.result.clone().err().map(|d| (c, d)));
        return Err(match damaged {
            Some((check, (offset, damage))) => OpenError::Corrupt {
                file: check.path.clone(),
                offset,
                damage,
            },
            None => OpenError::Corrupt {
                file: dir.join(LOG_FILE_NAME),
                offset: 0,
                damage: Damage::MissingRecords {
                    first: 1,
                    last: first_lsn - 1,
                },
            },
        });
    };
    let base_lsn = base_snapshot.as_ref().map_or(0, |info| info.lsn);

    let (scans, _) = recovery::scan_segments(
        &storage,
        dir,
        &segments,
        0,
        0,
        OpenMode::ReadOnly,
        |entry| {
            if entry.lsn > base_lsn {
                // Cloned: this is the inspection path, and the entry goes to
                // `on_entry` only once it has replayed cleanly.
                for change in &entry.changes {
                    state
                        .apply(change.clone())
                        .map_err(|e| e.into_damage(entry.lsn))?;
                }
                // A snapshot taken at this LSN must describe this state.
                for (lsn, digest, check) in &snapshot_digests {
                    if *lsn == entry.lsn && *digest != state.digest() {
                        checks[*check].result = Err((
                            0,
                            Damage::DigestMismatch {
                                lsn: *lsn,
                                expected: *digest,
                                found: state.digest(),
                            },
                        ));
                    }
                }
            }
            if lsns.contains(&entry.lsn) {
                on_entry(&entry);
            }
            Ok(())
        },
    )?;
    let scan = scans
        .last()
        .expect("scan_segments scans at least one segment")
        .clone();
    if scan.next_lsn - 1 < base_lsn {
        return Err(OpenError::Corrupt {
            file: scan.path.clone(),
            offset: scan.valid_bytes,
            damage: Damage::SnapshotBeyondLog {
                snapshot_lsn: base_lsn,
                log_end_lsn: scan.next_lsn - 1,
            },
        });
    }
    Ok(LogReport {
        records: scans.iter().map(|scan| scan.records).sum(),
        bytes: scans.iter().map(|scan| scan.file_bytes).sum(),
        scan,
        segments: scans,
        base_snapshot,
        snapshots: checks,
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
