//! What clients ask for: commands (which change state and are logged), the
//! one [`Operation`] type the engine decides and logs for every command
//! (create-many included), and the query shapes ([`ListQuery`], [`Stats`]).

use std::sync::Arc;

use serde::Serialize;

use crate::domain::change::Change;
use crate::domain::ticket::{Status, Ticket, TicketDraft, TicketId, TicketPatch};

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
    /// The LSN of the last record (0 for an empty log): two copies of a
    /// store at the same `last_lsn` hold the same state.
    pub last_lsn: u64,
    /// The state digest (see docs/FORMAT.md, "State digest"): equal for
    /// equal states, so two copies can be compared.
    pub digest: u64,
}

impl Stats {
    /// Live tickets of every status.
    pub fn tickets(&self) -> u64 {
        self.todo + self.in_progress + self.done
    }
}

/// The one type the engine runs for everything that changes state: a
/// single command, or several creates as one atomic record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// A create, update or delete.
    Command(Command),
    /// Several creates, all applied or none (at most [`CREATE_MANY_MAX`]).
    CreateMany(Vec<TicketDraft>),
}

impl From<Command> for Operation {
    fn from(command: Command) -> Self {
        Operation::Command(command)
    }
}

/// What [`State::decide`](crate::state::State::decide) made of an
/// operation: the changes its one record carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The change of a single command.
    One(Change),
    /// The creates of a create-many, in id order (empty for no drafts).
    Many(Vec<Change>),
}

impl Decision {
    /// The changes, in the order they apply.
    pub(crate) fn changes(&self) -> &[Change] {
        match self {
            Decision::One(change) => std::slice::from_ref(change),
            Decision::Many(changes) => changes,
        }
    }

    /// The changes, by value.
    pub(crate) fn into_changes(self) -> DecisionChanges {
        match self {
            Decision::One(change) => DecisionChanges::One(Some(change)),
            Decision::Many(changes) => DecisionChanges::Many(changes.into_iter()),
        }
    }
}

/// The changes of a [`Decision`], by value, without allocating for one.
pub(crate) enum DecisionChanges {
    One(Option<Change>),
    Many(std::vec::IntoIter<Change>),
}

impl Iterator for DecisionChanges {
    type Item = Change;

    fn next(&mut self) -> Option<Change> {
        match self {
            DecisionChanges::One(change) => change.take(),
            DecisionChanges::Many(changes) => changes.next(),
        }
    }
}

/// What an applied operation produced: the ticket a command made, changed
/// or removed, or the tickets a create-many made. Shared with the state
/// (the server thread copies a pointer, not the strings; the client makes
/// its own copy, on its own thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The ticket after a create or update, or the removed ticket of a delete.
    One(Arc<Ticket>),
    /// The created tickets, in id order.
    Many(Vec<Arc<Ticket>>),
}
