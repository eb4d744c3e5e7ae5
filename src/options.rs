//! Settings for opening a store, with builder methods named after each setting.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::OpenError;
use crate::log::Recovery;
pub use crate::log::jetstream_options::{
    IN_DOUBT_DEADLINE_DEFAULT, JETSTREAM_MESSAGE_BYTES_DEFAULT, JetStreamOptions,
};
use crate::progress::{Progress, ProgressFn};
use crate::storage::{FileSystem, Storage};

/// Default capacity of the request channel.
pub const CHANNEL_CAPACITY_DEFAULT: usize = 1024;
/// Default bound on the requests the server takes into one group commit.
pub const BATCH_COMMANDS_MAX_DEFAULT: usize = 4096;
/// Default size at which the log moves on to a new segment file: 64 MiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// The most [`Options::preallocate_bytes`] may be: 16 MiB (the zeros go
/// out in the batch's own write buffer).
pub const PREALLOCATE_BYTES_MAX: u64 = 16 << 20;
/// The bounds of the default preallocation (an eighth of the segment size,
/// at least 4 KiB and at most 1 MiB).
const PREALLOCATE_BYTES_DEFAULT_RANGE: (u64, u64) = (4 << 10, 1 << 20);

/// Default number of records after which the server takes a snapshot.
///
/// A snapshot writes the whole state, so snapshotting often trades write
/// amplification for open time: at a million records (~250 MB of log for
/// typical tickets) replay stays well under a second, and a store of up to a
/// million live tickets writes at most about as many snapshot bytes as log bytes.
pub const SNAPSHOT_EVERY_DEFAULT: u64 = 1_000_000;
/// Default cap on how fast a snapshot is written: 32 MiB/s.
///
/// A snapshot's write traffic competes with the log's syncs for the disk.
/// Measured on a 2-core VM with 1,000,000 tickets, a 251 MB snapshot
/// (`ticketlog bench --workload snapshot-latency --ops 250000 --clients 4`,
/// p99 write latency during the snapshot against as long a phase without):
/// unpaced, 7.5 ms against 0.55 ms (1.1 s snapshot); at 64 MiB/s, 3.4–4.2×
/// the p99 without (3.8 s); at 32 MiB/s, 1.07–1.38× (7.5 s); at 16 MiB/s no
/// better than at 32 (15 s). The server thread never waits for a snapshot,
/// so a slower one costs only time (and log segments kept until it is done).
pub const SNAPSHOT_WRITE_BYTES_PER_S_DEFAULT: u64 = 32 << 20;
/// Default number of records between digest records in the log.
pub const DIGEST_EVERY_DEFAULT: u64 = 10_000;

/// What happens to log segments once a snapshot covers them.
///
/// Either way, opening loads the newest good snapshot and replays only the
/// records after it; the choice is between a complete history and bounded
/// disk use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Retention {
    /// Keep every segment (the default): the log stays the complete audit
    /// trail, so [`Client::history`](crate::Client::history) goes back to
    /// each ticket's creation. Snapshots only speed up opening; the newest two
    /// are kept, so a damaged newest one falls back to the one before it.
    /// [`Store::compact`](crate::Store::compact) still compacts on demand.
    #[default]
    KeepAll,
    /// After every snapshot, delete the segments it wholly covers and every
    /// older snapshot: disk use stays near one snapshot plus one segment.
    /// History then starts at the oldest remaining segment, and a damaged
    /// snapshot cannot fall back to replaying the log from the start.
    Compact,
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::KeepAll => f.write_str("keep-all"),
            Retention::Compact => f.write_str("compact"),
        }
    }
}

impl FromStr for Retention {
    type Err = String;

    /// Parses `keep-all` or `compact`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.to_ascii_lowercase().as_str() {
            "keep-all" | "keepall" => Ok(Retention::KeepAll),
            "compact" => Ok(Retention::Compact),
            _ => Err(format!(
                "retention {input:?} is not valid: use keep-all or compact"
            )),
        }
    }
}

/// When an accepted command's log record is made durable, relative to its
/// acknowledgement. See the README's table of what each mode can lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledge a command only after the `fdatasync` that covers its record
    /// has returned (group commit shares one sync among all queued commands).
    /// Nothing acknowledged is lost on a process crash or power loss.
    #[default]
    Always,
    /// Acknowledge after the record is written to the OS; `fdatasync` at most
    /// once per interval (also when idle). A process crash loses nothing
    /// acknowledged; power loss loses at most the last interval's commands.
    Interval(Duration),
    /// Acknowledge after the write; never `fdatasync` except on close and
    /// every 1 GiB. A process crash loses nothing acknowledged; power loss
    /// can lose anything not yet written back by the OS. For tests and benchmarks.
    Never,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Always => f.write_str("always"),
            Durability::Interval(every) => write!(f, "interval:{}", every.as_millis()),
            Durability::Never => f.write_str("never"),
        }
    }
}

