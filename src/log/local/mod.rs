//! The local log backend: a run of segment files in the data directory,
//! named by the LSN of their first record (`{first_lsn:020}.wal`).
//!
//! This module owns everything about those files: framing ([`record`]),
//! naming and listing ([`segment`]), appending with one write and one
//! `fdatasync` per batch ([`writer`]), reading them back ([`reader`]),
//! replay and the torn-tail decision ([`recovery`]), cutting a damaged tail
//! offline ([`repair`]), and the directory lock ([`lock`]). Nothing outside
//! `log::local` names a segment file.
//!
//! Architecture invariant: only the last segment is written, and every
//! other one is complete (sealed and synced before the next was created).

pub(crate) mod lock;
pub(crate) mod reader;
pub mod record;
pub(crate) mod recovery;
pub(crate) mod repair;
pub(crate) mod segment;
pub(crate) mod writer;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use recovery::LOG_FILE_NAME;
pub use segment::{SEGMENT_EXTENSION, parse_segment_file_name, segment_file_name};

use crate::error::{Damage, OpenError, StorageError};
use crate::log::{
    Access, CommandLog, Flush, LogReader, LogRecord, LogSize, OpeningLog, RecordBatch, RecordPlace,
    Recovery, Released, Replayed,
};
use crate::storage::{OpenMode, Storage, StorageFile, StorageLock};
use lock::{LOCK_FILE_NAME, lock_dir};
use reader::RecordWindow;
use record::{FILE_HEADER_LEN, FileHeader, RECORD_HEADER_LEN};
use segment::Segment;
use writer::LogWriter;

/// A checkpoint first ends the current segment if it holds more than this
/// fraction of the segment limit (see [`LocalLog::checkpoint`]).
const CHECKPOINT_ROLL_FRACTION: u64 = 8;

