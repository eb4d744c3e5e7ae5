//! The one model of the store: a plain in-memory ticket store written apart
//! from `State` so that the two can be compared — what each command should
//! answer, which event it should log, and the state any prefix of the log
//! replays to. Every oracle checks with it: the fuzz targets and the proptest
//! state machine (step by step, with the server's timestamps), the
//! simulation, the I/O sweep and the damage sweeps (replaying accepted
//! commands, [`Model::execute`]), and `ticketlog crash-test` (one model per
//! client, over the tickets that client owns: [`Model::skip_ids_to`]).
//!
//! The model cannot know the server's clock. [`Model::acknowledge`] takes
//! each timestamp from the store's reply and checks only that it never goes
//! backwards; [`Model::execute`] stamps nothing new, and its tickets are
//! compared with [`same_ticket`], which leaves timestamps out. A delete's
//! timestamp is not in its reply at all; the model learns it when it next
//! reads the log ([`Model::check_log`]).

use std::collections::BTreeMap;

use crate::api::inspect::LogEntry;
use crate::domain::change::Change;
use crate::domain::command::{CREATE_MANY_MAX, Command, ListQuery, Stats};
use crate::domain::rejection::TicketError;
use crate::domain::ticket::{
    Status, Ticket, TicketDescription, TicketDraft, TicketId, TicketTitle,
};
use crate::domain::time::Timestamp;
use crate::engine::request::ClientError;

/// One record the model expects in the log, in log order: the changes of one
/// command (a single change, or every create of a `create_many`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Logged {
    changes: Vec<Change>,
    /// False for a delete whose timestamp has not been read from the log yet;
    /// its `at` then holds a lower bound.
    at_known: bool,
}

/// The model: live tickets, the next id, and every acknowledged change.
#[derive(Clone, Debug)]
pub struct Model {
    tickets: BTreeMap<u64, Ticket>,
    next_id: u64,
    /// No later event may be stamped earlier than this.
    last_at: Timestamp,
    log: Vec<Logged>,
    /// Records in the log that carry no command (seals, digest records),
    /// as of the last time the log was read.
    records_without_commands: u64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            tickets: BTreeMap::new(),
            next_id: 1,
            last_at: Timestamp::from_unix_millis(0),
            log: Vec::new(),
            records_without_commands: 0,
        }
    }
}

/// What the model expects a command to fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No live ticket has this id.
    NotFound(TicketId),
    /// The ticket is at `actual`, the patch expected `expected`.
    Conflict {
        /// The ticket.
        id: TicketId,
        /// What the patch expected.
        expected: u64,
        /// The ticket's version.
        actual: u64,
    },
    /// Validation failed.
    Invalid(TicketError),
}

impl Refusal {
    /// Whether `error` is exactly this refusal.
    pub fn matches(&self, error: &ClientError) -> bool {
        match (self, error) {
            (Refusal::NotFound(id), ClientError::NotFound(got)) => id == got,
            (
                Refusal::Conflict {
                    id,
                    expected,
                    actual,
                },
                ClientError::Conflict {
                    id: got_id,
                    expected: got_expected,
                    actual: got_actual,
                },
            ) => id == got_id && expected == got_expected && actual == got_actual,
            (Refusal::Invalid(want), ClientError::Invalid(got)) => want == got,
            _ => false,
        }
    }
}

/// What an accepted command will do, before the server has stamped it.
#[derive(Clone, Debug)]
pub enum Decision {
    /// A new ticket with this id.
    Create {
        /// The id it gets.
        id: TicketId,
        /// Its title.
        title: TicketTitle,
        /// Its description.
        description: TicketDescription,
    },
    /// A change to `before`.
    Update {
        /// The ticket as it is.
        before: Ticket,
        /// New title, if any.
        title: Option<TicketTitle>,
        /// New description, if any.
        description: Option<TicketDescription>,
        /// New status, if any.
        status: Option<Status>,
    },
    /// Removing `before`.
    Delete {
        /// The ticket as it is.
        before: Ticket,
    },
}

/// The model's own check of a title: 1 to 50 bytes.
pub fn validate_title(text: &str) -> Result<(), TicketError> {
    match text.len() {
        0 => Err(TicketError::TitleEmpty),
        len if len > 50 => Err(TicketError::TitleTooLong { len, max: 50 }),
        _ => Ok(()),
    }
}

