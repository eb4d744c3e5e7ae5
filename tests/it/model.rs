//! The oracle's model: a plain in-memory ticket store written for the tests,
//! independent of `src/state.rs`, and the checks every crash test makes.
//!
//! After any crash or fault, reopening must give a sequence R of applied
//! commands such that R is a prefix of the commands in the server's order,
//! R holds every acknowledged command, and the store's state equals this
//! model replaying R. Each accepted command is one log record (a clean close
//! may add a *seal*, a record with no events), so R is the first
//! `commands_in_log` commands of the history.
//!
//! For damage to bytes that were already durable, [`expected_after_damage`]
//! computes the only allowed outcome from the log's own layout.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;

use ticketlog::inspect::record::{FILE_HEADER_LEN, FileHeader, RECORD_HEADER_LEN, RecordHeader};
use ticketlog::{
    ClientError, Command, ListQuery, Status, Store, Ticket, TicketDraft, TicketId, TicketPatch,
};

use crate::common::Rng;

/// A command as the model sees it: plain strings and numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelCommand {
    Create {
        title: String,
        description: String,
    },
    Update {
        id: u64,
        title: Option<String>,
        description: Option<String>,
        status: Option<Status>,
        expected_version: Option<u64>,
    },
    Delete {
        id: u64,
    },
}

impl ModelCommand {
    /// The library's command. Test text is always valid.
    pub fn to_command(&self) -> Command {
        match self {
            ModelCommand::Create { title, description } => Command::Create(TicketDraft {
                title: title
                    .as_str()
                    .try_into()
                    .expect("generated titles are valid"),
                description: description
                    .as_str()
                    .try_into()
                    .expect("generated descriptions are valid"),
            }),
            ModelCommand::Update {
                id,
                title,
                description,
                status,
                expected_version,
            } => Command::Update(
                TicketId::from(*id),
                TicketPatch {
                    title: title
                        .as_deref()
                        .map(|t| t.try_into().expect("generated titles are valid")),
                    description: description
                        .as_deref()
                        .map(|d| d.try_into().expect("generated descriptions are valid")),
                    status: *status,
                    expected_version: *expected_version,
                },
            ),
            ModelCommand::Delete { id } => Command::Delete(TicketId::from(*id)),
        }
    }
}

/// A ticket as the model holds it (no timestamps: the server's clock decides those).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelTicket {
    pub id: u64,
    pub title: String,
    pub description: String,
    pub status: Status,
    pub version: u64,
}

impl ModelTicket {
    pub fn matches(&self, ticket: &Ticket) -> bool {
        self.id == ticket.id.get()
            && self.title == ticket.title.as_str()
            && self.description == ticket.description.as_str()
            && self.status == ticket.status
            && self.version == ticket.version
    }
}

/// Why the model refuses a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    NotFound(u64),
    Conflict { expected: u64, actual: u64 },
    EmptyPatch,
}

impl Rejection {
    /// Whether the store's error is this rejection.
    pub fn matches(&self, error: &ClientError) -> bool {
        match (self, error) {
            (Rejection::NotFound(id), ClientError::NotFound(got)) => got.get() == *id,
            (
                Rejection::Conflict { expected, actual },
                ClientError::Conflict {
                    expected: e,
                    actual: a,
                    ..
                },
            ) => e == expected && a == actual,
            (Rejection::EmptyPatch, ClientError::Invalid(_)) => true,
            _ => false,
        }
    }
}

/// The plain model: tickets by id and the next id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub tickets: BTreeMap<u64, ModelTicket>,
    pub next_id: u64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            tickets: BTreeMap::new(),
            next_id: 1,
        }
    }
}

