//! Appending records: frames changes into a pending buffer, then writes the
//! whole buffer with one positioned write (`write`) and makes everything
//! written durable with one `fdatasync` (`sync`): group commit.
//!
//! Invariant: `durable_len <= written_len`, and nothing past `durable_len` has
//! been reported durable to anyone. After any write or sync failure the writer
//! is poisoned and refuses every later append, write and sync: a retried fsync can
//! report success for pages the kernel already dropped.

use std::path::PathBuf;

use crate::change::Change;
use crate::codec;
use crate::error::StorageError;
use crate::storage::StorageFile;
use crate::wal::record::{self, RECORD_HEADER_LEN};

/// The most bytes the writer lets pile up written but unsynced (with
/// `Durability::Interval` or `Never`) before it syncs regardless. Keeps
/// every record's `unsynced_before` far inside its u32.
pub(crate) const UNSYNCED_BYTES_MAX: u64 = 1 << 30;

/// The log file's writer, owned by the server thread.
#[derive(Debug)]
pub(crate) struct LogWriter {
    file: Box<dyn StorageFile>,
    path: PathBuf,
    /// Bytes in the file that were written successfully.
    written_len: u64,
    /// Bytes known to be on stable storage.
    durable_len: u64,
    /// The sequence number the next record gets.
    next_lsn: u64,
    /// Records in the file (written and pending).
    records: u64,
    /// Framed records not yet written.
    pending: Vec<u8>,
    /// Records in `pending`.
    pending_records: u64,
    /// The `unsynced_before` of the last record appended since open, if any.
    last_unsynced_before: Option<u32>,
    /// Scratch buffer for encoding one payload.
    payload: Vec<u8>,
    /// The first failure, after which nothing more is written.
    poisoned: Option<StorageError>,
}

impl LogWriter {
    /// A writer appending to `file`, whose first `len` bytes are a valid,
    /// durable log holding `records` records ending before `next_lsn`.
    pub fn new(
        file: Box<dyn StorageFile>,
        path: PathBuf,
        len: u64,
        next_lsn: u64,
        records: u64,
    ) -> Self {
        LogWriter {
            file,
            path,
            written_len: len,
            durable_len: len,
            next_lsn,
            records,
            pending: Vec::with_capacity(64 << 10),
            pending_records: 0,
            last_unsynced_before: None,
            payload: Vec::with_capacity(1024),
            poisoned: None,
        }
    }

    /// Bytes in the log, counting records not yet written.
    pub fn len(&self) -> u64 {
        self.written_len + self.pending.len() as u64
    }

    /// Records in the log, counting records not yet written.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes framed but not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
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

    /// Frames `changes` as one record in the pending buffer; returns its LSN.
    /// Nothing is written until [`Self::flush`].
    pub fn append(&mut self, changes: &[Change]) -> Result<u64, StorageError> {
        self.check_poisoned()?;
        super::encode_payload(changes, &mut self.payload)?;
        let record_offset = self.len();
        let unsynced_before = u32::try_from(record_offset - self.durable_len).expect(
            "the server syncs at UNSYNCED_BYTES_MAX (1 GiB) and batches are at most a few MiB",
        );
        let lsn = self.next_lsn;
        let start = self.pending.len();
        record::encode_record(&mut self.pending, unsynced_before, &self.payload);
        debug_assert_eq!(
            self.pending.len() - start,
            RECORD_HEADER_LEN + self.payload.len()
        );
        // Pair the write with a read: the framed bytes must decode to what we encoded.
        debug_assert_eq!(
            codec::decode_changes(&self.pending[start + RECORD_HEADER_LEN..]).as_deref(),
            Ok(changes)
        );
        self.next_lsn += 1;
        self.records += 1;
        self.pending_records += 1;
        self.last_unsynced_before = Some(unsynced_before);
        Ok(lsn)
    }

    /// Takes back every pending record (used when a batch is abandoned before writing).
    pub fn discard_pending(&mut self) {
        self.next_lsn -= self.pending_records;
        self.records -= self.pending_records;
        self.pending_records = 0;
        self.pending.clear();
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
        self.check_poisoned()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all_at(self.written_len, &self.pending) {
            return Err(self.poison(StorageError::io("write", &self.path, e)));
        }
        self.written_len += self.pending.len() as u64;
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
    /// those bytes were durable and reports corruption instead.
    pub fn seal(&mut self) -> Result<(), StorageError> {
        self.write()?;
        self.sync()?;
        if self
            .last_unsynced_before
            .is_some_and(|unsynced| unsynced > 0)
        {
            self.append(&[])?;
            self.write()?;
            self.sync()?;
            debug_assert_eq!(self.last_unsynced_before, Some(0));
        }
        Ok(())
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
