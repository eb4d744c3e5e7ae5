//! The store handle: opening a data directory (lock, recover, start the
//! server thread), handing out clients, and closing.
//!
//! Architecture invariant: the server thread is joined before `close` or
//! `drop` returns, and the directory lock is released only after that.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::thread::{self, JoinHandle};

use crate::client::Client;
use crate::command::Request;
use crate::compaction::CompactInfo;
use crate::error::{OpenError, StorageError};
use crate::options::Options;
use crate::restore;
use crate::server::{Server, Shared, Snapshots};
use crate::snapshot::{RejectedSnapshot, SnapshotInfo};
use crate::storage::{Storage, StorageLock};
use crate::wal::TornTail;

/// The lock file in a data directory; an open store holds an exclusive lock on it.
pub(crate) const LOCK_FILE_NAME: &str = "LOCK";

/// How long a contended directory lock is retried before `AlreadyOpen`.
///
/// A lock is tied to an open file description, which a child process forked
/// by any thread of this process shares until it calls `exec`. So a store
/// closed a moment ago can still look locked for that long; a store that is
/// really open elsewhere stays locked and is reported after this bound.
const LOCK_RETRY_MS_MAX: u64 = 200;

/// Takes the data directory's lock, or reports who holds it.
pub(crate) fn lock_dir(
    storage: &dyn crate::storage::Storage,
    dir: &Path,
) -> Result<Box<dyn StorageLock>, OpenError> {
    let lock_path = dir.join(LOCK_FILE_NAME);
    let started = std::time::Instant::now();
    let mut pause_ms = 1;
    loop {
        match storage.try_lock(&lock_path) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if started.elapsed().as_millis() < u128::from(LOCK_RETRY_MS_MAX) => {
                thread::sleep(std::time::Duration::from_millis(pause_ms));
                pause_ms = (pause_ms * 2).min(20);
            }
            Ok(None) => {
                return Err(OpenError::AlreadyOpen {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(OpenError::io("lock", &lock_path, e)),
        }
    }
}

/// What opening the store found: the snapshot it started from, the records
/// it replayed after it, and anything it had to skip or cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records replayed (those after the snapshot, if one was loaded).
    pub records_replayed: u64,
    /// Bytes of the log after recovery, all segments.
    pub log_bytes: u64,
    /// Segment files the log is made of.
    pub segments: u64,
    /// A damaged or incomplete end of the log that was cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// The snapshot the state was loaded from, if any.
    pub snapshot: Option<SnapshotInfo>,
    /// Newer snapshots that failed a check and were skipped, newest first:
    /// when this is not empty, opening fell back to [`Self::snapshot`] (or,
    /// if that is `None`, to replaying the whole log).
    pub snapshots_rejected: Vec<RejectedSnapshot>,
    /// The LSN of the oldest record still in the log: 1 unless compaction
    /// removed segments. History starts here.
    pub history_starts_at_lsn: u64,
}

impl RecoveryReport {
    /// Bytes cut off the end of the log (0 when the log ended cleanly).
    pub fn bytes_dropped(&self) -> u64 {
        self.torn_tail.as_ref().map_or(0, |torn| torn.bytes)
    }

    /// Whether opening skipped a damaged snapshot and fell back to an older
    /// one or to a full replay.
    pub fn fell_back(&self) -> bool {
        !self.snapshots_rejected.is_empty()
    }
}

/// An open ticket store: a data directory, locked, with its server thread.
///
/// ```
/// use ticketlog::{Options, Store, TicketDraft};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path(), Options::default())?;
/// let client = store.client();
/// let ticket = client.create(TicketDraft {
///     title: "Write the docs".try_into()?,
///     description: "Every public item gets one.".try_into()?,
/// })?;
/// assert_eq!(client.get(ticket.id)?, Some(ticket));
/// store.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    requests: SyncSender<Request>,
    shared: Arc<Shared>,
    server: Option<JoinHandle<Result<(), StorageError>>>,
    recovery: RecoveryReport,
    // Dropped after `server` is joined (see `Drop`), releasing the directory.
    _lock: Box<dyn StorageLock>,
}

impl Store {
    /// Opens the store in `dir`, creating it if needed: takes the directory
    /// lock, replays the log (cutting off a torn tail), and starts the server
    /// thread.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Store, OpenError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let storage = options.storage_ref().clone();

        let created_levels = missing_levels(storage.as_ref(), &dir)?;
        storage
            .create_dir_all(&dir)
            .map_err(|e| OpenError::io("create directory", &dir, e))?;
        // No segment yet: a new store (perhaps after an open that failed
        // before its directories were synced).
        let new_store = created_levels > 0
            || crate::wal::segment::list_segments(storage.as_ref(), &dir)
                .map_err(|e| OpenError::io("list directory", &dir, e))?
                .is_empty();
        if new_store {
            sync_ancestors(storage.as_ref(), &dir, created_levels)?;
        }

