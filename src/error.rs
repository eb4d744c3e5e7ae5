//! The errors of the layers under the domain — storage, the log, opening —
//! which name no ticket: [`StorageError`], [`Damage`], [`OpenError`]. Each
//! variant's message is a sentence a user can act on and names the file and
//! byte offset where that applies. (`TicketError` and `Rejection` are the
//! domain's, in `domain::rejection`; `ClientError`, what a request can come
//! back with, is the engine's, in `engine::request`.)

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// A failure of the storage under the log: the operation, the file, and the
/// operating system's error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. "fdatasync".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A write or sync failed earlier, so the store refuses every later write:
    /// a retried fsync can report success without having written anything.
    /// Queries still work. Close and reopen the store to recover.
    #[error(
        "the store refuses writes since an earlier failure on {path}: {cause}; close and reopen it"
    )]
    Poisoned {
        /// The log file that failed.
        path: PathBuf,
        /// The first failure, as text.
        cause: String,
    },
    /// A record would be larger than the format allows.
    #[error("a log record of {len} bytes is over the limit of {max} bytes")]
    RecordTooLarge {
        /// The encoded payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The log was opened read-only (for inspection) and refuses writes.
    #[error("{path} is open read-only: nothing is written")]
    ReadOnly {
        /// The data directory.
        path: PathBuf,
    },
    /// The server thread stopped unexpectedly (it panicked), so the store
    /// could not be closed cleanly; only [`Store::close`](crate::Store::close)
    /// reports this.
    #[error("the server thread stopped unexpectedly")]
    ServerGone,
    /// The store is closed, or its server thread is gone, so the operation
    /// could not run (the one spelling every request gets, like
    /// `ClientError::Closed`).
    #[error("the store was closed before the operation could run")]
    Closed,
    /// Another host appended to the shared log first, so this batch was
    /// decided against a state that is no longer the newest: the records
    /// after the first `appended` were not appended. The engine catches up
    /// and decides those commands again; a client sees this only as
    /// [`StorageError::Contended`].
    #[error(
        "another host appended to the shared log first; {appended} records of the batch were appended before it"
    )]
    Fenced {
        /// Records of the batch appended before the fence failed (a prefix;
        /// more than 0 only when the batch was split over several messages).
        appended: usize,
    },
    /// The replicated log did not confirm the append within the deadline
    /// (no quorum, the leader lost, the servers unreachable). The command
    /// was **not acknowledged** and is in doubt: it may or may not be in the
    /// log, and once the log is reachable again every host sees the same
    /// answer. Retry later; reads still work.
    #[error(
        "the replicated log is unavailable ({cause}), in doubt for {waited_ms} ms: the command was not acknowledged and may or may not be in the log"
    )]
    Unavailable {
        /// Records of the batch confirmed before the deadline (a prefix).
        appended: usize,
        /// How long the append was in doubt before giving up.
        waited_ms: u64,
        /// The last failure seen, as text.
        cause: String,
    },
    /// Other hosts kept appending first: the command was decided again
    /// after each, this many times, and never got in. Not acknowledged and
    /// not in the log; retry.
    #[error(
        "other hosts appended first {attempts} times in a row: the command was not appended; retry it"
    )]
    Contended {
        /// Attempts made.
        attempts: u32,
    },
    /// The shared log holds something this host cannot reconcile with what
    /// it applied (a hole in the sequence, a damaged or misplaced batch, a
    /// batch that differs from the one this host committed there): it stops
    /// writing. Reads still answer from the state applied so far. Close the
    /// store, check the stream (see docs/REPLICATION.md) and reopen.
    #[error(
        "the shared log {log} at sequence {seq} does not match what this host applied: {what}; writes are refused, close and reopen"
    )]
    Diverged {
        /// The log (e.g. the JetStream stream's name).
        log: String,
        /// The stream sequence where the mismatch is.
        seq: u64,
        /// What is wrong.
        what: String,
    },
    /// A file the store reads while open (a log segment, for history) is
    /// damaged.
    #[error("{path} is corrupt at byte {offset}: {damage}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage within the file.
        offset: u64,
        /// What is wrong.
        damage: Damage,
    },
}

