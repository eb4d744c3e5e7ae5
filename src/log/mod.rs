//! The log layer: stores framed, checksummed payloads by LSN and knows
//! nothing of what they mean.
//!
//! [`CommandLog`] is the boundary every log backend implements; the engine
//! holds one as a `Box<dyn CommandLog>` and sees nothing else of it.
//! [`OpeningLog`] is the first half of opening one: the engine reads where
//! the log starts, picks a snapshot, then has the log replay the records
//! after it. [`local`] is the first backend: a run of segment files in the
//! data directory. `docs/LOG_CONTRACT.md` is the contract, written out.
//!
//! Architecture invariant: this layer names no ticket, state, change or
//! snapshot. A payload is bytes; an LSN is a position. What a shared log
//! keeps for the engine's snapshots ([`ImageStore`]) is bytes by LSN too.

#[cfg(feature = "jetstream")]
pub mod jetstream;
pub mod jetstream_options;
pub mod local;

use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Damage, OpenError, StorageError};

/// The largest payload one record may carry, in every backend.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 1 << 20;

/// What opening a log does with a damaged end.
///
/// Damage that a later durable record proves was synced (mid-log corruption)
/// is an error in every mode; see `docs/FORMAT.md`, "Recovery".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Recovery {
    /// Cut off a torn tail (bytes that were never synced, so hold nothing
    /// acknowledged), sync the cut, and report it in
    /// [`RecoveryReport::torn_tail`](crate::RecoveryReport::torn_tail).
    #[default]
    TruncateTornTail,
    /// Any damage, a torn tail included, fails the open with
    /// [`OpenError::TornTail`] or [`OpenError::Corrupt`], and nothing on disk
    /// is changed.
    Strict,
}

/// Whether an open may change the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Open for appending: a torn tail is cut (as [`Recovery`] allows), the
    /// last file is made durable, and the log takes the directory's lock.
    ReadWrite,
    /// Inspect only: nothing is cut, created or synced; appends are refused.
    ReadOnly,
}

/// How far an append must get before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Written to the operating system and made durable (`fdatasync`).
    Durable,
    /// Written to the operating system only; [`CommandLog::sync`] later.
    Written,
}

/// The records of one group-commit batch: opaque payloads, in LSN order.
///
/// Invariant: `ends` is non-decreasing and its last element is
/// `bytes.len()`; every payload is at most [`RECORD_PAYLOAD_BYTES_MAX`].
/// An encoder writes into `scratch`, never into `bytes`, so it cannot
/// change a record already pushed.
#[derive(Clone, Debug, Default)]
pub struct RecordBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    scratch: Vec<u8>,
}

impl RecordBatch {
    /// An empty batch with room for `bytes` bytes of payload.
    pub fn with_capacity(bytes: usize) -> Self {
        RecordBatch {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(64),
            scratch: Vec::new(),
        }
    }

    /// Appends one record whose payload `encode` writes into the empty
    /// buffer it is given (the batch's own scratch buffer, so an encoder
    /// cannot touch a record already pushed). If `encode` fails, or writes
    /// more than [`RECORD_PAYLOAD_BYTES_MAX`] bytes, the batch is left as it
    /// was.
    pub fn push_with(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.push_with_limit(RECORD_PAYLOAD_BYTES_MAX, encode)
    }

    /// Like [`Self::push_with`], refusing a payload over `limit` bytes (the
    /// smaller of `limit` and [`RECORD_PAYLOAD_BYTES_MAX`]): a log whose
    /// records must fit a smaller message ([`CommandLog::record_payload_bytes_max`]).
    pub fn push_with_limit(
        &mut self,
        limit: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let max = limit.min(RECORD_PAYLOAD_BYTES_MAX);
        self.scratch.clear();
        encode(&mut self.scratch)?;
        let len = self.scratch.len();
        if len > max {
            return Err(StorageError::RecordTooLarge { len, max });
        }
        self.bytes.extend_from_slice(&self.scratch);
        self.ends.push(self.bytes.len());
        Ok(())
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Payload bytes in the batch.
    pub fn payload_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The payloads, in order.
    pub fn payloads(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            // `ends` ascend and stop at `bytes.len()`: push_with records
            // each payload's end after appending it.
            let payload = &self.bytes[start..end];
            start = end;
            payload
        })
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// Where a record sits in the local log's files (for `log dump`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPlace {
    /// The first LSN of the file that holds it (which names the file).
    pub file: u64,
    /// Byte offset of the record in its file.
    pub offset: u64,
    /// Bytes the record takes, header included.
    pub len: u64,
}

