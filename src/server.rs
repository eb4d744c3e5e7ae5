//! The server thread: the one place that owns and mutates the state and the
//! log writer.
//!
//! Its loop is group commit. It blocks for one request, then takes whatever
//! else is already queued (up to a bounded batch), and for each command in
//! arrival order: decides it against the current state (a rejection writes
//! nothing), applies it in memory, and frames its record. Then one write and
//! one `fdatasync` cover the whole batch, and only after that do replies go
//! out. Queries that arrive while the batch holds unflushed changes are
//! answered after the flush, so no reply ever shows a change that is not
//! durable. If the flush fails, every change of the batch is undone in
//! memory, its commands get the storage error, and the writer is poisoned.
//!
//! Architecture invariant: nothing leaves this thread — no reply, no query
//! answer — that depends on a record before that record is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use crate::command::{Command, QueryRequest, ReplyTo, Request};
use crate::error::{ClientError, StorageError};
use crate::state::{State, Undo};
use crate::ticket::Ticket;
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
    Query(QueryRequest),
}

pub(crate) struct Server {
    pub state: State,
    pub log: LogWriter,
    pub requests: Receiver<Request>,
    pub batch_commands_max: usize,
    pub shared: Arc<Shared>,
}

impl Server {
    /// Serves until `Close` arrives or every sender is gone; then refuses what
    /// is still queued and returns the writer's health.
    pub fn run(mut self) -> Result<(), StorageError> {
        let mut deferred = Vec::new();
        let mut undo = Vec::new();
        let mut closing = false;
        while !closing {
            let Ok(first) = self.requests.recv() else {
                break;
            };
            let mut taken = 1;
            closing = self.take(first, &mut deferred, &mut undo);
            while !closing
                && taken < self.batch_commands_max
                && self.log.pending_bytes() < BATCH_BYTES_MAX
            {
                let Ok(request) = self.requests.try_recv() else {
                    break;
                };
                taken += 1;
                closing = self.take(request, &mut deferred, &mut undo);
            }
            self.commit(&mut deferred, &mut undo);
        }
        self.shared.closed.store(true, Ordering::Release);
        // Bounded: clients check `closed` before sending, so only requests
        // already queued or blocked in `send` arrive here.
        while let Ok(request) = self.requests.try_recv() {
            request.reject_closed();
        }
        self.log.check_poisoned()
    }

    /// Handles one request of the current batch; returns true on `Close`.
    fn take(
        &mut self,
        request: Request,
        deferred: &mut Vec<Deferred>,
        undo: &mut Vec<Undo>,
    ) -> bool {
        match request {
            Request::Close => {
                self.shared.closed.store(true, Ordering::Release);
                return true;
            }
            Request::Command { command, reply } => {
                let result = self.execute(&command, undo);
                if self.log.has_pending() {
                    deferred.push(Deferred::Command(reply, result));
                } else {
                    // Nothing unflushed in this batch: the answer depends only on durable state.
                    let _ = reply.send(result);
                }
            }
            Request::Query(query) => {
                if self.log.has_pending() {
                    deferred.push(Deferred::Query(query));
                } else {
                    self.answer(query);
                }
            }
        }
        false
    }

    /// Decides, applies and frames one command. On success the change is in
    /// memory and in the pending buffer, not yet durable.
    fn execute(&mut self, command: &Command, undo: &mut Vec<Undo>) -> Result<Ticket, ClientError> {
        self.log.check_poisoned()?;
        // Timestamps never go backwards, even if the wall clock does.
        let now = Timestamp::now().max(self.state.last_at());
        let event = self.state.decide(command, now)?;
        let (ticket, undo_event) = self
            .state
            .apply(&event)
            .expect("decide() only produces events consistent with the state it read");
        if let Err(error) = self.log.append(std::slice::from_ref(&event)) {
            self.state.undo(undo_event);
            return Err(error.into());
        }
        undo.push(undo_event);
        Ok(ticket)
    }

    /// Makes the batch durable, then sends every held-back reply in order.
    fn commit(&mut self, deferred: &mut Vec<Deferred>, undo: &mut Vec<Undo>) {
        let flushed = self.log.flush();
        if let Err(error) = &flushed {
            // The batch is not durable: take its changes back out of memory,
            // newest first, so queries keep seeing only durable state.
            for change in undo.drain(..).rev() {
                self.state.undo(change);
            }
            debug_assert!(!self.log.has_pending());
            for reply in deferred.iter_mut() {
                if let Deferred::Command(_, result) = reply {
                    *result = Err(ClientError::Storage(error.clone()));
                }
            }
        }
        undo.clear();
        for reply in deferred.drain(..) {
            match reply {
                Deferred::Command(reply, result) => {
                    let _ = reply.send(result);
                }
                Deferred::Query(query) => self.answer(query),
            }
        }
    }

    fn answer(&self, query: QueryRequest) {
        debug_assert!(!self.log.has_pending(), "queries see durable state only");
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
