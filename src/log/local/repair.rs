//! Cutting a damaged segment offline, for `ticketlog log repair` (whose
//! decisions — what may be cut — are `inspect::repair_log`'s): the bytes cut
//! are first saved, and synced, to a `*.damaged` file beside the segment, so
//! a repair loses nothing that could not be put back by hand.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::OpenError;
use crate::log::local::reader::RecordWindow;
use crate::log::local::recovery::LOG_FILE_NAME;
use crate::storage::{OpenMode, Storage, StorageFile, read_exact_at};

/// The length of the segment at `path` and the records from `offset` to its
/// end: the one at `offset` (intact or not) and every intact one after it.
pub(crate) fn records_after(
    storage: &dyn Storage,
    path: &Path,
    offset: u64,
) -> Result<(u64, u64), OpenError> {
    let mut file = storage
        .open_file(path, OpenMode::ReadOnly)
        .map_err(|e| OpenError::io("open", path, e))?;
    let len = file.size().map_err(|e| OpenError::io("stat", path, e))?;
    let records =
        records_from(file.as_mut(), offset).map_err(|e| OpenError::io("read", path, e))?;
    Ok((len, records))
}

/// Saves the bytes of the segment at `path` from `offset` on to a new
/// `*.damaged` file, then cuts the segment there (see [`cut`]).
pub(crate) fn cut_segment(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    offset: u64,
) -> Result<PathBuf, OpenError> {
    let mut file = storage
        .open_file(path, OpenMode::ReadWrite)
        .map_err(|e| OpenError::io("open", path, e))?;
    cut(storage, file.as_mut(), dir, path, offset)
}

/// Bytes copied to the `*.damaged` file at a time.
const COPY_CHUNK_BYTES: usize = 4 << 20;
/// Numbered names tried for the `*.damaged` file before giving up.
const SAVED_NAME_ATTEMPTS_MAX: u32 = 1000;

/// Records from `offset` to the end of the file: the one at `offset` (intact
/// or not) and every intact record after it.
fn records_from(file: &mut dyn StorageFile, offset: u64) -> io::Result<u64> {
    let mut reader = RecordWindow::new(file)?;
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
