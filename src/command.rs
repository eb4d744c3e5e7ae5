//! The protocol between clients and the server thread: commands (which change
//! state and are logged), queries (which read it and are never logged), and
//! the request envelope that carries each one with its own reply channel.

use std::sync::mpsc::SyncSender;

use serde::Serialize;

use crate::compaction::CompactInfo;
use crate::error::{ClientError, StorageError};
use crate::history::HistorySource;
use crate::snapshot::SnapshotInfo;
use crate::ticket::{Status, Ticket, TicketDraft, TicketId, TicketPatch};

/// A change a client asks for. Each accepted command is logged, made durable,
/// applied, and answered with the ticket it produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create a ticket; answered with the new ticket.
    Create(TicketDraft),
    /// Change a ticket; answered with the ticket after the change.
    Update(TicketId, TicketPatch),
    /// Delete a ticket; answered with the removed ticket.
    Delete(TicketId),
}

/// The most drafts one [`Client::create_many`](crate::Client::create_many) may
/// carry: the worst case (50-byte titles, 500-byte descriptions) stays well
/// inside one record's 1 MiB payload limit.
pub const CREATE_MANY_MAX: usize = 1024;

/// Which tickets [`Client::list`](crate::Client::list) returns, in ascending id order.
/// The default lists every ticket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only tickets with this status.
    pub status: Option<Status>,
    /// Only tickets with an id greater than this (for paging).
    pub after: Option<TicketId>,
    /// At most this many tickets.
    pub limit: Option<usize>,
}

/// Figures about the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Tickets in [`Status::ToDo`].
    pub todo: u64,
    /// Tickets in [`Status::InProgress`].
    pub in_progress: u64,
    /// Tickets in [`Status::Done`].
    pub done: u64,
    /// The id the next created ticket will get.
    pub next_id: TicketId,
    /// Bytes in the log, header included.
    pub log_bytes: u64,
    /// Records in the log.
    pub records: u64,
}

impl Stats {
    /// Live tickets of every status.
    pub fn tickets(&self) -> u64 {
        self.todo + self.in_progress + self.done
    }
}

/// Where the server sends one reply. Each request carries its own.
pub(crate) type ReplyTo<T> = SyncSender<Result<T, ClientError>>;

/// What travels over the request channel to the server thread.
pub(crate) enum Request {
    /// A command, answered after the record that carries it is durable.
    Command {
        command: Command,
        reply: ReplyTo<Ticket>,
    },
    /// Several creates as one log record: all are applied, or none.
    CreateMany {
        drafts: Vec<TicketDraft>,
        reply: ReplyTo<Vec<Ticket>>,
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
    /// Sent by the snapshot helper thread when its snapshot is durable (or failed).
    SnapshotWritten(Result<SnapshotInfo, StorageError>),
    /// Sent by `Store::close`: answer what came before, refuse what comes after.
    Close,
}

/// A query with its reply channel.
pub(crate) enum QueryRequest {
    /// Read one ticket.
    Get {
        id: TicketId,
        reply: ReplyTo<Option<Ticket>>,
    },
    /// Read a page of tickets.
    List {
        query: ListQuery,
        reply: ReplyTo<Vec<Ticket>>,
    },
    /// Read the store's figures.
    Stats { reply: ReplyTo<Stats> },
    /// Open the log for reading one ticket's history.
    History {
        id: TicketId,
        reply: ReplyTo<HistorySource>,
    },
}

impl Request {
    /// Answers the request with `Closed` (used for requests that arrive after close).
    pub(crate) fn reject_closed(self) {
        // A client that stopped waiting has dropped its receiver: not an error.
        match self {
            Request::Command { reply, .. } => drop(reply.send(Err(ClientError::Closed))),
            Request::CreateMany { reply, .. } => drop(reply.send(Err(ClientError::Closed))),
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
            Request::Snapshot { reply } => drop(reply.send(Err(StorageError::Closed))),
            Request::Compact { reply } => drop(reply.send(Err(StorageError::Closed))),
            Request::SnapshotWritten(_) | Request::Close => {}
        }
    }
}
