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
//! Architecture invariant: under `Always`, nothing leaves this thread — no
//! reply, no query answer — that depends on a record before that record is
//! durable.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use crate::command::{CREATE_MANY_MAX, Command, QueryRequest, ReplyTo, Request};
use crate::error::{ClientError, StorageError, TicketError};
use crate::options::Durability;
use crate::state::{State, Undo};
use crate::ticket::{Ticket, TicketDraft, TicketId};
use crate::time::Timestamp;
use crate::wal::writer::LogWriter;

/// Flush once a batch has framed this many bytes, even if more requests wait.
const BATCH_BYTES_MAX: usize = 4 << 20;

/// State shared between the store handle, its clients and the server thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set when the server stops taking requests; clients then fail fast.
    pub closed: AtomicBool,
}

/// A reply held back until the batch's flush.
enum Deferred {
    Command(ReplyTo<Ticket>, Result<Ticket, ClientError>),
    CreateMany(ReplyTo<Vec<Ticket>>, Result<Vec<Ticket>, ClientError>),
    Query(QueryRequest),
}

pub(crate) struct Server {
    pub state: State,
    pub log: LogWriter,
    pub requests: Receiver<Request>,
    pub batch_commands_max: usize,
    pub durability: Durability,
    pub segment_bytes: u64,
    pub shared: Arc<Shared>,
}

/// The current batch: replies held back, changes that a failed flush undoes,
/// and the tickets those changes touched.
#[derive(Default)]
struct Batch {
    deferred: Vec<Deferred>,
    undo: Vec<Undo>,
    touched: HashSet<TicketId>,
}

