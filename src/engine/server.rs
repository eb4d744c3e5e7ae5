//! The server thread: the one place that owns and mutates the state and the
//! log writer.
//!
//! Its loop is group commit. It blocks for one request, then takes whatever
//! else is already queued (up to a bounded batch), and for each command in
//! arrival order: decides it against the current state (a rejection writes
//! nothing), applies it in memory, and frames its record. Then one write
//! covers the whole batch and — under [`Durability::Always`] — one
//! `fdatasync`, and only after that do replies go out. Queries that arrive
//! while the batch holds unwritten changes are answered after the flush, so
//! no reply ever shows a change before it is as durable as the mode
//! promises. If the flush fails, every change of the batch is undone in
//! memory, its commands get the storage error, and the writer is poisoned.
//!
//! Between batches the server also keeps the log bounded: it rolls to a new
//! segment when the current one is full, appends a digest record every so
//! many records, and starts snapshots — freezing the state (a pointer copy
//! per chunk) and handing it to a helper thread that writes the file, so no
//! client waits for a snapshot to be written. When the helper reports back
//! (through the request channel), the server applies the retention policy.
//!
//! Architecture invariant: under `Always`, nothing leaves this thread — no
//! reply, no query answer — that depends on a record before that record is
//! durable.
//!
//! Architecture invariant: a snapshot covers only records that are durable
//! (the log is synced before the state is frozen, in every durability mode),
//! and is taken between batches, when memory equals the log.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::domain::codec;
use crate::domain::command::{Applied, Operation};
use crate::domain::event::{Event, Position};
use crate::domain::ticket::TicketId;
use crate::domain::time::Timestamp;
use crate::engine::request::{ClientError, QueryRequest, ReplyTo, Request, Subscribed};
use crate::engine::restore::apply_changes;
use crate::engine::retention::{self, CompactInfo, DiskSnapshot};
use crate::engine::subscription::{self, Feed, Subscribers};
use crate::error::{Damage, StorageError};
use crate::log::{
    CommandLog, Flush, ImageStore, LogReader, LogRecord, RECORD_PAYLOAD_BYTES_MAX, RecordBatch,
};
use crate::options::{Durability, Retention};
use crate::progress::{ProgressFn, ProgressStep};
use crate::snapshot::{self, SnapshotInfo};
use crate::state::{State, Undo};
use crate::storage::Storage;

// The codec refuses what the log would: one bound for a record payload.
const _: () = assert!(codec::PAYLOAD_BYTES_MAX == RECORD_PAYLOAD_BYTES_MAX);

/// Flush once a batch has framed this many bytes, even if more requests wait.
const BATCH_BYTES_MAX: usize = 4 << 20;

/// How many times a batch is decided again after another host appended to a
/// shared log first, before its commands get [`StorageError::Contended`].
const FENCED_ATTEMPTS_MAX: u32 = 64;

/// State shared between the store handle, its clients and the server thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set when the server stops taking requests; clients then fail fast.
    pub closed: AtomicBool,
}

/// A reply held back until the batch's flush.
enum Deferred {
    Operation(ReplyTo<Applied>, Result<Applied, ClientError>),
    Query(QueryRequest),
}

pub(crate) struct Server {
    pub state: State,
    pub log: Box<dyn CommandLog>,
    /// Where snapshots are written (the data directory, on this storage).
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub requests: Receiver<Request>,
    /// Given to snapshot helper threads, to report back through the same
    /// channel the server waits on. Holding it means the channel never
    /// disconnects while the server runs; the server stops on `Close`, which
    /// `Store::close` and `Store`'s `Drop` always send.
    pub requests_tx: SyncSender<Request>,
    pub batch_commands_max: usize,
    pub durability: Durability,
    /// Records between digest records (0: none).
    pub digest_every: u64,
    /// The LSN of the last digest record (or of what a snapshot covered).
    pub last_digest_lsn: u64,
    pub snapshots: Snapshots,
    pub subscribers: Subscribers,
    pub shared: Arc<Shared>,
}

