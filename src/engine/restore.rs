//! Restoring the state when a store opens: load the newest snapshot that
//! passes every check, then have the log replay the records after it. The
//! one snapshot-plus-replay path: [`Store::open`](crate::Store::open) runs it
//! to serve, and `log verify` / `log dump` run it to inspect
//! ([`Purpose::Inspect`]), read-only, on any [`Storage`].
//!
//! To serve, a snapshot that fails a check is skipped (and reported in
//! [`RecoveryReport::snapshots_rejected`]); the next older one is tried, and
//! with none left the whole log is replayed. If the records a fallback needs
//! were compacted away, opening fails with the damage of the newest rejected
//! snapshot — the root cause — and changes nothing.
//!
//! To inspect, every snapshot is checked, every record the log holds is
//! decoded and replayed (from LSN 1, or from the newest good snapshot that
//! stands in for records compaction removed), and each good snapshot's
//! digest is compared with the replayed state at its LSN.
//!
//! This module never writes, except through the log's replay (which cuts a
//! torn tail when opened for writing) and the removal of leftover temporary
//! snapshot files after everything else succeeded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::domain::change::Change;
use crate::domain::codec;
use crate::engine::retention::DiskSnapshot;
use crate::error::{Damage, OpenError};
use crate::log::{CommandLog, ImageMark, LogRecord, OpeningLog, Recovery, Replayed};
use crate::progress::{ProgressFn, ProgressStep};
use crate::snapshot::{self, RejectedSnapshot, SnapshotInfo};
use crate::state::State;
use crate::storage::Storage;

/// What opening the store found: the snapshot it started from, the records
/// it replayed after it, and anything it had to skip or cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records replayed (those after the snapshot, if one was loaded).
    pub records_replayed: u64,
    /// Bytes of the log after recovery, all segments.
    pub log_bytes: u64,
    /// Segment files the log is made of.
    pub segments: u64,
    /// A damaged or incomplete end of the log that was cut off, if any.
    pub torn_tail: Option<crate::log::TornTail>,
    /// The snapshot the state was loaded from, if any.
    pub snapshot: Option<SnapshotInfo>,
    /// Newer snapshots that failed a check and were skipped, newest first:
    /// when this is not empty, opening fell back to [`Self::snapshot`] (or,
    /// if that is `None`, to replaying the whole log).
    pub snapshots_rejected: Vec<RejectedSnapshot>,
    /// The LSN of the oldest record still in the log: 1 unless compaction
    /// removed segments. History starts here.
    pub history_starts_at_lsn: u64,
    /// Opened read-only while another process held the store open
    /// ([`Store::open_read_only`](crate::Store::open_read_only)): the state
    /// is the log as it stood then, and a torn tail is a write in progress.
    pub live: bool,
}

impl RecoveryReport {
    /// Bytes cut off the end of the log (0 when the log ended cleanly).
    pub fn bytes_dropped(&self) -> u64 {
        self.torn_tail.as_ref().map_or(0, |torn| torn.bytes)
    }

    /// Whether opening skipped a damaged snapshot and fell back to an older
    /// one or to a full replay.
    pub fn fell_back(&self) -> bool {
        !self.snapshots_rejected.is_empty()
    }
}

/// One record as inspection hands it over: where it is and what it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its log sequence number (1 for the first record).
    pub lsn: u64,
    /// The first LSN of the log file that holds it (which names the file).
    pub segment: u64,
    /// Byte offset of the record in its file.
    pub offset: u64,
    /// Bytes the record takes on disk, header included.
    pub len: u64,
    /// The changes it carries, applied together.
    pub changes: Vec<Change>,
}

/// What inspection found when it checked one snapshot file.
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

/// Why the store is being opened.
pub(crate) enum Purpose<'a> {
    /// To serve: the newest good snapshot, with fallback.
    Serve {
        recovery: Recovery,
        progress: Option<&'a ProgressFn>,
        /// The log was opened read-only: nothing in the directory changes.
        read_only: bool,
    },
    /// To inspect: check everything, hand every good record to `on_entry`.
    Inspect {
        on_entry: &'a mut dyn FnMut(&LogEntry),
    },
}