impl FromStr for Durability {
    type Err = String;

    /// Parses `always`, `never`, or `interval:MS` (milliseconds, at least 1).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "durability {input:?} is not valid: use always, never, or interval:MS (e.g. interval:100)"
            )
        };
        match input.to_ascii_lowercase().as_str() {
            "always" => Ok(Durability::Always),
            "never" => Ok(Durability::Never),
            other => {
                let millis: u64 = other
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.parse().ok())
                    .filter(|&ms| ms > 0)
                    .ok_or_else(invalid)?;
                Ok(Durability::Interval(Duration::from_millis(millis)))
            }
        }
    }
}

/// Where a store keeps its command log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogBackend {
    /// Segment files in the data directory (the default): one host.
    #[default]
    Local,
    /// A NATS JetStream stream, replicated on three servers and shared by
    /// every host that opens it (feature `jetstream`; see
    /// docs/REPLICATION.md). The data directory still holds the lock and
    /// this host's snapshots.
    JetStream(JetStreamOptions),
}

/// How to open a [`Store`](crate::Store).
///
/// ```
/// let options = ticketlog::Options::default().channel_capacity(16);
/// assert_eq!(options.get_channel_capacity(), 16);
/// ```
#[derive(Clone)]
pub struct Options {
    channel_capacity: usize,
    batch_commands_max: usize,
    durability: Durability,
    segment_bytes: u64,
    preallocate_bytes: Option<u64>,
    snapshot_every: u64,
    snapshot_write_bytes_per_s: u64,
    digest_every: u64,
    retention: Retention,
    progress: Option<ProgressFn>,
    storage: Arc<dyn Storage>,
    recovery: Recovery,
    log_backend: LogBackend,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            channel_capacity: CHANNEL_CAPACITY_DEFAULT,
            batch_commands_max: BATCH_COMMANDS_MAX_DEFAULT,
            durability: Durability::Always,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            preallocate_bytes: None,
            snapshot_every: SNAPSHOT_EVERY_DEFAULT,
            snapshot_write_bytes_per_s: SNAPSHOT_WRITE_BYTES_PER_S_DEFAULT,
            digest_every: DIGEST_EVERY_DEFAULT,
            retention: Retention::KeepAll,
            progress: None,
            storage: Arc::new(FileSystem),
            recovery: Recovery::default(),
            log_backend: LogBackend::Local,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("channel_capacity", &self.channel_capacity)
            .field("batch_commands_max", &self.batch_commands_max)
            .field("durability", &self.durability)
            .field("segment_bytes", &self.segment_bytes)
            .field("preallocate_bytes", &self.get_preallocate_bytes())
            .field("snapshot_every", &self.snapshot_every)
            .field(
                "snapshot_write_bytes_per_s",
                &self.snapshot_write_bytes_per_s,
            )
            .field("digest_every", &self.digest_every)
            .field("retention", &self.retention)
            .field("progress", &self.progress.is_some())
            .field("storage", &self.storage)
            .field("recovery", &self.recovery)
            .field("log_backend", &self.log_backend)
            .finish()
    }
}