/// Someone waiting for a snapshot (and, for `Compact`, the compaction after it).
enum SnapshotWaiter {
    Snapshot(SyncSender<Result<SnapshotInfo, StorageError>>),
    Compact(SyncSender<Result<CompactInfo, StorageError>>),
}

impl SnapshotWaiter {
    fn fail(self, error: StorageError) {
        // A caller that stopped waiting dropped its receiver: not an error.
        match self {
            SnapshotWaiter::Snapshot(reply) => drop(reply.send(Err(error))),
            SnapshotWaiter::Compact(reply) => drop(reply.send(Err(error))),
        }
    }
}

/// A snapshot being written by its helper thread.
struct InFlight {
    lsn: u64,
    /// The helper thread; `None` when the newest snapshot already covered
    /// the log and nothing was written.
    thread: Option<JoinHandle<()>>,
    waiters: Vec<SnapshotWaiter>,
}

/// The server's view of snapshots: the policy, the files on disk, and the
/// one being written.
pub(crate) struct Snapshots {
    /// Records between automatic snapshots (0: none).
    pub every: u64,
    pub retention: Retention,
    pub progress: Option<ProgressFn>,
    /// The most bytes per second a snapshot is written at (0: no limit).
    pub write_bytes_per_s: u64,
    /// Where the log keeps snapshots itself (a shared log), if it does;
    /// otherwise they are files in the data directory.
    pub images: Option<Arc<dyn ImageStore>>,
    /// Every snapshot file in the directory (or the log's), oldest first.
    pub on_disk: Vec<DiskSnapshot>,
    /// The newest snapshot known to be good (loaded at open, or written since).
    pub newest: Option<SnapshotInfo>,
    /// The LSN the last snapshot attempt covered: the next automatic one
    /// waits for `every` records after it, even if that attempt failed.
    pub last_attempt_lsn: u64,
    in_flight: Option<InFlight>,
    /// Requests that came while a snapshot was in flight; served by the next one.
    queued: Vec<SnapshotWaiter>,
    /// A helper's report, handled once the batch it arrived in is committed.
    written: Option<Result<SnapshotInfo, StorageError>>,
}

impl Snapshots {
    pub fn new(
        every: u64,
        retention: Retention,
        progress: Option<ProgressFn>,
        write_bytes_per_s: u64,
        images: Option<Arc<dyn ImageStore>>,
        on_disk: Vec<DiskSnapshot>,
        newest: Option<SnapshotInfo>,
    ) -> Self {
        let last_attempt_lsn = newest.as_ref().map_or(0, |s| s.lsn);
        Snapshots {
            every,
            retention,
            progress,
            write_bytes_per_s,
            images,
            on_disk,
            newest,
            last_attempt_lsn,
            in_flight: None,
            queued: Vec::new(),
            written: None,
        }
    }
}

/// The current batch: its records, replies held back, changes that a
/// failed flush undoes, and the tickets those changes touched.
struct Batch {
    records: RecordBatch,
    deferred: Vec<Deferred>,
    undo: Vec<Undo>,
    touched: HashSet<TicketId>,
    /// The batch's events, collected only while someone subscribes.
    events: Vec<Event>,
    /// Subscriptions that arrived during the batch: registered after it.
    subscribes: Vec<(Option<Position>, ReplyTo<Subscribed>)>,
    /// The operations whose replies are held back, in order: what a fenced
    /// append of a shared log decides again.
    ops: Vec<BatchOp>,
}

/// One operation of the batch whose reply waits for the flush.
struct BatchOp {
    /// Kept only for a shared log (see [`CommandLog::is_shared`]).
    operation: Option<Operation>,
    /// Its entry in `Batch::deferred`.
    deferred: usize,
    /// Records and undo entries the batch held before it was decided.
    records_before: usize,
    undo_before: usize,
    /// Whether it added a record (the one at `records_before`).
    wrote: bool,
    /// The state's last timestamp before it was decided.
    last_at_before: Timestamp,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            records: RecordBatch::with_capacity(64 << 10),
            deferred: Vec::new(),
            undo: Vec::new(),
            touched: HashSet::new(),
            events: Vec::new(),
            subscribes: Vec::new(),
            ops: Vec::new(),
        }
    }
}

