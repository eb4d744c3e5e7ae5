//! The handle client threads hold. Every method sends one request, carrying
//! its own reply channel, over the store's bounded request channel and blocks
//! until the server answers.
//!
//! A client never hangs and never panics on a store that is gone: a closed
//! store, a stopped server thread, or a dropped request all come back as
//! [`ClientError::Closed`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::task::{Context, Poll};
use std::thread;

use crate::domain::command::{Applied, Command, ListQuery, Operation, Stats};
use crate::domain::event::Event;
use crate::domain::event::Position;
use crate::domain::ticket::{Ticket, TicketDraft, TicketId, TicketPatch};
use crate::engine::history::{self, History};
use crate::engine::reply::{ReplyReceiver, reply_channel};
use crate::engine::request::{ClientError, QueryRequest, ReplyTo, Request, Subscribed};
use crate::engine::server::Shared;
use crate::error::StorageError;

/// A handle for talking to a [`Store`](crate::Store) from any thread.
/// Cheap to clone; every clone talks to the same server thread.
#[derive(Clone, Debug)]
pub struct Client {
    requests: SyncSender<Request>,
    shared: Arc<Shared>,
}

/// What sending a request does when the request channel is full.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WhenFull {
    /// The caller waits for room.
    Wait,
    /// The request fails at once with [`ClientError::Overloaded`].
    Refuse,
    /// A thread of its own waits for room and sends it, so the caller (an
    /// async task) never blocks; the caller awaits the answer as usual.
    HandOff,
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
        let shared = self.call(
            |reply| Request::Query(QueryRequest::Get { id, reply }),
            WhenFull::Wait,
        )?;
        Ok(shared.map(Arc::unwrap_or_clone))
    }

    /// Tickets matching `query`, in ascending id order.
    pub fn list(&self, query: ListQuery) -> Result<Vec<Ticket>, ClientError> {
        let shared = self.call(
            |reply| Request::Query(QueryRequest::List { query, reply }),
            WhenFull::Wait,
        )?;
        Ok(shared.into_iter().map(Arc::unwrap_or_clone).collect())
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

    /// Asks the server for a live feed and a reader of the log up to it.
    pub(crate) fn request_feed(
        &self,
        after: Option<Position>,
    ) -> Result<ReplyReceiver<Result<Subscribed, ClientError>>, ClientError> {
        self.send(|reply| Request::Subscribe { after, reply }, WhenFull::Wait)
    }

    /// [`Self::request_feed`] for async callers: never blocks, even when
    /// the request channel is full.
    pub(crate) fn request_feed_handed_off(
        &self,
        after: Option<Position>,
    ) -> Result<ReplyReceiver<Result<Subscribed, ClientError>>, ClientError> {
        self.send(
            |reply| Request::Subscribe { after, reply },
            WhenFull::HandOff,
        )
    }

    /// Sends a command without waiting for its reply, so one thread can keep
    /// many commands in flight; waits only for room in the request channel.
    /// Commands from one client are applied in the order they were submitted.
    pub fn submit(&self, command: Command) -> Result<PendingReply<Ticket>, ClientError> {
        self.operate(command.into(), WhenFull::Wait, one)
    }

    /// Like [`Self::submit`], but never blocks: fails at once with
    /// [`ClientError::Overloaded`] when the request channel is full. For
    /// async code, which must not block its executor's thread: submit with
    /// this, then `.await` the [`PendingReply`].
    pub fn try_submit(&self, command: Command) -> Result<PendingReply<Ticket>, ClientError> {
        self.operate(command.into(), WhenFull::Refuse, one)
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
            .wait()
            .ok_or(ClientError::Closed)?
    }

    fn send<T>(
        &self,
        request: impl FnOnce(ReplyTo<T>) -> Request,
        when_full: WhenFull,
    ) -> Result<ReplyReceiver<Result<T, ClientError>>, ClientError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        // The server sends exactly one reply and never waits on it.
        let (reply, answer) = reply_channel();
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
            WhenFull::HandOff => match self.requests.try_send(request) {
                Ok(()) => {}
                Err(TrySendError::Disconnected(_)) => return Err(ClientError::Closed),
                Err(TrySendError::Full(request)) => {
                    // The thread ends once the request is in, or once the
                    // server is gone (then the request and its reply end are
                    // dropped, and the answer reads as closed): the server
                    // drains the channel for as long as it runs.
                    let requests = self.requests.clone();
                    thread::Builder::new()
                        .name("ticketlog-request".into())
                        .spawn(move || {
                            let _ = requests.send(request);
                        })
                        .map_err(|e| {
                            ClientError::Storage(StorageError::io("spawn", "request thread", e))
                        })?;
                }
            },
        }
        Ok(answer)
    }
}

