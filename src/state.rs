//! The in-memory state: every live ticket in a `BTreeMap` by id, the next id
//! to mint, and per-status counts.
//!
//! Two doors lead in, and they are kept apart on purpose:
//! - [`State::decide`] validates a command against the current state and
//!   returns the [`Change`] it would log, changing nothing;
//! - [`State::apply`] applies a change (a new one, or one replayed from the
//!   log), checks that it is consistent with the state, and returns what is
//!   needed to undo it.
//!
//! `apply` is the only code that mutates tickets, on both the live path and
//! replay, so replay cannot drift from what the server did. This module never
//! reads the clock (the timestamp comes in with the command) and never does I/O.

use std::collections::BTreeMap;

use crate::change::Change;
use crate::command::{Command, ListQuery, Stats};
use crate::error::{ClientError, TicketError};
use crate::ticket::{Status, Ticket, TicketDescription, TicketDraft, TicketId, TicketTitle};
use crate::time::Timestamp;

/// All tickets and the id counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    tickets: BTreeMap<TicketId, Ticket>,
    /// The id the next created ticket gets. Invariant: greater than every id
    /// ever created, so ids are never reused.
    next_id: u64,
    /// Live tickets per status, indexed by [`Status::index`].
    /// Invariant: sums to `tickets.len()`.
    status_counts: [u64; 3],
    /// The latest timestamp applied. Invariant: changes arrive with
    /// non-decreasing timestamps.
    last_at: Timestamp,
}

/// What is needed to take back one applied change.
#[derive(Debug)]
pub(crate) enum Undo {
    /// Remove the created ticket and give its id back.
    Create(TicketId),
    /// Put back the fields the update replaced.
    Update(TicketId, PriorFields),
    /// Re-insert the deleted ticket.
    Delete(Ticket),
}

/// The fields of a ticket before an update; strings only if they changed.
#[derive(Debug)]
pub(crate) struct PriorFields {
    title: Option<TicketTitle>,
    description: Option<TicketDescription>,
    status: Status,
    version: u64,
    updated_at: Timestamp,
}

impl Undo {
    /// The ticket the undone change was about.
    pub fn ticket_id(&self) -> TicketId {
        match self {
            Undo::Create(id) | Undo::Update(id, _) => *id,
            Undo::Delete(ticket) => ticket.id,
        }
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            tickets: BTreeMap::new(),
            next_id: 1,
            status_counts: [0; 3],
            last_at: Timestamp::from_unix_millis(0),
        }
    }
}

impl State {
    /// The next id the server will mint.
    pub fn next_id(&self) -> TicketId {
        TicketId::from(self.next_id)
    }

    /// The latest timestamp applied; the server never stamps a change earlier than this.
    pub fn last_at(&self) -> Timestamp {
        self.last_at
    }

    /// Decides what `command` does to the current state, without changing it.
    /// `now` is the server's clock, already clamped to be at least [`Self::last_at`].
    /// Takes the command by value so its strings move into the change.
    pub fn decide(&self, command: Command, now: Timestamp) -> Result<Change, ClientError> {
        debug_assert!(now >= self.last_at);
        match command {
            Command::Create(draft) => Ok(Change::Created {
                id: TicketId::from(self.next_id),
                title: draft.title,
                description: draft.description,
                at: now,
            }),
            Command::Update(id, patch) => {
                let ticket = self.tickets.get(&id).ok_or(ClientError::NotFound(id))?;
                if let Some(expected) = patch.expected_version
                    && expected != ticket.version
                {
                    return Err(ClientError::Conflict {
                        id,
                        expected,
                        actual: ticket.version,
                    });
                }
                if patch.changes_nothing() {
                    return Err(ClientError::Invalid(TicketError::EmptyPatch));
                }
                Ok(Change::Updated {
                    id,
                    version: ticket.version + 1,
                    title: patch.title,
                    description: patch.description,
                    status: patch.status,
                    at: now,
                })
            }
            Command::Delete(id) => {
                let ticket = self.tickets.get(&id).ok_or(ClientError::NotFound(id))?;
                Ok(Change::Deleted {
                    id,
                    version: ticket.version,
                    at: now,
                })
            }
        }
    }