/// One record as replay hands it over.
#[derive(Clone, Copy, Debug)]
pub struct LogRecord<'a> {
    /// Its log sequence number (1 for the first record).
    pub lsn: u64,
    /// Where it is stored.
    pub place: RecordPlace,
    /// The payload, exactly as appended; both checksums have passed.
    pub payload: &'a [u8],
}

/// A damaged or incomplete end of the log, which opening cuts off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the damage starts: the end of the last good record.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// What was wrong at `offset`.
    pub damage: Damage,
}

/// What a full read of one log file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogScan {
    /// The file.
    pub path: PathBuf,
    /// The LSN of the file's first record (from its name).
    pub first_lsn: u64,
    /// Good records.
    pub records: u64,
    /// The file's length.
    pub file_bytes: u64,
    /// Where the good part ends (header and good records).
    pub valid_bytes: u64,
    /// The LSN the next record would get.
    pub next_lsn: u64,
    /// A torn tail, if there is one.
    pub torn_tail: Option<TornTail>,
    /// Bytes of zero-filled tail after the last record (only a version-2
    /// segment has one: space preallocated for records not yet written).
    /// `valid_bytes` plus this, or plus the torn tail's bytes, is
    /// `file_bytes`.
    pub zero_tail_bytes: u64,
    /// The segment's format version (from its header; 0 if it has none).
    pub version: u32,
    /// The `unsynced before` field of the last good record, if there is one:
    /// not 0 means that record's durability is proven by no header after it.
    pub last_unsynced_before: Option<u32>,
}

/// What replaying a log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Records handed to the callback.
    pub records_replayed: u64,
    /// The files read, in LSN order; the last is where appends go.
    pub scans: Vec<LogScan>,
}

impl Replayed {
    /// The damaged end of the last file, if it had one (cut, unless the log
    /// was opened read-only).
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.scans.last().and_then(|scan| scan.torn_tail.as_ref())
    }
}

/// Size figures of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSize {
    /// Bytes in every file of the log, headers included.
    pub bytes: u64,
    /// Records from the oldest kept to the newest.
    pub records: u64,
    /// Files the log is made of.
    pub files: u64,
}

/// What [`CommandLog::release_through`] gave up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Files removed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Called by a shared log, from any thread, when records other writers
/// appended have arrived and [`CommandLog::catch_up`] would apply them.
pub type LogWaker = Box<dyn Fn() + Send + Sync>;

/// A log opened but not yet replayed: the engine reads where it starts,
/// picks a snapshot, then replays the records after it.
pub trait OpeningLog: fmt::Debug {
    /// Whether the log holds nothing yet (a new store): nothing has been
    /// created on disk so far.
    fn is_new(&self) -> bool;

    /// The LSN of the oldest record held (1 unless records were released).
    fn first_lsn(&self) -> u64;

    /// An upper bound on the LSNs the log holds, cheap to compute: a
    /// snapshot claiming to cover more is damaged.
    fn lsn_bound(&self) -> Result<u64, OpenError>;

    /// Where this log keeps snapshots itself, if it does (a shared log: in
    /// a place every host reads). `None`, the default, means the engine
    /// keeps them as files in the data directory (the local log).
    fn image_store(&self) -> Option<Arc<dyn ImageStore>> {
        None
    }

    /// Before [`Self::replay`]: a snapshot covering the records through
    /// `mark.lsn` will be loaded, so replay may start after `mark.position`
    /// rather than at the start. A log with positions of its own checks
    /// that its record at `mark.position` ends at `mark.lsn` and refuses the
    /// mark (leaving the replay's start as it was) if not. The default,
    /// where positions are LSNs, accepts every mark.
    fn resume_after(&mut self, mark: ImageMark) -> Result<(), Damage> {
        let _ = mark;
        Ok(())
    }