/// The ticket a single command produced. The server answers every
/// `Operation::Command` with `Applied::One`, so the other arm never runs.
/// The server shares the ticket with its state; the copy is made here, on
/// the client's thread.
fn one(applied: Applied) -> Ticket {
    match applied {
        Applied::One(ticket) => Arc::unwrap_or_clone(ticket),
        Applied::Many(mut tickets) => {
            debug_assert!(false, "a single command is answered with one ticket");
            Arc::unwrap_or_clone(
                tickets
                    .pop()
                    .expect("a single command is answered with one ticket"),
            )
        }
    }
}

/// The tickets a create-many produced (copied here, as in [`one`]).
fn many(applied: Applied) -> Vec<Ticket> {
    match applied {
        Applied::One(ticket) => vec![Arc::unwrap_or_clone(ticket)],
        Applied::Many(tickets) => tickets.into_iter().map(Arc::unwrap_or_clone).collect(),
    }
}

/// The reply to a [`Client::submit`]ted command, to be waited for later:
/// by blocking ([`Self::wait`]) or, in async code, by `.await`ing it — it is
/// a [`Future`] that any executor can poll (the library runs no runtime;
/// the server thread wakes the task when the reply is durable).
///
/// ```
/// use ticketlog::{Command, Options, Store, TicketDraft};
/// # use std::task::{Context, Poll, Wake, Waker};
/// # use std::sync::Arc;
/// # struct Thread(std::thread::Thread);
/// # impl Wake for Thread { fn wake(self: Arc<Self>) { self.0.unpark() } }
/// # /// A minimal executor: poll, park until woken, repeat.
/// # fn block_on<F: std::future::Future>(future: F) -> F::Output {
/// #     let mut future = std::pin::pin!(future);
/// #     let waker = Waker::from(Arc::new(Thread(std::thread::current())));
/// #     let mut cx = Context::from_waker(&waker);
/// #     loop {
/// #         if let Poll::Ready(out) = future.as_mut().poll(&mut cx) { return out; }
/// #         std::thread::park();
/// #     }
/// # }
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path(), Options::default())?;
/// let client = store.client();
/// let pending = client.submit(Command::Create(TicketDraft {
///     title: "Async".try_into()?,
///     description: "Awaited, not blocked on.".try_into()?,
/// }))?;
/// // In a tokio or async-std task this is just `pending.await?`.
/// let ticket = block_on(async { pending.await })?;
/// assert_eq!(ticket.version, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a submitted command's outcome is only known by waiting for it"]
pub struct PendingReply<T> {
    answer: ReplyReceiver<Result<Applied, ClientError>>,
    unwrap: fn(Applied) -> T,
}

impl<T> PendingReply<T> {
    /// Blocks until the server answers. If the server drops the request
    /// unanswered (it stopped), this returns [`ClientError::Closed`] instead of hanging.
    pub fn wait(self) -> Result<T, ClientError> {
        let applied = self.answer.wait().ok_or(ClientError::Closed)??;
        Ok((self.unwrap)(applied))
    }
}

impl<T> PendingReply<T> {
    /// Waits at most `timeout`: `Err(self)` (still pending, wait again
    /// later) if the server has not answered by then.
    pub fn wait_timeout(
        self,
        timeout: std::time::Duration,
    ) -> Result<Result<T, ClientError>, Self> {
        match self.answer.wait_timeout(timeout) {
            Err(answer) => Err(PendingReply {
                answer,
                unwrap: self.unwrap,
            }),
            Ok(None) => Ok(Err(ClientError::Closed)),
            Ok(Some(result)) => Ok(result.map(self.unwrap)),
        }
    }
}

impl<T> Future for PendingReply<T> {
    type Output = Result<T, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.answer.poll_reply(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Err(ClientError::Closed)),
            Poll::Ready(Some(Err(error))) => Poll::Ready(Err(error)),
            Poll::Ready(Some(Ok(applied))) => Poll::Ready(Ok((this.unwrap)(applied))),
        }
    }
}

const _: () = {
    const fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Client>();
};