impl Model {
    /// What `command` would do, without doing it.
    pub fn decide(&self, command: &ModelCommand) -> Result<ModelTicket, Rejection> {
        match command {
            ModelCommand::Create { title, description } => Ok(ModelTicket {
                id: self.next_id,
                title: title.clone(),
                description: description.clone(),
                status: Status::ToDo,
                version: 1,
            }),
            ModelCommand::Update {
                id,
                title,
                description,
                status,
                expected_version,
            } => {
                let ticket = self.tickets.get(id).ok_or(Rejection::NotFound(*id))?;
                if let Some(expected) = expected_version
                    && *expected != ticket.version
                {
                    return Err(Rejection::Conflict {
                        expected: *expected,
                        actual: ticket.version,
                    });
                }
                if title.is_none() && description.is_none() && status.is_none() {
                    return Err(Rejection::EmptyPatch);
                }
                let mut after = ticket.clone();
                if let Some(title) = title {
                    after.title = title.clone();
                }
                if let Some(description) = description {
                    after.description = description.clone();
                }
                if let Some(status) = status {
                    after.status = *status;
                }
                after.version += 1;
                Ok(after)
            }
            ModelCommand::Delete { id } => self
                .tickets
                .get(id)
                .cloned()
                .ok_or(Rejection::NotFound(*id)),
        }
    }

    /// Does `command`; returns the ticket the store would answer with.
    pub fn apply(&mut self, command: &ModelCommand) -> Result<ModelTicket, Rejection> {
        let ticket = self.decide(command)?;
        match command {
            ModelCommand::Create { .. } => {
                self.next_id += 1;
                self.tickets.insert(ticket.id, ticket.clone());
            }
            ModelCommand::Update { .. } => {
                self.tickets.insert(ticket.id, ticket.clone());
            }
            ModelCommand::Delete { id } => {
                self.tickets.remove(id);
            }
        }
        Ok(ticket)
    }

    /// The model after replaying `history`, every entry of which must be accepted.
    pub fn replay(history: &[ModelCommand]) -> Result<Model, String> {
        let mut model = Model::default();
        for (index, command) in history.iter().enumerate() {
            model
                .apply(command)
                .map_err(|r| format!("history entry {index} ({command:?}) is refused: {r:?}"))?;
        }
        Ok(model)
    }