/// The model's own check of a description: 1 to 500 bytes.
pub fn validate_description(text: &str) -> Result<(), TicketError> {
    match text.len() {
        0 => Err(TicketError::DescriptionEmpty),
        len if len > 500 => Err(TicketError::DescriptionTooLong { len, max: 500 }),
        _ => Ok(()),
    }
}

impl Model {
    /// Live tickets in id order.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }

    /// The live ticket with this id.
    pub fn get(&self, id: TicketId) -> Option<&Ticket> {
        self.tickets.get(&id.get())
    }

    /// The id the next create gets.
    pub fn next_id(&self) -> TicketId {
        TicketId::from(self.next_id)
    }

    /// Acknowledged changes, that is, records the log must hold.
    pub fn records(&self) -> u64 {
        self.log.len() as u64
    }

    /// Ids below the next id that are not live: deleted, or lost to a cut log.
    pub fn gone_ids(&self) -> impl Iterator<Item = u64> + '_ {
        (1..self.next_id).filter(|id| !self.tickets.contains_key(id))
    }

    /// What `command` should do to the model as it is.
    pub fn decide(&self, command: &Command) -> Result<Decision, Refusal> {
        match command {
            Command::Create(draft) => Ok(Decision::Create {
                id: TicketId::from(self.next_id),
                title: draft.title.clone(),
                description: draft.description.clone(),
            }),
            Command::Update(id, patch) => {
                let before = self.get(*id).ok_or(Refusal::NotFound(*id))?;
                if let Some(expected) = patch.expected_version
                    && expected != before.version
                {
                    return Err(Refusal::Conflict {
                        id: *id,
                        expected,
                        actual: before.version,
                    });
                }
                if patch.title.is_none() && patch.description.is_none() && patch.status.is_none() {
                    return Err(Refusal::Invalid(TicketError::EmptyPatch));
                }
                Ok(Decision::Update {
                    before: before.clone(),
                    title: patch.title.clone(),
                    description: patch.description.clone(),
                    status: patch.status,
                })
            }
            Command::Delete(id) => Ok(Decision::Delete {
                before: self.get(*id).ok_or(Refusal::NotFound(*id))?.clone(),
            }),
        }
    }

    /// The ticket and the event `decision` leads to when stamped `at` (a
    /// delete's event is stamped `at` too, a lower bound for its real time).
    fn outcome(decision: Decision, at: Timestamp) -> (Ticket, Change) {
        match decision {
            Decision::Create {
                id,
                title,
                description,
            } => {
                let ticket = Ticket {
                    id,
                    title: title.clone(),
                    description: description.clone(),
                    status: Status::ToDo,
                    version: 1,
                    created_at: at,
                    updated_at: at,
                };
                let event = Change::Created {
                    id,
                    title,
                    description,
                    at,
                };
                (ticket, event)
            }
            Decision::Update {
                before,
                title,
                description,
                status,
            } => {
                let mut after = before.clone();
                if let Some(title) = &title {
                    after.title = title.clone();
                }
                if let Some(description) = &description {
                    after.description = description.clone();
                }
                if let Some(status) = status {
                    after.status = status;
                }
                after.version = before.version + 1;
                after.updated_at = at;
                let event = Change::Updated {
                    id: before.id,
                    version: after.version,
                    title,
                    description,
                    status,
                    at,
                };
                (after, event)
            }
            Decision::Delete { before } => {
                let event = Change::Deleted {
                    id: before.id,
                    version: before.version,
                    at,
                };
                (before, event)
            }
        }
    }

    /// Checks the store's reply to an accepted command against the decision
    /// and, if it matches, applies the change (taking the server's timestamp
    /// from the reply).
    pub fn acknowledge(&mut self, decision: Decision, reply: &Ticket) -> Result<(), String> {
        let (at, at_known) = match &decision {
            Decision::Create { .. } => (reply.created_at, true),
            Decision::Update { .. } => (reply.updated_at, true),
            // Not in the reply: a lower bound until the log is read.
            Decision::Delete { .. } => (self.last_at, false),
        };
        let (expected, event) = Self::outcome(decision, at);
        if *reply != expected {
            return Err(format!("reply {reply:?}, model expects {expected:?}"));
        }
        if at < self.last_at {
            return Err(format!(
                "timestamp {} went back from {}",
                at.as_unix_millis(),
                self.last_at.as_unix_millis()
            ));
        }
        self.apply(&event)?;
        self.log.push(Logged {
            changes: vec![event],
            at_known,
        });
        Ok(())
    }

    /// Decides and applies `command` without a store to stamp it: for
    /// oracles that replay accepted commands. Returns the ticket the store
    /// answers with (for a delete, the ticket as it was); its timestamps are
    /// the model's latest, so compare it with [`same_ticket`]. The event is
    /// logged with its timestamp unknown, to be learnt by [`Self::check_log`].
    pub fn execute(&mut self, command: &Command) -> Result<Ticket, Refusal> {
        let decision = self.decide(command)?;
        let (ticket, event) = Self::outcome(decision, self.last_at);
        // A decided change always applies to the state it was decided on.
        if let Err(error) = self.apply(&event) {
            unreachable!("a decided change does not apply: {error}");
        }
        self.log.push(Logged {
            changes: vec![event],
            at_known: false,
        });
        Ok(ticket)
    }

    /// The model after executing `commands` in order, every one of which
    /// must be accepted (a history of what the server accepted).
    pub fn from_commands(commands: &[Command]) -> Result<Model, String> {
        let mut model = Model::default();
        for (index, command) in commands.iter().enumerate() {
            model.execute(command).map_err(|refusal| {
                format!("history entry {index} ({command:?}) is refused: {refusal:?}")
            })?;
        }
        Ok(model)
    }

    /// Makes this a partial view: ids below `next_id` were taken by commands
    /// the model does not see (another client's), so the next create gets
    /// `next_id`. Ids never go back.
    pub fn skip_ids_to(&mut self, next_id: TicketId) -> Result<(), String> {
        if next_id.get() < self.next_id {
            return Err(format!(
                "the next id cannot go back from {} to {next_id}",
                self.next_id
            ));
        }
        self.next_id = next_id.get();
        Ok(())
    }

    /// What `create_many(drafts)` should do: `Ok` with the drafts when they
    /// are within the limit (an empty call succeeds and logs nothing).
    pub fn decide_many<'d>(&self, drafts: &'d [TicketDraft]) -> Result<&'d [TicketDraft], Refusal> {
        if drafts.len() > CREATE_MANY_MAX {
            return Err(Refusal::Invalid(TicketError::BatchTooLarge {
                count: drafts.len(),
                max: CREATE_MANY_MAX,
            }));
        }
        Ok(drafts)
    }

    /// Checks the store's reply to an accepted `create_many`: consecutive
    /// ids from the next one, the drafts' fields in order, one timestamp for
    /// all; then applies the creates as one record.
    pub fn acknowledge_many(
        &mut self,
        drafts: &[TicketDraft],
        replies: &[Ticket],
    ) -> Result<(), String> {
        if replies.len() != drafts.len() {
            return Err(format!(
                "create_many of {} drafts answered with {} tickets",
                drafts.len(),
                replies.len()
            ));
        }
        let Some(first) = replies.first() else {
            return Ok(());
        };
        let at = first.created_at;
        if at < self.last_at {
            return Err(format!(
                "timestamp {} went back from {}",
                at.as_unix_millis(),
                self.last_at.as_unix_millis()
            ));
        }
        let mut changes = Vec::with_capacity(drafts.len());
        for (offset, (draft, reply)) in drafts.iter().zip(replies).enumerate() {
            let id = TicketId::from(self.next_id + offset as u64);
            let expected = Ticket {
                id,
                title: draft.title.clone(),
                description: draft.description.clone(),
                status: Status::ToDo,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            if *reply != expected {
                return Err(format!(
                    "create_many reply {offset} is {reply:?}, model expects {expected:?}"
                ));
            }
            changes.push(Change::Created {
                id,
                title: draft.title.clone(),
                description: draft.description.clone(),
                at,
            });
        }
        for change in &changes {
            self.apply(change)?;
        }
        self.log.push(Logged {
            changes,
            at_known: true,
        });
        Ok(())
    }

    /// Applies one event to the tickets, checking it as replay must. Does not
    /// touch the expected log.
    pub fn apply(&mut self, event: &Change) -> Result<(), String> {
        // A digest record describes the state; it changes no ticket (the
        // store checks it on replay, and this model is not the store).
        let Some(at) = event.at() else {
            return Ok(());
        };
        if at < self.last_at {
            return Err(format!(
                "event {event:?} is earlier than {:?}",
                self.last_at
            ));
        }
        match event {
            Change::Created {
                id,
                title,
                description,
                at,
            } => {
                if id.get() != self.next_id {
                    return Err(format!("created id {id}, next id is {}", self.next_id));
                }
                self.next_id += 1;
                self.tickets.insert(
                    id.get(),
                    Ticket {
                        id: *id,
                        title: title.clone(),
                        description: description.clone(),
                        status: Status::ToDo,
                        version: 1,
                        created_at: *at,
                        updated_at: *at,
                    },
                );
            }
            Change::Updated {
                id,
                version,
                title,
                description,
                status,
                at,
            } => {
                let ticket = self
                    .tickets
                    .get_mut(&id.get())
                    .ok_or_else(|| format!("update of missing ticket {id}"))?;
                if ticket.version.checked_add(1) != Some(*version) {
                    return Err(format!(
                        "update of ticket {id} at version {} to version {version}",
                        ticket.version
                    ));
                }
                if let Some(title) = title {
                    ticket.title = title.clone();
                }
                if let Some(description) = description {
                    ticket.description = description.clone();
                }
                if let Some(status) = status {
                    ticket.status = *status;
                }
                ticket.version = *version;
                ticket.updated_at = *at;
            }
            Change::Deleted { id, version, .. } => {
                match self.tickets.get(&id.get()) {
                    Some(ticket) if ticket.version == *version => {}
                    Some(ticket) => {
                        return Err(format!(
                            "delete of ticket {id} at version {version}, it is at {}",
                            ticket.version
                        ));
                    }
                    None => return Err(format!("delete of missing ticket {id}")),
                }
                self.tickets.remove(&id.get());
            }
            Change::Digest { .. } => {}
        }
        self.last_at = at;
        Ok(())
    }

    /// The state a log replays to: a fresh model with `entries` applied.
    pub fn replay<'e>(entries: impl IntoIterator<Item = &'e LogEntry>) -> Result<Model, String> {
        let mut model = Model::default();
        for entry in entries {
            let changes: Vec<Change> = entry
                .changes
                .iter()
                .filter(|c| c.at().is_some())
                .cloned()
                .collect();
            if changes.is_empty() {
                continue;
            }
            for change in &changes {
                model.apply(change)?;
            }
            model.log.push(Logged {
                changes,
                at_known: true,
            });
        }
        Ok(model)
    }

    /// Checks the log as read back (one record per acknowledged change, in
    /// order, carrying exactly the expected event) and learns the timestamps
    /// of deletes from it.
    pub fn check_log(&mut self, entries: &[LogEntry]) -> Result<(), String> {
        // Seals (empty records) and digest records carry no command.
        let all = entries.len() as u64;
        let entries: Vec<&LogEntry> = entries
            .iter()
            .filter(|entry| entry.changes.iter().any(|c| c.at().is_some()))
            .collect();
        self.records_without_commands = all - entries.len() as u64;
        if entries.len() != self.log.len() {
            return Err(format!(
                "the log holds {} records, the model acknowledged {} changes",
                entries.len(),
                self.log.len()
            ));
        }
        let mut previous_at = Timestamp::from_unix_millis(0);
        let mut previous_lsn = 0;
        for (index, (entry, logged)) in entries.iter().zip(&mut self.log).enumerate() {
            if entry.changes.len() != logged.changes.len() {
                return Err(format!(
                    "record {index} holds {} changes, model expects {}",
                    entry.changes.len(),
                    logged.changes.len()
                ));
            }
            if entry.lsn <= previous_lsn {
                return Err(format!(
                    "record {index} has LSN {} after LSN {previous_lsn}",
                    entry.lsn
                ));
            }
            previous_lsn = entry.lsn;
            let mut expected = logged.changes.clone();
            for (event, expected) in entry.changes.iter().zip(&mut expected) {
                if !logged.at_known
                    && let (Some(at), Some(bound)) = (event.at(), expected.at())
                {
                    if at < bound {
                        return Err(format!("record {index} is stamped before its lower bound"));
                    }
                    restamp(expected, at);
                }
                if event != expected {
                    return Err(format!(
                        "record {index} holds {event:?}, model expects {expected:?}"
                    ));
                }
                let at = event.at().unwrap_or(previous_at);
                if at < previous_at {
                    return Err(format!("record {index}: timestamp went backwards"));
                }
                previous_at = at;
            }
            logged.changes = expected;
            logged.at_known = true;
        }
        self.last_at = self.last_at.max(previous_at);
        Ok(())
    }

    /// Sets how many records in the log carry no command (seals, digest
    /// records), for a log the model did not read with [`Self::check_log`].
    pub fn set_records_without_commands(&mut self, records: u64) {
        self.records_without_commands = records;
    }

    /// The model after a crash that left only the first `records` command records of
    /// the log: everything is replayed from the expected log's prefix. The
    /// log must have been read with [`Self::check_log`] first, so every
    /// timestamp in it is known.
    pub fn truncated(&self, records: usize) -> Result<Model, String> {
        let mut model = Model::default();
        for logged in &self.log[..records] {
            debug_assert!(logged.at_known, "check_log learns every timestamp");
            for change in &logged.changes {
                model.apply(change)?;
            }
            model.log.push(logged.clone());
        }
        Ok(model)
    }

    /// Compares the store's tickets (in id order) and next id with the
    /// model, leaving out timestamps (see [`same_ticket`]) but for the rule
    /// that no ticket is updated before it was created.
    pub fn check_tickets(&self, tickets: &[Ticket], next_id: TicketId) -> Result<(), String> {
        if next_id.get() != self.next_id {
            return Err(format!(
                "next id is {next_id}, the model says {}",
                self.next_id
            ));
        }
        if tickets.len() != self.tickets.len() {
            return Err(format!(
                "{} tickets, the model has {}: store ids {:?}, model ids {:?}",
                tickets.len(),
                self.tickets.len(),
                tickets.iter().map(|t| t.id.get()).collect::<Vec<_>>(),
                self.tickets.keys().collect::<Vec<_>>()
            ));
        }
        for (ticket, expected) in tickets.iter().zip(self.tickets.values()) {
            if !same_ticket(expected, ticket) {
                return Err(format!(
                    "ticket differs from the model:\n  store {ticket:?}\n  model {expected:?}"
                ));
            }
            if ticket.updated_at < ticket.created_at {
                return Err(format!("ticket updated before it was created: {ticket:?}"));
            }
        }
        Ok(())
    }

    /// What a list query should return.
    pub fn list(&self, query: &ListQuery) -> Vec<Ticket> {
        self.tickets
            .values()
            .filter(|ticket| query.after.is_none_or(|after| ticket.id > after))
            .filter(|ticket| query.status.is_none_or(|status| ticket.status == status))
            .take(query.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// Checks the counting part of `stats` (the byte count is the store's own).
    pub fn check_stats(&self, stats: &Stats) -> Result<(), String> {
        let count = |status| {
            self.tickets
                .values()
                .filter(|ticket| ticket.status == status)
                .count() as u64
        };
        let expected = (
            count(Status::ToDo),
            count(Status::InProgress),
            count(Status::Done),
            self.next_id(),
            self.records() + self.records_without_commands,
        );
        let got = (
            stats.todo,
            stats.in_progress,
            stats.done,
            stats.next_id,
            stats.records,
        );
        if got == expected {
            Ok(())
        } else {
            Err(format!(
                "stats (todo, in progress, done, next id, records) are {got:?}, model expects {expected:?}"
            ))
        }
    }
}

/// Whether `got` is the ticket `expected`, timestamps left out (the server's
/// clock decides those): id, title, description, status and version.
pub fn same_ticket(expected: &Ticket, got: &Ticket) -> bool {
    expected.id == got.id
        && expected.title == got.title
        && expected.description == got.description
        && expected.status == got.status
        && expected.version == got.version
}

/// Sets the timestamp of an event that carries one.
fn restamp(change: &mut Change, new_at: Timestamp) {
    match change {
        Change::Created { at, .. } | Change::Updated { at, .. } | Change::Deleted { at, .. } => {
            *at = new_at;
        }
        Change::Digest { .. } => {}
    }
}
