//! The in-memory state: every live ticket in a chunked vector indexed by id,
//! the next id to mint, per-status counts, and the state digest.
//!
//! Two doors lead in, and they are kept apart on purpose:
//! - [`State::decide`] validates a command against the current state and
//!   returns the [`Change`] it would log, changing nothing;
//! - [`State::apply`] applies a change (a new one, or one replayed from the
//!   log), checks that it is consistent with the state, and returns what is
//!   needed to undo it.
//!
//! `apply` is the only code that mutates tickets, on both the live path and
//! replay, so replay cannot drift from what the server did — and the digest
//! records in the log check that it did not. This module never reads the
//! clock (the timestamp comes in with the command) and never does I/O.
//!
//! Tickets live in chunks of [`CHUNK_SLOTS`] slots, slot `(id - 1) % CHUNK_SLOTS`
//! of chunk `(id - 1) / CHUNK_SLOTS` (ids are dense, 1, 2, 3, …, and never
//! reused, so a vector beats a tree: no per-entry node, O(1) lookup). Copy on
//! write is two-level:
//! - each chunk sits behind an `Arc`, which makes [`State::freeze`] — what a
//!   snapshot takes — a copy of one pointer per chunk;
//! - each ticket in a slot sits behind its own `Arc` too, so the first later
//!   write to a chunk a snapshot still holds copies only the chunk's
//!   [`CHUNK_SLOTS`] pointers (`Arc::make_mut` on the chunk) and then the one
//!   ticket written (`Arc::make_mut` on the slot), never its neighbours'
//!   strings. The same per-ticket `Arc` lets the server thread answer with a
//!   pointer to a ticket ([`State::shared`]): a client that wants its own
//!   copy makes it on its own thread.
//!
//! Invariant (what both levels rest on): a ticket is only ever changed
//! through `Arc::make_mut`, so nothing that holds an `Arc` of a chunk or of a
//! ticket — a frozen snapshot, a reply in flight — ever sees it change.
//! A snapshot writes one block per [`BLOCK_IDS`] ids, several chunks each.

use std::sync::Arc;

use crate::domain::change::Change;
use crate::domain::command::{CREATE_MANY_MAX, Command, Decision, ListQuery, Operation, Stats};
mod digest;
use crate::domain::rejection::{Rejection, TicketError};
use crate::domain::ticket::{
    Status, Ticket, TicketDescription, TicketDraft, TicketId, TicketTitle,
};
use crate::domain::time::Timestamp;
use crate::error::Damage;

/// Ticket slots per chunk. Small, because the first write to a chunk that a
/// snapshot still shares copies the chunk's slots on the server thread (32
/// pointers, each a reference-count increment); large enough that freezing
/// 1,000,000 tickets is some 31,000 pointer copies (well under a millisecond,
/// once per snapshot) and that a chunk's own bookkeeping is about a byte and
/// a half per ticket.
pub(crate) const CHUNK_SLOTS: usize = 32;

/// Ids per snapshot block (a format constant, see `docs/FORMAT.md`):
/// [`CHUNKS_PER_BLOCK`] whole chunks.
pub(crate) const BLOCK_IDS: usize = 256;

/// Chunks per snapshot block.
pub(crate) const CHUNKS_PER_BLOCK: usize = BLOCK_IDS / CHUNK_SLOTS;

// A block is a whole number of chunks, so chunks group into blocks by id.
const _: () = assert!(BLOCK_IDS.is_multiple_of(CHUNK_SLOTS));

/// [`CHUNK_SLOTS`] consecutive ticket slots; `None` for an id that was
/// deleted (or, in the last chunk, not minted yet).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Invariant: exactly `CHUNK_SLOTS` long.
    slots: Box<[Option<Arc<Ticket>>]>,
}

impl Chunk {
    fn empty() -> Self {
        Chunk {
            slots: std::iter::repeat_with(|| None).take(CHUNK_SLOTS).collect(),
        }
    }

    /// The live tickets of this chunk, in id order.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.slots.iter().flatten().map(Arc::as_ref)
    }
}

impl Clone for Chunk {
    // Spelled out so the copy that `Arc::make_mut` makes keeps the fixed
    // length. Copies pointers: the tickets stay shared until written.
    fn clone(&self) -> Self {
        Chunk {
            slots: self.slots.iter().cloned().collect(),
        }
    }
}

