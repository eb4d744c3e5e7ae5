//! Retention and compaction: once a snapshot is durable, removing what it
//! made unnecessary — older snapshots, and (when compacting) the log segments
//! it wholly covers.
//!
//! Runs on the server thread, between batches, after the snapshot's rename
//! and directory sync have returned. The log gives up what the snapshot
//! covers ([`CommandLog::release_through`]: oldest first, each removal
//! durable before the next, so after a crash at any step what is left is
//! still one contiguous run that reaches past the snapshot); then older
//! snapshot files go, each removal durable before the next. A failure stops
//! the compaction and is returned; it does not poison the log.
//!
//! Architecture invariant: nothing is removed unless a durable snapshot
//! covers it — a segment only if its last record is at or before the newest
//! snapshot's LSN, and never the segment being written.

use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::log::{CommandLog, ImageStore};
use crate::progress::{ProgressFn, ProgressStep};
use crate::snapshot::SnapshotInfo;
use crate::storage::Storage;

/// What [`Store::compact`](crate::Store::compact) did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CompactInfo {
    /// The snapshot everything removed was covered by (taken for the
    /// compaction, or the newest one if nothing was written since).
    pub snapshot: SnapshotInfo,
    /// Log segment files removed.
    pub segments_removed: u64,
    /// Older snapshot files removed.
    pub snapshots_removed: u64,
    /// Bytes of the files removed.
    pub bytes_reclaimed: u64,
    /// The LSN of the oldest record still in the log: history starts here.
    pub history_starts_at_lsn: u64,
    /// Bytes left in the log's segments.
    pub log_bytes: u64,
}

/// A snapshot file in the data directory, as the server keeps track of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DiskSnapshot {
    pub lsn: u64,
    pub path: PathBuf,
    pub bytes: u64,
    /// Opening found it damaged; it is never a fallback.
    pub known_bad: bool,
}

/// After `newest` became durable: removes the snapshots retention no longer
/// needs — all but `newest` and the one before it, or all but `newest` when
/// `compact` — and, when `compact`, every closed segment whose records are
/// all at or before `newest.lsn`.
///
/// `snapshots` lists every snapshot file on disk, oldest first, `newest`
/// included; it is updated as files go.
///
/// With `images` (a log that keeps snapshots itself, shared with other
/// hosts) the list is read from there first, and what is kept is counted
/// from the newest snapshot any host stored, not from `newest`: a host
/// behind the others never removes a newer snapshot than its own.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_retention(
    log: &mut dyn CommandLog,
    storage: &dyn Storage,
    dir: &Path,
    images: Option<&dyn ImageStore>,
    snapshots: &mut Vec<DiskSnapshot>,
    newest: &SnapshotInfo,
    compact: bool,
    progress: Option<&ProgressFn>,
) -> Result<CompactInfo, StorageError> {
    if let Some(images) = images {
        let stored = images.list()?;
        let known_bad: Vec<u64> = snapshots
            .iter()
            .filter(|s| s.known_bad)
            .map(|s| s.lsn)
            .collect();
        *snapshots = stored
            .into_iter()
            .map(|image| DiskSnapshot {
                lsn: image.mark.lsn,
                path: image.place,
                bytes: image.bytes,
                known_bad: known_bad.contains(&image.mark.lsn),
            })
            .collect();
        if !snapshots.iter().any(|s| s.lsn == newest.lsn) {
            // Removed by another host meanwhile (it had newer ones).
            snapshots.push(DiskSnapshot {
                lsn: newest.lsn,
                path: newest.path.clone(),
                bytes: newest.bytes,
                known_bad: false,
            });
            snapshots.sort_by_key(|s| s.lsn);
        }
    }
    debug_assert!(snapshots.windows(2).all(|w| w[0].lsn < w[1].lsn));
    // Not necessarily the last: a damaged snapshot named beyond the log's end
    // (rejected at open) sorts after it.
    debug_assert!(
        snapshots
            .iter()
            .any(|s| s.lsn == newest.lsn && !s.known_bad)
    );
    debug_assert!(
        newest.lsn < log.next_lsn(),
        "a snapshot never covers unwritten records"
    );
    let mut info = CompactInfo {
        snapshot: newest.clone(),
        segments_removed: 0,
        snapshots_removed: 0,
        bytes_reclaimed: 0,
        history_starts_at_lsn: log.first_lsn(),
        log_bytes: log.size().bytes,
    };
    let keep_snapshots = if compact { 1 } else { 2 };
    let keep_from = match images {
        Some(_) => snapshots
            .iter()
            .filter(|s| !s.known_bad)
            .map(|s| s.lsn)
            .max()
            .unwrap_or(newest.lsn)
            .max(newest.lsn),
        None => newest.lsn,
    };
    let mut removable_snapshots = removable_snapshots(snapshots, keep_from, keep_snapshots);
    if images.is_some() {
        // Only older ones: this host may have found a newer one unreadable
        // for a passing reason (a timeout) that another host reads fine.
        removable_snapshots.retain(|&lsn| lsn < keep_from);
    }
    let releasable = if compact {
        log.releasable_through(newest.lsn)
    } else {
        0
    };
    let total = releasable + removable_snapshots.len() as u64;
    let mut done = 0;
    if compact {
        let released = log.release_through(newest.lsn, &mut || {
            done += 1;
            if let Some(progress) = progress {
                progress.report(ProgressStep::Compact, done, total);
            }
        })?;
        info.segments_removed = released.files;
        info.bytes_reclaimed += released.bytes;
    }
    for lsn in removable_snapshots {
        let index = snapshots
            .iter()
            .position(|s| s.lsn == lsn)
            .expect("removable_snapshots picks from `snapshots`");
        let snapshot = snapshots[index].clone();
        match images {
            Some(images) => images.remove(snapshot.lsn)?,
            None => remove(storage, dir, &snapshot.path)?,
        }
        snapshots.remove(index);
        info.snapshots_removed += 1;
        info.bytes_reclaimed += snapshot.bytes;
        done += 1;
        if let Some(progress) = progress {
            progress.report(ProgressStep::Compact, done, total);
        }
    }
    info.history_starts_at_lsn = log.first_lsn();
    info.log_bytes = log.size().bytes;
    Ok(info)
}