impl StorageError {
    /// How many records of a failed append did reach the log anyway, as a
    /// prefix of the batch: only a shared log that split the batch into
    /// several messages reports more than 0 (see [`StorageError::Fenced`]).
    pub(crate) fn appended_records(&self) -> usize {
        match self {
            StorageError::Fenced { appended, .. } | StorageError::Unavailable { appended, .. } => {
                *appended
            }
            _ => 0,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// What is wrong with a damaged log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// The file header is not a ticketlog header.
    #[error("the file does not start with the ticketlog magic bytes")]
    BadMagic,
    /// The file header's checksum does not match.
    #[error("the file header checksum does not match")]
    BadFileHeader,
    /// The file header names a format version this build cannot read.
    #[error("format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A record header's checksum does not match.
    #[error("record header checksum does not match")]
    BadRecordHeader,
    /// A record's payload checksum does not match.
    #[error("record payload checksum does not match")]
    BadPayload,
    /// A record claims a length over the format's limit.
    #[error("record length {len} is over the limit of {max} bytes")]
    RecordTooLong {
        /// The claimed payload length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A record runs past the end of the file.
    #[error("record of {len} bytes runs past the end of the file")]
    Truncated {
        /// The bytes the record needs.
        len: u64,
    },
    /// The payload passed its checksum but does not decode.
    #[error("record payload does not decode: {0}")]
    Undecodable(String),
    /// The record decodes but contradicts the state replayed so far.
    #[error("record contradicts the replayed state: {0}")]
    Inconsistent(String),
    /// A valid, durable record follows damaged bytes: this is not a torn tail.
    #[error("{first} at this offset, and a valid record follows at byte {next_valid}")]
    MidLog {
        /// The damage found first.
        first: Box<Damage>,
        /// Where the next valid record starts.
        next_valid: u64,
    },
    /// Damage in a log segment that is not the last one. Every segment but
    /// the last was sealed and synced before the next was created, so this
    /// cannot be a torn write.
    #[error("{first} at this offset, in a segment that is not the last (so not a torn write)")]
    DamagedSegment {
        /// What is wrong.
        first: Box<Damage>,
    },
    /// A segment's or snapshot's header names a different LSN than its file name.
    #[error(
        "the file is named for LSN {named} but its header says LSN {header}: it was renamed or copied over"
    )]
    Misnamed {
        /// The first LSN in the file name.
        named: u64,
        /// The first LSN in the header.
        header: u64,
    },
    /// No segment holds these records: a segment file is missing (this is
    /// where the first missing one would be).
    #[error(
        "records {first} to {last} are missing: no segment holds them (a segment file was deleted or moved)"
    )]
    MissingRecords {
        /// The first missing LSN.
        first: u64,
        /// The last missing LSN.
        last: u64,
    },
    /// A segment starts before the previous segment ends.
    #[error(
        "the segment starts at LSN {first_lsn}, but the segment before it ends at LSN {}: segments overlap",
        expected - 1
    )]
    OverlappingSegment {
        /// The segment's first LSN.
        first_lsn: u64,
        /// The LSN it should start at.
        expected: u64,
    },
    /// A digest record disagrees with the state that replaying the log up to
    /// it produced: replay did not reproduce what the server did (a
    /// non-deterministic apply, or a format change between versions).
    #[error(
        "the digest record at LSN {lsn} says the state digest is {expected:#018x}, but replay produced {found:#018x}"
    )]
    DigestMismatch {
        /// The LSN of the digest record.
        lsn: u64,
        /// The digest the record carries.
        expected: u64,
        /// The digest of the replayed state.
        found: u64,
    },
    /// A file could not be read (the operating system's error).
    #[error("the file could not be read: {0}")]
    Unreadable(String),
    /// A snapshot covers records the log does not hold.
    #[error(
        "a snapshot covers the log up to LSN {snapshot_lsn}, but the log ends at LSN {log_end_lsn}"
    )]
    SnapshotBeyondLog {
        /// The LSN the snapshot covers.
        snapshot_lsn: u64,
        /// The last LSN in the log.
        log_end_lsn: u64,
    },
    /// The log ends before the LSN a replay was asked to start after (the
    /// layer above names the cause: see [`Damage::SnapshotBeyondLog`]).
    #[error("the log ends at LSN {log_end_lsn}, before LSN {lsn}, where replay was to start")]
    EndsBefore {
        /// The LSN replay was to start after.
        lsn: u64,
        /// The last LSN in the log.
        log_end_lsn: u64,
    },
}

