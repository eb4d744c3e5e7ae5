//! Log segments: the log is a run of files named by the LSN of their first
//! record, `{first_lsn:020}.wal`. This module names and lists them; reading
//! them is [`super::recovery`]'s job, and writing the writer's.
//!
//! Invariant: the segments of a store, sorted by first LSN, are contiguous —
//! each starts at the LSN after the last record of the one before — and only
//! the last one is ever written to. Every other segment was sealed and synced
//! before the next one was created, so it is complete.

use std::io;
use std::path::{Path, PathBuf};

use crate::storage::{OpenMode, Storage};

/// The file name extension of a log segment.
pub const SEGMENT_EXTENSION: &str = ".wal";

/// Digits in a segment's (or a snapshot's) LSN, zero-padded so that names sort
/// in LSN order.
pub(crate) const LSN_DIGITS: usize = 20;

/// The file name of the segment whose first record has LSN `first_lsn`.
pub fn segment_file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}{SEGMENT_EXTENSION}")
}

/// The first LSN a segment file name stands for, if `name` is one (exactly 20
/// decimal digits, not all zero, and `.wal`).
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_EXTENSION)?;
    parse_lsn_digits(digits).filter(|&lsn| lsn > 0)
}

/// Parses exactly [`LSN_DIGITS`] ASCII digits.
pub(crate) fn parse_lsn_digits(digits: &str) -> Option<u64> {
    if digits.len() != LSN_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One segment file of a store's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The LSN of its first record, as its name says.
    pub first_lsn: u64,
    /// Its path.
    pub path: PathBuf,
}

/// The segments in `dir`, sorted by first LSN. Other files are ignored.
pub(crate) fn list_segments(storage: &dyn Storage, dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments: Vec<Segment> = storage
        .list_dir(dir)?
        .iter()
        .filter_map(|name| {
            parse_segment_file_name(name).map(|first_lsn| Segment {
                first_lsn,
                path: dir.join(name),
            })
        })
        .collect();
    segments.sort_by_key(|segment| segment.first_lsn);
    Ok(segments)
}

/// The size in bytes of the file at `path`.
pub(crate) fn file_size(storage: &dyn Storage, path: &Path) -> io::Result<u64> {
    storage.open_file(path, OpenMode::ReadOnly)?.size()
}

/// A segment the writer has finished with (sealed, synced, never written again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClosedSegment {
    /// The LSN of its first record.
    pub first_lsn: u64,
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_in_lsn_order() {
        assert_eq!(segment_file_name(1), "00000000000000000001.wal");
        assert_eq!(parse_segment_file_name(&segment_file_name(1)), Some(1));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert!(segment_file_name(9) < segment_file_name(10));
        for not_a_segment in [
            "00000000000000000000.wal",
            "0000000000000000001.wal",
            "000000000000000000001.wal",
            "0000000000000000000a.wal",
            "00000000000000000001.wal.tmp",
            "+0000000000000000001.wal",
            "99999999999999999999.wal",
            "LOCK",
        ] {
            assert_eq!(
                parse_segment_file_name(not_a_segment),
                None,
                "{not_a_segment}"
            );
        }
    }
}
