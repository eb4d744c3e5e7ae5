//! The handle client threads hold. Every method sends one request, carrying
//! its own reply channel, over the store's bounded request channel and blocks
//! until the server answers.
//!
//! A client never hangs and never panics on a store that is gone: a closed
//! store, a stopped server thread, or a dropped request all come back as
//! [`ClientError::Closed`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use crate::domain::command::{Applied, Command, ListQuery, Operation, Stats};
use crate::domain::event::Event;
use crate::domain::ticket::{Ticket, TicketDraft, TicketId, TicketPatch};
use crate::engine::history::{self, History};
use crate::engine::request::{ClientError, QueryRequest, ReplyTo, Request};
use crate::engine::server::Shared;

/// A handle for talking to a [`Store`](crate::Store) from any thread.
/// Cheap to clone; every clone talks to the same server thread.
#[derive(Clone, Debug)]
pub struct Client {
    requests: SyncSender<Request>,
    shared: Arc<Shared>,
}

/// Whether a request waits for room in a full request channel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WhenFull {
    Wait,
    Refuse,
}

impl Client {
    pub(crate) fn new(requests: SyncSender<Request>, shared: Arc<Shared>) -> Self {
        Client { requests, shared }
    }

    /// Creates a ticket (status `ToDo`, version 1); returns it once it is durable.
    pub fn create(&self, draft: TicketDraft) -> Result<Ticket, ClientError> {
        self.command(Command::Create(draft), WhenFull::Wait)
    }

    /// Changes a ticket; returns it as it is after the change, once durable.
    pub fn update(&self, id: TicketId, patch: TicketPatch) -> Result<Ticket, ClientError> {
        self.command(Command::Update(id, patch), WhenFull::Wait)
    }

    /// Deletes a ticket; returns the removed ticket once the delete is durable.
    pub fn delete(&self, id: TicketId) -> Result<Ticket, ClientError> {
        self.command(Command::Delete(id), WhenFull::Wait)
    }

    /// Creates several tickets atomically: one log record holds them all, so
    /// after any crash either every one exists or none does. Ids are
    /// consecutive, in the order of `drafts`. At most
    /// [`CREATE_MANY_MAX`](crate::CREATE_MANY_MAX) drafts per call.
    pub fn create_many(&self, drafts: Vec<TicketDraft>) -> Result<Vec<Ticket>, ClientError> {
        self.operate(Operation::CreateMany(drafts), WhenFull::Wait, many)?
            .wait()
    }

    /// Like [`Self::create_many`], but fails at once with
    /// [`ClientError::Overloaded`] when the request channel is full.
    pub fn try_create_many(&self, drafts: Vec<TicketDraft>) -> Result<Vec<Ticket>, ClientError> {
        self.operate(Operation::CreateMany(drafts), WhenFull::Refuse, many)?
            .wait()
    }

    /// Like [`Self::create_many`], without waiting for the reply (see
    /// [`Self::submit`]).
    pub fn submit_create_many(
        &self,
        drafts: Vec<TicketDraft>,
    ) -> Result<PendingReply<Vec<Ticket>>, ClientError> {
        self.operate(Operation::CreateMany(drafts), WhenFull::Wait, many)
    }

    /// Runs any command, waiting for room in the request channel.
    pub fn execute(&self, command: Command) -> Result<Ticket, ClientError> {
        self.command(command, WhenFull::Wait)
    }

    /// Like [`Self::create`], but fails at once with [`ClientError::Overloaded`]
    /// when the request channel is full.
    pub fn try_create(&self, draft: TicketDraft) -> Result<Ticket, ClientError> {
        self.command(Command::Create(draft), WhenFull::Refuse)
    }

    /// Like [`Self::update`], but fails at once with [`ClientError::Overloaded`]
    /// when the request channel is full.
    pub fn try_update(&self, id: TicketId, patch: TicketPatch) -> Result<Ticket, ClientError> {
        self.command(Command::Update(id, patch), WhenFull::Refuse)
    }

    /// Like [`Self::delete`], but fails at once with [`ClientError::Overloaded`]
    /// when the request channel is full.
    pub fn try_delete(&self, id: TicketId) -> Result<Ticket, ClientError> {
        self.command(Command::Delete(id), WhenFull::Refuse)
    }

    /// The ticket with this id, if it exists.
    pub fn get(&self, id: TicketId) -> Result<Option<Ticket>, ClientError> {
        self.call(
            |reply| Request::Query(QueryRequest::Get { id, reply }),
            WhenFull::Wait,
        )
    }

    /// Tickets matching `query`, in ascending id order.
    pub fn list(&self, query: ListQuery) -> Result<Vec<Ticket>, ClientError> {
        self.call(
            |reply| Request::Query(QueryRequest::List { query, reply }),
            WhenFull::Wait,
        )
    }