/// All tickets and the id counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    /// Chunk `c` holds ids `c * CHUNK_SLOTS + 1 ..= (c + 1) * CHUNK_SLOTS`.
    /// Invariant: no chunk is wholly at or past `next_id`.
    chunks: Vec<Arc<Chunk>>,
    /// The id the next created ticket gets. Invariant: greater than every id
    /// ever created, so ids are never reused.
    next_id: u64,
    /// Live tickets. Invariant: the number of `Some` slots.
    live: u64,
    /// Live tickets per status, indexed by [`Status::index`].
    /// Invariant: sums to `live`.
    status_counts: [u64; 3],
    /// The latest timestamp applied. Invariant: changes arrive with
    /// non-decreasing timestamps.
    last_at: Timestamp,
    /// Wrapping sum of [`digest::ticket_hash`] over the live tickets.
    /// Invariant: equals the sum recomputed from the tickets.
    ticket_hash_sum: u64,
}

/// What is needed to take back one applied change.
#[derive(Debug)]
pub(crate) enum Undo {
    /// Remove the created ticket and give its id back.
    Create(TicketId),
    /// Put back the fields the update replaced.
    Update(TicketId, PriorFields),
    /// Re-insert the deleted ticket.
    Delete(Arc<Ticket>),
    /// Nothing to undo: a digest record changes no ticket.
    Nothing,
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
    pub fn ticket_id(&self) -> Option<TicketId> {
        match self {
            Undo::Create(id) | Undo::Update(id, _) => Some(*id),
            Undo::Delete(ticket) => Some(ticket.id),
            Undo::Nothing => None,
        }
    }
}

/// Why a change could not be applied: the log does not match the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApplyError {
    /// The change contradicts the state (wrong id, version, timestamp, …).
    Inconsistent(String),
    /// A digest record disagrees with the state replay produced.
    DigestMismatch {
        /// The digest the record carries.
        expected: u64,
        /// The digest of the replayed state.
        found: u64,
    },
}

impl ApplyError {
    /// The damage this makes the record at `lsn`.
    pub fn into_damage(self, lsn: u64) -> Damage {
        match self {
            ApplyError::Inconsistent(reason) => Damage::Inconsistent(reason),
            ApplyError::DigestMismatch { expected, found } => Damage::DigestMismatch {
                lsn,
                expected,
                found,
            },
        }
    }
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Inconsistent(reason) => f.write_str(reason),
            ApplyError::DigestMismatch { expected, found } => write!(
                f,
                "the digest record says {expected:#018x}, the replayed state is {found:#018x}"
            ),
        }
    }
}

/// What a snapshot holds: the state's chunks, shared (not copied), and the
/// figures that go in the snapshot header.
#[derive(Clone, Debug)]
pub(crate) struct Frozen {
    pub chunks: Vec<Arc<Chunk>>,
    pub next_id: u64,
    pub tickets: u64,
    pub last_at: Timestamp,
    pub digest: u64,
}

impl Frozen {
    /// The live tickets of each [`BLOCK_IDS`] ids in turn (what one snapshot
    /// block holds), in id order; a run of ids with none gives an empty one.
    pub fn blocks(&self) -> impl Iterator<Item = impl Iterator<Item = &Ticket>> {
        self.chunks
            .chunks(CHUNKS_PER_BLOCK)
            .map(|chunks| chunks.iter().flat_map(|chunk| chunk.tickets()))
    }
}

#[cfg(test)]
impl Frozen {
    /// The live tickets, in id order.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.chunks.iter().flat_map(|chunk| chunk.tickets())
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            chunks: Vec::new(),
            next_id: 1,
            live: 0,
            status_counts: [0; 3],
            last_at: Timestamp::from_unix_millis(0),
            ticket_hash_sum: 0,
        }
    }
}

