//! The oracle of the crash tests, over the one model
//! (`ticketlog::testing::model`): the checks every crash test makes, the
//! random command generator, and the damage rules.
//!
//! After any crash or fault, reopening must give a sequence R of applied
//! commands such that R is a prefix of the commands in the server's order,
//! R holds every acknowledged command, and the store's state equals the
//! model replaying R. Each accepted command is one log record (a clean close
//! may add a *seal*, a record with no events), so R is the first
//! `commands_in_log` commands of the history.
//!
//! For damage to bytes that were already durable, [`expected_after_damage`]
//! computes the only allowed outcome from the log's own layout.

#![allow(dead_code)]

use std::fmt;

use ticketlog::inspect::record::{FILE_HEADER_LEN, FileHeader, RECORD_HEADER_LEN, RecordHeader};
use ticketlog::testing::model::Model;
use ticketlog::{Command, ListQuery, Status, Store, TicketDraft, TicketId, TicketPatch};

use crate::common::Rng;

/// Commands in a log that recovery has just checked: the records that carry
/// events (seals left out), up to the first byte that is not a valid record,
/// which is returned too (`None` when the whole file is valid records).
pub fn commands_in_log(log: &[u8]) -> (usize, Option<u64>) {
    let mut offset = FILE_HEADER_LEN.min(log.len());
    let mut commands = 0;
    while offset < log.len() {
        let Ok((header, events)) = ticketlog::inspect::decode_record(&log[offset..]) else {
            if zero_tail_at(log, offset as u64) {
                return (commands, None);
            }
            return (commands, Some(offset as u64));
        };
        if !events.is_empty() {
            commands += 1;
        }
        offset += header.record_len() as usize;
    }
    (commands, None)
}

/// Whether `log` (a version-2 segment) ends at `offset` in its zero tail:
/// every byte from there on is zero (docs/FORMAT.md, "The zero tail").
pub fn zero_tail_at(log: &[u8], offset: u64) -> bool {
    let version_2 = log
        .get(..FILE_HEADER_LEN)
        .and_then(|h| <[u8; FILE_HEADER_LEN]>::try_from(h).ok())
        .and_then(|h| FileHeader::decode(&h).ok())
        .is_some_and(|h| h.allows_zero_tail());
    version_2
        && usize::try_from(offset)
            .ok()
            .and_then(|at| log.get(at..))
            .is_some_and(|tail| tail.iter().all(|&b| b == 0))
}

/// Fails unless a reopened log is valid records to its last byte (or to
/// its zero tail): whatever
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
    history: &[Command],
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
    let model = Model::from_commands(&history[..records])?;
    let tickets = client
        .list(ListQuery::default())
        .map_err(|e| format!("list after reopen: {e}"))?;
    model
        .check_tickets(&tickets, stats.next_id)
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
    fn target(&mut self, model: &Model) -> TicketId {
        let live = model.tickets().count() as u64;
        if live == 0 || self.rng.below(8) == 0 {
            // Never created, or deleted.
            return TicketId::from(1 + self.rng.below(model.next_id().get() + 2));
        }
        let nth = self.rng.below(live) as usize;
        model
            .tickets()
            .nth(nth)
            .expect("nth is below the length")
            .id
    }

    /// A command: mostly valid, sometimes one the store must refuse.
    pub fn command(&mut self, model: &Model) -> Command {
        match self.rng.below(10) {
            0..=3 => create(&self.title(), &self.description()),
            4..=7 => {
                let id = self.target(model);
                let current = model.get(id).map_or(1, |t| t.version);
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
                Command::Update(
                    id,
                    TicketPatch {
                        title: title.map(|t| t.try_into().expect("generated titles are valid")),
                        description: description
                            .map(|d| d.try_into().expect("generated descriptions are valid")),
                        status,
                        expected_version,
                    },
                )
            }
            _ => Command::Delete(self.target(model)),
        }
    }
}

/// A create of a ticket with this text (test text is always valid).
pub fn create(title: &str, description: &str) -> Command {
    Command::Create(TicketDraft {
        title: title.try_into().expect("test titles are valid"),
        description: description.try_into().expect("test descriptions are valid"),
    })
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
        if zero_tail_at(log, offset as u64) {
            return spans;
        }
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