    /// Replays every durable record after `after_lsn` through `visit`, in
    /// order, and returns the log ready to append after the last good one.
    /// A torn tail is cut (under [`Access::ReadWrite`] and
    /// [`Recovery::TruncateTornTail`]); `visit` may reject a record, which
    /// makes the log corrupt there. Reports bytes read, of all it will read,
    /// to `progress`.
    fn replay(
        self: Box<Self>,
        after_lsn: u64,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<(), Damage>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(Box<dyn CommandLog>, Replayed), OpenError>;
}

/// What any log backend promises. See `docs/LOG_CONTRACT.md`.
///
/// Owned by the server thread; every method is called between or at the
/// end of a batch, never concurrently.
pub trait CommandLog: Send + fmt::Debug {
    /// The LSN the next appended record gets.
    fn next_lsn(&self) -> u64;

    /// The LSN of the oldest record still held.
    fn first_lsn(&self) -> u64;

    /// How big the log is.
    fn size(&self) -> LogSize;

    /// Appends `batch` as the next records, as durable as `flush` asks,
    /// and returns the LSN of its first record. All or nothing: on an error
    /// no record of the batch counts as appended, and the log is poisoned.
    fn append(&mut self, batch: &RecordBatch, flush: Flush) -> Result<u64, StorageError>;

    /// Makes everything appended so far durable.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Whether something appended is not yet durable.
    fn has_unsynced(&self) -> bool;

    /// `Ok` unless an earlier failure poisoned the log (then the error every
    /// later append gets). A poisoned log never retries a durable step.
    fn check_healthy(&self) -> Result<(), StorageError>;

    /// A reader of every record appended so far, for another thread.
    fn reader(&self) -> Result<Box<dyn LogReader>, StorageError>;

    /// Between batches: housekeeping the backend needs (the local log ends
    /// a full segment here).
    fn between_batches(&mut self) -> Result<(), StorageError>;

    /// Before a snapshot of everything appended: makes it all durable, and
    /// may end the current file so that the snapshot's LSN falls on a file
    /// boundary and [`Self::release_through`] can give it all up.
    fn checkpoint(&mut self) -> Result<(), StorageError>;

    /// Gives up records through `lsn`, which a durable snapshot covers:
    /// whole files whose records are all at or before it, oldest first,
    /// each removal durable before the next. Calls `on_removed` after each.
    fn release_through(
        &mut self,
        lsn: u64,
        on_removed: &mut dyn FnMut(),
    ) -> Result<Released, StorageError>;

    /// The number of files [`Self::release_through`] would remove now.
    fn releasable_through(&self, lsn: u64) -> u64;

    /// A clean close: everything durable, and marked so that recovery can
    /// tell damage in the last batch from a torn write.
    fn seal(&mut self) -> Result<(), StorageError>;

    // What a log shared by several writers (hosts) adds. The defaults are
    // those of a log only this process writes, like the local one.

    /// Whether other writers may append to this log, so that an append can
    /// fail with [`StorageError::Fenced`] and the engine must keep each
    /// batch's operations to decide them again.
    fn is_shared(&self) -> bool {
        false
    }

    /// The largest record payload an append accepts (at most
    /// [`RECORD_PAYLOAD_BYTES_MAX`]): a shared log's records must fit in one
    /// message of its server.
    fn record_payload_bytes_max(&self) -> usize {
        RECORD_PAYLOAD_BYTES_MAX
    }

    /// Applies, through `visit` and in log order, the records other writers
    /// appended since this log last looked, and returns how many. Does not
    /// block, except after an append failed with [`StorageError::Fenced`]:
    /// then it waits (bounded) until it has seen what got in first. A record
    /// `visit` rejects, or one that breaks the log's continuity, poisons the
    /// log ([`StorageError::Diverged`]). Called between batches only, so a
    /// batch is always decided against one position of the log.
    fn catch_up(
        &mut self,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<(), Damage>,
    ) -> Result<u64, StorageError> {
        let _ = visit;
        Ok(0)
    }

    /// Registers `wake`, which a shared log calls when records from other
    /// writers arrive while the engine may be idle. Never called by a log
    /// only this process writes.
    fn set_waker(&mut self, wake: LogWaker) {
        drop(wake);
    }

    /// Where this log keeps snapshots itself (see
    /// [`OpeningLog::image_store`]); `None` by default.
    fn image_store(&self) -> Option<Arc<dyn ImageStore>> {
        None
    }

