//! The protocol between clients and the server thread: the request envelope
//! that carries each operation or query with its own reply channel, and
//! [`ClientError`], what a request can come back with instead of a reply.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use crate::domain::command::{Applied, ListQuery, Operation, Stats};
use crate::domain::event::Position;
use crate::domain::rejection::{Rejection, TicketError};
use crate::domain::ticket::{Ticket, TicketId};
use crate::engine::reply::ReplySender;
use crate::engine::retention::CompactInfo;
use crate::engine::subscription::Feed;
use crate::error::StorageError;
use crate::log::LogReader;
use crate::snapshot::SnapshotInfo;

/// Where the server sends one reply. Each request carries its own.
pub(crate) type ReplyTo<T> = ReplySender<Result<T, ClientError>>;

/// What a new subscriber gets: a reader of the log up to where its live
/// feed starts, and the feed.
pub(crate) type Subscribed = (Box<dyn LogReader>, Arc<Feed>);

/// What travels over the request channel to the server thread.
pub(crate) enum Request {
    /// An operation, answered after the record that carries it is durable.
    Operation {
        operation: Operation,
        reply: ReplyTo<Applied>,
    },
    /// A query, answered from memory.
    Query(QueryRequest),
    /// Sent by `Store::snapshot`: take a snapshot at the next batch boundary.
    Snapshot {
        reply: SyncSender<Result<SnapshotInfo, StorageError>>,
    },
    /// Sent by `Store::compact`: take a snapshot, then remove what it covers.
    Compact {
        reply: SyncSender<Result<CompactInfo, StorageError>>,
    },
    /// Sent by `Client::subscribe`: register a live feed between batches
    /// and hand back a reader for the catch-up.
    Subscribe {
        after: Option<Position>,
        reply: ReplyTo<Subscribed>,
    },
    /// Sent by the snapshot helper thread when its snapshot is durable (or failed).
    SnapshotWritten(Result<SnapshotInfo, StorageError>),
    /// Sent by `Store::close`: answer what came before, refuse what comes after.
    Close,
    /// Sent by a shared log (from its own thread): other hosts' records
    /// have arrived. Only wakes the server, which catches up between batches.
    LogAdvanced,
}

/// A query with its reply channel.
pub(crate) enum QueryRequest {
    /// Read one ticket.
    Get {
        id: TicketId,
        /// Shared with the state; the client copies it on its own thread.
        reply: ReplyTo<Option<Arc<Ticket>>>,
    },
    /// Read a page of tickets.
    List {
        query: ListQuery,
        /// Shared with the state, as for `Get`.
        reply: ReplyTo<Vec<Arc<Ticket>>>,
    },
    /// Read the store's figures.
    Stats { reply: ReplyTo<Stats> },
    /// Open the log for reading one ticket's history.
    History {
        id: TicketId,
        reply: ReplyTo<Box<dyn LogReader>>,
    },
}

impl Request {
    /// Answers the request with `Closed` (used for requests that arrive after close).
    pub(crate) fn reject_closed(self) {
        // A client that stopped waiting has dropped its receiver: not an error.
        match self {
            Request::Operation { reply, .. } => drop(reply.send(Err(ClientError::Closed))),
            Request::Query(QueryRequest::Get { reply, .. }) => {
                drop(reply.send(Err(ClientError::Closed)));
            }
            Request::Query(QueryRequest::List { reply, .. }) => {
                drop(reply.send(Err(ClientError::Closed)));
            }
            Request::Query(QueryRequest::Stats { reply }) => {
                drop(reply.send(Err(ClientError::Closed)));
            }
            Request::Query(QueryRequest::History { reply, .. }) => {
                drop(reply.send(Err(ClientError::Closed)));
            }
            Request::Subscribe { reply, .. } => drop(reply.send(Err(ClientError::Closed))),
            Request::Snapshot { reply } => drop(reply.send(Err(StorageError::Closed))),
            Request::Compact { reply } => drop(reply.send(Err(StorageError::Closed))),
            Request::SnapshotWritten(_) | Request::Close | Request::LogAdvanced => {}
        }
    }
}

/// What a client can get back instead of a reply.
///
/// Every way a store can be out of reach — closed, its server thread gone,
/// a request dropped — is [`ClientError::Closed`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request channel is full (only from the `try_*` methods).
    #[error("the store is overloaded: its request queue is full, try again later")]
    Overloaded,
    /// The store was closed, or its server thread is gone.
    #[error("the store is closed")]
    Closed,
    /// No ticket has this id (it was never created, or was deleted).
    #[error("ticket {0} does not exist")]
    NotFound(TicketId),
    /// The ticket is not at the version the patch expected; nothing was written.
    #[error(
        "ticket {id} is at version {actual}, not the expected version {expected}; nothing was changed"
    )]
    Conflict {
        /// The ticket.
        id: TicketId,
        /// The version the patch expected.
        expected: u64,
        /// The ticket's current version.
        actual: u64,
    },
    /// A subscription asked for events the log no longer holds: compaction
    /// removed everything before `oldest_lsn`. Resume from there (or from a
    /// snapshot of the state) instead.
    #[error(
        "the log no longer holds the events asked for: it starts at LSN {oldest_lsn} after compaction"
    )]
    Compacted {
        /// The LSN of the oldest record still in the log.
        oldest_lsn: u64,
    },
    /// The request failed validation.
    #[error("invalid request: {0}")]
    Invalid(#[from] TicketError),
    /// The log could not be written or synced. The command was not
    /// acknowledged; it may or may not be found after a reopen.
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
}

impl From<Rejection> for ClientError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::NotFound(id) => ClientError::NotFound(id),
            Rejection::Conflict {
                id,
                expected,
                actual,
            } => ClientError::Conflict {
                id,
                expected,
                actual,
            },
            Rejection::Invalid(error) => ClientError::Invalid(error),
        }
    }
}
