//! The payload codec: the only place that calls serde/bincode.
//!
//! A record payload is the bincode 1.3.3 encoding of a `Vec<Change>` with
//! bincode's `DefaultOptions` (little-endian, variable-length integers),
//! an explicit size limit, and trailing bytes rejected. Decoding a record
//! payload accepts only the canonical encoding: bincode itself would also
//! read an integer written in more bytes than needed, which would give one
//! record several encodings. A snapshot block is the same encoding of a
//! `Vec` of [`SnapshotTicket`]s. Keeping every
//! bincode call here means the payload codec can be replaced behind a format
//! version bump without touching the framing.

use bincode::Options as _;
use serde::{Deserialize, Serialize};

use crate::domain::change::Change;
use crate::domain::ticket::{Status, Ticket, TicketDescription, TicketId, TicketTitle};
use crate::domain::time::Timestamp;

/// The largest record payload the codec writes or reads: the log's record
/// limit (the engine asserts the two agree).
pub(crate) const PAYLOAD_BYTES_MAX: usize = 1 << 20;

/// The largest snapshot block: one chunk of 256 tickets at their largest
/// (50-byte title, 500-byte description, ten-byte varints) is about 150 KiB.
pub(crate) const SNAPSHOT_BLOCK_BYTES_MAX: usize = 1 << 20;

/// The bincode options a record payload is written with. Only the tests
/// call bincode for payloads (as the oracle for the hand-written encoder and
/// decoder); snapshot blocks still go through it.
#[cfg(test)]
fn options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_little_endian()
        .with_varint_encoding()
        .with_limit(PAYLOAD_BYTES_MAX as u64)
        .reject_trailing_bytes()
}

fn block_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_little_endian()
        .with_varint_encoding()
        .with_limit(SNAPSHOT_BLOCK_BYTES_MAX as u64)
        .reject_trailing_bytes()
}

/// A ticket as a snapshot stores it: every field, by position. Its own type,
/// so that the snapshot format does not follow [`Ticket`]'s JSON shape.
#[derive(Serialize)]
struct SnapshotTicketRef<'t> {
    id: TicketId,
    title: &'t TicketTitle,
    description: &'t TicketDescription,
    status: Status,
    version: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// The owned form of [`SnapshotTicketRef`], as decoded (its strings are
/// validated on the way in, like a record's).
#[derive(Deserialize)]
struct SnapshotTicket {
    id: TicketId,
    title: TicketTitle,
    description: TicketDescription,
    status: Status,
    version: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// What the start of a record payload says about the ticket it touches,
/// read without decoding the payload (history reads every record, and most
/// are about other tickets).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PayloadTicket {
    /// Exactly one change, about this ticket.
    One(u64),
    /// No change about any ticket (a seal, or a single digest record).
    Nothing,
    /// Several changes, or bytes this peek does not understand: decode it.
    Decode,
}

/// Reads a bincode varint (see `docs/FORMAT.md`) at the start of `bytes`;
/// returns the value and the rest.
fn peek_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&marker, rest) = bytes.split_first()?;
    let take = |n: usize| -> Option<(u64, &[u8])> {
        let (value, rest) = rest.split_at_checked(n)?;
        let mut word = [0u8; 8];
        word[..n].copy_from_slice(value);
        Some((u64::from_le_bytes(word), rest))
    };
    match marker {
        0..=250 => Some((u64::from(marker), rest)),
        251 => take(2),
        252 => take(4),
        253 => take(8),
        _ => None,
    }
}

/// Peeks at a payload: the change count, then (for one change) its variant
/// index and, for `Created`/`Updated`/`Deleted`, the ticket id, which is
/// their first field. Never wrong about a payload that decodes: anything
/// unusual answers [`PayloadTicket::Decode`].
pub(crate) fn peek_payload_ticket(payload: &[u8]) -> PayloadTicket {
    let Some((count, rest)) = peek_varint(payload) else {
        return PayloadTicket::Decode;
    };
    match count {
        0 => PayloadTicket::Nothing,
        1 => match peek_varint(rest) {
            // Created, Updated, Deleted: the id comes first.
            Some((0..=2, rest)) => match peek_varint(rest) {
                Some((id, _)) => PayloadTicket::One(id),
                None => PayloadTicket::Decode,
            },
            // Digest.
            Some((3, _)) => PayloadTicket::Nothing,
            _ => PayloadTicket::Decode,
        },
        _ => PayloadTicket::Decode,
    }
}