    /// The mark a snapshot of everything appended so far carries: the LSN
    /// of the last record and the log's own position of it (the same LSN
    /// by default). Called between batches, when the engine freezes its
    /// state.
    fn image_mark(&self) -> ImageMark {
        let lsn = self.next_lsn() - 1;
        ImageMark { lsn, position: lsn }
    }
}

/// Where an image (a snapshot, to the engine) ends, in both of a log's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageMark {
    /// The LSN of the last record it covers (0: none).
    pub lsn: u64,
    /// The log's own position of that record: a shared log's message
    /// sequence (0: none). Replay resumes after it.
    pub position: u64,
}

/// An image an [`ImageStore`] holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredImage {
    /// Where it ends.
    pub mark: ImageMark,
    /// Its size in bytes.
    pub bytes: u64,
    /// How reports and errors name it.
    pub place: PathBuf,
}

/// Images of the state above the log (the engine's snapshots) kept by the
/// log itself, as opaque bytes by LSN: the engine encodes and checks them;
/// this layer only stores, lists and removes them. At most one per LSN. Used from the server thread and from the
/// snapshot helper thread; every call is bounded in time.
pub trait ImageStore: Send + Sync + fmt::Debug {
    /// The snapshots held, oldest (lowest LSN) first.
    fn list(&self) -> Result<Vec<StoredImage>, StorageError>;

    /// The bytes of the snapshot ending at LSN `lsn`, exactly as stored.
    /// A snapshot that cannot be read whole is [`Damage::Unreadable`].
    fn fetch(&self, lsn: u64) -> Result<Vec<u8>, Damage>;

    /// Stores `bytes`, a snapshot of everything through `mark`, durably;
    /// when it returns `Ok`, [`Self::list`] shows it.
    fn put(&self, mark: ImageMark, bytes: &[u8]) -> Result<StoredImage, StorageError>;

    /// Removes the snapshot ending at LSN `lsn`; one already gone is not
    /// an error.
    fn remove(&self, lsn: u64) -> Result<(), StorageError>;

    /// How reports and errors name the store as a whole.
    fn location(&self) -> PathBuf;
}

/// Reads records a log held when the reader was made, on any thread.
pub trait LogReader: Send + fmt::Debug {
    /// The LSN of the oldest record the reader can see.
    fn first_lsn(&self) -> u64;

    /// The LSN after the newest record it can see.
    fn end_lsn(&self) -> u64;

    /// Calls `visit` with each record from `from_lsn` (or the oldest held,
    /// if later) to the end, checking both checksums of each, until `visit`
    /// breaks.
    fn read(
        &mut self,
        from_lsn: u64,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<ControlFlow<()>, StorageError>,
    ) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_payloads_apart_and_refuses_an_oversized_one_whole() {
        let mut batch = RecordBatch::default();
        batch
            .push_with(|out| {
                out.extend_from_slice(b"one");
                Ok(())
            })
            .unwrap();
        batch.push_with(|_| Ok(())).unwrap();
        let error = batch
            .push_with(|out| {
                out.resize(out.len() + RECORD_PAYLOAD_BYTES_MAX + 1, 0);
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(error, StorageError::RecordTooLarge { .. }));
        batch
            .push_with(|out| {
                out.extend_from_slice(b"three");
                Ok(())
            })
            .unwrap();
        let payloads: Vec<&[u8]> = batch.payloads().collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(batch.payload_bytes(), 8);
        batch.clear();
        assert!(batch.is_empty());
    }

    #[test]
    fn an_encoder_is_given_an_empty_buffer_and_cannot_touch_earlier_records() {
        let mut batch = RecordBatch::default();
        batch
            .push_with(|out| {
                out.extend_from_slice(b"first");
                Ok(())
            })
            .unwrap();
        batch
            .push_with(|out| {
                // Whatever an encoder does to its buffer stays in its own record.
                assert!(out.is_empty(), "an encoder starts from an empty buffer");
                out.extend_from_slice(b"junk");
                out.clear();
                out.extend_from_slice(b"2nd");
                Ok(())
            })
            .unwrap();
        let failed = batch.push_with(|out| {
            out.extend_from_slice(b"half");
            Err(StorageError::Closed)
        });
        assert!(matches!(failed, Err(StorageError::Closed)));
        let payloads: Vec<&[u8]> = batch.payloads().collect();
        assert_eq!(payloads, vec![&b"first"[..], b"2nd"]);
        assert_eq!(batch.payload_bytes(), 8);
    }
}