/// Why a store could not be opened. Nothing on disk is changed by a failed open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another store, in this or another process, has the directory open
    /// (its lock was still held after retrying it for a moment).
    #[error("{dir} is already open by another store (its lock file is held)")]
    AlreadyOpen {
        /// The data directory.
        dir: PathBuf,
    },
    /// The log is damaged in a way that is not a torn tail; nothing was changed.
    #[error("{file} is corrupt at byte {offset}: {damage}")]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage within the file.
        offset: u64,
        /// What is wrong.
        damage: Damage,
    },
    /// The log ends in a torn tail and [`Recovery::Strict`](crate::Recovery::Strict)
    /// forbids cutting it; nothing was changed.
    #[error(
        "{file} has a torn tail of {bytes} bytes at byte {offset} ({damage}); strict recovery \
         leaves it: open with Recovery::TruncateTornTail or run `ticketlog log repair` to cut it"
    )]
    TornTail {
        /// The log file.
        file: PathBuf,
        /// Where the torn tail starts (the end of the last good record).
        offset: u64,
        /// Bytes from `offset` to the end of the file.
        bytes: u64,
        /// What is wrong at `offset`.
        damage: Damage,
    },
    /// An I/O operation failed while opening.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The options are not usable.
    #[error("invalid option: {0}")]
    InvalidOptions(String),
    /// The replicated log's servers could not be reached, or did not answer
    /// an opening request in time.
    #[error("the replicated log at {servers} could not be opened: {cause}")]
    LogUnreachable {
        /// The server URLs tried.
        servers: String,
        /// What failed, as text.
        cause: String,
    },
    /// The NATS server is older than the oldest release ticketlog trusts
    /// with its log (older ones can acknowledge writes no disk holds, or
    /// let racing writers through; see docs/REPLICATION.md).
    #[error(
        "the NATS server at {servers} is version {version}; ticketlog needs {min} or later (see docs/REPLICATION.md for the pinned build)"
    )]
    LogServerTooOld {
        /// The server URLs.
        servers: String,
        /// The version the server reported.
        version: String,
        /// The oldest version accepted.
        min: &'static str,
    },
    /// The stream exists with a configuration other than the one ticketlog
    /// needs (which it creates when the stream does not exist): opening
    /// changes nothing. Use another stream name, or fix the stream.
    #[error(
        "stream {stream} exists with {field} = {found}, but ticketlog needs {expected}: nothing was changed; use another stream name or fix the stream"
    )]
    LogConfigMismatch {
        /// The stream.
        stream: String,
        /// The configuration field that differs.
        field: &'static str,
        /// What ticketlog needs.
        expected: String,
        /// What the stream has.
        found: String,
    },
    /// This build has no such log backend (it was compiled without the
    /// feature that provides it).
    #[error("this build of ticketlog has no {0} log backend: rebuild it with the `{0}` feature")]
    BackendNotBuilt(&'static str),
}

impl OpenError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        OpenError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