/// Appends the encoding of one snapshot block holding `tickets` to `out`.
pub(crate) fn encode_snapshot_block<'t>(
    tickets: impl Iterator<Item = &'t Ticket>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let refs: Vec<SnapshotTicketRef<'t>> = tickets
        .map(|ticket| SnapshotTicketRef {
            id: ticket.id,
            title: &ticket.title,
            description: &ticket.description,
            status: ticket.status,
            version: ticket.version,
            created_at: ticket.created_at,
            updated_at: ticket.updated_at,
        })
        .collect();
    block_options()
        .serialize_into(out, &refs)
        .map_err(|e| e.to_string())
}

/// Decodes one snapshot block; fails on anything but exactly one well-formed
/// list of tickets whose field values pass validation.
pub(crate) fn decode_snapshot_block(bytes: &[u8]) -> Result<Vec<Ticket>, String> {
    let tickets: Vec<SnapshotTicket> = block_options()
        .deserialize(bytes)
        .map_err(|e| e.to_string())?;
    Ok(tickets
        .into_iter()
        .map(|t| Ticket {
            id: t.id,
            title: t.title,
            description: t.description,
            status: t.status,
            version: t.version,
            created_at: t.created_at,
            updated_at: t.updated_at,
        })
        .collect())
}

/// The payload of a record that carries no change (a seal): the encoding of
/// an empty list.
pub(crate) const EMPTY_PAYLOAD: &[u8] = &[0];

/// Appends the payload encoding of `changes` to `out`: exactly the bytes
/// bincode writes for them with [`options`] (a test checks it against bincode
/// on random changes). Written out by hand because this runs for every
/// command on the server thread, and serde's path clones each title and
/// description into a `String` (`#[serde(into = "String")]`) just to write
/// it. On a payload over [`PAYLOAD_BYTES_MAX`], `out` is left as it was.
pub(crate) fn encode_changes(changes: &[Change], out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    put_varint(out, changes.len() as u64);
    for change in changes {
        put_change(change, out);
    }
    let len = out.len() - start;
    if len > PAYLOAD_BYTES_MAX {
        out.truncate(start);
        return Err(format!(
            "the payload would be {len} bytes, over the limit of {PAYLOAD_BYTES_MAX}"
        ));
    }
    Ok(())
}

