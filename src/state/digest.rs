//! State digests: a stable 64-bit fingerprint of the live tickets and the id
//! counter, kept up to date as changes are applied so reading it is O(1).
//!
//! The digest is order-independent: each live ticket hashes to 64 bits on its
//! own ([`ticket_hash`]), the state keeps the wrapping sum of those hashes, and
//! [`state_digest`] mixes the sum with the ticket count and the next id.
//! Inserting or removing a ticket adds or subtracts its hash; an update
//! subtracts the old hash and adds the new one.
//!
//! Stability matters more than speed: the digest is written into snapshots
//! and into the log's digest records, so a later release must compute exactly
//! the same value from the same state. Hence no `std::hash` (whose
//! `DefaultHasher` may change between releases): the function is spelled out
//! here and in `docs/FORMAT.md`, and built only from CRC-32C (for the strings)
//! and the SplitMix64 finaliser (for mixing).

use crate::domain::ticket::Ticket;

/// Starts every ticket's hash.
const TICKET_SEED: u64 = 0x7469_636b_6574_6c67; // "ticketlg"
/// Starts the state digest.
const STATE_SEED: u64 = 0x7374_6174_6564_6967; // "statedig"

/// The SplitMix64 finaliser: a bijection on u64 that spreads every input bit
/// over the output.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A string as 64 bits: its byte length in the high half, its CRC-32C in the low.
fn string_word(text: &str) -> u64 {
    ((text.len() as u64) << 32) | u64::from(crc32c::crc32c(text.as_bytes()))
}

/// The hash of one ticket: every field, in a fixed order, folded with [`mix64`].
pub(crate) fn ticket_hash(ticket: &Ticket) -> u64 {
    let words = [
        ticket.id.get(),
        ticket.version,
        ticket.status.index() as u64,
        ticket.created_at.as_unix_millis(),
        ticket.updated_at.as_unix_millis(),
        string_word(ticket.title.as_str()),
        string_word(ticket.description.as_str()),
    ];
    words
        .iter()
        .fold(TICKET_SEED, |hash, &word| mix64(hash ^ word))
}

/// The digest of a state whose live tickets' hashes sum (wrapping) to
/// `ticket_hash_sum`, holding `tickets` tickets, with `next_id` the next id.
pub(crate) fn state_digest(ticket_hash_sum: u64, tickets: u64, next_id: u64) -> u64 {
    [ticket_hash_sum, tickets, next_id]
        .iter()
        .fold(STATE_SEED, |hash, &word| mix64(hash ^ word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ticket::{Status, TicketId};
    use crate::domain::time::Timestamp;

    fn ticket() -> Ticket {
        Ticket {
            id: TicketId::from(7),
            title: "Fix the flux".try_into().unwrap(),
            description: "It is not capacitating.".try_into().unwrap(),
            status: Status::InProgress,
            version: 3,
            created_at: Timestamp::from_unix_millis(1_700_000_000_000),
            updated_at: Timestamp::from_unix_millis(1_700_000_000_500),
        }
    }

    #[test]
    fn the_digest_functions_are_frozen() {
        // These values are part of the format: snapshots and digest records
        // written by earlier releases carry them. A change here is a format change.
        // (Computed independently, with a bitwise CRC-32C, in Python.)
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
        assert_eq!(ticket_hash(&ticket()), 0xea42_f3d2_8c30_40f2);
        assert_eq!(state_digest(0, 0, 1), 0xc090_c7b5_2978_cc74);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = ticket_hash(&ticket());
        let mut changed = Vec::new();
        let mut t = ticket();
        t.id = TicketId::from(8);
        changed.push(t);
        let mut t = ticket();
        t.version = 4;
        changed.push(t);
        let mut t = ticket();
        t.status = Status::Done;
        changed.push(t);
        let mut t = ticket();
        t.created_at = Timestamp::from_unix_millis(1);
        changed.push(t);
        let mut t = ticket();
        t.updated_at = Timestamp::from_unix_millis(1_700_000_000_501);
        changed.push(t);
        let mut t = ticket();
        t.title = "Fix the flux!".try_into().unwrap();
        changed.push(t);
        let mut t = ticket();
        t.description = "It is not capacitating".try_into().unwrap();
        changed.push(t);
        for t in changed {
            assert_ne!(ticket_hash(&t), base, "{t:?}");
        }
    }
}