/// Everything opening recovered.
pub(crate) struct Restored {
    pub state: State,
    pub log: Box<dyn CommandLog>,
    pub report: RecoveryReport,
    /// What the log's replay found, file by file.
    pub replayed: Replayed,
    /// Every snapshot file in the directory, oldest first.
    pub on_disk: Vec<DiskSnapshot>,
    /// Inspection only: what checking each snapshot found, oldest first.
    pub checks: Vec<SnapshotCheck>,
    /// The LSN of the last digest record replayed, or the snapshot's LSN.
    pub last_digest_lsn: u64,
}

/// Loads a snapshot from `dir` (or from the log's own
/// [`ImageStore`](crate::log::ImageStore), if it has one) and has `log`
/// replay the records after it.
pub(crate) fn restore(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    mut log: Box<dyn OpeningLog>,
    purpose: Purpose<'_>,
) -> Result<Restored, OpenError> {
    // A log that keeps snapshots itself (a shared log) serves from those
    // only; the directory's files are the local log's.
    let images = match purpose {
        Purpose::Serve { .. } => log.image_store(),
        Purpose::Inspect { .. } => None,
    };
    let strict = matches!(
        purpose,
        Purpose::Serve {
            recovery: Recovery::Strict,
            ..
        }
    );
    let mut rejected = Vec::new();
    // The log's snapshots, oldest first (empty for the local log). Ones that
    // cannot be listed are passed over like damaged ones (a full replay),
    // unless recovery is strict.
    let stored = match &images {
        Some(images) => match images.list() {
            Ok(stored) => stored,
            Err(e) if strict => {
                return Err(OpenError::io(
                    "list snapshots",
                    images.location(),
                    std::io::Error::other(e.to_string()),
                ));
            }
            Err(e) => {
                rejected.push(RejectedSnapshot {
                    path: images.location(),
                    offset: 0,
                    damage: Damage::Unreadable(e.to_string()),
                });
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let (snapshot_files, temps): (Vec<(u64, PathBuf)>, Vec<PathBuf>) = match &images {
        Some(_) => (
            stored
                .iter()
                .map(|image| (image.mark.lsn, image.place.clone()))
                .collect(),
            Vec::new(),
        ),
        None => snapshot::list_snapshots(storage.as_ref(), dir)
            .map_err(|e| OpenError::io("list directory", dir, e))?,
    };
    let lsn_max = log.lsn_bound()?;
    let first_lsn = log.first_lsn();
    let purpose_read_only = matches!(
        purpose,
        Purpose::Serve {
            read_only: true,
            ..
        }
    );
    let progress = match &purpose {
        Purpose::Serve { progress, .. } => *progress,
        Purpose::Inspect { .. } => None,
    };

    // The snapshot to start from.
    let mut checks = Vec::new();
    // (LSN, digest, index in `checks`) of every good snapshot, when inspecting.
    let mut digests = Vec::new();
    let mut loaded: Option<(State, SnapshotInfo)> = None;
    match (&purpose, &images) {
        (Purpose::Serve { .. }, Some(images)) => {
            for image in stored.iter().rev() {
                let mut report = |done, total| {
                    if let Some(progress) = progress {
                        progress.report(ProgressStep::LoadSnapshot, done, total);
                    }
                };
                // The cheap check first: the log's message at the recorded
                // position must end at the snapshot's LSN (this also sets
                // where replay starts). Then the bytes, with every check
                // of a snapshot file.
                let found = log
                    .resume_after(image.mark)
                    .map_err(|damage| (0, damage))
                    .and_then(|()| images.fetch(image.mark.lsn).map_err(|damage| (0, damage)))
                    .and_then(|bytes| {
                        snapshot::decode_snapshot(
                            bytes,
                            &image.place,
                            image.mark.lsn,
                            lsn_max,
                            &mut report,
                        )
                    });
                match found {
                    Ok(found) => {
                        loaded = Some(found);
                        break;
                    }
                    Err((offset, damage)) if strict => {
                        return Err(OpenError::Corrupt {
                            file: image.place.clone(),
                            offset,
                            damage,
                        });
                    }
                    Err((offset, damage)) => rejected.push(RejectedSnapshot {
                        path: image.place.clone(),
                        offset,
                        damage,
                    }),
                }
            }
            if loaded.is_none() {
                // None was good: replay the whole log.
                log.resume_after(ImageMark {
                    lsn: 0,
                    position: 0,
                })
                .map_err(|damage| OpenError::Corrupt {
                    file: dir.to_path_buf(),
                    offset: 0,
                    damage,
                })?;
            }
        }
        (Purpose::Serve { .. }, None) => {
            for (lsn, path) in snapshot_files.iter().rev() {
                let mut report = |done, total| {
                    if let Some(progress) = progress {
                        progress.report(ProgressStep::LoadSnapshot, done, total);
                    }
                };
                match snapshot::load_snapshot(storage.as_ref(), path, *lsn, lsn_max, &mut report) {
                    Ok(found) => {
                        loaded = Some(found);
                        break;
                    }
                    Err((offset, damage)) if strict => {
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
        }
        (Purpose::Inspect { .. }, _) => {
            // Check every snapshot on its own; keep the newest good one that
            // can stand in for the records compaction removed.
            for (lsn, path) in &snapshot_files {
                let result =
                    snapshot::load_snapshot(storage.as_ref(), path, *lsn, lsn_max, &mut |_, _| {});
                checks.push(SnapshotCheck {
                    path: path.clone(),
                    lsn: *lsn,
                    result: result.as_ref().map(|_| ()).map_err(Clone::clone),
                });
                if let Ok((state, info)) = result {
                    digests.push((info.lsn, info.digest, checks.len() - 1));
                    if first_lsn > 1 && info.lsn + 1 >= first_lsn {
                        loaded = Some((state, info));
                    }
                }
            }
            if first_lsn > 1 && loaded.is_none() {
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
                        file: dir.to_path_buf(),
                        offset: 0,
                        damage: Damage::MissingRecords {
                            first: 1,
                            last: first_lsn - 1,
                        },
                    },
                });
            }
        }
    }
    let (mut state, snapshot) = match loaded {
        Some((state, info)) => (state, Some(info)),
        None => (State::default(), None),
    };
    let base_lsn = snapshot.as_ref().map_or(0, |info| info.lsn);

    // The replay. Serving reads only what the snapshot does not cover;
    // inspecting reads (and decodes) every record the log holds.
    let mut last_digest_lsn = base_lsn;
    let mut report_replay = |done, total| {
        if let Some(progress) = progress {
            progress.report(ProgressStep::Replay, done, total);
        }
    };
    let inspecting = matches!(purpose, Purpose::Inspect { .. });
    let mut on_entry = match purpose {
        Purpose::Inspect { on_entry } => Some(on_entry),
        Purpose::Serve { .. } => None,
    };
    let after_lsn = if inspecting {
        first_lsn.saturating_sub(1)
    } else {
        base_lsn
    };
    // Every record is decoded into this one buffer, which applying empties:
    // serving allocates no vector per record.
    let mut changes = Vec::new();
    let mut visit = |record: LogRecord<'_>| -> Result<(), Damage> {
        codec::decode_changes_into(record.payload, &mut changes).map_err(Damage::Undecodable)?;
        if record.lsn > base_lsn {
            let applied = if on_entry.is_some() {
                // Cloned: this is the inspection path, and the entry goes to
                // `on_entry` only once it has replayed cleanly.
                for change in &changes {
                    state
                        .apply(change.clone())
                        .map_err(|e| e.into_damage(record.lsn))?;
                }
                Some(std::mem::take(&mut changes))
            } else {
                if apply_changes(&mut state, changes.drain(..), record.lsn)? {
                    last_digest_lsn = record.lsn;
                }
                None
            };
            // A snapshot taken at this LSN must describe this state.
            for (lsn, digest, check) in &digests {
                if *lsn == record.lsn && *digest != state.digest() {
                    // `check` is the index of the entry pushed just before
                    // the digest (see where `digests` is filled).
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
            if let (Some(on_entry), Some(changes)) = (on_entry.as_mut(), applied) {
                on_entry(&entry(&record, changes));
            }
        } else if let Some(on_entry) = on_entry.as_mut() {
            on_entry(&entry(&record, std::mem::take(&mut changes)));
        }
        Ok(())
    };
    let replayed = log.replay(after_lsn, &mut visit, &mut report_replay);
    let (log, replayed) = match replayed {
        Ok(replayed) => replayed,
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
        // The log ends before the snapshot: the snapshot describes records
        // the log does not have.
        Err(OpenError::Corrupt {
            file,
            offset,
            damage: Damage::EndsBefore { lsn, log_end_lsn },
        }) => {
            return Err(OpenError::Corrupt {
                file,
                offset,
                damage: Damage::SnapshotBeyondLog {
                    snapshot_lsn: lsn,
                    log_end_lsn,
                },
            });
        }
        Err(error) => return Err(error),
    };
    let end_lsn = log.next_lsn() - 1;
    if end_lsn < base_lsn {
        let last = replayed.scans.last();
        return Err(OpenError::Corrupt {
            file: last.map_or_else(|| dir.to_path_buf(), |scan| scan.path.clone()),
            offset: last.map_or(0, |scan| scan.valid_bytes),
            damage: Damage::SnapshotBeyondLog {
                snapshot_lsn: base_lsn,
                log_end_lsn: end_lsn,
            },
        });
    }

    // A leftover temporary file is a snapshot write that never finished:
    // never read, so removing it loses nothing. Best effort (it is harmless).
    let read_only = purpose_read_only;
    if !strict && !inspecting && !read_only {
        for temp in temps {
            let _ = storage.remove_file(&temp);
        }
    }

    let on_disk = snapshot_files
        .into_iter()
        .map(|(lsn, path)| {
            let known_bad = rejected.iter().any(|r| r.path == path);
            let stored_bytes = stored.iter().find(|s| s.mark.lsn == lsn).map(|s| s.bytes);
            let bytes = if snapshot.as_ref().is_some_and(|s| s.lsn == lsn) {
                snapshot.as_ref().map_or(0, |s| s.bytes)
            } else if let Some(bytes) = stored_bytes {
                bytes
            } else {
                snapshot::file_size(storage.as_ref(), &path).unwrap_or(0)
            };
            DiskSnapshot {
                lsn,
                path,
                bytes,
                known_bad,
            }
        })
        .collect();
    let size = log.size();
    let report = RecoveryReport {
        records_replayed: replayed.records_replayed,
        log_bytes: size.bytes,
        segments: size.files,
        torn_tail: replayed.torn_tail().cloned(),
        snapshot,
        snapshots_rejected: rejected,
        history_starts_at_lsn: log.first_lsn(),
        live: false,
    };
    Ok(Restored {
        state,
        log,
        report,
        replayed,
        on_disk,
        checks,
        last_digest_lsn,
    })
}

/// Applies the changes of the record at `lsn` to `state`, in order, and
/// says whether it was a digest record (which apply checked). The one way a
/// logged record reaches the state: replay at open, and a shared log's
/// catch-up with other hosts' records.
pub(crate) fn apply_changes(
    state: &mut State,
    changes: impl IntoIterator<Item = Change>,
    lsn: u64,
) -> Result<bool, Damage> {
    let mut digest = false;
    for change in changes {
        digest |= matches!(change, Change::Digest { .. });
        state.apply(change).map_err(|e| e.into_damage(lsn))?;
    }
    Ok(digest)
}

/// The inspection entry for `record`.
fn entry(record: &LogRecord<'_>, changes: Vec<Change>) -> LogEntry {
    LogEntry {
        lsn: record.lsn,
        segment: record.place.file,
        offset: record.place.offset,
        len: record.place.len,
        changes,
    }
}
