//! `arbitrary::Arbitrary` for the library's domain, command and event types
//! (the `arbitrary` cargo feature), so that fuzzers — ours in `fuzz/` and
//! users' own — can build them from raw bytes.
//!
//! Every value generated here is one the library could produce itself: a
//! [`TicketTitle`] or [`TicketDescription`] is cut at a character boundary to
//! its byte limit and never empty. Invalid field values are a fuzzer's
//! business to build as plain strings and push through `TryFrom`, which is the
//! only door into these types.
//!
//! All implementations live in this one module, by hand, rather than as
//! derive attributes spread over the types: the field types' invariants need
//! hand-written generators anyway, and the feature then touches no other file.

use arbitrary::{Arbitrary, Result, Unstructured};

use crate::domain::change::Change;
use crate::domain::command::{Command, ListQuery};
use crate::domain::ticket::{
    DESCRIPTION_BYTES_MAX, Status, TITLE_BYTES_MAX, Ticket, TicketDescription, TicketDraft,
    TicketId, TicketPatch, TicketTitle,
};
use crate::domain::time::Timestamp;

/// An arbitrary string of 1 to `bytes_max` bytes of UTF-8: cut at the last
/// character boundary within the limit, and given one character if empty.
fn bounded_text(u: &mut Unstructured<'_>, bytes_max: usize) -> Result<String> {
    let mut text = String::arbitrary(u)?;
    if text.len() > bytes_max {
        let mut cut = bytes_max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    if text.is_empty() {
        // A char is at most 4 bytes, within both limits.
        text.push(char::arbitrary(u)?);
    }
    debug_assert!((1..=bytes_max).contains(&text.len()));
    Ok(text)
}

impl<'a> Arbitrary<'a> for TicketId {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(TicketId::from(u64::arbitrary(u)?))
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        u64::size_hint(depth)
    }
}

impl<'a> Arbitrary<'a> for Timestamp {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Timestamp::from_unix_millis(u64::arbitrary(u)?))
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        u64::size_hint(depth)
    }
}

impl<'a> Arbitrary<'a> for TicketTitle {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let text = bounded_text(u, TITLE_BYTES_MAX)?;
        // bounded_text returns 1..=TITLE_BYTES_MAX bytes, which validation accepts.
        Ok(TicketTitle::try_from(text).expect("bounded_text keeps a title within its limits"))
    }
}

impl<'a> Arbitrary<'a> for TicketDescription {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let text = bounded_text(u, DESCRIPTION_BYTES_MAX)?;
        Ok(TicketDescription::try_from(text)
            .expect("bounded_text keeps a description within its limits"))
    }
}

impl<'a> Arbitrary<'a> for Status {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(*u.choose(&Status::ALL)?)
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(4))
    }
}

impl<'a> Arbitrary<'a> for Ticket {
    /// A ticket as the store could hold it: version at least 1, created no
    /// later than last updated.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let id = u.arbitrary()?;
        let title = u.arbitrary()?;
        let description = u.arbitrary()?;
        let status = u.arbitrary()?;
        let version = u.int_in_range(1..=u64::MAX)?;
        let (first, second): (Timestamp, Timestamp) = (u.arbitrary()?, u.arbitrary()?);
        Ok(Ticket {
            id,
            title,
            description,
            status,
            version,
            created_at: first.min(second),
            updated_at: first.max(second),
        })
    }
}

impl<'a> Arbitrary<'a> for TicketDraft {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(TicketDraft {
            title: u.arbitrary()?,
            description: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for TicketPatch {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(TicketPatch {
            title: u.arbitrary()?,
            description: u.arbitrary()?,
            status: u.arbitrary()?,
            expected_version: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for Command {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=2u8)? {
            0 => Command::Create(u.arbitrary()?),
            1 => Command::Update(u.arbitrary()?, u.arbitrary()?),
            _ => Command::Delete(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for ListQuery {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(ListQuery {
            status: u.arbitrary()?,
            after: u.arbitrary()?,
            limit: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for Change {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=2u8)? {
            0 => Change::Created {
                id: u.arbitrary()?,
                title: u.arbitrary()?,
                description: u.arbitrary()?,
                at: u.arbitrary()?,
            },
            1 => Change::Updated {
                id: u.arbitrary()?,
                version: u.arbitrary()?,
                title: u.arbitrary()?,
                description: u.arbitrary()?,
                status: u.arbitrary()?,
                at: u.arbitrary()?,
            },
            _ => Change::Deleted {
                id: u.arbitrary()?,
                version: u.arbitrary()?,
                at: u.arbitrary()?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from a fixed xorshift stream, so the test is deterministic.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn generated_titles_and_descriptions_are_always_within_their_limits() {
        for seed in 0..500 {
            let data = bytes(seed, 2048);
            let mut u = Unstructured::new(&data);
            while !u.is_empty() {
                let title = TicketTitle::arbitrary(&mut u).unwrap();
                assert!((1..=TITLE_BYTES_MAX).contains(&title.as_str().len()));
                let description = TicketDescription::arbitrary(&mut u).unwrap();
                assert!((1..=DESCRIPTION_BYTES_MAX).contains(&description.as_str().len()));
            }
        }
        // From no bytes at all, still valid values.
        let mut u = Unstructured::new(&[]);
        assert_eq!(TicketTitle::arbitrary(&mut u).unwrap().as_str().len(), 1);
    }

    #[test]
    fn every_variant_is_generated() {
        let (mut commands, mut events) = ([false; 3], [false; 3]);
        for seed in 0..200 {
            let data = bytes(seed, 256);
            let mut u = Unstructured::new(&data);
            commands[match Command::arbitrary(&mut u).unwrap() {
                Command::Create(_) => 0,
                Command::Update(..) => 1,
                Command::Delete(_) => 2,
            }] = true;
            events[match Change::arbitrary(&mut u).unwrap() {
                Change::Created { .. } => 0,
                Change::Updated { .. } => 1,
                Change::Deleted { .. } => 2,
                Change::Digest { .. } => unreachable!("never generated: the server writes digests"),
            }] = true;
            let ticket = Ticket::arbitrary(&mut u).unwrap();
            assert!(ticket.version >= 1 && ticket.created_at <= ticket.updated_at);
        }
        assert_eq!((commands, events), ([true; 3], [true; 3]));
    }

    #[test]
    fn long_multibyte_text_is_cut_at_a_character_boundary() {
        // 'é' is two bytes; whatever length the generator picks, the cut must
        // land between two of them.
        for extra in 0..64u8 {
            let mut data = "é".repeat(300).into_bytes();
            data.push(extra);
            let mut u = Unstructured::new(&data);
            let title = TicketTitle::arbitrary(&mut u).unwrap();
            let text = title.as_str();
            assert!(text.len() <= TITLE_BYTES_MAX, "{text:?}");
            assert!(
                text.chars().all(|c| c == 'é') || text.chars().count() == 1,
                "{text:?}"
            );
        }
    }
}