/// The LSNs of the snapshots to remove so that `keep` remain: the newest
/// (at `newest_lsn`, never removed), then (if `keep` is 2) the newest older
/// one not known to be damaged. Damaged ones always go — including one named
/// beyond the log's end, which sorts after the newest.
fn removable_snapshots(snapshots: &[DiskSnapshot], newest_lsn: u64, keep: usize) -> Vec<u64> {
    let fallback = if keep >= 2 {
        snapshots
            .iter()
            .rev()
            .find(|s| s.lsn < newest_lsn && !s.known_bad)
            .map(|s| s.lsn)
    } else {
        None
    };
    snapshots
        .iter()
        .map(|s| s.lsn)
        .filter(|&lsn| lsn != newest_lsn && Some(lsn) != fallback)
        .collect()
}

/// Removes one file and makes the removal durable before the next one.
fn remove(storage: &dyn Storage, dir: &Path, path: &Path) -> Result<(), StorageError> {
    storage
        .remove_file(path)
        .map_err(|e| StorageError::io("remove", path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(lsn: u64, known_bad: bool) -> DiskSnapshot {
        DiskSnapshot {
            lsn,
            path: PathBuf::from(format!("{lsn}")),
            bytes: 1,
            known_bad,
        }
    }

    #[test]
    fn retention_keeps_the_newest_and_one_good_fallback() {
        let all = vec![
            snap(1, false),
            snap(5, false),
            snap(7, true),
            snap(9, false),
        ];
        assert_eq!(removable_snapshots(&all, 9, 2), vec![1, 7]);
        assert_eq!(removable_snapshots(&all, 9, 1), vec![1, 5, 7]);
        assert_eq!(removable_snapshots(&all[..1], 1, 2), Vec::<u64>::new());
        assert_eq!(removable_snapshots(&[], 1, 1), Vec::<u64>::new());
    }

    #[test]
    fn the_newest_stays_even_when_a_damaged_one_sorts_after_it() {
        let all = vec![snap(3, false), snap(9, false), snap(999, true)];
        assert_eq!(removable_snapshots(&all, 9, 1), vec![3, 999]);
        assert_eq!(removable_snapshots(&all, 9, 2), vec![999]);
    }
}