    /// Applies a change, moving its values into the state. Fails, changing
    /// nothing, if the change contradicts the state (a replayed log that does
    /// not match what the server did). Returns the undo record.
    pub fn apply(&mut self, change: Change) -> Result<Undo, String> {
        let at = change.at();
        if at < self.last_at {
            return Err(format!(
                "timestamp {} is earlier than the previous change's {}",
                at.as_unix_millis(),
                self.last_at.as_unix_millis()
            ));
        }
        let undo = match change {
            Change::Created {
                id,
                title,
                description,
                at,
            } => {
                if id.get() != self.next_id {
                    return Err(format!(
                        "created ticket {id}, but the next id is {}",
                        self.next_id
                    ));
                }
                // Ids grow by one per created ticket, so this cannot overflow
                // before the log holds 2^64 records.
                self.next_id += 1;
                self.insert(Ticket {
                    id,
                    title,
                    description,
                    status: Status::ToDo,
                    version: 1,
                    created_at: at,
                    updated_at: at,
                });
                Undo::Create(id)
            }
            Change::Updated {
                id,
                version,
                title,
                description,
                status,
                at,
            } => {
                let Some(ticket) = self.tickets.get_mut(&id) else {
                    return Err(format!("update of ticket {id}, which does not exist"));
                };
                if version != ticket.version + 1 {
                    return Err(format!(
                        "update of ticket {id} to version {version}, but it is at version {}",
                        ticket.version
                    ));
                }
                let before = PriorFields {
                    title: title.map(|title| std::mem::replace(&mut ticket.title, title)),
                    description: description
                        .map(|description| std::mem::replace(&mut ticket.description, description)),
                    status: ticket.status,
                    version: ticket.version,
                    updated_at: ticket.updated_at,
                };
                let old_status = ticket.status;
                if let Some(status) = status {
                    ticket.status = status;
                }
                ticket.version = version;
                ticket.updated_at = at;
                let new_status = ticket.status;
                self.recount(old_status, new_status);
                Undo::Update(id, before)
            }
            Change::Deleted { id, version, .. } => {
                let Some(ticket) = self.tickets.get(&id) else {
                    return Err(format!("delete of ticket {id}, which does not exist"));
                };
                if version != ticket.version {
                    return Err(format!(
                        "delete of ticket {id} at version {version}, but it is at version {}",
                        ticket.version
                    ));
                }
                let removed = self.remove(id).expect("checked present just above");
                Undo::Delete(removed)
            }
        };
        self.last_at = at;
        self.check_invariants();
        Ok(undo)
    }

    /// Takes back an applied change. Undos must be given in the reverse order of
    /// their applies. `last_at` stays where it is: timestamps only move forward.
    pub fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Create(id) => {
                self.remove(id);
                debug_assert_eq!(id.get() + 1, self.next_id);
                self.next_id = id.get();
            }
            Undo::Update(id, before) => {
                let ticket = self
                    .tickets
                    .get_mut(&id)
                    .expect("undos run newest first, so the updated ticket is present");
                if let Some(title) = before.title {
                    ticket.title = title;
                }
                if let Some(description) = before.description {
                    ticket.description = description;
                }
                let undone_status = ticket.status;
                ticket.status = before.status;
                ticket.version = before.version;
                ticket.updated_at = before.updated_at;
                self.recount(undone_status, before.status);
            }
            Undo::Delete(before) => {
                self.insert(before);
            }
        }
        self.check_invariants();
    }

    /// Changes creating one ticket per draft, with consecutive new ids.
    pub fn decide_creates(&self, drafts: Vec<TicketDraft>, now: Timestamp) -> Vec<Change> {
        debug_assert!(now >= self.last_at);
        (self.next_id..)
            .zip(drafts)
            .map(|(id, draft)| Change::Created {
                id: TicketId::from(id),
                title: draft.title,
                description: draft.description,
                at: now,
            })
            .collect()
    }

    /// The live ticket with this id.
    pub fn ticket(&self, id: TicketId) -> Option<&Ticket> {
        self.tickets.get(&id)
    }

    pub fn get(&self, id: TicketId) -> Option<Ticket> {
        self.tickets.get(&id).cloned()
    }

    pub fn list(&self, query: &ListQuery) -> Vec<Ticket> {
        let after = query.after.map_or(0, TicketId::get);
        let limit = query.limit.unwrap_or(usize::MAX);
        self.tickets
            .range(TicketId::from(after.saturating_add(1))..)
            .map(|(_, ticket)| ticket)
            .filter(|ticket| query.status.is_none_or(|status| ticket.status == status))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Counts by status and the next id; the log figures are filled in by the server.
    pub fn stats(&self) -> Stats {
        Stats {
            todo: self.status_counts[Status::ToDo.index()],
            in_progress: self.status_counts[Status::InProgress.index()],
            done: self.status_counts[Status::Done.index()],
            next_id: self.next_id(),
            log_bytes: 0,
            records: 0,
        }
    }

    fn insert(&mut self, ticket: Ticket) {
        self.status_counts[ticket.status.index()] += 1;
        if let Some(old) = self.tickets.insert(ticket.id, ticket) {
            self.status_counts[old.status.index()] -= 1;
        }
    }

    /// Moves one ticket's count from `from` to `to`.
    fn recount(&mut self, from: Status, to: Status) {
        self.status_counts[from.index()] -= 1;
        self.status_counts[to.index()] += 1;
    }

    fn remove(&mut self, id: TicketId) -> Option<Ticket> {
        let removed = self.tickets.remove(&id)?;
        self.status_counts[removed.status.index()] -= 1;
        Some(removed)
    }

    fn check_invariants(&self) {
        debug_assert_eq!(
            self.status_counts.iter().sum::<u64>(),
            self.tickets.len() as u64,
            "status counts must add up to the number of tickets"
        );
        debug_assert!(
            self.tickets
                .last_key_value()
                .is_none_or(|(id, _)| id.get() < self.next_id),
            "every id must be below next_id"
        );
    }
}
