//! Inspecting a store offline: [`read_log`] checks and lists a log without
//! changing it (what `ticketlog log verify` and `log dump` use), and
//! [`repair_log`] cuts a damaged log (`ticketlog log repair`).
//!
//! Both run the ordinary open path — snapshot plus replay, the code
//! [`Store::open`](crate::Store::open) runs — with the log opened read-only:
//! nothing is cut, created or synced. [`read_log_with`] runs it on any
//! [`Storage`], [`SimStorage`](crate::storage::SimStorage) included.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::engine::restore::{LogEntry, SnapshotCheck};
/// The local log's file names and framing, for tools and tests that look at
/// the files themselves.
pub use crate::log::local::{
    LOG_FILE_NAME, SEGMENT_EXTENSION, parse_segment_file_name, record, segment_file_name,
};
pub use crate::log::{LogScan, TornTail};

use crate::domain::change::Change;
use crate::domain::codec;
use crate::domain::ticket::TicketId;
use crate::engine::restore::{self, Purpose};
use crate::error::{Damage, OpenError, StorageError};
use crate::log::local::{self, LocalOpening, LocalOptions, SEGMENT_BYTES_ANY};
use crate::log::{Access, Recovery};
use crate::snapshot::{self, SnapshotInfo};
use crate::storage::{FileSystem, Storage};

/// What [`read_log`] found: the scans, the snapshots, and the state the log
/// replays to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogReport {
    /// The last segment: where the log ends, and any torn tail.
    pub scan: LogScan,
    /// Every segment read, in LSN order (the last is [`Self::scan`]).
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
    /// Another process held the store open while it was read
    /// ([`read_log_live`]): the report covers the log as it stood then, and
    /// a torn tail is a write in progress rather than damage.
    pub live: bool,
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
    read_log_with(Arc::new(FileSystem), dir, lsns, on_entry)
}

/// [`read_log_range`] on any storage.
pub fn read_log_with(
    storage: Arc<dyn Storage>,
    dir: &Path,
    lsns: RangeInclusive<u64>,
    mut on_entry: impl FnMut(&LogEntry),
) -> Result<LogReport, OpenError> {
    let opening = LocalOpening::open(Arc::clone(&storage), dir, read_only())?;
    inspect(&storage, dir, opening, lsns, &mut on_entry)
}

/// Like [`read_log_range`], but a store that another process holds open is
/// read anyway, without its lock ([`LogReport::live`] says so): only the
/// whole, checksummed records there now, nothing cut or written.
pub fn read_log_live(
    dir: &Path,
    lsns: RangeInclusive<u64>,
    mut on_entry: impl FnMut(&LogEntry),
) -> Result<LogReport, OpenError> {
    let storage: Arc<dyn Storage> = Arc::new(FileSystem);
    let (opening, live) = LocalOpening::open_live(Arc::clone(&storage), dir, read_only())?;
    let mut report = inspect(&storage, dir, opening, lsns, &mut on_entry)?;
    report.live = live;
    Ok(report)
}

fn read_only() -> LocalOptions {
    LocalOptions {
        segment_bytes: SEGMENT_BYTES_ANY,
        recovery: Recovery::TruncateTornTail,
        access: Access::ReadOnly,
        preallocate_bytes: 0,
        seal_payload: codec::EMPTY_PAYLOAD,
    }
}

/// The open path, read-only, over `opening`.
fn inspect(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    opening: LocalOpening,
    lsns: RangeInclusive<u64>,
    on_entry: &mut dyn FnMut(&LogEntry),
) -> Result<LogReport, OpenError> {
    let mut in_range = |entry: &LogEntry| {
        if lsns.contains(&entry.lsn) {
            on_entry(entry);
        }
    };
    let restored = restore::restore(
        storage,
        dir,
        Box::new(opening),
        Purpose::Inspect {
            on_entry: &mut in_range,
        },
    )?;
    let scans = restored.replayed.scans;
    let scan = scans
        .last()
        .expect("a local open scans at least one segment (with none, it fails NotFound)")
        .clone();
    let stats = restored.state.stats();
    Ok(LogReport {
        records: scans.iter().map(|scan| scan.records).sum(),
        bytes: scans.iter().map(|scan| scan.file_bytes).sum(),
        scan,
        segments: scans,
        base_snapshot: restored.report.snapshot,
        snapshots: restored.checks,
        next_id: stats.next_id,
        tickets: stats.tickets(),
        live: false,
    })
}

/// What [`repair_log`] may cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Repair {
    /// Cut a torn tail (what opening the store would do); refuse mid-log
    /// corruption.
    TornTailOnly,
    /// Also cut the log at the first damaged record when later records prove
    /// the damaged bytes had been durable, dropping every record from there.
    DropAfterCorruption,
}

/// What [`repair_log`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairAction {
    /// The log was clean; nothing was changed.
    Clean,
    /// A torn tail was cut.
    CutTornTail {
        /// Where the cut is: the end of the last good record.
        offset: u64,
        /// Bytes cut.
        bytes: u64,
        /// What was wrong at `offset`.
        damage: Damage,
        /// Where the cut bytes were saved.
        saved_to: PathBuf,
    },
    /// Mid-log corruption was cut, with every record after it.
    DroppedAfterCorruption {
        /// Where the cut is: the start of the first damaged record.
        offset: u64,
        /// Bytes cut.
        bytes: u64,
        /// What was wrong at `offset`.
        damage: Damage,
        /// Records lost: the damaged one and every intact one after it.
        records_dropped: u64,
        /// Where the cut bytes were saved.
        saved_to: PathBuf,
    },
    /// Mid-log corruption, not cut because [`Repair::DropAfterCorruption`]
    /// was not given; nothing was changed.
    Refused {
        /// Where the first damaged record starts.
        offset: u64,
        /// Bytes from there to the end of the file.
        bytes: u64,
        /// What is wrong at `offset`.
        damage: Damage,
        /// Records a repair with [`Repair::DropAfterCorruption`] would drop.
        records_dropped: u64,
    },
}

