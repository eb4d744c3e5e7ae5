//! Appending records: frames changes into a pending buffer, then writes the
//! whole buffer with one positioned write (`write`) and makes everything
//! written durable with one `fdatasync` (`sync`): group commit. Between
//! batches, `roll` seals the current segment and starts the next.
//!
//! A version-2 segment is kept preallocated: when a batch would pass the
//! end of the file, the writer appends zeros well past it to the same
//! write, synced with it, so most batches overwrite bytes the file already holds
//! and their `fdatasync` has no file size to commit. A roll cuts the
//! finished segment back to its records.
//!
//! Invariant: `durable_len <= written_len <= allocated_len`, and nothing past
//! `durable_len` has been reported durable to anyone; every byte of the
//! segment past `written_len` is zero (in the file, once synced). After any write or sync failure the writer
//! is poisoned and refuses every later append, write and sync: a retried fsync can
//! report success for pages the kernel already dropped.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Damage, StorageError};
use crate::log::RECORD_PAYLOAD_BYTES_MAX;
use crate::log::local::record::{self, FILE_HEADER_LEN, FileHeader, RECORD_HEADER_LEN};
use crate::log::local::segment::{ClosedSegment, segment_file_name};
use crate::storage::{OpenMode, Storage, StorageFile};

/// The most bytes the writer lets pile up written but unsynced (with
/// `Durability::Interval` or `Never`) before it syncs regardless. Keeps
/// every record's `unsynced_before` far inside its u32.
pub(crate) const UNSYNCED_BYTES_MAX: u64 = 1 << 30;

/// A point in the log to go back to (see [`LogWriter::batch_start`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchStart {
    written_len: u64,
    next_lsn: u64,
}

/// Whether a write may carry zeros ahead of its records (see
/// [`LogWriter::write`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    /// Zero-fill past the records when they pass the preallocated end.
    Ahead,
    /// The records only (a seal, whose segment is cut back right after).
    None,
}

/// The log's writer, owned by the server thread: the segment being written,
/// and the list of earlier segments still on disk.
#[derive(Debug)]
pub(crate) struct LogWriter {
    storage: Arc<dyn Storage>,
    /// The data directory, where new segments are created.
    dir: PathBuf,
    /// The segment being written.
    file: Box<dyn StorageFile>,
    path: PathBuf,
    /// The LSN of the current segment's first record.
    segment_first_lsn: u64,
    /// Earlier segments still on disk, oldest first. Invariant: contiguous,
    /// ending just before `segment_first_lsn`; sealed and synced.
    closed: Vec<ClosedSegment>,
    /// Bytes in the current segment that were written successfully.
    written_len: u64,
    /// Bytes of the current segment known to be on stable storage.
    durable_len: u64,
    /// The current segment's length in the file: its records, then zeros.
    allocated_len: u64,
    /// The current segment's format version (a version-1 segment found at
    /// open is continued as it is, never preallocated).
    version: u32,
    /// How far past a batch's end the file is zero-filled when the batch
    /// would pass its end (0: never).
    preallocate_bytes: u64,
    /// The sequence number the next record gets.
    next_lsn: u64,
    /// Framed records not yet written.
    pending: Vec<u8>,
    /// Records in `pending`.
    pending_records: u64,
    /// The `unsynced_before` of the last record appended to the current
    /// segment, if any.
    last_unsynced_before: Option<u32>,
    /// The first failure, after which nothing more is written.
    poisoned: Option<StorageError>,
    /// The payload of a seal record: what an empty record means to the
    /// layer above (the log itself never looks inside a payload).
    seal_payload: &'static [u8],
}