impl Batch {
    fn record(&mut self, undo: Undo) {
        self.touched.insert(undo.ticket_id());
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
            closing = self.take(first, &mut batch);
            while !closing
                && taken < self.batch_commands_max
                && self.log.pending_bytes() < BATCH_BYTES_MAX
            {
                let Ok(request) = self.requests.try_recv() else {
                    break;
                };
                taken += 1;
                closing = self.take(request, &mut batch);
            }
            self.commit(&mut batch, &mut last_sync);
        }
        self.shared.closed.store(true, Ordering::Release);
        // Bounded: clients check `closed` before sending, so only requests
        // already queued or blocked in `send` arrive here.
        while let Ok(request) = self.requests.try_recv() {
            request.reject_closed();
        }
        // A clean close leaves the log durable, and sealed, in every mode.
        self.log.seal()
    }

    /// Blocks for the next request. Under `Interval`, wakes when the interval
    /// is up to sync what was written meanwhile (the background flush).
    /// `None` when every sender is gone.
    fn next_request(&mut self, last_sync: &mut Instant) -> Option<Request> {
        let Durability::Interval(every) = self.durability else {
            return self.requests.recv().ok();
        };
        loop {
            if self.log.unsynced_bytes() == 0 {
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
            Request::Command { command, reply } => {
                let result = self.execute(command, batch);
                if self.log.has_pending() {
                    batch.deferred.push(Deferred::Command(reply, result));
                } else {
                    // Nothing unwritten in this batch: the answer depends only on
                    // state that is already as durable as the mode promises.
                    let _ = reply.send(result);
                }
            }
            Request::CreateMany { drafts, reply } => {
                let result = self.execute_many(drafts, batch);
                if self.log.has_pending() {
                    batch.deferred.push(Deferred::CreateMany(reply, result));
                } else {
                    let _ = reply.send(result);
                }
            }
            // A ticket no change of this batch touched is in memory exactly as
            // it is on disk: a read of it need not wait for the flush.
            Request::Query(QueryRequest::Get { id, reply }) if !batch.touched.contains(&id) => {
                let _ = reply.send(Ok(self.state.get(id)));
            }
            Request::Query(query) => {
                if self.log.has_pending() {
                    batch.deferred.push(Deferred::Query(query));
                } else {
                    self.answer(query);
                }
            }
        }
        false
    }

    /// The timestamp for a command accepted now: never earlier than the last
    /// one, even if the wall clock steps back.
    fn now(&self) -> Timestamp {
        Timestamp::now().max(self.state.last_at())
    }

    /// Decides, frames and applies one command. On success the change is in
    /// memory and in the pending buffer, not yet written.
    fn execute(&mut self, command: Command, batch: &mut Batch) -> Result<Ticket, ClientError> {
        self.log.check_poisoned()?;
        let change = self.state.decide(command, self.now())?;
        // Frame first: if that fails, nothing has been applied.
        self.log.append(std::slice::from_ref(&change))?;
        let undo = self
            .state
            .apply(change)
            .expect("decide() only produces changes consistent with the state it read");
        let ticket = match &undo {
            Undo::Delete(removed) => removed.clone(),
            applied => self
                .state
                .ticket(applied.ticket_id())
                .expect("a created or updated ticket is live")
                .clone(),
        };
        batch.record(undo);
        Ok(ticket)
    }

    /// Creates every draft as one record: all are applied, or none.
    fn execute_many(
        &mut self,
        drafts: Vec<TicketDraft>,
        batch: &mut Batch,
    ) -> Result<Vec<Ticket>, ClientError> {
        self.log.check_poisoned()?;
        if drafts.len() > CREATE_MANY_MAX {
            return Err(TicketError::BatchTooLarge {
                count: drafts.len(),
                max: CREATE_MANY_MAX,
            }
            .into());
        }
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let changes = self.state.decide_creates(drafts, self.now());
        self.log.append(&changes)?;
        let mut tickets = Vec::with_capacity(changes.len());
        for change in changes {
            let undo = self
                .state
                .apply(change)
                .expect("decide_creates() mints the ids the state expects next");
            tickets.push(
                self.state
                    .ticket(undo.ticket_id())
                    .expect("a created ticket is live")
                    .clone(),
            );
            batch.record(undo);
        }
        Ok(tickets)
    }

    /// Writes the batch (and syncs it, as the mode requires), then sends every
    /// held-back reply in order.
    fn commit(&mut self, batch: &mut Batch, last_sync: &mut Instant) {
        let must_sync = match self.durability {
            Durability::Always => true,
            Durability::Interval(every) => last_sync.elapsed() >= every,
            Durability::Never => false,
        };
        let mut flushed = self.log.write();
        if flushed.is_ok() && (must_sync || self.log.must_sync()) {
            flushed = self.log.sync();
            *last_sync = Instant::now();
        }
        if let Err(error) = &flushed {
            // The batch is not durable: take its changes back out of memory,
            // newest first, so queries keep seeing only what was kept.
            for change in batch.undo.drain(..).rev() {
                self.state.undo(change);
            }
            debug_assert!(!self.log.has_pending());
            for reply in &mut batch.deferred {
                match reply {
                    Deferred::Command(_, result) => *result = Err(error.clone().into()),
                    Deferred::CreateMany(_, result) => *result = Err(error.clone().into()),
                    Deferred::Query(_) => {}
                }
            }
        }
        batch.undo.clear();
        batch.touched.clear();
        // A client that stopped waiting dropped its receiver: not an error.
        for reply in batch.deferred.drain(..) {
            match reply {
                Deferred::Command(reply, result) => {
                    let _ = reply.send(result);
                }
                Deferred::CreateMany(reply, result) => {
                    let _ = reply.send(result);
                }
                Deferred::Query(query) => self.answer(query),
            }
        }
        if flushed.is_ok() && self.segment_is_full() {
            // Between batches, after the replies: rolling syncs the segment,
            // which no reply needs to wait for. A failure poisons the writer,
            // and the next command reports it.
            if self.log.roll().is_ok() {
                *last_sync = Instant::now();
            }
        }
    }

    /// Whether the current segment holds a record and has reached the size limit.
    fn segment_is_full(&self) -> bool {
        self.log.segment_len() >= self.segment_bytes
            && self.log.next_lsn() > self.log.segment_first_lsn()
    }

    fn answer(&self, query: QueryRequest) {
        debug_assert!(
            !self.log.has_pending(),
            "queries never see unwritten changes"
        );
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
                stats.log_bytes = self.log.len();
                stats.records = self.log.records();
                let _ = reply.send(Ok(stats));
            }
        }
    }
}