    /// Compares the store's tickets and counts with the model.
    pub fn check(&self, tickets: &[Ticket], next_id: TicketId) -> Result<(), String> {
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
            if !expected.matches(ticket) {
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
}

/// Commands in a log that recovery has just checked: the records that carry
/// events (seals left out), up to the first byte that is not a valid record,
/// which is returned too (`None` when the whole file is valid records).
pub fn commands_in_log(log: &[u8]) -> (usize, Option<u64>) {
    let mut offset = FILE_HEADER_LEN.min(log.len());
    let mut commands = 0;
    while offset < log.len() {
        let Ok((header, events)) = ticketlog::inspect::decode_record(&log[offset..]) else {
            return (commands, Some(offset as u64));
        };
        if !events.is_empty() {
            commands += 1;
        }
        offset += header.record_len() as usize;
    }
    (commands, None)
}

/// Fails unless a reopened log is valid records to its last byte: whatever
/// recovery cut must be gone (unless a lying disk dropped the cut).
pub fn check_whole(log: &[u8]) -> Result<(), String> {
    match commands_in_log(log) {
        (_, None) => Ok(()),
        (_, Some(at)) => Err(format!(
            "after a successful open, the log is not valid records from byte {at} on"
        )),
    }
}

/// Checks a reopened store against the oracle: the commands in its log
/// (`log`, the file as the open left it) are a prefix of `history` of at
/// least `at_least` commands, and its state is the model's after replaying
/// them. Returns how many commands the log holds.
pub fn check_recovered(
    store: &Store,
    log: &[u8],
    history: &[ModelCommand],
    at_least: usize,
) -> Result<usize, String> {
    let client = store.client();
    let stats = client
        .stats()
        .map_err(|e| format!("stats after reopen: {e}"))?;
    let (records, _) = commands_in_log(log);
    if records < at_least {
        return Err(format!(
            "an acknowledged command is missing: the log holds {records} commands, \
             {at_least} were acknowledged (recovery: {:?})",
            store.recovery()
        ));
    }
    if records > history.len() {
        return Err(format!(
            "the log holds {records} commands, but only {} were ever accepted",
            history.len()
        ));
    }
    let model = Model::replay(&history[..records])?;
    let tickets = client
        .list(ListQuery::default())
        .map_err(|e| format!("list after reopen: {e}"))?;
    model
        .check(&tickets, stats.next_id)
        .map_err(|e| format!("after replaying {records} commands: {e}"))?;
    if stats.tickets() != tickets.len() as u64 {
        return Err(format!(
            "stats count {} tickets, list returns {}",
            stats.tickets(),
            tickets.len()
        ));
    }
    Ok(records)
}

/// Random valid commands for a model state.
pub struct Generator {
    pub rng: Rng,
}

/// Characters of 1, 2, 3 and 4 bytes, so that byte limits fall inside and
/// between multi-byte characters.
const ALPHABET: &[char] = &['a', 'Z', ' ', '7', 'é', 'ß', '✓', '€', '🎫', '𝄞'];

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
        }
    }

    /// A string of 1..=`max` bytes, sometimes exactly `max`.
    pub fn text(&mut self, max: usize) -> String {
        let target = if self.rng.below(8) == 0 {
            max
        } else {
            1 + self.rng.below(max.min(60) as u64) as usize
        };
        let mut text = String::new();
        while text.len() < target {
            let c = ALPHABET[self.rng.below(ALPHABET.len() as u64) as usize];
            if text.len() + c.len_utf8() > max {
                if text.is_empty() {
                    text.push('x');
                }
                break;
            }
            text.push(c);
        }
        text
    }

    pub fn title(&mut self) -> String {
        self.text(ticketlog::TITLE_BYTES_MAX)
    }

    pub fn description(&mut self) -> String {
        self.text(ticketlog::DESCRIPTION_BYTES_MAX)
    }

    pub fn status(&mut self) -> Status {
        Status::ALL[self.rng.below(3) as usize]
    }

    /// Some live ticket's id, or an id that names no live ticket.
    fn target(&mut self, model: &Model) -> u64 {
        if model.tickets.is_empty() || self.rng.below(8) == 0 {
            // Never created, or deleted.
            return 1 + self.rng.below(model.next_id + 2);
        }
        let nth = self.rng.below(model.tickets.len() as u64) as usize;
        *model
            .tickets
            .keys()
            .nth(nth)
            .expect("nth is below the length")
    }

    /// A command: mostly valid, sometimes one the store must refuse.
    pub fn command(&mut self, model: &Model) -> ModelCommand {
        match self.rng.below(10) {
            0..=3 => ModelCommand::Create {
                title: self.title(),
                description: self.description(),
            },
            4..=7 => {
                let id = self.target(model);
                let current = model.tickets.get(&id).map_or(1, |t| t.version);
                let empty = self.rng.below(12) == 0;
                let title = (!empty && self.rng.below(2) == 0).then(|| self.title());
                let description = (!empty && self.rng.below(3) == 0).then(|| self.description());
                let mut status = (!empty && self.rng.below(2) == 0).then(|| self.status());
                if !empty && title.is_none() && description.is_none() && status.is_none() {
                    status = Some(self.status());
                }
                let expected_version = match self.rng.below(4) {
                    0 => Some(current),
                    1 => Some(current + 1 + self.rng.below(2)),
                    2 if current > 1 => Some(current - 1),
                    _ => None,
                };
                ModelCommand::Update {
                    id,
                    title,
                    description,
                    status,
                    expected_version,
                }
            }
            _ => ModelCommand::Delete {
                id: self.target(model),
            },
        }
    }
}

/// One record of a log, as laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    pub offset: u64,
    pub len: u64,
    /// Where the flush that wrote it began: the log was durable up to here.
    pub batch_start: u64,
    /// A seal: a record with no events, written by a clean close.
    pub seal: bool,
}