impl Options {
    /// How many requests may wait in the request channel (at least 1). When it
    /// is full, blocking client calls wait and `try_*` calls fail with
    /// [`ClientError::Overloaded`](crate::ClientError::Overloaded).
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity;
        self
    }

    /// The most requests the server takes into one batch, that is, one write
    /// and one `fdatasync` (at least 1; 1 turns group commit off).
    pub fn batch_commands_max(mut self, max: usize) -> Self {
        self.batch_commands_max = max;
        self
    }

    /// When records are made durable (default [`Durability::Always`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The size at which the log moves on to a new segment file (default
    /// [`SEGMENT_BYTES_DEFAULT`], 64 MiB; at least 1). The server checks
    /// between batches, so a segment can end up larger by one batch (at most
    /// 4 MiB of records). Smaller segments let compaction reclaim space
    /// sooner, at the cost of more files.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// How far ahead of the records the local log zero-fills its segment
    /// file (default: an eighth of [`Self::segment_bytes`], at least 4 KiB and
    /// at most 1 MiB; 0 turns it off; at most [`PREALLOCATE_BYTES_MAX`]).
    /// A durable append that stays inside the filled part changes no file
    /// size, so its `fdatasync` writes the data and no file-system metadata;
    /// the zeros are written and synced with the batch that passes the end
    /// of the filled part. See docs/FORMAT.md, "The zero tail".
    pub fn preallocate_bytes(mut self, bytes: u64) -> Self {
        self.preallocate_bytes = Some(bytes);
        self
    }

    /// Take a snapshot automatically once this many records have been
    /// written since the last one (default [`SNAPSHOT_EVERY_DEFAULT`]; 0 turns
    /// automatic snapshots off). The snapshot is written by a helper thread
    /// from a frozen copy of the state, so clients are not held up.
    pub fn snapshot_every(mut self, records: u64) -> Self {
        self.snapshot_every = records;
        self
    }

    /// Write a digest record into the log once this many records have been
    /// written since the last one (default [`DIGEST_EVERY_DEFAULT`]; 0 turns
    /// them off). Replay checks the state against each.
    pub fn digest_every(mut self, records: u64) -> Self {
        self.digest_every = records;
        self
    }

    /// What happens to segments a snapshot covers (default [`Retention::KeepAll`]).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// A callback for the progress of replay, snapshots and compaction (see
    /// [`Progress`]). Called from the opening thread during
    /// [`Store::open`](crate::Store::open) and from the snapshot helper
    /// thread later, so it must be quick and must not call into the store.
    pub fn progress(mut self, callback: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(ProgressFn::new(callback));
        self
    }

    /// The most bytes per second a snapshot is written at (default
    /// [`SNAPSHOT_WRITE_BYTES_PER_S_DEFAULT`]; 0 for no limit). A slower
    /// snapshot takes longer but holds up the log's syncs less.
    pub fn snapshot_write_bytes_per_s(mut self, bytes_per_s: u64) -> Self {
        self.snapshot_write_bytes_per_s = bytes_per_s;
        self
    }

    /// The cap on how fast a snapshot is written (0: none).
    pub fn get_snapshot_write_bytes_per_s(&self) -> u64 {
        self.snapshot_write_bytes_per_s
    }

    /// The storage under the log (default: the real [`FileSystem`]).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// What opening does with a damaged end of the log (default:
    /// [`Recovery::TruncateTornTail`]; [`Recovery::Strict`] changes nothing
    /// and fails instead).
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// Where the command log is kept (default [`LogBackend::Local`]).
    pub fn log_backend(mut self, backend: LogBackend) -> Self {
        self.log_backend = backend;
        self
    }

    /// The log backend.
    pub fn get_log_backend(&self) -> &LogBackend {
        &self.log_backend
    }

    /// The recovery mode.
    pub fn get_recovery(&self) -> Recovery {
        self.recovery
    }

    /// The request channel's capacity.
    pub fn get_channel_capacity(&self) -> usize {
        self.channel_capacity
    }

    /// The bound on requests per batch.
    pub fn get_batch_commands_max(&self) -> usize {
        self.batch_commands_max
    }

    /// The durability mode.
    pub fn get_durability(&self) -> Durability {
        self.durability
    }

    /// The segment size limit in bytes.
    pub fn get_segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// How far ahead of the records segments are zero-filled (0: not at all).
    pub fn get_preallocate_bytes(&self) -> u64 {
        let (low, high) = PREALLOCATE_BYTES_DEFAULT_RANGE;
        self.preallocate_bytes
            .unwrap_or_else(|| (self.segment_bytes / 8).clamp(low, high))
    }

    /// Records between automatic snapshots (0: none).
    pub fn get_snapshot_every(&self) -> u64 {
        self.snapshot_every
    }

    /// Records between digest records (0: none).
    pub fn get_digest_every(&self) -> u64 {
        self.digest_every
    }

    /// The retention policy.
    pub fn get_retention(&self) -> Retention {
        self.retention
    }

    pub(crate) fn progress_ref(&self) -> Option<&ProgressFn> {
        self.progress.as_ref()
    }

    pub(crate) fn storage_ref(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub(crate) fn validate(&self) -> Result<(), OpenError> {
        if self.channel_capacity == 0 {
            return Err(OpenError::InvalidOptions(
                "channel_capacity must be at least 1".into(),
            ));
        }
        if self.batch_commands_max == 0 {
            return Err(OpenError::InvalidOptions(
                "batch_commands_max must be at least 1".into(),
            ));
        }
        if self.segment_bytes == 0 {
            return Err(OpenError::InvalidOptions(
                "segment_bytes must be at least 1".into(),
            ));
        }
        if self.get_preallocate_bytes() > PREALLOCATE_BYTES_MAX {
            return Err(OpenError::InvalidOptions(format!(
                "preallocate_bytes must be at most {PREALLOCATE_BYTES_MAX}"
            )));
        }
        if self.durability == Durability::Interval(Duration::ZERO) {
            return Err(OpenError::InvalidOptions(
                "a durability interval must be longer than zero".into(),
            ));
        }
        if let LogBackend::JetStream(jetstream) = &self.log_backend {
            jetstream.validate()?;
        }
        Ok(())
    }
}