/// The outcome of [`repair_log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairReport {
    /// The log file.
    pub path: PathBuf,
    /// What was done.
    pub action: RepairAction,
    /// Good records before the cut (or in the whole log, if nothing was cut).
    pub records_kept: u64,
    /// The largest ticket id the kept records create (0 if none).
    pub last_id_kept: u64,
}

/// Checks the log in `dir` and cuts what `repair` allows. A torn tail is cut
/// exactly as opening the store would cut it. Mid-log corruption — damage
/// that a later durable record proves was synced — is cut only when the
/// caller asks for it ([`Repair::DropAfterCorruption`]): the log is cut at
/// the first damaged record, losing every record from there on,
/// acknowledged ones included. Either way the bytes cut are first saved, and
/// synced, to a `*.damaged` file beside the log.
///
/// Only the last segment can be cut: damage in an earlier one (which was
/// sealed and synced before the next was created) is returned as the
/// [`OpenError::Corrupt`] it is. A cut that would drop records a snapshot
/// covers is refused with `Damage::SnapshotBeyondLog` naming that snapshot
/// (move it aside by hand to accept the loss). Fails with
/// [`OpenError::AlreadyOpen`] if a store has the directory open, and with
/// [`OpenError::Corrupt`] (changing nothing) for a log whose format version
/// this build cannot read.
pub fn repair_log(dir: &Path, repair: Repair) -> Result<RepairReport, OpenError> {
    let storage: Arc<dyn Storage> = Arc::new(FileSystem);
    // Checked first, so that a directory with no log gets no lock file either.
    let Some((path, first_lsn)) = local::last_segment(storage.as_ref(), dir)? else {
        return Err(OpenError::io(
            "open",
            dir.join(LOG_FILE_NAME),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no log to repair"),
        ));
    };
    // Held from before the check until after the cut.
    let _lock = local::lock_directory(storage.as_ref(), dir)?;
    let opening = LocalOpening::open_under_callers_lock(Arc::clone(&storage), dir, read_only())?;
    let mut records_kept = 0;
    let mut last_id_kept = 0;
    let mut last_lsn_kept = first_lsn - 1;
    let read = {
        let mut on_entry = |entry: &LogEntry| {
            records_kept += 1;
            last_lsn_kept = entry.lsn;
            for change in &entry.changes {
                if let Change::Created { id, .. } = change {
                    last_id_kept = id.get();
                }
            }
        };
        restore::restore(
            &storage,
            dir,
            Box::new(opening),
            Purpose::Inspect {
                on_entry: &mut on_entry,
            },
        )
    };
    let report = |action| RepairReport {
        path: path.clone(),
        action,
        records_kept,
        last_id_kept,
    };
    match read {
        Ok(restored) => {
            let Some(torn) = restored.replayed.torn_tail().cloned() else {
                return Ok(report(RepairAction::Clean));
            };
            debug_assert_eq!(
                restored.replayed.scans.last().map(|s| &s.path),
                Some(&path),
                "only the last segment has a torn tail"
            );
            drop(restored);
            let saved_to = local::repair::cut_segment(storage.as_ref(), dir, &path, torn.offset)?;
            Ok(report(RepairAction::CutTornTail {
                offset: torn.offset,
                bytes: torn.bytes,
                damage: torn.damage,
                saved_to,
            }))
        }
        Err(OpenError::Corrupt {
            file,
            offset,
            damage,
        }) if file == path
            && !matches!(
                damage,
                Damage::UnsupportedVersion { .. } | Damage::SnapshotBeyondLog { .. }
            ) =>
        {
            let (file_len, records_dropped) =
                local::repair::records_after(storage.as_ref(), &path, offset)?;
            let bytes = file_len.saturating_sub(offset);
            if repair != Repair::DropAfterCorruption {
                return Ok(report(RepairAction::Refused {
                    offset,
                    bytes,
                    damage,
                    records_dropped,
                }));
            }
            // A snapshot covering a record the cut drops would make the store
            // refuse to open (it describes a state the log no longer reaches):
            // refuse, and leave the decision about that snapshot to a person.
            let (snapshots, _) = snapshot::list_snapshots(storage.as_ref(), dir)
                .map_err(|e| OpenError::io("list directory", dir, e))?;
            if let Some((lsn, snapshot)) = snapshots.iter().find(|(lsn, _)| *lsn > last_lsn_kept) {
                return Err(OpenError::Corrupt {
                    file: snapshot.clone(),
                    offset: 0,
                    damage: Damage::SnapshotBeyondLog {
                        snapshot_lsn: *lsn,
                        log_end_lsn: last_lsn_kept,
                    },
                });
            }
            let saved_to = local::repair::cut_segment(storage.as_ref(), dir, &path, offset)?;
            Ok(report(RepairAction::DroppedAfterCorruption {
                offset,
                bytes,
                damage,
                records_dropped,
                saved_to,
            }))
        }
        Err(other) => Err(other),
    }
}

/// Appends one framed record carrying `changes` to `out`, exactly as the
/// store frames it (for tools, tests and fuzzers that build logs by hand).
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
fn encode_payload(changes: &[Change], payload: &mut Vec<u8>) -> Result<(), StorageError> {
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