impl Batch {
    fn record(&mut self, undo: Undo) {
        if let Some(id) = undo.ticket_id() {
            self.touched.insert(id);
        }
        self.undo.push(undo);
    }
}

impl Server {
    /// Serves until `Close` arrives or every sender is gone; then refuses what
    /// is still queued, syncs, and returns the writer's health.
    pub fn run(mut self) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        let mut last_sync = Instant::now();
        let mut closing = false;
        while !closing {
            let Some(first) = self.next_request(&mut last_sync) else {
                break;
            };
            let mut taken = 1;
            // A batch is decided against the newest state a shared log has.
            self.catch_up();
            closing = self.take(first, &mut batch);
            while !closing
                && taken < self.batch_commands_max
                && batch.records.payload_bytes() < BATCH_BYTES_MAX
            {
                let Ok(request) = self.requests.try_recv() else {
                    break;
                };
                taken += 1;
                closing = self.take(request, &mut batch);
            }
            self.commit(&mut batch, &mut last_sync);
            self.catch_up();
            self.between_batches(&mut last_sync, closing);
        }
        self.shared.closed.store(true, Ordering::Release);
        // A snapshot being written finishes (and is put in place) before the
        // store closes; its helper reports through the channel. Bounded: one
        // report is due, and clients check `closed` before sending, so only
        // requests already queued or blocked in `send` arrive meanwhile.
        while self.snapshots.in_flight.is_some() {
            match self.requests.recv() {
                Ok(Request::SnapshotWritten(result)) => self.finish_snapshot(result),
                Ok(request) => request.reject_closed(),
                Err(_) => break,
            }
        }
        for waiter in self.snapshots.queued.drain(..) {
            waiter.fail(StorageError::Closed);
        }
        // Every subscription ends with `Closed` once it has read what was
        // committed.
        self.subscribers.close_all();
        for (_, reply) in batch.subscribes.drain(..) {
            let _ = reply.send(Err(ClientError::Closed));
        }
        while let Ok(request) = self.requests.try_recv() {
            request.reject_closed();
        }
        // A clean close leaves the log durable, and sealed, in every mode.
        self.log.seal()
    }

    /// Between two batches (nothing pending, memory equal to the log): handle
    /// a finished snapshot, then start one if asked for or due.
    fn between_batches(&mut self, last_sync: &mut Instant, closing: bool) {
        if let Some(result) = self.snapshots.written.take() {
            self.finish_snapshot(result);
        }
        if self.snapshots.in_flight.is_some() {
            return;
        }
        let lsn = self.log.next_lsn() - 1;
        let due = !closing
            && self.snapshots.every > 0
            && lsn >= self.snapshots.last_attempt_lsn + self.snapshots.every
            && self.log.check_healthy().is_ok();
        if due || !self.snapshots.queued.is_empty() {
            let waiters = std::mem::take(&mut self.snapshots.queued);
            self.start_snapshot(waiters, last_sync);
        }
    }

    /// Freezes the state and hands it to a helper thread that writes the
    /// snapshot. First makes the log durable up to the state's LSN, so the
    /// snapshot never covers a record that a crash could still take away.
    fn start_snapshot(&mut self, waiters: Vec<SnapshotWaiter>, last_sync: &mut Instant) {
        // Everything the snapshot will cover is made durable first (and the
        // log may end a file here, so the snapshot's LSN falls on a boundary
        // that release can use).
        let ready = self.log.checkpoint();
        if let Err(error) = ready {
            for waiter in waiters {
                waiter.fail(error.clone());
            }
            return;
        }
        *last_sync = Instant::now();
        let lsn = self.log.next_lsn() - 1;
        self.snapshots.last_attempt_lsn = lsn;
        if let Some(newest) = self.snapshots.newest.clone()
            && newest.lsn == lsn
        {
            // Nothing was written since the newest snapshot: it is this one.
            self.snapshots.in_flight = Some(InFlight {
                lsn,
                thread: None,
                waiters,
            });
            self.finish_snapshot(Ok(newest));
            return;
        }
        let frozen = self.state.freeze();
        // The log's position of `lsn`, recorded with a snapshot it keeps.
        let mark = self.log.image_mark();
        debug_assert_eq!(mark.lsn, lsn);
        let images = self.snapshots.images.clone();
        let storage = Arc::clone(&self.storage);
        let dir = self.dir.clone();
        let mut report = ReportOnUnwind {
            report_to: Some(self.requests_tx.clone()),
            dir: dir.clone(),
        };
        let progress = self.snapshots.progress.clone();
        let bytes_per_s = self.snapshots.write_bytes_per_s;
        let spawned = thread::Builder::new()
            .name("ticketlog-snapshot".into())
            .spawn(move || {
                let total = frozen.tickets;
                let mut report_progress = |done| {
                    if let Some(progress) = &progress {
                        progress.report(ProgressStep::WriteSnapshot, done, total);
                    }
                };
                let result = match images {
                    // Encoded in memory, then handed to the log's store.
                    Some(images) => {
                        snapshot::encode_snapshot(&dir, lsn, &frozen, &mut report_progress)
                            .and_then(|bytes| {
                                let stored = images.put(mark, &bytes)?;
                                Ok(SnapshotInfo {
                                    lsn,
                                    path: stored.place,
                                    bytes: bytes.len() as u64,
                                    tickets: frozen.tickets,
                                    next_id: TicketId::from(frozen.next_id),
                                    digest: frozen.digest,
                                })
                            })
                    }
                    None => snapshot::write_snapshot(
                        storage.as_ref(),
                        &dir,
                        lsn,
                        &frozen,
                        bytes_per_s,
                        &mut report_progress,
                    ),
                };
                // Let go of the chunks before reporting, so the server's
                // next writes need not copy them.
                drop(frozen);
                // The server waits for this report before it closes; if it
                // is gone (it died), nobody is left to tell.
                if let Some(report_to) = report.report_to.take() {
                    let _ = report_to.send(Request::SnapshotWritten(result));
                }
            });
        match spawned {
            Ok(thread) => {
                self.snapshots.in_flight = Some(InFlight {
                    lsn,
                    thread: Some(thread),
                    waiters,
                });
            }
            Err(e) => {
                let error = StorageError::io("spawn snapshot thread", &self.dir, e);
                for waiter in waiters {
                    waiter.fail(error.clone());
                }
            }
        }
    }

    /// The helper's snapshot is durable (or failed): apply retention, then
    /// answer everyone who was waiting for it.
    fn finish_snapshot(&mut self, result: Result<SnapshotInfo, StorageError>) {
        let Some(in_flight) = self.snapshots.in_flight.take() else {
            debug_assert!(false, "a snapshot report without a snapshot in flight");
            return;
        };
        if let Some(thread) = in_flight.thread {
            // The helper sends its report as its last act, so this is short;
            // a helper that panicked has nothing more to say.
            let _ = thread.join();
        }
        let info = match result {
            Ok(info) => info,
            Err(error) => {
                for waiter in in_flight.waiters {
                    waiter.fail(error.clone());
                }
                return;
            }
        };
        debug_assert_eq!(info.lsn, in_flight.lsn);
        let on_disk = &mut self.snapshots.on_disk;
        on_disk.retain(|s| s.lsn != info.lsn);
        on_disk.push(DiskSnapshot {
            lsn: info.lsn,
            path: info.path.clone(),
            bytes: info.bytes,
            known_bad: false,
        });
        on_disk.sort_by_key(|s| s.lsn);
        self.snapshots.newest = Some(info.clone());
        let compact = self.snapshots.retention == Retention::Compact
            || in_flight
                .waiters
                .iter()
                .any(|w| matches!(w, SnapshotWaiter::Compact(_)));
        let retained = retention::apply_retention(
            self.log.as_mut(),
            self.storage.as_ref(),
            &self.dir,
            self.snapshots.images.as_deref(),
            &mut self.snapshots.on_disk,
            &info,
            compact,
            self.snapshots.progress.as_ref(),
        );
        for waiter in in_flight.waiters {
            // A caller that stopped waiting dropped its receiver: not an error.
            match waiter {
                SnapshotWaiter::Snapshot(reply) => drop(reply.send(Ok(info.clone()))),
                SnapshotWaiter::Compact(reply) => drop(reply.send(retained.clone())),
            }
        }
    }

    /// Blocks for the next request. Under `Interval`, wakes when the interval
    /// is up to sync what was written meanwhile (the background flush).
    /// `None` when every sender is gone.
    fn next_request(&mut self, last_sync: &mut Instant) -> Option<Request> {
        let Durability::Interval(every) = self.durability else {
            return self.requests.recv().ok();
        };
        loop {
            if !self.log.has_unsynced() {
                return self.requests.recv().ok();
            }
            let wait = every.saturating_sub(last_sync.elapsed());
            match self.requests.recv_timeout(wait) {
                Ok(request) => return Some(request),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    // Acknowledged records are already out; a failure poisons
                    // the writer, and the next command reports it.
                    let _ = self.log.sync();
                    *last_sync = Instant::now();
                }
            }
        }
    }

    /// Handles one request of the current batch; returns true on `Close`.
    fn take(&mut self, request: Request, batch: &mut Batch) -> bool {
        match request {
            Request::Close => {
                self.shared.closed.store(true, Ordering::Release);
                return true;
            }
            Request::Operation { operation, reply } => {
                let records_before = batch.records.len();
                let undo_before = batch.undo.len();
                let last_at_before = self.state.last_at();
                let kept = self.log.is_shared().then(|| operation.clone());
                let result = self.execute(operation, batch);
                if batch.records.is_empty() {
                    // Nothing unwritten in this batch: the answer depends only on
                    // state that is already as durable as the mode promises.
                    let _ = reply.send(result);
                } else {
                    batch.ops.push(BatchOp {
                        operation: kept,
                        deferred: batch.deferred.len(),
                        records_before,
                        undo_before,
                        wrote: batch.records.len() > records_before,
                        last_at_before,
                    });
                    batch.deferred.push(Deferred::Operation(reply, result));
                }
            }
            // A ticket no change of this batch touched is in memory exactly as
            // it is on disk: a read of it need not wait for the flush.
            Request::Query(QueryRequest::Get { id, reply }) if !batch.touched.contains(&id) => {
                let _ = reply.send(Ok(self.state.get(id)));
            }
            Request::Query(query) => {
                if batch.records.is_empty() {
                    self.answer(query);
                } else {
                    batch.deferred.push(Deferred::Query(query));
                }
            }
            // Started between batches, when memory equals the log.
            Request::Snapshot { reply } => {
                self.snapshots.queued.push(SnapshotWaiter::Snapshot(reply));
            }
            Request::Compact { reply } => {
                self.snapshots.queued.push(SnapshotWaiter::Compact(reply));
            }
            // Registered after the batch commits, so the live feed starts
            // exactly where the reader handed back ends.
            Request::Subscribe { after, reply } => batch.subscribes.push((after, reply)),
            Request::SnapshotWritten(result) => {
                debug_assert!(self.snapshots.written.is_none());
                self.snapshots.written = Some(result);
            }
            // Only a wake-up: the server catches up between batches.
            Request::LogAdvanced => {}
        }
        false
    }

    /// The timestamp for a command accepted now: never earlier than the last
    /// one, even if the wall clock steps back.
    fn now(&self) -> Timestamp {
        Timestamp::now().max(self.state.last_at())
    }

    /// Decides, encodes and applies one operation. On success its changes
    /// are in memory and its record in the batch, not yet written.
    fn execute(&mut self, operation: Operation, batch: &mut Batch) -> Result<Applied, ClientError> {
        self.log.check_healthy()?;
        let one = matches!(operation, Operation::Command(_));
        let decision = self.state.decide(operation, self.now())?;
        let changes = decision.changes();
        if changes.is_empty() {
            // A create-many of no drafts: nothing to log.
            return Ok(Applied::Many(Vec::new()));
        }
        // Encode first: if that fails, nothing has been applied.
        batch
            .records
            .push_with_limit(self.log.record_payload_bytes_max(), |out| {
                encode_record(changes, out)
            })?;
        if self.subscribers.any() {
            let lsn = self.log.next_lsn() + batch.records.len() as u64 - 1;
            batch.events.extend(
                (0u32..)
                    .zip(changes)
                    .filter_map(|(index, change)| Event::from_change(lsn, index, change.clone())),
            );
        }
        let mut tickets = Vec::with_capacity(if one { 0 } else { changes.len() });
        let mut last = None;
        for change in decision.into_changes() {
            let undo = self.state.apply(change).expect(
                "decide() only produces changes consistent with the state it read, \
                 timestamped by now(), which is never before the state's last",
            );
            // A pointer to the ticket, not a copy of its strings: the
            // client copies it, if it wants to, on its own thread.
            let ticket = match &undo {
                Undo::Delete(removed) => Arc::clone(removed),
                applied => Arc::clone(
                    applied
                        .ticket_id()
                        .and_then(|id| self.state.shared(id))
                        .expect("a created or updated ticket is live"),
                ),
            };
            batch.record(undo);
            if one {
                last = Some(ticket);
            } else {
                tickets.push(ticket);
            }
        }
        Ok(match last {
            Some(ticket) => Applied::One(ticket),
            None => Applied::Many(tickets),
        })
    }

    /// Writes the batch (and syncs it, as the mode requires), then sends every
    /// held-back reply in order.
    fn commit(&mut self, batch: &mut Batch, last_sync: &mut Instant) {
        let digest_lsn = self.log.next_lsn() + batch.records.len() as u64;
        if !batch.records.is_empty()
            && self.digest_every > 0
            && digest_lsn > self.last_digest_lsn + self.digest_every
        {
            // The state now reflects every record of the batch so far, so its
            // digest describes the log up to the digest record. If the flush
            // fails, the digest record goes with the batch.
            let digest = self.state.digest_change();
            if batch
                .records
                .push_with(|out| encode_record(std::slice::from_ref(&digest), out))
                .is_ok()
            {
                self.last_digest_lsn = digest_lsn;
            }
        }
        let must_sync = match self.durability {
            Durability::Always => true,
            Durability::Interval(every) => last_sync.elapsed() >= every,
            Durability::Never => false,
        };
        let flushed = if !batch.records.is_empty() {
            let flush = if must_sync {
                Flush::Durable
            } else {
                Flush::Written
            };
            self.append_batch(batch, flush)
        } else if must_sync && self.log.has_unsynced() {
            self.log.sync()
        } else {
            Ok(())
        };
        if flushed.is_ok() && must_sync {
            *last_sync = Instant::now();
        }
        batch.records.clear();
        if let Err(error) = &flushed {
            // The batch is not durable: take its changes back out of memory,
            // newest first, so queries keep seeing only what was kept (the
            // log has already stopped counting it, so stats and history do
            // too).
            // (What a shared log did append is already out of `undo` and
            // `ops`: see `append_batch`.)
            for change in batch.undo.drain(..).rev() {
                self.state.undo(change);
            }
            // Events of records a shared log did append before failing go
            // out; the rest were never committed.
            let end_lsn = self.log.next_lsn();
            batch.events.retain(|event| event.lsn < end_lsn);
            // A shared log goes on after a failed append (the next record
            // may be another host's, with an earlier timestamp).
            if let Some(first) = batch.ops.first()
                && self.log.is_shared()
            {
                self.state.rewind_last_at(first.last_at_before);
            }
            for op in &batch.ops {
                if let Some(Deferred::Operation(_, result)) = batch.deferred.get_mut(op.deferred) {
                    *result = Err(error.clone().into());
                }
            }
        }
        batch.undo.clear();
        batch.ops.clear();
        batch.touched.clear();
        if !batch.events.is_empty() {
            // Durable as the mode promises (the append returned): now, and
            // only now, subscribers see it.
            self.subscribers.fan_out(&batch.events);
            batch.events.clear();
        }
        for (after, reply) in batch.subscribes.drain(..) {
            let _ = reply.send(self.subscribe(after));
        }
        // A client that stopped waiting dropped its receiver: not an error.
        for reply in batch.deferred.drain(..) {
            match reply {
                Deferred::Operation(reply, result) => {
                    let _ = reply.send(result);
                }
                Deferred::Query(query) => self.answer(query),
            }
        }
        if flushed.is_ok() {
            // Between batches, after the replies: the log's housekeeping
            // (ending a full segment syncs it), which no reply waits for. A
            // failure poisons the log, and the next command reports it.
            let _ = self.log.between_batches();
        }
    }

    /// Registers a live feed for a subscriber resuming after `after`, with a
    /// reader of everything appended so far for its catch-up. Between
    /// batches: the reader ends exactly where the feed's first event is.
    fn subscribe(&mut self, after: Option<Position>) -> Result<Subscribed, ClientError> {
        let oldest_lsn = self.log.first_lsn();
        if subscription::first_needed_lsn(after) < oldest_lsn {
            return Err(ClientError::Compacted { oldest_lsn });
        }
        let reader = self.log.reader()?;
        let (feed, writer) = Feed::new();
        self.subscribers.add(writer);
        Ok((reader, feed))
    }

    /// Appends the batch's records. If another host appended to a shared log
    /// first ([`StorageError::Fenced`]), takes back the changes of every
    /// operation decided on a record that did not get in, catches up with
    /// the log, and decides those operations again, at most
    /// [`FENCED_ATTEMPTS_MAX`] times. On an error, `batch.undo` and
    /// `batch.ops` hold only what was not appended (for a log that appends
    /// all or nothing, the whole batch), so the caller takes back exactly that.
    fn append_batch(&mut self, batch: &mut Batch, flush: Flush) -> Result<(), StorageError> {
        let mut attempts = 0;
        loop {
            if batch.records.is_empty() {
                // Decided again, every operation was refused: nothing to append.
                return Ok(());
            }
            let error = match self.log.append(&batch.records, flush) {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            // A prefix of the records may have got in (a shared log that
            // split the batch). An operation is final if its record is in
            // that prefix, or if it wrote none and saw only that prefix; the
            // first one that is not, and every one after it, is not.
            let appended = error.appended_records();
            let cut = batch
                .ops
                .iter()
                .position(|op| {
                    if op.wrote {
                        op.records_before >= appended
                    } else {
                        op.records_before > appended
                    }
                })
                .unwrap_or(batch.ops.len());
            let undo_from = batch
                .ops
                .get(cut)
                .map_or(batch.undo.len(), |op| op.undo_before);
            batch.ops.drain(..cut);
            batch.undo.drain(..undo_from);
            for op in &mut batch.ops {
                op.undo_before -= undo_from;
            }
            let decide_again = matches!(error, StorageError::Fenced { .. })
                && batch.ops.iter().all(|op| op.operation.is_some());
            if !decide_again {
                return Err(error);
            }
            attempts += 1;
            if attempts >= FENCED_ATTEMPTS_MAX {
                return Err(StorageError::Contended { attempts });
            }
            // Take the rest back, newest first, catch up, decide it again.
            for change in batch.undo.drain(..).rev() {
                self.state.undo(change);
            }
            if let Some(first) = batch.ops.first() {
                self.state.rewind_last_at(first.last_at_before);
            }
            batch.records.clear();
            batch.touched.clear();
            // Events of what did get in go out before the other hosts'
            // records; the rest are decided (and collected) again.
            let end_lsn = self.log.next_lsn();
            batch.events.retain(|event| event.lsn < end_lsn);
            if !batch.events.is_empty() {
                self.subscribers.fan_out(&batch.events);
                batch.events.clear();
            }
            self.catch_up();
            let mut ops = std::mem::take(&mut batch.ops);
            for op in &mut ops {
                op.records_before = batch.records.len();
                op.undo_before = batch.undo.len();
                op.last_at_before = self.state.last_at();
                let Some(operation) = op.operation.clone() else {
                    continue; // checked above: every operation was kept
                };
                let result = self.execute(operation, batch);
                op.wrote = batch.records.len() > op.records_before;
                if let Some(Deferred::Operation(_, slot)) = batch.deferred.get_mut(op.deferred) {
                    *slot = result;
                }
            }
            batch.ops = ops;
        }
    }

    /// Applies the records other hosts appended to a shared log (nothing for
    /// the local log). Between batches only. A record that does not apply
    /// poisons the log, and the next command reports it.
    fn catch_up(&mut self) {
        let state = &mut self.state;
        let last_digest_lsn = &mut self.last_digest_lsn;
        let subscribed = self.subscribers.any();
        let mut events = Vec::new();
        let mut visit = |record: LogRecord<'_>| -> Result<(), Damage> {
            let changes = codec::decode_changes(record.payload).map_err(Damage::Undecodable)?;
            if subscribed {
                events.extend((0u32..).zip(&changes).filter_map(|(index, change)| {
                    Event::from_change(record.lsn, index, change.clone())
                }));
            }
            if apply_changes(state, changes, record.lsn)? {
                *last_digest_lsn = record.lsn;
            }
            Ok(())
        };
        let _ = self.log.catch_up(&mut visit);
        // Other hosts' records are durable on the shared log once read.
        if !events.is_empty() {
            self.subscribers.fan_out(&events);
        }
    }

    /// A reader of the log, for a history read on the client's thread. A
    /// ticket id never minted is `NotFound`.
    fn history_source(&self, id: TicketId) -> Result<Box<dyn LogReader>, ClientError> {
        if id.get() == 0 || id >= self.state.next_id() {
            return Err(ClientError::NotFound(id));
        }
        Ok(self.log.reader()?)
    }

    fn answer(&self, query: QueryRequest) {
        // A client that stopped waiting dropped its receiver: not an error.
        match query {
            QueryRequest::Get { id, reply } => {
                let _ = reply.send(Ok(self.state.get(id)));
            }
            QueryRequest::List { query, reply } => {
                let _ = reply.send(Ok(self.state.list(&query)));
            }
            QueryRequest::Stats { reply } => {
                let mut stats = self.state.stats();
                let size = self.log.size();
                stats.log_bytes = size.bytes;
                stats.records = size.records;
                stats.last_lsn = self.log.next_lsn() - 1;
                let _ = reply.send(Ok(stats));
            }
            QueryRequest::History { id, reply } => {
                let _ = reply.send(self.history_source(id));
            }
        }
    }
}

