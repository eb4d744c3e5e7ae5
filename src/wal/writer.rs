//! Appending records: frames events into a pending buffer, then writes the
//! whole buffer with one positioned write and makes it durable with one
//! `fdatasync` (group commit).
//!
//! Invariant: `durable_len <= written_len`, and nothing past `durable_len` has
//! been reported durable to anyone. After any write or sync failure the writer
//! is poisoned and refuses every later append and flush: a retried fsync can
//! report success for pages the kernel already dropped.

use std::path::PathBuf;

use crate::codec;
use crate::error::StorageError;
use crate::event::Event;
use crate::storage::StorageFile;
use crate::wal::record::{self, RECORD_HEADER_LEN};

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

    /// Frames `events` as one record in the pending buffer; returns its LSN.
    /// Nothing is written until [`Self::flush`].
    pub fn append(&mut self, events: &[Event]) -> Result<u64, StorageError> {
        self.check_poisoned()?;
        super::encode_payload(events, &mut self.payload)?;
        let record_offset = self.len();
        let unsynced_before = u32::try_from(record_offset - self.durable_len)
            .expect("the server flushes long before 4 GiB are pending");
        let lsn = self.next_lsn;
        let start = self.pending.len();
        record::encode_record(&mut self.pending, unsynced_before, &self.payload);
        debug_assert_eq!(
            self.pending.len() - start,
            RECORD_HEADER_LEN + self.payload.len()
        );
        // Pair the write with a read: the framed bytes must decode to what we encoded.
        debug_assert_eq!(
            codec::decode_events(&self.pending[start + RECORD_HEADER_LEN..]).as_deref(),
            Ok(events)
        );
        self.next_lsn += 1;
        self.records += 1;
        self.pending_records += 1;
        Ok(lsn)
    }

    /// Takes back every pending record (used when a batch is abandoned before writing).
    pub fn discard_pending(&mut self) {
        self.next_lsn -= self.pending_records;
        self.records -= self.pending_records;
        self.pending_records = 0;
        self.pending.clear();
    }

    /// Writes the pending records with one write and makes them durable with
    /// one `fdatasync`. On failure the writer is poisoned.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all_at(self.written_len, &self.pending) {
            return Err(self.poison(StorageError::io("write", &self.path, e)));
        }
        if let Err(e) = self.file.sync_data() {
            // The bytes may or may not reach the disk; either way they were
            // never reported durable, and nothing is written after them.
            return Err(self.poison(StorageError::io("fdatasync", &self.path, e)));
        }
        self.written_len += self.pending.len() as u64;
        self.durable_len = self.written_len;
        self.pending.clear();
        self.pending_records = 0;
        Ok(())
    }

    fn poison(&mut self, error: StorageError) -> StorageError {
        if self.poisoned.is_none() {
            self.poisoned = Some(error.clone());
        }
        // The records were not made durable: do not count them.
        if self.pending_records > 0 {
            self.discard_pending();
        }
        error
    }
}
