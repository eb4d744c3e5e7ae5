//! Restoring the state when a store opens: load the newest snapshot that
//! passes every check, then replay the log records after it.
//!
//! A snapshot that fails a check is skipped (and reported in
//! [`RecoveryReport::snapshots_rejected`]); the next older one is tried, and
//! with none left the whole log is replayed. If the records a fallback needs
//! were compacted away, opening fails with the damage of the newest rejected
//! snapshot — the root cause — and changes nothing.
//!
//! This module never writes, except through [`recovery::open_log`] (which
//! cuts a torn tail) and the removal of leftover temporary snapshot files
//! after everything else succeeded.

use std::path::Path;
use std::sync::Arc;

use crate::change::Change;
use crate::compaction::DiskSnapshot;
use crate::error::{Damage, OpenError};
use crate::progress::{ProgressFn, ProgressStep};
use crate::snapshot::{self, RejectedSnapshot, SnapshotInfo};
use crate::state::State;
use crate::storage::Storage;
use crate::store::RecoveryReport;
use crate::wal::recovery::{self, Recovery};
use crate::wal::writer::LogWriter;

/// Everything opening recovered, ready for the server thread.
pub(crate) struct Restored {
    pub state: State,
    pub log: LogWriter,
    pub report: RecoveryReport,
    /// Every snapshot file in the directory, oldest first.
    pub on_disk: Vec<DiskSnapshot>,
    /// The LSN of the last digest record replayed, or the snapshot's LSN.
    pub last_digest_lsn: u64,
}

/// Loads the newest good snapshot in `dir` and replays the log after it.
/// Under [`Recovery::Strict`] a damaged snapshot is an error, not a fallback,
/// and leftover temporary files stay where they are: nothing is modified.
pub(crate) fn restore(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    recovery: Recovery,
    progress: Option<&ProgressFn>,
) -> Result<Restored, OpenError> {
    let (snapshots, temps) = snapshot::list_snapshots(storage.as_ref(), dir)
        .map_err(|e| OpenError::io("list directory", dir, e))?;
    let mut rejected = Vec::new();
    let mut loaded: Option<(State, SnapshotInfo)> = None;
    for (lsn, path) in snapshots.iter().rev() {
        let mut report = |done, total| {
            if let Some(progress) = progress {
                progress.report(ProgressStep::LoadSnapshot, done, total);
            }
        };
        match snapshot::load_snapshot(storage.as_ref(), path, *lsn, &mut report) {
            Ok(found) => {
                loaded = Some(found);
                break;
            }
            Err((offset, damage)) if recovery == Recovery::Strict => {
                return Err(OpenError::Corrupt {
                    file: path.clone(),
                    offset,
                    damage,
                });
            }
            Err((offset, damage)) => rejected.push(RejectedSnapshot {
                path: path.clone(),
                offset,
                damage,
            }),
        }
    }
    let (mut state, snapshot) = match loaded {
        Some((state, info)) => (state, Some(info)),
        None => (State::default(), None),
    };
    let base_lsn = snapshot.as_ref().map_or(0, |info| info.lsn);

    let mut last_digest_lsn = base_lsn;
    let mut report_replay = |done, total| {
        if let Some(progress) = progress {
            progress.report(ProgressStep::Replay, done, total);
        }
    };
    let opened = recovery::open_log(
        storage,
        dir,
        base_lsn,
        recovery,
        &mut report_replay,
        |entry| {
            for change in entry.changes {
                if matches!(change, Change::Digest { .. }) {
                    last_digest_lsn = entry.lsn;
                }
                state.apply(change).map_err(|e| e.into_damage(entry.lsn))?;
            }
            Ok(())
        },
    );
    let (log, opened) = match opened {
        Ok(opened) => opened,
        // The fallback needs records that compaction removed: the damaged
        // snapshot is what is wrong, so that is what to report.
        Err(OpenError::Corrupt {
            damage: Damage::MissingRecords { .. },
            ..
        }) if !rejected.is_empty() => {
            let newest = rejected.swap_remove(0);
            return Err(OpenError::Corrupt {
                file: newest.path,
                offset: newest.offset,
                damage: newest.damage,
            });
        }
        Err(error) => return Err(error),
    };

    // A leftover temporary file is a snapshot write that never finished:
    // never read, so removing it loses nothing. Best effort (it is harmless).
    if recovery != Recovery::Strict {
        for temp in temps {
            let _ = storage.remove_file(&temp);
        }
    }

    let on_disk = snapshots
        .into_iter()
        .map(|(lsn, path)| {
            let known_bad = rejected.iter().any(|r| r.path == path);
            let bytes = if snapshot.as_ref().is_some_and(|s| s.lsn == lsn) {
                snapshot.as_ref().map_or(0, |s| s.bytes)
            } else {
                crate::wal::segment::file_size(storage.as_ref(), &path).unwrap_or(0)
            };
            DiskSnapshot {
                lsn,
                path,
                bytes,
                known_bad,
            }
        })
        .collect();
    let report = RecoveryReport {
        records_replayed: opened.records_replayed,
        log_bytes: log.len(),
        segments: log.closed_segments().len() as u64 + 1,
        torn_tail: opened.scans.last().and_then(|scan| scan.torn_tail.clone()),
        snapshot,
        snapshots_rejected: rejected,
        history_starts_at_lsn: log.first_lsn(),
    };
    Ok(Restored {
        state,
        log,
        report,
        on_disk,
        last_digest_lsn,
    })
}