impl RecordSpan {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The records of a clean log (header decoding only; payloads are the
/// store's business). Panics on a log that is not clean: callers pass logs
/// the store wrote and closed.
pub fn record_spans(log: &[u8]) -> Vec<RecordSpan> {
    let mut spans = Vec::new();
    let mut offset = FILE_HEADER_LEN;
    while offset < log.len() {
        let (header, events) =
            ticketlog::inspect::decode_record(&log[offset..]).expect("a clean log");
        spans.push(RecordSpan {
            offset: offset as u64,
            len: header.record_len(),
            batch_start: offset as u64 - u64::from(header.unsynced_before),
            seal: events.is_empty(),
        });
        offset += header.record_len() as usize;
    }
    assert_eq!(offset, log.len(), "records end at the end of the log");
    spans
}

/// What reopening must do with a log whose durable bytes were damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Open succeeds keeping exactly this many records, seals included (a
    /// torn tail is cut, or nothing was damaged).
    Records(usize),
    /// Open fails with `OpenError::Corrupt` naming the log and this offset.
    CorruptAt(u64),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Records(n) => write!(f, "exactly the first {n} records"),
            Expected::CorruptAt(offset) => write!(f, "Corrupt at byte {offset}"),
        }
    }
}

/// The one outcome the recovery rules allow for `damaged`, a copy of the
/// clean log `clean` with bytes changed, cut, or appended.
///
/// Damage starts at the first record that is not intact. If any record of a
/// *later* flush is intact, it proves the damaged bytes had been synced: the
/// log is corrupt at that record. Otherwise the damage is confined to the
/// final flush — indistinguishable from a write torn by a crash — and the
/// records before it are kept. Damage to the file header with records after
/// it is corruption at 0; an empty log with a damaged header is rewritten.
pub fn expected_after_damage(clean: &[u8], damaged: &[u8]) -> Expected {
    let spans = record_spans(clean);
    let intact = |span: &RecordSpan| {
        let range = span.offset as usize..span.end() as usize;
        damaged.get(range.clone()) == Some(&clean[range])
    };
    let header_intact = damaged.get(..FILE_HEADER_LEN) == Some(&clean[..FILE_HEADER_LEN]);
    if !header_intact {
        // Bytes past the header that a scan could trust as records: only
        // whole intact records count (a cut header leaves a short file).
        return if damaged.len() <= FILE_HEADER_LEN {
            Expected::Records(0)
        } else {
            Expected::CorruptAt(0)
        };
    }
    let Some(first_bad) = spans.iter().position(|span| !intact(span)) else {
        // Every record intact; anything appended is a torn tail.
        return Expected::Records(spans.len());
    };
    let bad = spans[first_bad];
    let proven_durable = spans[first_bad + 1..]
        .iter()
        .any(|later| later.batch_start > bad.offset && intact(later));
    if proven_durable {
        Expected::CorruptAt(bad.offset)
    } else {
        Expected::Records(first_bad)
    }
}

/// Commands among the first `n` records of `log` (which must be intact).
pub fn commands_in_first(log: &[u8], n: usize) -> usize {
    let mut offset = FILE_HEADER_LEN;
    let mut commands = 0;
    for _ in 0..n {
        let (header, events) =
            ticketlog::inspect::decode_record(&log[offset..]).expect("kept records are intact");
        commands += usize::from(!events.is_empty());
        offset += header.record_len() as usize;
    }
    commands
}

/// How many bytes of `log` recovery keeps when it keeps `n` records: the
/// file header and those records, or nothing when `n` is 0 and the header
/// is incomplete or damaged (an interrupted creation, rewritten on open).
pub fn kept_len(log: &[u8], n: usize) -> u64 {
    let header_ok = log
        .get(..FILE_HEADER_LEN)
        .and_then(|h| <[u8; FILE_HEADER_LEN]>::try_from(h).ok())
        .is_some_and(|h| FileHeader::decode(&h).is_ok());
    if !header_ok {
        assert_eq!(n, 0, "records after a damaged header cannot be kept");
        return 0;
    }
    let mut offset = FILE_HEADER_LEN;
    for _ in 0..n {
        let header: [u8; RECORD_HEADER_LEN] = log[offset..offset + RECORD_HEADER_LEN]
            .try_into()
            .expect("a whole header");
        offset += RecordHeader::decode(&header)
            .expect("kept records are intact")
            .record_len() as usize;
    }
    offset as u64
}