/// bincode's varint: one byte below 251, else a marker and 2, 4 or 8
/// little-endian bytes (see `docs/FORMAT.md`).
fn put_varint(out: &mut Vec<u8>, n: u64) {
    if n < 251 {
        out.push(n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(251);
        out.extend_from_slice(&n.to_le_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(252);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// An `Option`: the byte 0, or the byte 1 and the value.
fn put_option<T>(out: &mut Vec<u8>, value: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put(out, value);
        }
    }
}

/// One change: its variant index (a varint), then its fields in order.
fn put_change(change: &Change, out: &mut Vec<u8>) {
    match change {
        Change::Created {
            id,
            title,
            description,
            at,
        } => {
            put_varint(out, 0);
            put_varint(out, id.get());
            put_str(out, title.as_str());
            put_str(out, description.as_str());
            put_varint(out, at.as_unix_millis());
        }
        Change::Updated {
            id,
            version,
            title,
            description,
            status,
            at,
        } => {
            put_varint(out, 1);
            put_varint(out, id.get());
            put_varint(out, *version);
            put_option(out, title.as_ref(), |out, t| put_str(out, t.as_str()));
            put_option(out, description.as_ref(), |out, d| put_str(out, d.as_str()));
            put_option(out, *status, |out, s| put_varint(out, s.index() as u64));
            put_varint(out, at.as_unix_millis());
        }
        Change::Deleted { id, version, at } => {
            put_varint(out, 2);
            put_varint(out, id.get());
            put_varint(out, *version);
            put_varint(out, at.as_unix_millis());
        }
        Change::Digest {
            digest,
            next_id,
            tickets,
        } => {
            put_varint(out, 3);
            put_varint(out, *digest);
            put_varint(out, next_id.get());
            put_varint(out, *tickets);
        }
    }
}

/// Decodes a payload; fails on anything but exactly one well-formed `Vec<Change>`
/// whose field values pass validation, in its canonical encoding (the bytes
/// [`encode_changes`] writes for it).
pub(crate) fn decode_changes(payload: &[u8]) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    decode_changes_into(payload, &mut changes)?;
    Ok(changes)
}

/// [`decode_changes`] into `changes`, which is cleared first (and left empty
/// on an error): replay decodes every record through one buffer instead of
/// allocating a vector per record.
///
/// Read by hand, like [`encode_changes`] writes, rather than through
/// bincode: bincode 1.3 reads an integer written with a wider marker than
/// its value needs (5 as `251 05 00`) without complaint, so its result had
/// to be sized again with serde to prove the payload canonical, and serde's
/// sizing clones every title and description (`#[serde(into = "String")]`):
/// together, most of the cost of opening a store. Here each varint is
/// refused as it is read if a narrower form would hold it; option tags must
/// be 0 or 1 and strings are their bytes, so a payload that decodes is
/// byte for byte the encoding of what it decodes to. A test checks this
/// decoder against bincode plus that sizing, on valid and damaged payloads.
pub(crate) fn decode_changes_into(payload: &[u8], changes: &mut Vec<Change>) -> Result<(), String> {
    changes.clear();
    let decoded = read_changes(payload, changes).map_err(|error| error.reason);
    if decoded.is_err() {
        changes.clear();
    }
    debug_assert!(
        decoded.is_err() || {
            let mut canonical = Vec::with_capacity(payload.len());
            encode_changes(changes, &mut canonical).is_ok() && canonical == payload
        }
    );
    decoded
}

/// The fewest bytes one encoded change takes (a `Deleted` or a `Digest`
/// with one-byte fields): bounds what a change count may reserve.
const CHANGE_BYTES_MIN: usize = 4;

/// Why a payload did not decode, boxed: every read's `Result` stays two
/// words (returned in registers), and the reason is only formatted on the
/// way out of a payload that fails.
#[derive(Debug)]
struct PayloadError {
    reason: String,
}

type Read<T> = Result<T, Box<PayloadError>>;

#[cold]
fn fail<T>(reason: String) -> Read<T> {
    Err(Box::new(PayloadError { reason }))
}

fn read_changes(payload: &[u8], changes: &mut Vec<Change>) -> Read<()> {
    // bincode's limit: a payload longer than this could not have been read
    // whole, and trailing bytes are refused.
    if payload.len() > PAYLOAD_BYTES_MAX {
        return fail(format!(
            "the payload is {} bytes, over the limit of {PAYLOAD_BYTES_MAX}",
            payload.len()
        ));
    }
    let mut reader = PayloadReader { rest: payload };
    let count = reader.varint("the change count")?;
    // Reserve no more than the payload could hold, whatever the count says.
    let room = (reader.rest.len() / CHANGE_BYTES_MIN) as u64;
    changes.reserve(count.min(room) as usize);
    // Each change consumes at least one byte or fails, so this loop is
    // bounded by the payload's length whatever `count` is.
    for _ in 0..count {
        changes.push(reader.change()?);
    }
    if !reader.rest.is_empty() {
        return fail(format!(
            "{} bytes follow the last change (trailing bytes are refused)",
            reader.rest.len()
        ));
    }
    Ok(())
}

/// A cursor over a payload being decoded: every read is bounded by the bytes
/// left, and nothing is allocated from a length before those bytes are there.
struct PayloadReader<'p> {
    rest: &'p [u8],
}