/// Sends the snapshot thread's report even if the thread unwinds before it
/// gets to (a panicking progress callback, an allocation failure): the
/// server waits for that report before `snapshot`, `compact` or `close` can
/// return, so a missing one would hang them.
struct ReportOnUnwind {
    report_to: Option<SyncSender<Request>>,
    dir: PathBuf,
}

impl Drop for ReportOnUnwind {
    fn drop(&mut self) {
        if let Some(report_to) = self.report_to.take() {
            let error = StorageError::io(
                "write snapshot",
                &self.dir,
                std::io::Error::other("the snapshot thread stopped before finishing"),
            );
            let _ = report_to.send(Request::SnapshotWritten(Err(error)));
        }
    }
}

/// Encodes `changes` as one record payload at the end of `out`.
fn encode_record(
    changes: &[crate::domain::change::Change],
    out: &mut Vec<u8>,
) -> Result<(), StorageError> {
    let start = out.len();
    // The codec's size limit is the record limit, so its only failure on
    // well-formed changes is a payload that would be too large.
    codec::encode_changes(changes, out).map_err(|_| StorageError::RecordTooLarge {
        len: (out.len() - start).max(RECORD_PAYLOAD_BYTES_MAX + 1),
        max: RECORD_PAYLOAD_BYTES_MAX,
    })
}
