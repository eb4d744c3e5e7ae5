//! The payload codec: the only place that calls serde/bincode.
//!
//! A record payload is the bincode 1.3.3 encoding of a `Vec<Event>` with
//! bincode's `DefaultOptions` (little-endian, variable-length integers),
//! an explicit size limit, and trailing bytes rejected. Decoding accepts only
//! the canonical encoding: bincode itself would also read an integer written
//! in more bytes than needed, which would give one record several encodings. Keeping every
//! bincode call here means the payload codec can be replaced behind a format
//! version bump without touching the framing.

use bincode::Options as _;

use crate::event::Event;
use crate::wal::record::RECORD_PAYLOAD_BYTES_MAX;

fn options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_little_endian()
        .with_varint_encoding()
        .with_limit(RECORD_PAYLOAD_BYTES_MAX as u64)
        .reject_trailing_bytes()
}

/// Appends the payload encoding of `events` to `out`.
pub(crate) fn encode_events(events: &[Event], out: &mut Vec<u8>) -> Result<(), String> {
    options()
        .serialize_into(out, events)
        .map_err(|e| e.to_string())
}

/// Decodes a payload; fails on anything but exactly one well-formed `Vec<Event>`
/// whose field values pass validation, in its canonical encoding (the bytes
/// [`encode_events`] writes for it).
pub(crate) fn decode_events(payload: &[u8]) -> Result<Vec<Event>, String> {
    let events: Vec<Event> = options().deserialize(payload).map_err(|e| e.to_string())?;
    // bincode 1.3 reads a varint with a wider marker than its value needs
    // (5 as `251 05 00`) without complaint. Encoding again and comparing
    // rejects every such alternative spelling, whatever field it is in.
    let mut canonical = Vec::with_capacity(payload.len());
    encode_events(&events, &mut canonical)?;
    if canonical != payload {
        return Err(format!(
            "the payload is not in canonical form: its {} bytes decode to events whose encoding \
             is {} bytes (an integer written in more bytes than it needs)",
            payload.len(),
            canonical.len()
        ));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::{Status, TicketId};
    use crate::time::Timestamp;

    fn sample() -> Vec<Event> {
        vec![
            Event::Created {
                id: TicketId::from(1),
                title: "Fix the flux".try_into().unwrap(),
                description: "It is not capacitating.".try_into().unwrap(),
                at: Timestamp::from_unix_millis(1_700_000_000_000),
            },
            Event::Updated {
                id: TicketId::from(1),
                version: 2,
                title: None,
                description: None,
                status: Some(Status::Done),
                at: Timestamp::from_unix_millis(1_700_000_000_001),
            },
        ]
    }

    #[test]
    fn events_round_trip() {
        let mut bytes = Vec::new();
        encode_events(&sample(), &mut bytes).unwrap();
        assert_eq!(decode_events(&bytes).unwrap(), sample());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Vec::new();
        encode_events(&sample(), &mut bytes).unwrap();
        bytes.push(0);
        assert!(decode_events(&bytes).is_err());
    }

    #[test]
    fn invalid_field_values_do_not_decode() {
        // A Created event whose title is empty: the bytes are well-formed bincode,
        // but the title fails validation, so decoding fails.
        let mut bytes = Vec::new();
        encode_events(&sample()[..1], &mut bytes).unwrap();
        let title_len_at = bytes.iter().position(|&b| b == 12).unwrap();
        let mut damaged = bytes[..title_len_at].to_vec();
        damaged.push(0);
        damaged.extend_from_slice(&bytes[title_len_at + 1 + 12..]);
        assert!(decode_events(&damaged).is_err());
    }

    #[test]
    fn an_integer_written_wider_than_needed_is_rejected() {
        // The Created event's id 1 is the byte 01 after the vec length 01 and
        // the variant 00; spell it as the u16 form `251 01 00` instead.
        let mut bytes = Vec::new();
        encode_events(&sample()[..1], &mut bytes).unwrap();
        assert_eq!(&bytes[..3], &[1, 0, 1]);
        let mut wide = vec![1, 0, 251, 1, 0];
        wide.extend_from_slice(&bytes[3..]);
        let error = decode_events(&wide).unwrap_err();
        assert!(error.contains("canonical"), "{error}");
        // bincode alone accepts it, to the same events: this is the check that refuses it.
        let lenient: Vec<Event> = options().deserialize(&wide).unwrap();
        assert_eq!(lenient, sample()[..1]);
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // vec length = u64::MAX (varint marker 253 + 8 bytes)
        let mut bytes = vec![253];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_events(&bytes).is_err());
    }
}