/// Takes the directory's lock (creating the lock file), or reports who holds it.
pub(crate) fn lock_directory(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<Box<dyn StorageLock>, OpenError> {
    lock_dir(storage, dir)
}

/// The last segment in `dir` (where appends go) and its first LSN, if the
/// directory holds a log.
pub(crate) fn last_segment(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<Option<(PathBuf, u64)>, OpenError> {
    Ok(segment::list_segments(storage, dir)
        .map_err(|e| OpenError::io("list directory", dir, e))?
        .pop()
        .map(|segment| (segment.path, segment.first_lsn)))
}

/// A segment size for a read-only open, which never rolls.
pub(crate) const SEGMENT_BYTES_ANY: u64 = u64::MAX;

/// How a local log is opened.
#[derive(Clone, Copy, Debug)]
pub struct LocalOptions {
    /// Roll to a new segment once the current one holds this many bytes.
    pub segment_bytes: u64,
    /// What to do with a torn tail.
    pub recovery: Recovery,
    /// Whether the open may change anything.
    pub access: Access,
    /// How far ahead of the records a segment is zero-filled (0: never).
    pub preallocate_bytes: u64,
    /// The payload of a seal — the empty record a clean close or a roll
    /// appends when the last record's durability is unproven. The layer
    /// above decides what an empty record is; the log only frames it.
    pub seal_payload: &'static [u8],
}

/// The local log opened but not yet replayed: locked, its segments listed.
#[derive(Debug)]
pub struct LocalOpening {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    segments: Vec<Segment>,
    options: LocalOptions,
    lock: Option<Box<dyn StorageLock>>,
}

impl LocalOpening {
    /// Takes the directory's lock and lists its segments. Under
    /// [`Access::ReadOnly`] the lock is taken only if a store has ever run
    /// in `dir` (creating the lock file would change the directory).
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        options: LocalOptions,
    ) -> Result<LocalOpening, OpenError> {
        let lock = match options.access {
            Access::ReadWrite => Some(lock_dir(storage.as_ref(), dir)?),
            Access::ReadOnly => {
                let lock_path = dir.join(LOCK_FILE_NAME);
                if storage
                    .exists(&lock_path)
                    .map_err(|e| OpenError::io("stat", &lock_path, e))?
                {
                    Some(lock_dir(storage.as_ref(), dir)?)
                } else {
                    None
                }
            }
        };
        let segments = segment::list_segments(storage.as_ref(), dir)
            .map_err(|e| OpenError::io("list directory", dir, e))?;
        Ok(LocalOpening {
            storage,
            dir: dir.to_path_buf(),
            segments,
            options,
            lock,
        })
    }

    /// Like [`Self::open`] under [`Access::ReadOnly`], but a directory that
    /// another store holds open is read anyway, without its lock: only the
    /// whole, checksummed records there now are read, nothing is cut or
    /// written, and a torn tail is a write in progress. Returns whether the
    /// store was live (its lock held by another).
    pub fn open_live(
        storage: Arc<dyn Storage>,
        dir: &Path,
        options: LocalOptions,
    ) -> Result<(LocalOpening, bool), OpenError> {
        debug_assert_eq!(options.access, Access::ReadOnly);
        let lock_path = dir.join(LOCK_FILE_NAME);
        let (lock, live) = if storage
            .exists(&lock_path)
            .map_err(|e| OpenError::io("stat", &lock_path, e))?
        {
            match storage
                .try_lock(&lock_path)
                .map_err(|e| OpenError::io("lock", &lock_path, e))?
            {
                Some(lock) => (Some(lock), false),
                None => (None, true),
            }
        } else {
            (None, false)
        };
        let segments = segment::list_segments(storage.as_ref(), dir)
            .map_err(|e| OpenError::io("list directory", dir, e))?;
        Ok((
            LocalOpening {
                storage,
                dir: dir.to_path_buf(),
                segments,
                options,
                lock,
            },
            live,
        ))
    }

    /// Like [`Self::open`] under [`Access::ReadOnly`], for a caller that
    /// already holds the directory's lock ([`lock_directory`]) and keeps it
    /// while it goes on to change the directory offline.
    pub(crate) fn open_under_callers_lock(
        storage: Arc<dyn Storage>,
        dir: &Path,
        options: LocalOptions,
    ) -> Result<LocalOpening, OpenError> {
        debug_assert_eq!(options.access, Access::ReadOnly);
        let segments = segment::list_segments(storage.as_ref(), dir)
            .map_err(|e| OpenError::io("list directory", dir, e))?;
        Ok(LocalOpening {
            storage,
            dir: dir.to_path_buf(),
            segments,
            options,
            lock: None,
        })
    }

    /// Whether `dir` holds a log segment (without locking or changing it).
    pub fn exists(storage: &dyn Storage, dir: &Path) -> Result<bool, OpenError> {
        Ok(!segment::list_segments(storage, dir)
            .map_err(|e| OpenError::io("list directory", dir, e))?
            .is_empty())
    }
}

impl OpeningLog for LocalOpening {
    fn is_new(&self) -> bool {
        self.segments.is_empty()
    }

    fn first_lsn(&self) -> u64 {
        self.segments.first().map_or(1, |s| s.first_lsn)
    }

    fn lsn_bound(&self) -> Result<u64, OpenError> {
        // Every record takes at least a record header.
        let Some(last) = self.segments.last() else {
            return Ok(0);
        };
        let bytes = segment::file_size(self.storage.as_ref(), &last.path)
            .map_err(|e| OpenError::io("stat", &last.path, e))?;
        Ok(last
            .first_lsn
            .saturating_add(bytes / RECORD_HEADER_LEN as u64))
    }

    fn replay(
        self: Box<Self>,
        after_lsn: u64,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<(), Damage>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(Box<dyn CommandLog>, Replayed), OpenError> {
        let LocalOpening {
            storage,
            dir,
            segments,
            options,
            lock,
        } = *self;
        let (writer, replayed) = recovery::open_log(
            &storage,
            &dir,
            segments,
            after_lsn,
            options.recovery,
            options.access,
            progress,
            visit,
        )?;
        let mut writer = writer;
        writer.set_seal_payload(options.seal_payload);
        writer.set_preallocate_bytes(options.preallocate_bytes);
        let log = LocalLog {
            writer,
            segment_bytes: options.segment_bytes,
            access: options.access,
            _lock: lock,
        };
        Ok((Box::new(log), replayed))
    }
}

/// The local log, open: the segment being written and the closed ones.
#[derive(Debug)]
pub struct LocalLog {
    writer: LogWriter,
    segment_bytes: u64,
    access: Access,
    // Held while the log is open; released when the server thread drops it.
    _lock: Option<Box<dyn StorageLock>>,
}

impl LocalLog {
    fn check_writable(&self) -> Result<(), StorageError> {
        match self.access {
            Access::ReadWrite => self.writer.check_poisoned(),
            Access::ReadOnly => Err(StorageError::ReadOnly {
                path: self.writer.dir().to_path_buf(),
            }),
        }
    }

    /// Whether the current segment holds a record and has reached the size limit.
    fn segment_is_full(&self) -> bool {
        self.writer.segment_len() >= self.segment_bytes
            && self.writer.next_lsn() > self.writer.segment_first_lsn()
    }
}

impl CommandLog for LocalLog {
    fn next_lsn(&self) -> u64 {
        self.writer.next_lsn()
    }

    fn first_lsn(&self) -> u64 {
        self.writer.first_lsn()
    }

    fn size(&self) -> LogSize {
        LogSize {
            bytes: self.writer.len(),
            records: self.writer.records(),
            files: self.writer.closed_segments().len() as u64 + 1,
        }
    }

    fn append(&mut self, batch: &RecordBatch, flush: Flush) -> Result<u64, StorageError> {
        self.check_writable()?;
        debug_assert!(!self.writer.has_pending());
        let start = self.writer.batch_start();
        let first = self.writer.next_lsn();
        for payload in batch.payloads() {
            if let Err(error) = self.writer.append(payload) {
                // Nothing of the batch was written: take it all back.
                self.writer.discard_pending();
                return Err(error);
            }
        }
        let mut result = self.writer.write();
        if result.is_ok() && (flush == Flush::Durable || self.writer.must_sync()) {
            result = self.writer.sync();
        }
        if let Err(error) = result {
            // Poisoned: the batch does not count, so the log's length, its
            // record count and what readers see end where the last good
            // batch ended. Its bytes may still be in the file.
            self.writer.forget_failed_batch(start);
            return Err(error);
        }
        debug_assert_eq!(self.writer.next_lsn(), first + batch.len() as u64);
        Ok(first)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_writable()?;
        self.writer.sync()
    }

    fn has_unsynced(&self) -> bool {
        self.writer.unsynced_bytes() > 0
    }

    fn check_healthy(&self) -> Result<(), StorageError> {
        self.check_writable()
    }

    fn reader(&self) -> Result<Box<dyn LogReader>, StorageError> {
        let storage = self.writer.storage();
        let mut segments = Vec::with_capacity(self.writer.closed_segments().len() + 1);
        for (first_lsn, path, len) in self
            .writer
            .closed_segments()
            .iter()
            .map(|s| (s.first_lsn, s.path.clone(), s.bytes))
            .chain(std::iter::once((
                self.writer.segment_first_lsn(),
                self.writer.segment_path().to_path_buf(),
                self.writer.segment_len(),
            )))
        {
            let file = storage
                .open_file(&path, OpenMode::ReadOnly)
                .map_err(|e| StorageError::io("open", &path, e))?;
            segments.push(SegmentView {
                first_lsn,
                path,
                file,
                len,
            });
        }
        Ok(Box::new(SegmentsReader {
            first_lsn: self.writer.first_lsn(),
            end_lsn: self.writer.next_lsn(),
            segments,
        }))
    }

    fn between_batches(&mut self) -> Result<(), StorageError> {
        if self.access == Access::ReadWrite
            && self.writer.check_poisoned().is_ok()
            && self.segment_is_full()
        {
            // Rolling syncs the segment; no reply waits for it.
            self.writer.roll()?;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), StorageError> {
        self.check_writable()?;
        // A segment well filled with records the snapshot will cover is
        // ended first, so the snapshot's LSN sits at a segment boundary:
        // opening then skips every segment before it unread, and release
        // can remove them all. (Rolling also syncs.) A segment holding only
        // a little is kept, so frequent snapshots do not make tiny files.
        if self.writer.segment_len() > self.segment_bytes / CHECKPOINT_ROLL_FRACTION
            && self.writer.next_lsn() > self.writer.segment_first_lsn()
        {
            self.writer.roll()
        } else {
            self.writer.sync()
        }
    }

    fn release_through(
        &mut self,
        lsn: u64,
        on_removed: &mut dyn FnMut(),
    ) -> Result<Released, StorageError> {
        debug_assert!(
            lsn < self.writer.next_lsn(),
            "only appended records are released"
        );
        let mut released = Released::default();
        for _ in 0..self.releasable_through(lsn) {
            // releasable_through counted at most the closed segments, and
            // each pass forgets exactly one (below): one is left for this pass.
            let segment = self.writer.closed_segments()[0].clone();
            let storage = Arc::clone(self.writer.storage());
            let dir = self.writer.dir().to_path_buf();
            storage
                .remove_file(&segment.path)
                .map_err(|e| StorageError::io("remove", &segment.path, e))?;
            // Durable before the next removal: after a crash the segments
            // left are one contiguous run that reaches past the snapshot.
            storage
                .sync_dir(&dir)
                .map_err(|e| StorageError::io("fsync directory", &dir, e))?;
            let forgotten = self.writer.forget_oldest_closed();
            debug_assert_eq!(forgotten.as_ref(), Some(&segment));
            released.files += 1;
            released.bytes += segment.bytes;
            on_removed();
        }
        Ok(released)
    }

    fn releasable_through(&self, lsn: u64) -> u64 {
        // A closed segment's last record is just before the next segment's
        // first, so it is covered when that next first LSN is at most lsn + 1.
        // The segment being written is never removed.
        let closed = self.writer.closed_segments();
        (0..closed.len())
            .take_while(|&i| {
                let next_first = closed
                    .get(i + 1)
                    .map_or(self.writer.segment_first_lsn(), |next| next.first_lsn);
                next_first <= lsn + 1
            })
            .count() as u64
    }

    fn seal(&mut self) -> Result<(), StorageError> {
        match self.access {
            Access::ReadWrite => self.writer.seal(),
            Access::ReadOnly => Ok(()),
        }
    }
}

/// One segment, opened for a read on another thread.
#[derive(Debug)]
struct SegmentView {
    first_lsn: u64,
    path: PathBuf,
    file: Box<dyn StorageFile>,
    /// Bytes to read: the segment as it was when the reader was made.
    len: u64,
}

/// Read-only handles on every segment, oldest first, and how much of each
/// to read. Handles stay valid if release removes a file meanwhile.
#[derive(Debug)]
struct SegmentsReader {
    first_lsn: u64,
    end_lsn: u64,
    segments: Vec<SegmentView>,
}

impl LogReader for SegmentsReader {
    fn first_lsn(&self) -> u64 {
        self.first_lsn
    }

    fn end_lsn(&self) -> u64 {
        self.end_lsn
    }

    fn read(
        &mut self,
        from_lsn: u64,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<ControlFlow<()>, StorageError>,
    ) -> Result<(), StorageError> {
        let mut next_lsn = self.first_lsn;
        let count = self.segments.len();
        for index in 0..count {
            let next_first = self.segments.get(index + 1).map(|s| s.first_lsn);
            let segment = &mut self.segments[index];
            let path = segment.path.clone();
            let corrupt = |offset: u64, damage: Damage| StorageError::Corrupt {
                path: path.clone(),
                offset,
                damage,
            };
            if segment.first_lsn != next_lsn {
                return Err(corrupt(
                    0,
                    Damage::MissingRecords {
                        first: next_lsn,
                        last: segment.first_lsn.saturating_sub(1),
                    },
                ));
            }
            // Wholly before `from_lsn`: skip without reading.
            if let Some(next_first) = next_first
                && next_first <= from_lsn
            {
                next_lsn = next_first;
                continue;
            }
            let mut window = RecordWindow::with_len(segment.file.as_mut(), segment.len)
                .map_err(|e| StorageError::io("read", &path, e))?;
            let header = window
                .bytes(0, FILE_HEADER_LEN)
                .map_err(|e| StorageError::io("read", &path, e))?
                .ok_or(corrupt(
                    0,
                    Damage::Truncated {
                        len: FILE_HEADER_LEN as u64,
                    },
                ))?;
            let header = FileHeader::decode(
                header
                    .try_into()
                    .expect("bytes() returns exactly the length asked for"),
            )
            .map_err(|damage| corrupt(0, damage))?;
            if header.first_lsn != segment.first_lsn {
                return Err(corrupt(
                    0,
                    Damage::Misnamed {
                        named: segment.first_lsn,
                        header: header.first_lsn,
                    },
                ));
            }
            let mut offset = FILE_HEADER_LEN as u64;
            while offset < window.file_len() {
                let record = window
                    .record_at(offset)
                    .map_err(|e| StorageError::io("read", &path, e))?
                    .map_err(|damage| corrupt(offset, damage))?;
                let len = record.header.record_len();
                if next_lsn >= from_lsn {
                    let flow = visit(LogRecord {
                        lsn: next_lsn,
                        place: RecordPlace {
                            file: segment.first_lsn,
                            offset,
                            len,
                        },
                        payload: record.payload,
                    })?;
                    if flow.is_break() {
                        return Ok(());
                    }
                }
                next_lsn += 1;
                offset += len;
            }
        }
        debug_assert!(next_lsn <= self.end_lsn);
        Ok(())
    }
}