    /// Counts by status, the next id, and the log's size.
    pub fn stats(&self) -> Result<Stats, ClientError> {
        self.call(
            |reply| Request::Query(QueryRequest::Stats { reply }),
            WhenFull::Wait,
        )
    }

    /// Every change of ticket `id` still in the log, in LSN order: its
    /// creation, each update (with the fields it set), its deletion. Each
    /// [`Event`] carries its LSN and the ticket's version after it.
    ///
    /// Reads the log's segments on this thread (the server only opens them),
    /// so it costs about one sequential read of the log and holds up no other
    /// client. With [`Retention::Compact`](crate::Retention::Compact) the
    /// changes before the oldest remaining segment are gone; see
    /// [`Self::history_with_start`]. A ticket id never minted is
    /// [`ClientError::NotFound`]; a deleted ticket still has its history.
    pub fn history(&self, id: TicketId) -> Result<Vec<Event>, ClientError> {
        Ok(self.history_with_start(id)?.events)
    }

    /// Like [`Self::history`], and says where the log now starts (and so
    /// whether the history is complete).
    pub fn history_with_start(&self, id: TicketId) -> Result<History, ClientError> {
        let source = self.call(
            |reply| Request::Query(QueryRequest::History { id, reply }),
            WhenFull::Wait,
        )?;
        Ok(history::read_history(source, id)?)
    }

    /// Sends a command without waiting for its reply, so one thread can keep
    /// many commands in flight; waits only for room in the request channel.
    /// Commands from one client are applied in the order they were submitted.
    pub fn submit(&self, command: Command) -> Result<PendingReply<Ticket>, ClientError> {
        self.operate(command.into(), WhenFull::Wait, one)
    }

    fn command(&self, command: Command, when_full: WhenFull) -> Result<Ticket, ClientError> {
        self.operate(command.into(), when_full, one)?.wait()
    }

    fn operate<T>(
        &self,
        operation: Operation,
        when_full: WhenFull,
        unwrap: fn(Applied) -> T,
    ) -> Result<PendingReply<T>, ClientError> {
        let answer = self.send(|reply| Request::Operation { operation, reply }, when_full)?;
        Ok(PendingReply { answer, unwrap })
    }

    fn call<T>(
        &self,
        request: impl FnOnce(ReplyTo<T>) -> Request,
        when_full: WhenFull,
    ) -> Result<T, ClientError> {
        self.send(request, when_full)?
            .recv()
            .map_err(|_| ClientError::Closed)?
    }

    fn send<T>(
        &self,
        request: impl FnOnce(ReplyTo<T>) -> Request,
        when_full: WhenFull,
    ) -> Result<Receiver<Result<T, ClientError>>, ClientError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        // Capacity 1: the server sends exactly one reply and never waits on it.
        let (reply, answer) = mpsc::sync_channel(1);
        let request = request(reply);
        match when_full {
            WhenFull::Wait => self
                .requests
                .send(request)
                .map_err(|_| ClientError::Closed)?,
            WhenFull::Refuse => self.requests.try_send(request).map_err(|e| match e {
                TrySendError::Full(_) => ClientError::Overloaded,
                TrySendError::Disconnected(_) => ClientError::Closed,
            })?,
        }
        Ok(answer)
    }
}

/// The ticket a single command produced. The server answers every
/// `Operation::Command` with `Applied::One`, so the other arm never runs.
fn one(applied: Applied) -> Ticket {
    match applied {
        Applied::One(ticket) => ticket,
        Applied::Many(mut tickets) => {
            debug_assert!(false, "a single command is answered with one ticket");
            tickets
                .pop()
                .expect("a single command is answered with one ticket")
        }
    }
}

/// The tickets a create-many produced.
fn many(applied: Applied) -> Vec<Ticket> {
    match applied {
        Applied::One(ticket) => vec![ticket],
        Applied::Many(tickets) => tickets,
    }
}

/// The reply to a [`Client::submit`]ted command, to be waited for later.
#[derive(Debug)]
#[must_use = "a submitted command's outcome is only known by waiting for it"]
pub struct PendingReply<T> {
    answer: Receiver<Result<Applied, ClientError>>,
    unwrap: fn(Applied) -> T,
}

impl<T> PendingReply<T> {
    /// Blocks until the server answers. If the server drops the request
    /// unanswered (it stopped), this returns [`ClientError::Closed`] instead of hanging.
    pub fn wait(self) -> Result<T, ClientError> {
        let applied = self.answer.recv().map_err(|_| ClientError::Closed)??;
        Ok((self.unwrap)(applied))
    }
}

const _: () = {
    const fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Client>();
};
