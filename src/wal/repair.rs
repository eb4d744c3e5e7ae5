//! Repairing a damaged log by cutting it, offline (`ticketlog log repair`).
//!
//! A torn tail is cut exactly as opening the store would cut it. Mid-log
//! corruption — damage that a later durable record proves was synced — is
//! cut only when the caller asks for it ([`Repair::DropAfterCorruption`]):
//! the log is cut at the first damaged record, losing every record from
//! there on, acknowledged ones included. Either way the bytes cut are first
//! saved, and synced, to a `*.damaged` file beside the log, so a repair loses
//! nothing that could not be put back by hand.
//!
//! A log of a format version this build does not know is never changed.
//! Repair takes the directory lock, so it refuses a log a store has open.

use std::io;
use std::path::{Path, PathBuf};

use crate::change::Change;
use crate::error::{Damage, OpenError};
use crate::storage::{FileSystem, OpenMode, Storage, StorageFile, read_exact_at};
use crate::store::lock_dir;
use crate::wal::reader::LogReader;
use crate::wal::recovery::LOG_FILE_NAME;
use crate::wal::segment;

/// Bytes copied to the `*.damaged` file at a time.
const COPY_CHUNK_BYTES: usize = 4 << 20;
/// Numbered names tried for the `*.damaged` file before giving up.
const SAVED_NAME_ATTEMPTS_MAX: u32 = 1000;

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

/// Checks the log in `dir` and cuts what `repair` allows; see the module
/// docs. Only the last segment can be cut: damage in an earlier one (which
/// was sealed and synced before the next was created) is returned as the
/// [`OpenError::Corrupt`] it is. Fails with [`OpenError::AlreadyOpen`] if a
/// store has the directory open, and with [`OpenError::Corrupt`] (changing
/// nothing) for a log whose format version this build cannot read.
pub fn repair_log(dir: &Path, repair: Repair) -> Result<RepairReport, OpenError> {
    let storage = FileSystem;
    // Checked first, so that a directory with no log gets no lock file either.
    let segments = segment::list_segments(&storage, dir)
        .map_err(|e| OpenError::io("list directory", dir, e))?;
    let Some(last) = segments.last() else {
        return Err(OpenError::io(
            "open",
            dir.join(LOG_FILE_NAME),
            io::Error::new(io::ErrorKind::NotFound, "no log to repair"),
        ));
    };
    let path = last.path.clone();
    let _lock = lock_dir(&storage, dir)?;
    let mut records_kept = 0;
    let mut last_id_kept = 0;
    let read = super::read_log_locked(&storage, dir, 1..=u64::MAX, |entry| {
        records_kept += 1;
        for change in &entry.changes {
            if let Change::Created { id, .. } = change {
                last_id_kept = id.get();
            }
        }
    });
    let report = |action| RepairReport {
        path: path.clone(),
        action,
        records_kept,
        last_id_kept,
    };
    match read {
        Ok(log) => {
            let Some(torn) = log.scan.torn_tail else {
                return Ok(report(RepairAction::Clean));
            };
            debug_assert_eq!(log.scan.path, path, "only the last segment has a torn tail");
            let mut file = storage
                .open_file(&path, OpenMode::ReadWrite)
                .map_err(|e| OpenError::io("open", &path, e))?;
            let saved_to = cut(&storage, file.as_mut(), dir, &path, torn.offset)?;
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
        }) if file == path && !matches!(damage, Damage::UnsupportedVersion { .. }) => {
            let mut file = storage
                .open_file(&path, OpenMode::ReadWrite)
                .map_err(|e| OpenError::io("open", &path, e))?;
            let file_len = file.size().map_err(|e| OpenError::io("stat", &path, e))?;
            let bytes = file_len.saturating_sub(offset);
            let records_dropped =
                records_from(file.as_mut(), offset).map_err(|e| OpenError::io("read", &path, e))?;
            if repair != Repair::DropAfterCorruption {
                return Ok(report(RepairAction::Refused {
                    offset,
                    bytes,
                    damage,
                    records_dropped,
                }));
            }
            let saved_to = cut(&storage, file.as_mut(), dir, &path, offset)?;
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

/// Records from `offset` to the end of the file: the one at `offset` (intact
/// or not) and every intact record after it.
fn records_from(file: &mut dyn StorageFile, offset: u64) -> io::Result<u64> {
    let mut reader = LogReader::new(file)?;
    let end = reader.file_len();
    if offset >= end {
        return Ok(0);
    }
    let mut records = 1;
    let mut at = match reader.record_at(offset)? {
        Ok(record) => offset + record.header.record_len(),
        Err(_) => offset + 1,
    };
    while at < end {
        at += match reader.record_at(at)? {
            Ok(record) => {
                records += 1;
                record.header.record_len()
            }
            Err(_) => 1,
        };
    }
    Ok(records)
}

/// Saves the bytes from `offset` to the end of the log to a new `*.damaged`
/// file (synced, with its directory entry), then truncates the log to
/// `offset` and syncs it. Returns where the bytes went.
fn cut(
    storage: &dyn Storage,
    log: &mut dyn StorageFile,
    dir: &Path,
    path: &Path,
    offset: u64,
) -> Result<PathBuf, OpenError> {
    let len = log.size().map_err(|e| OpenError::io("stat", path, e))?;
    if offset >= len {
        // The scan saw bytes here a moment ago: someone else changed the file.
        return Err(OpenError::io(
            "truncate",
            path,
            io::Error::other(format!(
                "the log shrank to {len} bytes while being repaired (cut at {offset})"
            )),
        ));
    }
    let saved_to = free_name(storage, dir, path, offset)?;
    let mut saved = storage
        .open_file(&saved_to, OpenMode::CreateReadWrite)
        .map_err(|e| OpenError::io("create", &saved_to, e))?;
    let mut buf = vec![0u8; COPY_CHUNK_BYTES.min((len - offset) as usize)];
    let mut at = offset;
    while at < len {
        // Bounded by the buffer, which is at most COPY_CHUNK_BYTES.
        let n = buf.len().min((len - at) as usize);
        read_exact_at(log, at, &mut buf[..n]).map_err(|e| OpenError::io("read", path, e))?;
        saved
            .write_all_at(at - offset, &buf[..n])
            .map_err(|e| OpenError::io("write", &saved_to, e))?;
        at += n as u64;
    }
    saved
        .sync_data()
        .map_err(|e| OpenError::io("fdatasync", &saved_to, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| OpenError::io("fsync directory", dir, e))?;
    // Only now that the bytes are safe elsewhere is the log cut.
    log.set_len(offset)
        .map_err(|e| OpenError::io("truncate", path, e))?;
    log.sync_data()
        .map_err(|e| OpenError::io("fdatasync", path, e))?;
    Ok(saved_to)
}

/// `<segment>.<offset>.damaged`, or with `.1`, `.2`, … added if that exists.
fn free_name(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    offset: u64,
) -> Result<PathBuf, OpenError> {
    let segment_name = path
        .file_name()
        .map_or_else(|| LOG_FILE_NAME.into(), |name| name.to_string_lossy());
    let base = format!("{segment_name}.{offset}.damaged");
    for attempt in 0..SAVED_NAME_ATTEMPTS_MAX {
        let name = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}.{attempt}")
        };
        let candidate = dir.join(name);
        if !storage
            .exists(&candidate)
            .map_err(|e| OpenError::io("stat", &candidate, e))?
        {
            return Ok(candidate);
        }
    }
    Err(OpenError::io(
        "create",
        dir.join(base),
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{SAVED_NAME_ATTEMPTS_MAX} earlier saved copies are in the way"),
        ),
    ))
}
