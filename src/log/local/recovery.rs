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
//! - Only the **last segment** can have a torn tail. Every other segment was
//!   sealed and synced before the next was created, so damage there, a
//!   segment missing from the run, or one whose header names another first
//!   LSN, is corruption.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Damage, OpenError};
use crate::log::local::reader::RecordWindow;
use crate::log::local::record::{FILE_HEADER_LEN, FORMAT_VERSION, FileHeader};
use crate::log::local::segment::{self, ClosedSegment, Segment};
use crate::log::local::writer::LogWriter;
use crate::log::{Access, LogRecord, LogScan, RecordPlace, Recovery, Replayed, TornTail};
use crate::storage::{OpenMode, Storage, StorageFile};

/// How often (in bytes read) replay reports its progress.
const PROGRESS_BYTES: u64 = 1 << 20;

/// The first segment of every log (`segment_file_name(1)`): a store's log
/// starts here until compaction removes it.
pub const LOG_FILE_NAME: &str = "00000000000000000001.wal";

/// Reads the whole segment at `path`, whose name says its first record has
/// LSN `first_lsn`, calling `on_entry` for each good record in order — except
/// records with an LSN at or below `skip_through`, which are checked (both
/// checksums) but not passed on: a snapshot covers them.
/// `on_entry` may reject an entry (it contradicts the state built so far),
/// which makes the log corrupt at that record.
///
/// A missing or header-only-and-torn file reads as an empty segment. Never writes.
pub(crate) fn scan_log(
    file: &mut dyn StorageFile,
    path: &Path,
    first_lsn: u64,
    skip_through: u64,
    mut on_entry: impl FnMut(LogRecord<'_>) -> Result<(), Damage>,
) -> Result<LogScan, OpenError> {
    debug_assert!(first_lsn >= 1);
    let io_error = |e: io::Error| OpenError::io("read", path, e);
    let corrupt = |offset: u64, damage: Damage| OpenError::Corrupt {
        file: path.to_path_buf(),
        offset,
        damage,
    };
    let mut reader = RecordWindow::new(file).map_err(io_error)?;
    let file_bytes = reader.file_len();
    let mut scan = LogScan {
        path: path.to_path_buf(),
        first_lsn,
        records: 0,
        file_bytes,
        valid_bytes: 0,
        next_lsn: first_lsn,
        torn_tail: None,
        zero_tail_bytes: 0,
        version: 0,
        last_unsynced_before: None,
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
    if header.first_lsn != first_lsn {
        return Err(corrupt(
            0,
            Damage::Misnamed {
                named: first_lsn,
                header: header.first_lsn,
            },
        ));
    }
    scan.version = header.version;
    let mut offset = FILE_HEADER_LEN as u64;

    while offset < file_bytes {
        let raw = match reader.record_at(offset).map_err(io_error)? {
            Ok(raw) => raw,
            Err(damage) => {
                if header.allows_zero_tail() && reader.zero_to_end(offset).map_err(io_error)? {
                    // The preallocated tail: the end of the log, not damage.
                    scan.valid_bytes = offset;
                    scan.zero_tail_bytes = file_bytes - offset;
                    return Ok(scan);
                }
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
        if scan.next_lsn > skip_through {
            on_entry(LogRecord {
                lsn: scan.next_lsn,
                place: RecordPlace {
                    file: first_lsn,
                    offset,
                    len: header.record_len(),
                },
                payload: raw.payload,
            })
            .map_err(|damage| corrupt(offset, damage))?;
        }
        // A segment named for LSN 2^64-1 (or one just below it, after a
        // snapshot that covers the rest) can hold a record whose LSN has no
        // successor: corruption, not an overflow.
        let Some(next_lsn) = scan.next_lsn.checked_add(1) else {
            return Err(corrupt(
                offset,
                Damage::Inconsistent(format!(
                    "a record at LSN {}, which leaves no LSN for the next one",
                    scan.next_lsn
                )),
            ));
        };
        scan.records += 1;
        scan.last_unsynced_before = Some(header.unsynced_before);
        scan.next_lsn = next_lsn;
        offset += header.record_len();
    }
    debug_assert_eq!(
        offset, file_bytes,
        "records end exactly at the end of the file"
    );
    scan.valid_bytes = offset;
    Ok(scan)
}

/// Scans `segments[from..]` in order with [`scan_log`], checking that they
/// form one contiguous run and that only the last one has a torn tail. The
/// last segment is opened with `last_mode` and its handle returned.
///
/// `segments` must be sorted by first LSN (as [`segment::list_segments`]
/// returns them) and `from` in bounds.
pub(crate) fn scan_segments(
    storage: &dyn Storage,
    dir: &Path,
    segments: &[Segment],
    from: usize,
    skip_through: u64,
    last_mode: OpenMode,
    mut on_entry: impl FnMut(LogRecord<'_>) -> Result<(), Damage>,
) -> Result<(Vec<LogScan>, Box<dyn StorageFile>), OpenError> {
    debug_assert!(from < segments.len());
    debug_assert!(segments.windows(2).all(|w| w[0].first_lsn < w[1].first_lsn));
    let mut scans = Vec::with_capacity(segments.len() - from);
    for (index, segment) in segments.iter().enumerate().skip(from) {
        let next = segments.get(index + 1);
        let mode = if next.is_none() {
            last_mode
        } else {
            OpenMode::ReadOnly
        };
        let mut file = storage
            .open_file(&segment.path, mode)
            .map_err(|e| OpenError::io("open", &segment.path, e))?;
        let scan = scan_log(
            file.as_mut(),
            &segment.path,
            segment.first_lsn,
            skip_through,
            &mut on_entry,
        )?;
        let Some(next) = next else {
            scans.push(scan);
            return Ok((scans, file));
        };
        // Not the last segment: it was sealed and synced before `next` was
        // created, so nothing in it can be a torn write.
        if let Some(torn) = scan.torn_tail {
            return Err(OpenError::Corrupt {
                file: segment.path.clone(),
                offset: torn.offset,
                damage: Damage::DamagedSegment {
                    first: Box::new(torn.damage),
                },
            });
        }
        check_follows(dir, scan.next_lsn, next)?;
        scans.push(scan);
    }
    // Every caller passes `from < segments.len()` (open_log's `rposition`
    // index), so the loop runs and returns at the last segment.
    unreachable!("the loop returns at the last segment, and `from` is in bounds")
}

/// Checks that `next` starts exactly at `expected_lsn`, the LSN after the
/// last record of the segment before it.
pub(crate) fn check_follows(
    dir: &Path,
    expected_lsn: u64,
    next: &Segment,
) -> Result<(), OpenError> {
    if next.first_lsn > expected_lsn {
        // The first missing segment is named after the first missing record.
        return Err(OpenError::Corrupt {
            file: dir.join(segment::segment_file_name(expected_lsn)),
            offset: 0,
            damage: Damage::MissingRecords {
                first: expected_lsn,
                last: next.first_lsn - 1,
            },
        });
    }
    if next.first_lsn < expected_lsn {
        return Err(OpenError::Corrupt {
            file: next.path.clone(),
            offset: 0,
            damage: Damage::OverlappingSegment {
                first_lsn: next.first_lsn,
                expected: expected_lsn,
            },
        });
    }
    Ok(())
}

/// Opens the log made of `segments` (as [`segment::list_segments`] found
/// them; empty for a new log, which is then created under
/// [`Access::ReadWrite`]). Records with an LSN above `base_lsn` (the LSN a
/// loaded snapshot covers; 0 for none) are replayed through `on_entry`;
/// segments wholly at or below it are not read. Under [`Access::ReadWrite`],
/// cuts off a torn tail of the last segment (under [`Recovery::Strict`],
/// refuses it instead, changing nothing) and makes the last segment durable;
/// under [`Access::ReadOnly`] reports the torn tail and changes nothing.
/// Returns the writer, ready to append after the last good record, and what
/// the scan found.
///
/// Fails, changing nothing, if the segments that hold the records after
/// `base_lsn` are not all there, or if the log ends before `base_lsn`.
/// Reports the bytes read so far, of all it will read, to `progress` (about
/// every MiB).
#[expect(
    clippy::too_many_arguments,
    reason = "called once, by LocalOpening::replay, with what opening found"
)]
pub(crate) fn open_log(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    mut segments: Vec<Segment>,
    base_lsn: u64,
    recovery: Recovery,
    access: Access,
    progress: &mut dyn FnMut(u64, u64),
    mut on_entry: impl FnMut(LogRecord<'_>) -> Result<(), Damage>,
) -> Result<(LogWriter, Replayed), OpenError> {
    let created = segments.is_empty();
    if created {
        if base_lsn > 0 {
            return Err(OpenError::Corrupt {
                file: dir.join(segment::segment_file_name(base_lsn + 1)),
                offset: 0,
                damage: Damage::EndsBefore {
                    lsn: base_lsn,
                    log_end_lsn: 0,
                },
            });
        }
        if access == Access::ReadOnly {
            let path = dir.join(LOG_FILE_NAME);
            return Err(OpenError::io(
                "open",
                &path,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the directory holds no log segment",
                ),
            ));
        }
        segments.push(Segment {
            first_lsn: 1,
            path: dir.join(LOG_FILE_NAME),
        });
    }
    // The first segment to read is the last one that starts at or before the
    // first record to replay; every segment before it is wholly covered.
    let Some(from) = segments
        .iter()
        .rposition(|segment| segment.first_lsn <= base_lsn + 1)
    else {
        return Err(OpenError::Corrupt {
            file: dir.join(segment::segment_file_name(base_lsn + 1)),
            offset: 0,
            damage: Damage::MissingRecords {
                first: base_lsn + 1,
                last: segments[0].first_lsn - 1,
            },
        });
    };
    let mut closed = Vec::with_capacity(segments.len());
    for segment in &segments[..from] {
        closed.push(ClosedSegment {
            first_lsn: segment.first_lsn,
            path: segment.path.clone(),
            bytes: segment::file_size(storage.as_ref(), &segment.path)
                .map_err(|e| OpenError::io("stat", &segment.path, e))?,
        });
    }
    // Where each segment to read starts in the byte count `progress` gets.
    let mut starts = Vec::with_capacity(segments.len() - from);
    let mut total_bytes = 0;
    for segment in &segments[from..] {
        starts.push((segment.first_lsn, total_bytes));
        total_bytes += segment::file_size(storage.as_ref(), &segment.path).unwrap_or(0);
    }
    let mut records_replayed = 0;
    let mut reported_bytes = 0;
    let mut current = (0, 0);
    let (scans, mut file) = scan_segments(
        storage.as_ref(),
        dir,
        &segments,
        from,
        base_lsn,
        match access {
            Access::ReadWrite => OpenMode::CreateReadWrite,
            Access::ReadOnly => OpenMode::ReadOnly,
        },
        |entry| {
            records_replayed += 1;
            if current.0 != entry.place.file {
                current = starts
                    .iter()
                    .copied()
                    .find(|(first_lsn, _)| *first_lsn == entry.place.file)
                    .unwrap_or((entry.place.file, 0));
            }
            let done = current.1 + entry.place.offset + entry.place.len;
            if done >= reported_bytes + PROGRESS_BYTES {
                reported_bytes = done;
                progress(done, total_bytes);
            }
            on_entry(entry)
        },
    )?;
    progress(total_bytes, total_bytes);
    let last = scans
        .last()
        .expect("scan_segments returns Ok only after pushing the last segment's scan");
    if last.next_lsn - 1 < base_lsn {
        return Err(OpenError::Corrupt {
            file: last.path.clone(),
            offset: last.valid_bytes,
            damage: Damage::EndsBefore {
                lsn: base_lsn,
                log_end_lsn: last.next_lsn - 1,
            },
        });
    }
    let path = last.path.clone();
    if access == Access::ReadOnly {
        // Inspection: report what is there, change nothing.
        let writer = LogWriter::new(
            Arc::clone(storage),
            dir.to_path_buf(),
            file,
            path,
            last.first_lsn,
            last.valid_bytes.max(FILE_HEADER_LEN as u64),
            last.next_lsn,
            closed_segments(closed, &scans),
            last.last_unsynced_before,
        );
        return Ok((
            writer,
            Replayed {
                records_replayed,
                scans,
            },
        ));
    }
    // The last segment's directory entry must be durable before anything in
    // it is acknowledged. Synced on every open, not only when this open
    // created the file: an earlier open may have created it and failed to sync.
    storage
        .sync_dir(dir)
        .map_err(|e| OpenError::io("fsync directory", dir, e))?;
    if let (Recovery::Strict, Some(torn)) = (recovery, &last.torn_tail) {
        return Err(OpenError::TornTail {
            file: path,
            offset: torn.offset,
            bytes: torn.bytes,
            damage: torn.damage.clone(),
        });
    }
    if let Some(torn) = &last.torn_tail {
        debug_assert_eq!(torn.offset, last.valid_bytes);
        if last.version >= 2 && last.valid_bytes > 0 {
            // Zeroed, not cut: the space stays preallocated, and no stale
            // byte of the torn batch is left past the records written next
            // (where a record of it that still checks out could later be
            // taken for proof that damage was durable).
            zero_range(file.as_mut(), last.valid_bytes, last.file_bytes)
                .map_err(|e| OpenError::io("write", &path, e))?;
        } else {
            file.set_len(last.valid_bytes)
                .map_err(|e| OpenError::io("truncate", &path, e))?;
        }
    }
    let mut len = last.valid_bytes;
    if len == 0 {
        let header = FileHeader::new(last.first_lsn).encode();
        file.write_all_at(0, &header)
            .map_err(|e| OpenError::io("write", &path, e))?;
        len = header.len() as u64;
    }
    // Always, even when nothing was cut: the writer counts every record's
    // `unsynced before` from here, so all `len` bytes must be durable. Bytes
    // a previous run wrote but never synced (killed between write and
    // fdatasync, or poisoned by a failed sync) can still be only in the OS
    // cache; without this sync, a power cut could tear them yet keep a later
    // record claiming they were durable — a torn tail misread as corruption.
    file.sync_data()
        .map_err(|e| OpenError::io("fdatasync", &path, e))?;
    let closed = closed_segments(closed, &scans);
    let allocated = if last.version >= 2 {
        last.file_bytes.max(len)
    } else {
        len
    };
    let version = if last.valid_bytes == 0 {
        FORMAT_VERSION
    } else {
        last.version
    };
    let mut writer = LogWriter::new(
        Arc::clone(storage),
        dir.to_path_buf(),
        file,
        path,
        last.first_lsn,
        len,
        last.next_lsn,
        closed,
        last.last_unsynced_before,
    );
    writer.set_segment_format(version, allocated);
    Ok((
        writer,
        Replayed {
            records_replayed,
            scans,
        },
    ))
}

/// Writes zeros over `[from, to)` of `file` (not synced here).
fn zero_range(file: &mut dyn StorageFile, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(to.saturating_sub(from)) as usize];
    let mut at = from;
    while at < to {
        let len = (to - at).min(CHUNK) as usize;
        file.write_all_at(at, &zeros[..len])?;
        at += len as u64;
    }
    Ok(())
}

/// `closed` (the segments before the ones read) followed by every segment
/// read but the last.
fn closed_segments(mut closed: Vec<ClosedSegment>, scans: &[LogScan]) -> Vec<ClosedSegment> {
    for scan in &scans[..scans.len() - 1] {
        closed.push(ClosedSegment {
            first_lsn: scan.first_lsn,
            path: scan.path.clone(),
            // Its records, not a zero tail a lost truncate may have left
            // (readers stop at the records' end, not the file's).
            bytes: scan.valid_bytes,
        });
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::local::record::encode_record;
    use crate::storage::FileSystem;

    #[test]
    fn a_record_at_lsn_u64_max_is_corruption_not_an_overflow() {
        // Used to overflow `next_lsn += 1` after the record.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment::segment_file_name(u64::MAX));
        let mut bytes = FileHeader::new(u64::MAX).encode().to_vec();
        encode_record(&mut bytes, 0, b"any payload: the log never reads it");
        std::fs::write(&path, &bytes).unwrap();
        let mut file = FileSystem.open_file(&path, OpenMode::ReadOnly).unwrap();
        let result = scan_log(file.as_mut(), &path, u64::MAX, 0, |_| Ok(()));
        assert!(
            matches!(
                result,
                Err(OpenError::Corrupt {
                    offset: 32,
                    damage: Damage::Inconsistent(_),
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
