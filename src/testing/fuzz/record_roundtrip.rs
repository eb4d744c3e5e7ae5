//! The `record_roundtrip` property: events framed with [`frame_record`]
//! decode with [`decode_record`] to the same header fields and events; and
//! every mutation of that encoding — of the framed bytes, or of the payload
//! with both checksums made valid again — either fails to decode or decodes
//! to a record whose own encoding is byte for byte the bytes it came from.
//! So no record has two encodings, and nothing the decoder accepts is
//! something the writer could not have written.

use arbitrary::{Arbitrary, Unstructured};

use crate::api::inspect::record::{RECORD_HEADER_LEN, RECORD_PAYLOAD_BYTES_MAX, encode_record};
use crate::api::inspect::{decode_record, frame_record};
use crate::domain::change::Change;
use crate::testing::fuzz::{Failure, ensure, ensure_eq};

/// Which bytes a mutation edits.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Region {
    /// The framed record as it is (checksums are not fixed up).
    Record,
    /// The payload; the record is framed again around it, with valid checksums.
    Payload,
}

/// One edit of a byte string; positions are taken modulo its length.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Flip one bit.
    FlipBit {
        /// Byte position.
        at: u32,
        /// Bit 0..8.
        bit: u8,
    },
    /// Overwrite one byte.
    Set {
        /// Byte position.
        at: u32,
        /// New value.
        value: u8,
    },
    /// Insert bytes.
    Insert {
        /// Byte position.
        at: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Remove up to `len` bytes.
    Remove {
        /// Byte position.
        at: u32,
        /// How many.
        len: u8,
    },
    /// Keep only the first `len` bytes.
    Truncate {
        /// Bytes kept (modulo the length plus one).
        len: u32,
    },
}

/// One mutation: an edit of a region.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Mutation {
    /// What it edits.
    pub region: Region,
    /// How.
    pub edit: Edit,
}

/// The target's input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The record's events.
    pub events: Vec<Change>,
    /// Its log sequence number.
    pub lsn: u64,
    /// Its `unsynced before` field.
    pub unsynced_before: u32,
    /// Mutations, applied one after another to the encoding.
    pub mutations: Vec<Mutation>,
}

/// Decodes `data` into an [`Input`] (as libFuzzer's input) and checks it;
/// panics on a violated property.
pub fn check_bytes(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if let Err(failure) = check(&input) {
        panic!("record_roundtrip: {failure}");
    }
}

/// Checks the round trip and every mutation of `input`.
pub fn check(input: &Input) -> Result<(), Failure> {
    let mut record = Vec::new();
    // `input.lsn` is kept so committed inputs keep their meaning; records no
    // longer carry an LSN (it is their position in the log).
    if frame_record(&mut record, input.unsynced_before, &input.events).is_err() {
        // Over the record size limit: refused on write, nothing to decode.
        return Ok(());
    }
    let (header, changes) = decode_record(&record)
        .map_err(|damage| Failure::new("round trip", format!("does not decode: {damage}")))?;
    ensure_eq(&changes, &input.events, "round trip", "changes")?;
    ensure_eq(
        &header.unsynced_before,
        &input.unsynced_before,
        "round trip",
        "unsynced before",
    )?;
    ensure_eq(
        &(header.record_len() as usize),
        &record.len(),
        "round trip",
        "record length",
    )?;

    let mut payload = record[RECORD_HEADER_LEN..].to_vec();
    for (index, mutation) in input.mutations.iter().enumerate() {
        match mutation.region {
            Region::Record => apply(&mutation.edit, &mut record),
            Region::Payload => {
                apply(&mutation.edit, &mut payload);
                payload.truncate(RECORD_PAYLOAD_BYTES_MAX);
                record.clear();
                encode_record(&mut record, input.unsynced_before, &payload);
            }
        }
        check_canonical(&record)
            .map_err(|message| Failure::new(format!("mutation {index}: {mutation:?}"), message))?;
    }
    Ok(())
}

/// Bytes that decode must be exactly the encoding of what they decode to.
fn check_canonical(bytes: &[u8]) -> Result<(), String> {
    let Ok((header, changes)) = decode_record(bytes) else {
        return Ok(());
    };
    let mut again = Vec::new();
    frame_record(&mut again, header.unsynced_before, &changes)
        .map_err(|e| format!("decoded changes do not frame again: {e}"))?;
    let used = &bytes[..(header.record_len() as usize).min(bytes.len())];
    ensure(again == used, "", || {
        format!(
            "{:?} decodes from {} bytes {:02x?}, but encodes to {} bytes {:02x?}",
            changes,
            used.len(),
            used,
            again.len(),
            again
        )
    })
    .map_err(|failure| failure.message)
}

fn apply(edit: &Edit, bytes: &mut Vec<u8>) {
    let position = |at: u32, len: usize| usize::try_from(at).unwrap_or(0) % len.max(1);
    match edit {
        Edit::FlipBit { at, bit } if !bytes.is_empty() => {
            let at = position(*at, bytes.len());
            bytes[at] ^= 1 << (bit % 8);
        }
        Edit::Set { at, value } if !bytes.is_empty() => {
            let at = position(*at, bytes.len());
            bytes[at] = *value;
        }
        Edit::Insert { at, bytes: new } => {
            let at = position(*at, bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Edit::Remove { at, len } if !bytes.is_empty() => {
            let at = position(*at, bytes.len());
            let end = (at + usize::from(*len)).min(bytes.len());
            bytes.drain(at..end);
        }
        Edit::Truncate { len } => {
            let len = position(*len, bytes.len() + 1);
            bytes.truncate(len);
        }
        Edit::FlipBit { .. } | Edit::Set { .. } | Edit::Remove { .. } => {}
    }
}