/// Chunk index and slot of an id (ids start at 1).
fn position(id: TicketId) -> (usize, usize) {
    debug_assert!(id.get() >= 1);
    let index = (id.get() - 1) as usize;
    (index / CHUNK_SLOTS, index % CHUNK_SLOTS)
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

    /// The state digest (see [`digest`]); O(1).
    pub fn digest(&self) -> u64 {
        digest::state_digest(self.ticket_hash_sum, self.live, self.next_id)
    }

    /// The digest record for the state as it is now.
    pub fn digest_change(&self) -> Change {
        Change::Digest {
            digest: self.digest(),
            next_id: self.next_id(),
            tickets: self.live,
        }
    }

    /// Decides what `operation` does to the current state, without changing
    /// it: the changes its record will carry, or why it is rejected. `now` is
    /// the server's clock, already clamped to be at least [`Self::last_at`].
    /// Takes the operation by value so its strings move into the changes.
    pub fn decide(&self, operation: Operation, now: Timestamp) -> Result<Decision, Rejection> {
        debug_assert!(now >= self.last_at);
        match operation {
            Operation::Command(command) => self.decide_command(command, now).map(Decision::One),
            Operation::CreateMany(drafts) => {
                if drafts.len() > CREATE_MANY_MAX {
                    return Err(TicketError::BatchTooLarge {
                        count: drafts.len(),
                        max: CREATE_MANY_MAX,
                    }
                    .into());
                }
                Ok(Decision::Many(self.decide_creates(drafts, now)))
            }
        }
    }

    fn decide_command(&self, command: Command, now: Timestamp) -> Result<Change, Rejection> {
        match command {
            Command::Create(draft) => Ok(Change::Created {
                id: TicketId::from(self.next_id),
                title: draft.title,
                description: draft.description,
                at: now,
            }),
            Command::Update(id, patch) => {
                let ticket = self.ticket(id).ok_or(Rejection::NotFound(id))?;
                if let Some(expected) = patch.expected_version
                    && expected != ticket.version
                {
                    return Err(Rejection::Conflict {
                        id,
                        expected,
                        actual: ticket.version,
                    });
                }
                if patch.changes_nothing() {
                    return Err(TicketError::EmptyPatch.into());
                }
                Ok(Change::Updated {
                    id,
                    // A version is at most the LSN of the record that set it
                    // (snapshot loading checks this of every ticket it
                    // loads), and LSNs stop below u64::MAX: no overflow.
                    version: ticket.version + 1,
                    title: patch.title,
                    description: patch.description,
                    status: patch.status,
                    at: now,
                })
            }
            Command::Delete(id) => {
                let ticket = self.ticket(id).ok_or(Rejection::NotFound(id))?;
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
    /// not match what the server did), or if it is a digest record that
    /// disagrees with the state. Returns the undo record.
    pub fn apply(&mut self, change: Change) -> Result<Undo, ApplyError> {
        let inconsistent = |reason: String| Err(ApplyError::Inconsistent(reason));
        let at = match change.at() {
            Some(at) => at,
            None => self.last_at,
        };
        if at < self.last_at {
            return inconsistent(format!(
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
                    return inconsistent(format!(
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
                let Some(current) = self.ticket(id) else {
                    return inconsistent(format!("update of ticket {id}, which does not exist"));
                };
                // No overflow: `current.version` is at most the LSN of an
                // earlier record (see `decide_command`).
                if version != current.version + 1 {
                    return inconsistent(format!(
                        "update of ticket {id} to version {version}, but it is at version {}",
                        current.version
                    ));
                }
                let old_hash = digest::ticket_hash(current);
                let ticket = self.ticket_mut(id).expect("checked present just above");
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
                let new_hash = digest::ticket_hash(ticket);
                self.rehash(old_hash, new_hash);
                self.recount(old_status, new_status);
                Undo::Update(id, before)
            }
            Change::Deleted { id, version, .. } => {
                let Some(ticket) = self.ticket(id) else {
                    return inconsistent(format!("delete of ticket {id}, which does not exist"));
                };
                if version != ticket.version {
                    return inconsistent(format!(
                        "delete of ticket {id} at version {version}, but it is at version {}",
                        ticket.version
                    ));
                }
                let removed = self.remove(id).expect("checked present just above");
                Undo::Delete(removed)
            }
            Change::Digest { digest, .. } => {
                let found = self.digest();
                if digest != found {
                    return Err(ApplyError::DigestMismatch {
                        expected: digest,
                        found,
                    });
                }
                Undo::Nothing
            }
        };
        self.last_at = at;
        self.check_invariants();
        Ok(undo)
    }

    /// Sets [`Self::last_at`] back to `at`, what it was before changes that
    /// were all undone: a shared log's next record (another host's) may
    /// carry any timestamp from there on, and must apply.
    pub fn rewind_last_at(&mut self, at: Timestamp) {
        debug_assert!(at <= self.last_at);
        self.last_at = self.last_at.min(at);
    }

    /// Takes back an applied change. Undos must be given in the reverse order of
    /// their applies. `last_at` stays where it is: timestamps only move forward.
    pub fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Create(id) => {
                self.remove(id);
                debug_assert_eq!(id.get() + 1, self.next_id);
                self.next_id = id.get();
                // Keep the invariant that no chunk lies wholly past `next_id`.
                let chunks_needed = (self.next_id - 1).div_ceil(CHUNK_SLOTS as u64) as usize;
                self.chunks.truncate(chunks_needed);
            }
            Undo::Update(id, before) => {
                let old_hash = digest::ticket_hash(
                    self.ticket(id)
                        .expect("undos run newest first, so the updated ticket is present"),
                );
                let ticket = self
                    .ticket_mut(id)
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
                let new_hash = digest::ticket_hash(ticket);
                self.rehash(old_hash, new_hash);
                self.recount(undone_status, before.status);
            }
            Undo::Delete(before) => {
                self.insert(before);
            }
            Undo::Nothing => {}
        }
        self.check_invariants();
    }

    /// Changes creating one ticket per draft, with consecutive new ids.
    fn decide_creates(&self, drafts: Vec<TicketDraft>, now: Timestamp) -> Vec<Change> {
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
        self.shared(id).map(Arc::as_ref)
    }

    /// The live ticket with this id, as the state holds it: cloning the
    /// `Arc` is how a reply carries a ticket without copying its strings.
    pub fn shared(&self, id: TicketId) -> Option<&Arc<Ticket>> {
        if id.get() == 0 {
            return None;
        }
        let (chunk, slot) = position(id);
        self.chunks.get(chunk)?.slots[slot].as_ref()
    }

    /// The live ticket with this id, for changing. Copies its chunk's slots
    /// first if a snapshot still shares the chunk, and then the ticket if
    /// anything else (a snapshot, a reply not yet taken) still shares it.
    fn ticket_mut(&mut self, id: TicketId) -> Option<&mut Ticket> {
        if id.get() == 0 {
            return None;
        }
        let (chunk, slot) = position(id);
        Arc::make_mut(self.chunks.get_mut(chunk)?).slots[slot]
            .as_mut()
            .map(Arc::make_mut)
    }

    /// The live ticket with this id, shared (see [`Self::shared`]).
    pub fn get(&self, id: TicketId) -> Option<Arc<Ticket>> {
        self.shared(id).cloned()
    }

    /// A page of live tickets, shared (see [`Self::shared`]).
    pub fn list(&self, query: &ListQuery) -> Vec<Arc<Ticket>> {
        let after = query.after.map_or(0, TicketId::get);
        let limit = query.limit.unwrap_or(usize::MAX);
        if after >= self.next_id.saturating_sub(1) || limit == 0 {
            return Vec::new();
        }
        let (first_chunk, first_slot) = position(TicketId::from(after + 1));
        self.chunks[first_chunk..]
            .iter()
            .enumerate()
            .flat_map(|(n, chunk)| {
                let skip = if n == 0 { first_slot } else { 0 };
                chunk.slots[skip..].iter().flatten()
            })
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
            last_lsn: 0,
            digest: self.digest(),
        }
    }

    /// The state as a snapshot takes it: the chunks are shared, not copied,
    /// so this costs one pointer copy per [`CHUNK_SLOTS`] ids.
    pub fn freeze(&self) -> Frozen {
        Frozen {
            chunks: self.chunks.clone(),
            next_id: self.next_id,
            tickets: self.live,
            last_at: self.last_at,
            digest: self.digest(),
        }
    }

    /// Puts a ticket into its (empty) slot, creating its chunk if needed.
    fn insert(&mut self, ticket: impl Into<Arc<Ticket>>) {
        let ticket: Arc<Ticket> = ticket.into();
        debug_assert!(ticket.id.get() >= 1 && ticket.id.get() < self.next_id);
        let (chunk, slot) = position(ticket.id);
        pad_chunks(&mut self.chunks, chunk + 1);
        self.status_counts[ticket.status.index()] += 1;
        self.live += 1;
        self.ticket_hash_sum = self
            .ticket_hash_sum
            .wrapping_add(digest::ticket_hash(&ticket));
        let place = &mut Arc::make_mut(&mut self.chunks[chunk]).slots[slot];
        debug_assert!(place.is_none(), "ids are never reused");
        *place = Some(ticket);
    }

    /// Moves one ticket's count from `from` to `to`.
    fn recount(&mut self, from: Status, to: Status) {
        self.status_counts[from.index()] -= 1;
        self.status_counts[to.index()] += 1;
    }

    /// Replaces one ticket's hash in the sum.
    fn rehash(&mut self, old: u64, new: u64) {
        self.ticket_hash_sum = self.ticket_hash_sum.wrapping_sub(old).wrapping_add(new);
    }

    fn remove(&mut self, id: TicketId) -> Option<Arc<Ticket>> {
        self.ticket(id)?;
        let (chunk, slot) = position(id);
        let removed = Arc::make_mut(&mut self.chunks[chunk]).slots[slot].take()?;
        self.status_counts[removed.status.index()] -= 1;
        self.live -= 1;
        self.ticket_hash_sum = self
            .ticket_hash_sum
            .wrapping_sub(digest::ticket_hash(&removed));
        Some(removed)
    }

    /// The digest recomputed from every ticket, ignoring the running sum.
    /// O(tickets): for checks, not for the hot path.
    #[cfg(test)]
    pub fn recompute_digest(&self) -> u64 {
        let sum = self
            .chunks
            .iter()
            .flat_map(|chunk| chunk.tickets())
            .fold(0u64, |sum, ticket| {
                sum.wrapping_add(digest::ticket_hash(ticket))
            });
        digest::state_digest(sum, self.live, self.next_id)
    }

    fn check_invariants(&self) {
        debug_assert_eq!(
            self.status_counts.iter().sum::<u64>(),
            self.live,
            "status counts must add up to the number of tickets"
        );
        debug_assert!(
            self.chunks.len() as u64 * CHUNK_SLOTS as u64 >= self.next_id - 1
                && (self.chunks.is_empty()
                    || (self.chunks.len() as u64 - 1) * (CHUNK_SLOTS as u64) < self.next_id - 1),
            "chunks cover the ids below next_id and no chunk lies wholly past it"
        );
    }
}

/// Builds a [`State`] from tickets given in ascending id order, as a snapshot
/// lists them, checking each.
/// Grows `chunks` to `len` with chunks of empty slots that all share one
/// allocation (a write copies it first), so a run of ids that were all
/// deleted — or a next id far above the last ticket — costs one pointer per
/// chunk, not a chunk's worth of slots.
fn pad_chunks(chunks: &mut Vec<Arc<Chunk>>, len: usize) {
    if chunks.len() < len {
        let empty = Arc::new(Chunk::empty());
        chunks.resize_with(len, || Arc::clone(&empty));
    }
}

#[derive(Debug, Default)]
pub(crate) struct StateBuilder {
    state: State,
    last_id: u64,
}

impl StateBuilder {
    /// Adds the next ticket; fails if it is out of order or not a ticket the
    /// store could hold.
    pub fn push(&mut self, ticket: Ticket) -> Result<(), String> {
        let id = ticket.id.get();
        if id <= self.last_id {
            return Err(format!(
                "ticket {id} comes after ticket {}: ids must ascend",
                self.last_id
            ));
        }
        if ticket.version == 0 || ticket.created_at > ticket.updated_at {
            return Err(format!(
                "ticket {id} has version {} and was created after it was updated",
                ticket.version
            ));
        }
        self.last_id = id;
        // `insert` needs the id below next_id; the real next id is set in `finish`.
        self.state.next_id = id + 1;
        self.state.last_at = self.state.last_at.max(ticket.updated_at);
        self.state.insert(ticket);
        Ok(())
    }

    /// The state, with `next_id` and `last_at` as the snapshot recorded them.
    pub fn finish(mut self, next_id: u64, last_at: Timestamp) -> Result<State, String> {
        if next_id <= self.last_id || next_id == 0 {
            return Err(format!(
                "the next id {next_id} is not above the last ticket's id {}",
                self.last_id
            ));
        }
        if last_at < self.state.last_at {
            return Err(format!(
                "the last timestamp {} is before a ticket's update at {}",
                last_at.as_unix_millis(),
                self.state.last_at.as_unix_millis()
            ));
        }
        self.state.next_id = next_id;
        self.state.last_at = last_at;
        let chunks_needed = (next_id - 1).div_ceil(CHUNK_SLOTS as u64) as usize;
        pad_chunks(&mut self.state.chunks, chunks_needed);
        self.state.check_invariants();
        Ok(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ticket::TicketPatch;

    fn draft(n: u64) -> TicketDraft {
        TicketDraft {
            title: format!("ticket {n}").try_into().unwrap(),
            description: "state test".try_into().unwrap(),
        }
    }

    use crate::rng::Rng;

    fn create(state: &mut State, n: u64) {
        let change = state
            .decide_command(Command::Create(draft(n)), Timestamp::from_unix_millis(n))
            .unwrap();
        state.apply(change).unwrap();
    }

    /// A snapshot block holds the live tickets of 256 ids, whatever the
    /// chunk size: the snapshot file's layout does not follow the chunks.
    #[test]
    fn frozen_blocks_hold_256_ids_each() {
        let mut state = State::default();
        for n in 1..=600 {
            create(&mut state, n);
        }
        for id in (257..=512).chain([1, 600]) {
            let change = state
                .decide_command(
                    Command::Delete(TicketId::from(id)),
                    Timestamp::from_unix_millis(601),
                )
                .unwrap();
            state.apply(change).unwrap();
        }
        let frozen = state.freeze();
        let blocks: Vec<Vec<u64>> = frozen
            .blocks()
            .map(|block| block.map(|ticket| ticket.id.get()).collect())
            .collect();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0], (2..=256).collect::<Vec<_>>());
        assert!(blocks[1].is_empty());
        assert_eq!(blocks[2], (513..=599).collect::<Vec<_>>());
    }

    /// A write while a snapshot holds the state copies only the slots of
    /// the one chunk it lands in, and only the one ticket it writes: the
    /// chunk's other tickets, and every other chunk, stay shared.
    #[test]
    fn a_write_during_a_snapshot_copies_one_chunk_of_pointers_and_one_ticket() {
        let mut state = State::default();
        for n in 1..=(4 * CHUNK_SLOTS as u64) {
            create(&mut state, n);
        }
        let frozen = state.freeze();
        let id = TicketId::from(CHUNK_SLOTS as u64 + 3);
        let change = state
            .decide_command(
                Command::Update(
                    id,
                    TicketPatch {
                        status: Some(Status::Done),
                        ..TicketPatch::default()
                    },
                ),
                Timestamp::from_unix_millis(10_000),
            )
            .unwrap();
        state.apply(change).unwrap();
        let shared: Vec<bool> = (state.chunks.iter().zip(&frozen.chunks))
            .map(|(live, frozen)| Arc::ptr_eq(live, frozen))
            .collect();
        assert_eq!(shared, [true, false, true, true]);
        let tickets_shared: Vec<bool> = (state.chunks[1].slots.iter())
            .zip(frozen.chunks[1].slots.iter())
            .map(|(live, frozen)| Arc::ptr_eq(live.as_ref().unwrap(), frozen.as_ref().unwrap()))
            .collect();
        let mut expected = vec![true; CHUNK_SLOTS];
        expected[2] = false;
        assert_eq!(tickets_shared, expected);
        assert_eq!(
            frozen.chunks[1].slots[2].as_ref().unwrap().status,
            Status::ToDo
        );
        assert_eq!(state.ticket(id).unwrap().status, Status::Done);
        // A reply holding the ticket is a sharer too: the next write copies
        // the ticket and leaves what the reply holds as it was.
        let replied = state.get(id).unwrap();
        let change = state
            .decide_command(
                Command::Update(
                    id,
                    TicketPatch {
                        status: Some(Status::InProgress),
                        ..TicketPatch::default()
                    },
                ),
                Timestamp::from_unix_millis(10_001),
            )
            .unwrap();
        state.apply(change).unwrap();
        assert_eq!(replied.status, Status::Done);
        assert_eq!(replied.version, 2);
        assert_eq!(state.ticket(id).unwrap().status, Status::InProgress);
        assert_eq!(state.ticket(id).unwrap().version, 3);
    }

    /// Random creates, updates, deletes and undos across several chunks; the
    /// running digest always equals the recomputed one, and a frozen copy
    /// never changes.
    #[test]
    fn the_running_digest_matches_a_recomputed_one() {
        let mut rng = Rng::new(0x5EED_1234);
        let mut state = State::default();
        let mut frozen_at = None;
        for step in 0..6000u64 {
            // Frozen before the step's command, which may be refused.
            if step == 3000 {
                frozen_at = Some((state.freeze(), state.clone()));
            }
            let now = Timestamp::from_unix_millis(step);
            let next = state.next_id.max(2);
            let id = TicketId::from(1 + rng.below(next - 1));
            let command = match rng.below(10) {
                0..=4 => Command::Create(draft(step)),
                5..=7 => Command::Update(
                    id,
                    TicketPatch {
                        status: Some(Status::ALL[rng.below(3) as usize]),
                        title: (rng.below(2) == 0)
                            .then(|| format!("retitled {step}").try_into().unwrap()),
                        ..TicketPatch::default()
                    },
                ),
                _ => Command::Delete(id),
            };
            let Ok(change) = state.decide_command(command, now) else {
                continue;
            };
            let undo = state.apply(change).unwrap();
            if rng.below(7) == 0 {
                state.undo(undo);
            }
            if step % 97 == 0 {
                assert_eq!(state.digest(), state.recompute_digest(), "step {step}");
            }
        }
        assert!(state.chunks.len() > 1, "the test spans several chunks");
        assert_eq!(state.digest(), state.recompute_digest());
        let (frozen, copy) = frozen_at.unwrap();
        assert_eq!(frozen.digest, copy.digest());
        let frozen_tickets: Vec<&Ticket> = frozen.tickets().collect();
        let copy_tickets: Vec<&Ticket> = copy.chunks.iter().flat_map(|c| c.tickets()).collect();
        assert_eq!(frozen_tickets, copy_tickets);
    }

    #[test]
    fn a_digest_record_is_checked_against_the_state() {
        let mut state = State::default();
        state
            .apply(
                state
                    .decide_command(Command::Create(draft(1)), Timestamp::from_unix_millis(5))
                    .unwrap(),
            )
            .unwrap();
        let good = state.digest_change();
        assert!(matches!(state.apply(good), Ok(Undo::Nothing)));
        let bad = Change::Digest {
            digest: state.digest() ^ 1,
            next_id: state.next_id(),
            tickets: 1,
        };
        assert_eq!(
            state.apply(bad).unwrap_err(),
            ApplyError::DigestMismatch {
                expected: state.digest() ^ 1,
                found: state.digest()
            }
        );
    }

    #[test]
    fn a_built_state_equals_the_state_it_was_read_from() {
        let mut state = State::default();
        for n in 1..=2500 {
            let change = state
                .decide_command(Command::Create(draft(n)), Timestamp::from_unix_millis(n))
                .unwrap();
            state.apply(change).unwrap();
        }
        for id in (1..=2500).step_by(3) {
            let change = state
                .decide_command(
                    Command::Delete(TicketId::from(id)),
                    Timestamp::from_unix_millis(3000),
                )
                .unwrap();
            state.apply(change).unwrap();
        }
        let frozen = state.freeze();
        let mut builder = StateBuilder::default();
        for ticket in frozen.tickets() {
            builder.push(ticket.clone()).unwrap();
        }
        let built = builder.finish(frozen.next_id, frozen.last_at).unwrap();
        assert_eq!(built, state);
        assert_eq!(built.digest(), frozen.digest);
        // Out of order is refused.
        let mut builder = StateBuilder::default();
        let tickets: Vec<&Ticket> = frozen.tickets().collect();
        builder.push(tickets[1].clone()).unwrap();
        assert!(builder.push(tickets[0].clone()).is_err());
    }
}