impl<'p> PayloadReader<'p> {
    /// The next `len` bytes.
    #[inline]
    fn take(&mut self, len: u64, what: &str) -> Read<&'p [u8]> {
        let split = usize::try_from(len)
            .ok()
            .and_then(|len| self.rest.split_at_checked(len));
        let Some((taken, rest)) = split else {
            return fail(format!(
                "the payload ends inside {what}: {len} bytes needed, {} left",
                self.rest.len()
            ));
        };
        self.rest = rest;
        Ok(taken)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &str) -> Read<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        Ok(bytes
            .try_into()
            .expect("take returns exactly the length asked for"))
    }

    /// A raw byte: bincode's `u8`, an `Option` tag.
    #[inline]
    fn byte(&mut self, what: &str) -> Read<u8> {
        let [byte] = self.array(what)?;
        Ok(byte)
    }

    /// A bincode varint (see `docs/FORMAT.md`), in its shortest form only.
    #[inline]
    fn varint(&mut self, what: &str) -> Read<u64> {
        // Most fields (counts, variants, lengths, small ids) are one byte.
        if let Some((&marker @ 0..=250, rest)) = self.rest.split_first() {
            self.rest = rest;
            return Ok(u64::from(marker));
        }
        self.wide_varint(what)
    }

    /// A varint that is not one byte below 251: a marker and 2, 4 or 8
    /// bytes, refused if a narrower form would hold the value.
    #[inline(never)]
    fn wide_varint(&mut self, what: &str) -> Read<u64> {
        let marker = self.byte(what)?;
        // The smallest value each marker may carry: anything below fits a
        // narrower form, and then the payload is not canonical.
        let (value, least) = match marker {
            0..=250 => return Ok(u64::from(marker)),
            251 => (u64::from(u16::from_le_bytes(self.array(what)?)), 251),
            252 => (u64::from(u32::from_le_bytes(self.array(what)?)), 1 << 16),
            253 => (u64::from_le_bytes(self.array(what)?), 1 << 32),
            _ => {
                return fail(format!(
                    "{what} starts with byte {marker}, which no 64-bit integer does"
                ));
            }
        };
        if value < least {
            return fail(format!(
                "the payload is not in canonical form: {what} {value} is written with marker \
                 {marker}, in more bytes than it needs"
            ));
        }
        Ok(value)
    }

    /// An enum's variant index, below `variants`.
    #[inline]
    fn variant(&mut self, what: &str, variants: u64) -> Read<u64> {
        let index = self.varint(what)?;
        if index >= variants {
            return fail(format!(
                "{what} {index} is not known to this version (0 to {})",
                variants - 1
            ));
        }
        Ok(index)
    }

    /// An `Option` tag: the byte 0 (None) or 1 (Some).
    #[inline]
    fn is_some(&mut self, what: &str) -> Read<bool> {
        match self.byte(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => fail(format!(
                "{what} has option tag {tag}; only 0 and 1 are valid"
            )),
        }
    }

    /// A string: a varint byte length and that many bytes of UTF-8.
    #[inline]
    fn str(&mut self, what: &str) -> Read<&'p str> {
        let len = self.varint(what)?;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => fail(format!("{what} is not UTF-8: {e}")),
        }
    }

    fn title(&mut self) -> Read<TicketTitle> {
        // Validated on the borrowed bytes: a too-long title is refused
        // before anything is copied.
        TicketTitle::try_from(self.str("a title")?).or_else(|e| fail(e.to_string()))
    }

    fn description(&mut self) -> Read<TicketDescription> {
        TicketDescription::try_from(self.str("a description")?).or_else(|e| fail(e.to_string()))
    }

    #[inline]
    fn status(&mut self) -> Read<Status> {
        let index = self.variant("a status", Status::ALL.len() as u64)?;
        Ok(Status::ALL[index as usize])
    }

    #[inline]
    fn timestamp(&mut self) -> Read<Timestamp> {
        Ok(Timestamp::from_unix_millis(self.varint("a timestamp")?))
    }

    /// One change: its variant index, then its fields in order (see
    /// [`put_change`], which writes them).
    fn change(&mut self) -> Read<Change> {
        match self.variant("a change's variant", 4)? {
            0 => {
                let id = TicketId::from(self.varint("an id")?);
                let title = self.title()?;
                let description = self.description()?;
                let at = self.timestamp()?;
                Ok(Change::Created {
                    id,
                    title,
                    description,
                    at,
                })
            }
            1 => {
                let id = TicketId::from(self.varint("an id")?);
                let version = self.varint("a version")?;
                let title = if self.is_some("an updated title")? {
                    Some(self.title()?)
                } else {
                    None
                };
                let description = if self.is_some("an updated description")? {
                    Some(self.description()?)
                } else {
                    None
                };
                let status = if self.is_some("an updated status")? {
                    Some(self.status()?)
                } else {
                    None
                };
                let at = self.timestamp()?;
                Ok(Change::Updated {
                    id,
                    version,
                    title,
                    description,
                    status,
                    at,
                })
            }
            2 => {
                let id = TicketId::from(self.varint("an id")?);
                let version = self.varint("a version")?;
                let at = self.timestamp()?;
                Ok(Change::Deleted { id, version, at })
            }
            variant => {
                debug_assert_eq!(variant, 3, "variant() bounds the index below 4");
                let digest = self.varint("a digest")?;
                let next_id = TicketId::from(self.varint("a next id")?);
                let tickets = self.varint("a ticket count")?;
                Ok(Change::Digest {
                    digest,
                    next_id,
                    tickets,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_payload_is_the_encoding_of_no_changes() {
        let mut out = Vec::new();
        encode_changes(&[], &mut out).unwrap();
        assert_eq!(out, EMPTY_PAYLOAD);
        assert_eq!(decode_changes(EMPTY_PAYLOAD), Ok(Vec::new()));
    }

    use crate::domain::ticket::{Status, TicketId};
    use crate::domain::time::Timestamp;

    fn sample() -> Vec<Change> {
        vec![
            Change::Created {
                id: TicketId::from(1),
                title: "Fix the flux".try_into().unwrap(),
                description: "It is not capacitating.".try_into().unwrap(),
                at: Timestamp::from_unix_millis(1_700_000_000_000),
            },
            Change::Updated {
                id: TicketId::from(1),
                version: 2,
                title: None,
                description: None,
                status: Some(Status::Done),
                at: Timestamp::from_unix_millis(1_700_000_000_001),
            },
        ]
    }

    /// What bincode itself writes for `changes`: the oracle for the
    /// hand-written encoder.
    fn bincode_encoding(changes: &[Change]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        options()
            .serialize_into(&mut out, changes)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// A value near one of the varint's width boundaries, or any value.
    fn edgy(rng: &mut crate::rng::Rng) -> u64 {
        const EDGES: [u64; 9] = [
            0,
            250,
            251,
            u16::MAX as u64,
            1 << 16,
            u32::MAX as u64,
            1 << 32,
            u64::MAX - 1,
            u64::MAX,
        ];
        let base = EDGES[(rng.next_u64() % EDGES.len() as u64) as usize];
        match rng.next_u64() % 4 {
            0 => base.wrapping_add(rng.next_u64() % 3).wrapping_sub(1),
            1 => rng.next_u64() >> (rng.next_u64() % 64),
            _ => base,
        }
    }

    /// 1 to `max` bytes of text, some of it two-byte UTF-8.
    fn text(rng: &mut crate::rng::Rng, max: usize) -> String {
        let target = 1 + (rng.next_u64() % max as u64) as usize;
        let mut text = String::new();
        while text.len() < target {
            let c = match rng.next_u64() % 8 {
                0 if text.len() + 2 <= target => 'é',
                r => (b'a' + r as u8) as char,
            };
            text.push(c);
        }
        text
    }

    fn random_change(rng: &mut crate::rng::Rng) -> Change {
        let id = TicketId::from(edgy(rng).max(1));
        let at = Timestamp::from_unix_millis(edgy(rng));
        match rng.next_u64() % 4 {
            0 => Change::Created {
                id,
                title: text(rng, 50).try_into().unwrap(),
                description: text(rng, 500).try_into().unwrap(),
                at,
            },
            1 => Change::Updated {
                id,
                version: edgy(rng),
                title: rng
                    .next_u64()
                    .is_multiple_of(2)
                    .then(|| text(rng, 50).try_into().unwrap()),
                description: rng
                    .next_u64()
                    .is_multiple_of(2)
                    .then(|| text(rng, 500).try_into().unwrap()),
                status: rng
                    .next_u64()
                    .is_multiple_of(2)
                    .then(|| Status::ALL[(rng.next_u64() % 3) as usize]),
                at,
            },
            2 => Change::Deleted {
                id,
                version: edgy(rng),
                at,
            },
            _ => Change::Digest {
                digest: edgy(rng),
                next_id: id,
                tickets: edgy(rng),
            },
        }
    }

    #[test]
    fn the_hand_written_encoder_writes_exactly_what_bincode_writes() {
        let seed =
            crate::rng::test_seed("the_hand_written_encoder_writes_exactly_what_bincode_writes");
        let mut rng = crate::rng::Rng::new(seed);
        for round in 0..2_000 {
            let count = (rng.next_u64() % 5) as usize;
            let changes: Vec<Change> = (0..count).map(|_| random_change(&mut rng)).collect();
            let mut ours = vec![0xAA]; // appends after what is there
            encode_changes(&changes, &mut ours).unwrap();
            assert_eq!(
                ours[1..],
                bincode_encoding(&changes).unwrap()[..],
                "seed {seed} round {round}: {changes:?}"
            );
            assert_eq!(decode_changes(&ours[1..]).unwrap(), changes, "seed {seed}");
        }
    }

    /// What decoding was before the hand-written decoder, and what it must
    /// still agree with: bincode, then the canonical-length check.
    fn bincode_decoding(payload: &[u8]) -> Result<Vec<Change>, String> {
        let changes: Vec<Change> = options().deserialize(payload).map_err(|e| e.to_string())?;
        let canonical_len = options()
            .serialized_size(&changes)
            .map_err(|e| e.to_string())?;
        if canonical_len != payload.len() as u64 {
            return Err("not canonical".into());
        }
        Ok(changes)
    }

    /// `payload` damaged one way, picked by `rng`: a byte changed, inserted
    /// or removed, a one-byte varint spelled wide, or the end cut off.
    fn damaged(rng: &mut crate::rng::Rng, payload: &[u8]) -> Vec<u8> {
        let mut bytes = payload.to_vec();
        let at = (rng.next_u64() % (bytes.len() as u64 + 1)) as usize;
        let value = match rng.next_u64() % 3 {
            0 => 250 + (rng.next_u64() % 6) as u8,
            1 => (rng.next_u64() % 4) as u8,
            _ => rng.next_u64() as u8,
        };
        match rng.next_u64() % 5 {
            0 if at < bytes.len() => bytes[at] = value,
            1 => bytes.insert(at, value),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 if at < bytes.len() && bytes[at] < 251 => {
                let narrow = bytes[at];
                bytes.splice(at..=at, [251, narrow, 0]);
            }
            _ => bytes.truncate(at),
        }
        bytes
    }

    #[test]
    fn the_hand_written_decoder_accepts_exactly_what_bincode_and_the_canonical_check_accept() {
        let seed = crate::rng::test_seed(
            "the_hand_written_decoder_accepts_exactly_what_bincode_and_the_canonical_check_accept",
        );
        let mut rng = crate::rng::Rng::new(seed);
        let (mut accepted, mut refused) = (0, 0);
        let mut reused = vec![sample()[0].clone()];
        for round in 0..20_000 {
            let count = (rng.next_u64() % 4) as usize;
            let changes: Vec<Change> = (0..count).map(|_| random_change(&mut rng)).collect();
            let mut payload = Vec::new();
            encode_changes(&changes, &mut payload).unwrap();
            let payload = if round % 4 == 0 {
                payload
            } else {
                damaged(&mut rng, &payload)
            };
            let ours = decode_changes(&payload);
            let oracle = bincode_decoding(&payload);
            assert_eq!(
                ours.as_ref().ok(),
                oracle.as_ref().ok(),
                "seed {seed} round {round}: {payload:?}: ours {ours:?}, bincode {oracle:?}"
            );
            // The reusing form agrees, and leaves nothing behind on an error.
            let into = decode_changes_into(&payload, &mut reused);
            assert_eq!(into.is_ok(), ours.is_ok(), "seed {seed} round {round}");
            assert_eq!(
                reused,
                ours.clone().unwrap_or_default(),
                "seed {seed} round {round}"
            );
            if ours.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // Both sides of the comparison were exercised.
        assert!(accepted > 5_000 && refused > 5_000, "{accepted} {refused}");
    }

    #[test]
    fn a_payload_over_the_limit_is_refused_and_writes_nothing() {
        let one = Change::Created {
            id: TicketId::from(1),
            title: "t".repeat(50).try_into().unwrap(),
            description: "d".repeat(500).try_into().unwrap(),
            at: Timestamp::from_unix_millis(1),
        };
        let changes = vec![one; PAYLOAD_BYTES_MAX / 500];
        assert!(
            bincode_encoding(&changes).is_err(),
            "bincode refuses it too"
        );
        let mut out = vec![7];
        assert!(encode_changes(&changes, &mut out).is_err());
        assert_eq!(out, [7]);
    }

    #[test]
    fn changes_round_trip() {
        let mut bytes = Vec::new();
        encode_changes(&sample(), &mut bytes).unwrap();
        assert_eq!(decode_changes(&bytes).unwrap(), sample());
    }

    #[test]
    fn snapshot_blocks_round_trip() {
        let tickets = vec![Ticket {
            id: TicketId::from(9),
            title: "Ünïcödé".try_into().unwrap(),
            description: "d".try_into().unwrap(),
            status: Status::Done,
            version: 300,
            created_at: Timestamp::from_unix_millis(1),
            updated_at: Timestamp::from_unix_millis(u64::MAX),
        }];
        let mut bytes = Vec::new();
        encode_snapshot_block(tickets.iter(), &mut bytes).unwrap();
        assert_eq!(decode_snapshot_block(&bytes).unwrap(), tickets);
        bytes.push(0);
        assert!(decode_snapshot_block(&bytes).is_err());
    }

    #[test]
    fn peeking_finds_the_ticket_of_a_single_change() {
        let mut bytes = Vec::new();
        for (changes, expected) in [
            (sample()[..1].to_vec(), PayloadTicket::One(1)),
            (sample()[1..].to_vec(), PayloadTicket::One(1)),
            (Vec::new(), PayloadTicket::Nothing),
            (sample(), PayloadTicket::Decode),
            (
                vec![Change::Deleted {
                    id: TicketId::from(70_000),
                    version: 3,
                    at: Timestamp::from_unix_millis(5),
                }],
                PayloadTicket::One(70_000),
            ),
            (
                vec![Change::Digest {
                    digest: 1,
                    next_id: TicketId::from(2),
                    tickets: 1,
                }],
                PayloadTicket::Nothing,
            ),
        ] {
            bytes.clear();
            encode_changes(&changes, &mut bytes).unwrap();
            assert_eq!(peek_payload_ticket(&bytes), expected, "{changes:?}");
        }
        assert_eq!(peek_payload_ticket(&[]), PayloadTicket::Decode);
        assert_eq!(peek_payload_ticket(&[1, 0, 253, 1]), PayloadTicket::Decode);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Vec::new();
        encode_changes(&sample(), &mut bytes).unwrap();
        bytes.push(0);
        assert!(decode_changes(&bytes).is_err());
    }

    #[test]
    fn invalid_field_values_do_not_decode() {
        // A Created change whose title is empty: the bytes are well-formed bincode,
        // but the title fails validation, so decoding fails.
        let mut bytes = Vec::new();
        encode_changes(&sample()[..1], &mut bytes).unwrap();
        let title_len_at = bytes.iter().position(|&b| b == 12).unwrap();
        let mut damaged = bytes[..title_len_at].to_vec();
        damaged.push(0);
        damaged.extend_from_slice(&bytes[title_len_at + 1 + 12..]);
        assert!(decode_changes(&damaged).is_err());
    }

    #[test]
    fn an_integer_written_wider_than_needed_is_rejected() {
        // The Created event's id 1 is the byte 01 after the vec length 01 and
        // the variant 00; spell it as the u16 form `251 01 00` instead.
        let mut bytes = Vec::new();
        encode_changes(&sample()[..1], &mut bytes).unwrap();
        assert_eq!(&bytes[..3], &[1, 0, 1]);
        let mut wide = vec![1, 0, 251, 1, 0];
        wide.extend_from_slice(&bytes[3..]);
        let error = decode_changes(&wide).unwrap_err();
        assert!(error.contains("canonical"), "{error}");
        // bincode alone accepts it, to the same changes: this is the check that refuses it.
        let lenient: Vec<Change> = options().deserialize(&wide).unwrap();
        assert_eq!(lenient, sample()[..1]);
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // vec length = u64::MAX (varint marker 253 + 8 bytes)
        let mut bytes = vec![253];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_changes(&bytes).is_err());
    }
}