        let lock = lock_dir(storage.as_ref(), &dir)?;

        let restored = restore::restore(
            &storage,
            &dir,
            options.get_recovery(),
            options.progress_ref(),
        )?;
        let recovery = restored.report;

        let (requests, receiver) = mpsc::sync_channel(options.get_channel_capacity());
        let shared = Arc::new(Shared::default());
        let server = Server {
            state: restored.state,
            log: restored.log,
            requests: receiver,
            requests_tx: requests.clone(),
            batch_commands_max: options.get_batch_commands_max(),
            durability: options.get_durability(),
            segment_bytes: options.get_segment_bytes(),
            digest_every: options.get_digest_every(),
            last_digest_lsn: restored.last_digest_lsn,
            snapshots: Snapshots::new(
                options.get_snapshot_every(),
                options.get_retention(),
                options.progress_ref().cloned(),
                options.get_snapshot_write_bytes_per_s(),
                restored.on_disk,
                recovery.snapshot.clone(),
            ),
            shared: Arc::clone(&shared),
        };
        let server = thread::Builder::new()
            .name("ticketlog-server".into())
            .spawn(move || server.run())
            .map_err(|e| OpenError::io("spawn server thread", &dir, e))?;

        Ok(Store {
            dir,
            requests,
            shared,
            server: Some(server),
            recovery,
            _lock: lock,
        })
    }

    /// A new client for this store. Clients can be cloned and sent to any thread.
    pub fn client(&self) -> Client {
        Client::new(self.requests.clone(), Arc::clone(&self.shared))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening found in the log: records replayed and any torn tail cut off.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Takes a snapshot of the state now (after every command sent before this
    /// call) and returns once it is durable. Clients are not held up while it
    /// is written: the server freezes the state between two batches and a
    /// helper thread writes it. If nothing was logged since the newest
    /// snapshot, that one is returned. Then retention applies (see
    /// [`Retention`](crate::Retention)).
    pub fn snapshot(&self) -> Result<SnapshotInfo, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(Request::Snapshot { reply })
            .map_err(|_| StorageError::ServerGone)?;
        answer.recv().map_err(|_| StorageError::ServerGone)?
    }

    /// Takes a snapshot (as [`Self::snapshot`]), then removes every log
    /// segment it wholly covers and every older snapshot, whatever the
    /// [`Retention`](crate::Retention) option says. History afterwards starts
    /// at [`CompactInfo::history_starts_at_lsn`].
    pub fn compact(&self) -> Result<CompactInfo, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(Request::Compact { reply })
            .map_err(|_| StorageError::ServerGone)?;
        answer.recv().map_err(|_| StorageError::ServerGone)?
    }

    /// Stops taking requests, answers everything already queued, and joins the
    /// server thread. Clients still held get [`ClientError::Closed`](crate::ClientError::Closed)
    /// from then on. Returns the error that poisoned the store, if one did.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StorageError> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        // Queued behind every earlier request. If the server is gone, the send
        // fails at once and the join below reports it.
        let _ = self.requests.send(Request::Close);
        match server.join() {
            Ok(result) => result,
            Err(_) => Err(StorageError::ServerGone),
        }
    }
}

/// How many of `dir` and its ancestors do not exist yet (so opening creates them).
fn missing_levels(storage: &dyn Storage, dir: &Path) -> Result<usize, OpenError> {
    let mut missing = 0;
    for ancestor in dir.ancestors() {
        if ancestor.as_os_str().is_empty()
            || storage
                .exists(ancestor)
                .map_err(|e| OpenError::io("stat", ancestor, e))?
        {
            break;
        }
        missing += 1;
    }
    Ok(missing)
}

/// Makes a new store's directory reachable after a crash: fsyncs the parent
/// of `dir` and every directory above it, up to the root.
///
/// A new directory's name is durable only once its parent is synced, and
/// this must hold for every level this open created (`created_levels`) —
/// and for levels an earlier, failed open may have created, which is why
/// this runs whenever the log does not exist yet, not only when this open
/// created a directory. Above the levels created now, an ancestor this
/// process may not open for reading (permission denied) ends the walk: the
/// store creates its directories owner-readable, so such an ancestor, and
/// every one above it, predates the store.
fn sync_ancestors(
    storage: &dyn Storage,
    dir: &Path,
    created_levels: usize,
) -> Result<(), OpenError> {
    for (level, parent) in dir.ancestors().skip(1).enumerate() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        match storage.sync_dir(parent) {
            Ok(()) => {}
            Err(e) if level >= created_levels && e.kind() == io::ErrorKind::PermissionDenied => {
                break;
            }
            Err(e) => return Err(OpenError::io("fsync directory", parent, e)),
        }
        if parent == Path::new(".") {
            break;
        }
    }
    Ok(())
}

impl Drop for Store {
    fn drop(&mut self) {
        // Errors here have no one to go to; `close` reports them.
        let _ = self.shutdown();
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
};
