//! The store handle: opening a data directory (lock, recover, start the
//! server thread), handing out clients, and closing.
//!
//! Architecture invariant: the server thread is joined before `close` or
//! `drop` returns, and the directory lock (which the log holds, inside the
//! server thread) is released only when that thread is done.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::thread::{self, JoinHandle};

use crate::api::client::Client;
use crate::domain::codec;
use crate::engine::request::Request;
use crate::engine::restore::{self, Purpose, RecoveryReport, Restored};
use crate::engine::retention::CompactInfo;
use crate::engine::server::{Server, Shared, Snapshots};
use crate::engine::subscription::Subscribers;
use crate::error::{OpenError, StorageError};
use crate::log::local::{LocalOpening, LocalOptions};
use crate::log::{Access, OpeningLog, Recovery};
use crate::options::{LogBackend, Options};
use crate::snapshot::SnapshotInfo;
use crate::storage::Storage;

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
        // No log yet: a new store (perhaps after an open that failed before
        // its directories were synced).
        if created_levels > 0 || !LocalOpening::exists(storage.as_ref(), &dir)? {
            sync_ancestors(storage.as_ref(), &dir, created_levels)?;
        }
        // Locks the directory (the log holds the lock from here until the
        // server thread drops it) and lists what the log holds.
        let log: Box<dyn OpeningLog> = match options.get_log_backend() {
            LogBackend::Local => Box::new(LocalOpening::open(
                Arc::clone(&storage),
                &dir,
                LocalOptions {
                    segment_bytes: options.get_segment_bytes(),
                    recovery: options.get_recovery(),
                    access: Access::ReadWrite,
                    preallocate_bytes: options.get_preallocate_bytes(),
                    seal_payload: codec::EMPTY_PAYLOAD,
                },
            )?),
            #[cfg(feature = "jetstream")]
            LogBackend::JetStream(jetstream) => Box::new(
                crate::log::jetstream::JetStreamOpening::open(storage.as_ref(), &dir, jetstream)?,
            ),
            #[cfg(not(feature = "jetstream"))]
            LogBackend::JetStream(_) => return Err(OpenError::BackendNotBuilt("jetstream")),
        };

        let restored = restore::restore(
            &storage,
            &dir,
            log,
            Purpose::Serve {
                recovery: options.get_recovery(),
                progress: options.progress_ref(),
                read_only: false,
            },
        )?;
        Store::start(storage, dir, &options, restored)
    }

    /// Opens the store in `dir` read-only, for looking at it while another
    /// process may have it open: takes no writer lock when one is held,
    /// reads only the whole, checksummed records there now, and never cuts,
    /// creates or writes anything. Queries and history work; commands,
    /// snapshots and compaction fail with [`StorageError::ReadOnly`].
    /// [`RecoveryReport::live`] says whether another process held the store
    /// (then a torn tail is a write in progress, reported in
    /// [`RecoveryReport::torn_tail`] and left alone); the client's
    /// [`Stats::last_lsn`](crate::Stats::last_lsn) says how far it read.
    pub fn open_read_only(dir: impl AsRef<Path>, options: Options) -> Result<Store, OpenError> {
        options.validate()?;
        if !matches!(options.get_log_backend(), LogBackend::Local) {
            return Err(OpenError::InvalidOptions(
                "a read-only open reads the local log; a JetStream store is read by opening it on another host".into(),
            ));
        }
        let dir = dir.as_ref().to_path_buf();
        let storage = options.storage_ref().clone();
        let (log, live) = LocalOpening::open_live(
            Arc::clone(&storage),
            &dir,
            LocalOptions {
                segment_bytes: options.get_segment_bytes(),
                recovery: Recovery::TruncateTornTail,
                access: Access::ReadOnly,
                preallocate_bytes: 0,
                seal_payload: codec::EMPTY_PAYLOAD,
            },
        )?;
        let mut restored = restore::restore(
            &storage,
            &dir,
            Box::new(log),
            Purpose::Serve {
                recovery: Recovery::TruncateTornTail,
                progress: options.progress_ref(),
                read_only: true,
            },
        )?;
        restored.report.live = live;
        Store::start(storage, dir, &options, restored)
    }

    /// Starts the server thread over what opening restored.
    fn start(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        options: &Options,
        restored: Restored,
    ) -> Result<Store, OpenError> {
        let recovery = restored.report;

        let (requests, receiver) = mpsc::sync_channel(options.get_channel_capacity());
        let shared = Arc::new(Shared::default());
        let mut log = restored.log;
        // A shared log wakes the idle server when other hosts append. If the
        // queue is full the server is busy and catches up after that batch.
        let wake_requests = requests.clone();
        log.set_waker(Box::new(move || {
            let _ = wake_requests.try_send(Request::LogAdvanced);
        }));
        let images = log.image_store();
        let server = Server {
            state: restored.state,
            log,
            storage: Arc::clone(&storage),
            dir: dir.clone(),
            requests: receiver,
            requests_tx: requests.clone(),
            batch_commands_max: options.get_batch_commands_max(),
            durability: options.get_durability(),
            digest_every: options.get_digest_every(),
            last_digest_lsn: restored.last_digest_lsn,
            snapshots: Snapshots::new(
                options.get_snapshot_every(),
                options.get_retention(),
                options.progress_ref().cloned(),
                options.get_snapshot_write_bytes_per_s(),
                images,
                restored.on_disk,
                recovery.snapshot.clone(),
            ),
            subscribers: Subscribers::default(),
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
            .map_err(|_| StorageError::Closed)?;
        answer.recv().map_err(|_| StorageError::Closed)?
    }

    /// Takes a snapshot (as [`Self::snapshot`]), then removes every log
    /// segment it wholly covers and every older snapshot, whatever the
    /// [`Retention`](crate::Retention) option says. History afterwards starts
    /// at [`CompactInfo::history_starts_at_lsn`].
    pub fn compact(&self) -> Result<CompactInfo, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(Request::Compact { reply })
            .map_err(|_| StorageError::Closed)?;
        answer.recv().map_err(|_| StorageError::Closed)?
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