impl LogWriter {
    /// A writer appending to `file`, the segment at `path` whose first record
    /// has LSN `segment_first_lsn` and whose first `len` bytes are a valid,
    /// durable segment ending before `next_lsn`; `closed` are the segments
    /// before it.
    #[expect(
        clippy::too_many_arguments,
        reason = "called once, by open_log, with what recovery found"
    )]
    pub fn new(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        file: Box<dyn StorageFile>,
        path: PathBuf,
        segment_first_lsn: u64,
        len: u64,
        next_lsn: u64,
        closed: Vec<ClosedSegment>,
        last_unsynced_before: Option<u32>,
    ) -> Self {
        debug_assert!(len >= FILE_HEADER_LEN as u64);
        debug_assert!(next_lsn >= segment_first_lsn);
        debug_assert!(
            closed
                .last()
                .is_none_or(|last| last.first_lsn < segment_first_lsn),
            "closed segments come before the current one"
        );
        LogWriter {
            storage,
            dir,
            file,
            path,
            segment_first_lsn,
            closed,
            written_len: len,
            durable_len: len,
            allocated_len: len,
            version: record::FORMAT_VERSION,
            preallocate_bytes: 0,
            next_lsn,
            pending: Vec::with_capacity(64 << 10),
            pending_records: 0,
            // The segment's last record as found on disk: if its durability
            // is unproven, a clean close seals it even when nothing new is
            // written (open has synced it, so the seal tells the truth).
            last_unsynced_before,
            poisoned: None,
            seal_payload: &[],
        }
    }

    /// Says what the current segment is: its format version, and its
    /// length in the file (at least the valid length; past it, zeros).
    pub fn set_segment_format(&mut self, version: u32, allocated_len: u64) {
        debug_assert!(allocated_len >= self.written_len);
        self.version = version;
        self.allocated_len = allocated_len;
    }

    /// Sets how far ahead of a batch a version-2 segment is zero-filled.
    pub fn set_preallocate_bytes(&mut self, bytes: u64) {
        self.preallocate_bytes = bytes;
    }

    /// Sets the payload a seal record carries.
    pub fn set_seal_payload(&mut self, payload: &'static [u8]) {
        self.seal_payload = payload;
    }

    /// Bytes in every segment of the log, counting records not yet written.
    pub fn len(&self) -> u64 {
        self.closed.iter().map(|segment| segment.bytes).sum::<u64>() + self.segment_len()
    }

    /// Bytes in the current segment, counting records not yet written.
    pub fn segment_len(&self) -> u64 {
        self.written_len + self.pending.len() as u64
    }

    /// Records in the log's segments, counting records not yet written.
    pub fn records(&self) -> u64 {
        self.next_lsn - self.first_lsn()
    }

    /// The LSN of the oldest record still on disk (the first record of the
    /// oldest segment; the next record's LSN when the log holds none).
    pub fn first_lsn(&self) -> u64 {
        self.closed
            .first()
            .map_or(self.segment_first_lsn, |segment| segment.first_lsn)
    }

    /// The LSN the next record gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// The LSN of the current segment's first record.
    pub fn segment_first_lsn(&self) -> u64 {
        self.segment_first_lsn
    }

    /// The path of the current segment.
    pub fn segment_path(&self) -> &Path {
        &self.path
    }

    /// The segments before the current one, oldest first.
    pub fn closed_segments(&self) -> &[ClosedSegment] {
        &self.closed
    }

    /// Forgets the oldest closed segment (its file was removed); returns it.
    pub fn forget_oldest_closed(&mut self) -> Option<ClosedSegment> {
        if self.closed.is_empty() {
            None
        } else {
            Some(self.closed.remove(0))
        }
    }

    /// The storage the log is on.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn has_pending(&self) -> bool {
        self.pending_records > 0
    }

    /// The failure that poisoned the writer, as the error later writes get.
    pub fn check_poisoned(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            None => Ok(()),
            Some(cause) => Err(StorageError::Poisoned {
                path: self.path.clone(),
                cause: cause.to_string(),
            }),
        }
    }

    /// Frames `payload` as one record in the pending buffer; returns its LSN.
    /// Nothing is written until [`Self::write`].
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, StorageError> {
        self.check_poisoned()?;
        if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
            return Err(StorageError::RecordTooLarge {
                len: payload.len(),
                max: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        let record_offset = self.segment_len();
        let unsynced_before = u32::try_from(record_offset - self.durable_len).expect(
            "the writer syncs at UNSYNCED_BYTES_MAX (1 GiB) and batches are at most a few MiB",
        );
        let lsn = self.next_lsn;
        let start = self.pending.len();
        record::encode_record(&mut self.pending, unsynced_before, payload);
        // Pair the write with a read: the framed bytes must check out as
        // recovery will check them, and carry exactly the payload.
        debug_assert_eq!(
            check_framed(&self.pending[start..]).as_deref(),
            Ok(payload),
            "a record frames and checks back to its payload"
        );
        self.next_lsn += 1;
        self.pending_records += 1;
        self.last_unsynced_before = Some(unsynced_before);
        Ok(lsn)
    }

    /// Takes back every pending record (used when a batch is abandoned before writing).
    pub fn discard_pending(&mut self) {
        self.next_lsn -= self.pending_records;
        self.pending_records = 0;
        self.pending.clear();
    }

    /// Where the log stands before the records now pending: what
    /// [`Self::forget_failed_batch`] goes back to if their flush fails.
    pub fn batch_start(&self) -> BatchStart {
        BatchStart {
            written_len: self.written_len,
            next_lsn: self.next_lsn - self.pending_records,
        }
    }

    /// After a failed flush (the writer is poisoned): stops counting the
    /// batch that began at `start`, so the log's length, its record count and
    /// what history reads end where the last good batch ended. Its bytes may
    /// still be in the file; nothing is written after them.
    pub fn forget_failed_batch(&mut self, start: BatchStart) {
        debug_assert!(
            self.poisoned.is_some(),
            "only a failed flush forgets a batch"
        );
        debug_assert!(start.written_len <= self.written_len && start.next_lsn <= self.next_lsn);
        self.discard_pending();
        self.written_len = start.written_len;
        self.durable_len = self.durable_len.min(start.written_len);
        self.next_lsn = start.next_lsn;
    }

    /// Bytes written but not yet made durable.
    pub fn unsynced_bytes(&self) -> u64 {
        self.written_len - self.durable_len
    }

    /// Whether so much is written but unsynced that the writer must sync
    /// before framing more (keeps every record's `unsynced_before` in a u32).
    pub fn must_sync(&self) -> bool {
        self.unsynced_bytes() >= UNSYNCED_BYTES_MAX
    }

    /// Writes the pending records with one positioned write, without syncing.
    /// On failure the writer is poisoned and the pending records are dropped.
    pub fn write(&mut self) -> Result<(), StorageError> {
        self.write_records(Fill::Ahead)
    }

    /// [`Self::write`], with or without zeros ahead of the records.
    fn write_records(&mut self, fill: Fill) -> Result<(), StorageError> {
        self.check_poisoned()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let records_len = self.pending.len();
        let end = self.written_len + records_len as u64;
        let fill = if fill == Fill::Ahead && end > self.allocated_len && self.version >= 2 {
            // Zeros ahead, in the same write and synced with the batch: the
            // next batches are overwrites. (Written, not `fallocate`d: an
            // unwritten extent still changes metadata when first written.)
            self.preallocate_bytes
        } else {
            0
        };
        self.pending.resize(records_len + fill as usize, 0);
        let written = self.file.write_all_at(self.written_len, &self.pending);
        self.pending.truncate(records_len);
        if let Err(e) = written {
            return Err(self.poison(StorageError::io("write", &self.path, e)));
        }
        self.written_len = end;
        self.allocated_len = self.allocated_len.max(end + fill);
        self.pending.clear();
        self.pending_records = 0;
        Ok(())
    }

    /// Makes everything written so far durable with one `fdatasync`.
    /// On failure the writer is poisoned: the bytes may or may not reach the
    /// disk, and nothing is written after them.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        if self.unsynced_bytes() == 0 {
            return Ok(());
        }
        if let Err(e) = self.file.sync_data() {
            return Err(self.poison(StorageError::io("fdatasync", &self.path, e)));
        }
        self.durable_len = self.written_len;
        Ok(())
    }

    /// Closes the log cleanly: writes and syncs everything, then, if the last
    /// record's durability is not proven by its own header (its
    /// `unsynced_before` is not 0: it shared a sync with records before it),
    /// appends a *seal* — an empty record with `unsynced_before` 0 — and
    /// syncs that too.
    ///
    /// Without the seal, damage inside the last batch of a cleanly closed log
    /// would look like a torn write and be cut off; with it, recovery knows
    /// those bytes were durable and reports corruption instead. Last, a
    /// preallocated tail is cut off, so the segment ends at its last record.
    pub fn seal(&mut self) -> Result<(), StorageError> {
        // No zeros ahead: they would be cut at once, and on a nearly full
        // disk their write could fail the seal (and poison the log) where
        // the records alone fit.
        self.write_records(Fill::None)?;
        if self
            .last_unsynced_before
            .is_some_and(|unsynced| unsynced > 0)
        {
            self.sync()?;
            self.append(self.seal_payload)?;
            self.write_records(Fill::None)?;
            debug_assert_eq!(self.last_unsynced_before, Some(0));
        }
        let cut = self.allocated_len > self.written_len;
        if cut {
            // A sealed segment ends at its last record: a closed store
            // keeps no preallocated space, and a finished segment (a roll
            // seals it) has no zero tail. The sync below makes it durable.
            if let Err(e) = self.file.set_len(self.written_len) {
                return Err(self.poison(StorageError::io("truncate", &self.path, e)));
            }
            self.allocated_len = self.written_len;
        }
        if self.unsynced_bytes() > 0 {
            self.sync()
        } else if cut {
            self.file
                .sync_data()
                .map_err(|e| self.poison(StorageError::io("fdatasync", &self.path, e)))
        } else {
            Ok(())
        }
    }

    /// Ends the current segment and starts the next, between batches: seals
    /// and syncs the current one (so it is complete: recovery treats damage
    /// in any segment but the last as corruption), creates
    /// `{next_lsn:020}.wal`, writes and syncs its header, and syncs the
    /// directory, all before anything is appended to it. On failure the
    /// writer is poisoned.
    pub fn roll(&mut self) -> Result<(), StorageError> {
        debug_assert!(!self.has_pending(), "segments roll between batches");
        self.seal()?;
        let first_lsn = self.next_lsn;
        let path = self.dir.join(segment_file_name(first_lsn));
        let file = match self.create_segment(first_lsn, &path) {
            Ok(file) => file,
            Err((op, e)) => return Err(self.poison(StorageError::io(op, &path, e))),
        };
        let old_path = std::mem::replace(&mut self.path, path);
        self.closed.push(ClosedSegment {
            first_lsn: self.segment_first_lsn,
            path: old_path,
            bytes: self.written_len,
        });
        self.file = file;
        self.segment_first_lsn = first_lsn;
        self.written_len = FILE_HEADER_LEN as u64;
        self.durable_len = FILE_HEADER_LEN as u64;
        self.allocated_len = FILE_HEADER_LEN as u64;
        self.version = record::FORMAT_VERSION;
        self.last_unsynced_before = None;
        Ok(())
    }

    /// Creates a segment file holding just its header, durably (file and
    /// directory entry). Refuses to reuse an existing file.
    fn create_segment(
        &self,
        first_lsn: u64,
        path: &Path,
    ) -> Result<Box<dyn StorageFile>, (&'static str, io::Error)> {
        if self.storage.exists(path).map_err(|e| ("stat", e))? {
            return Err((
                "create",
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a segment with this first LSN already exists",
                ),
            ));
        }
        let mut file = self
            .storage
            .open_file(path, OpenMode::CreateReadWrite)
            .map_err(|e| ("create", e))?;
        let header = FileHeader::new(first_lsn).encode();
        file.write_all_at(0, &header).map_err(|e| ("write", e))?;
        file.sync_data().map_err(|e| ("fdatasync", e))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| ("fsync directory", e))?;
        Ok(file)
    }

    /// Remembers the first failure; framed records not yet written are dropped.
    fn poison(&mut self, error: StorageError) -> StorageError {
        if self.poisoned.is_none() {
            self.poisoned = Some(error.clone());
        }
        if self.pending_records > 0 {
            self.discard_pending();
        }
        error
    }
}

/// Checks one framed record as recovery does and returns its payload (for
/// the writer's debug pairing of every write with a read).
fn check_framed(bytes: &[u8]) -> Result<Vec<u8>, Damage> {
    let header_bytes: &[u8; RECORD_HEADER_LEN] = bytes
        .get(..RECORD_HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(Damage::Truncated {
            len: RECORD_HEADER_LEN as u64,
        })?;
    let header = record::RecordHeader::decode(header_bytes)?;
    let payload = &bytes[RECORD_HEADER_LEN..];
    if payload.len() != header.payload_len as usize {
        return Err(Damage::Truncated {
            len: header.record_len(),
        });
    }
    header.verify_payload(header_bytes, payload)?;
    Ok(payload.to_vec())
}
