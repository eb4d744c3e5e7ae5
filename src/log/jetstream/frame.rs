//! The bytes of one JetStream message: one group-commit batch (or a part of
//! one, when it was split to fit the server's message size), framed and
//! checksummed like a local batch. Pure: no I/O. See docs/REPLICATION.md,
//! "Message format".
//!
//! ```text
//! offset size  field
//!   0     4    magic "TLJ1"
//!   4     4    frame_len    u32 LE, bytes of the whole frame
//!   8     4    crc32c       CRC-32C (Castagnoli) of bytes 4..8 and 12..frame_len
//!  12     2    version      u16 LE = 1
//!  14     2    flags        u16 LE = 0
//!  16     8    prev_seq     u64 LE, the stream sequence the batch was decided at
//!  24     8    first_lsn    u64 LE, the LSN of its first record
//!  32    16    batch_id     the writer's host id (8) and counter (8), also the Nats-Msg-Id
//!  48     4    records      u32 LE, record count (at least 1)
//!  52     …    each record: len u32 LE | crc32c u32 LE of len and payload | payload
//! ```
//!
//! Architecture invariant: a frame is decoded only after its length is
//! bounded by the bytes at hand and its checksum has passed; each record's
//! length is bounded by the frame before it is sliced.

use crate::error::Damage;

/// The frame's magic bytes.
pub const FRAME_MAGIC: [u8; 4] = *b"TLJ1";
/// The frame format version this build writes and reads.
pub const FRAME_VERSION: u16 = 1;
/// Bytes before the first record.
pub const FRAME_HEADER_LEN: usize = 52;
/// Bytes before each record's payload.
pub const RECORD_HEADER_LEN: usize = 8;

/// Who wrote a batch, and which of its batches it is: unique per attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchId {
    /// Random per open log.
    pub host: u64,
    /// Counts the batches (attempts) of that open log.
    pub counter: u64,
}

impl BatchId {
    /// The `Nats-Msg-Id` header value: 32 hex digits.
    pub fn msg_id(&self) -> String {
        format!("{:016x}{:016x}", self.host, self.counter)
    }
}

/// A frame's header fields, as decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The stream sequence the batch was decided at (the one before it).
    pub prev_seq: u64,
    /// The LSN of the first record.
    pub first_lsn: u64,
    /// The writer and attempt.
    pub batch_id: BatchId,
    /// Records in the frame.
    pub records: u32,
    /// The frame's checksum (what the tail compares with its own batches).
    pub crc: u32,
}

/// Encodes `payloads` as one frame.
pub fn encode<'a>(
    prev_seq: u64,
    first_lsn: u64,
    batch_id: BatchId,
    payloads: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
) -> Vec<u8> {
    let body: usize = payloads.clone().map(|p| RECORD_HEADER_LEN + p.len()).sum();
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body);
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&[0; 8]); // frame_len and crc, filled in below
    out.extend_from_slice(&FRAME_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&prev_seq.to_le_bytes());
    out.extend_from_slice(&first_lsn.to_le_bytes());
    out.extend_from_slice(&batch_id.host.to_le_bytes());
    out.extend_from_slice(&batch_id.counter.to_le_bytes());
    // The caller bounds a frame to one message (at most 1 MiB), so the
    // counts and lengths fit in u32.
    out.extend_from_slice(&(payloads.len() as u32).to_le_bytes());
    for payload in payloads {
        let len = (payload.len() as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
        out.extend_from_slice(&len);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(payload);
    }
    let frame_len = out.len() as u32;
    out[4..8].copy_from_slice(&frame_len.to_le_bytes());
    let crc = frame_crc(&out);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    debug_assert!(decode(&out).is_ok(), "a frame decodes as it was encoded");
    out
}

/// Bytes a frame of records with these payload lengths takes.
pub fn frame_len(payload_lens: impl Iterator<Item = usize>) -> usize {
    FRAME_HEADER_LEN
        + payload_lens
            .map(|len| RECORD_HEADER_LEN + len)
            .sum::<usize>()
}

fn frame_crc(frame: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&frame[4..8]), &frame[12..])
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// A decoded frame: its header and its records' payloads, with the byte
/// offset of each record in the frame.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The header.
    pub header: FrameHeader,
    /// (offset of the record header in the frame, record bytes, payload).
    pub records: Vec<(u64, u64, &'a [u8])>,
}

/// Checks and decodes a frame.
pub fn decode(bytes: &[u8]) -> Result<Frame<'_>, Damage> {
    if bytes.len() < FRAME_HEADER_LEN {
        return Err(Damage::Truncated {
            len: FRAME_HEADER_LEN as u64,
        });
    }
    if bytes[0..4] != FRAME_MAGIC {
        return Err(Damage::BadMagic);
    }
    let frame_len = read_u32(bytes, 4) as usize;
    if frame_len != bytes.len() {
        return Err(Damage::Truncated {
            len: frame_len as u64,
        });
    }
    let crc = read_u32(bytes, 8);
    if frame_crc(bytes) != crc {
        return Err(Damage::BadPayload);
    }
    let version = u16::from_le_bytes([bytes[12], bytes[13]]);
    if version != FRAME_VERSION {
        return Err(Damage::UnsupportedVersion {
            found: u32::from(version),
            supported: u32::from(FRAME_VERSION),
        });
    }
    let header = FrameHeader {
        prev_seq: read_u64(bytes, 16),
        first_lsn: read_u64(bytes, 24),
        batch_id: BatchId {
            host: read_u64(bytes, 32),
            counter: read_u64(bytes, 40),
        },
        records: read_u32(bytes, 48),
        crc,
    };
    if header.records == 0 {
        return Err(Damage::Inconsistent("a batch frame with no record".into()));
    }
    // LSNs start at 1, and the LSN after the frame's last one must exist
    // (replay and a snapshot's resume go on from it): this bounds every
    // `first_lsn + records` the log computes from a header.
    if header.first_lsn == 0
        || header
            .first_lsn
            .checked_add(u64::from(header.records))
            .is_none()
    {
        return Err(Damage::Inconsistent(format!(
            "a batch frame of {} records starting at LSN {}: not LSNs a log can hold",
            header.records, header.first_lsn
        )));
    }
    let mut records =
        Vec::with_capacity((header.records as usize).min(bytes.len() / RECORD_HEADER_LEN));
    let mut at = FRAME_HEADER_LEN;
    for _ in 0..header.records {
        if bytes.len() - at < RECORD_HEADER_LEN {
            return Err(Damage::Truncated {
                len: RECORD_HEADER_LEN as u64,
            });
        }
        let len = read_u32(bytes, at) as usize;
        if bytes.len() - at - RECORD_HEADER_LEN < len {
            return Err(Damage::Truncated {
                len: (RECORD_HEADER_LEN + len) as u64,
            });
        }
        let payload = &bytes[at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + len];
        let record_crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[at..at + 4]), payload);
        if record_crc != read_u32(bytes, at + 4) {
            return Err(Damage::BadPayload);
        }
        records.push((at as u64, (RECORD_HEADER_LEN + len) as u64, payload));
        at += RECORD_HEADER_LEN + len;
    }
    if at != bytes.len() {
        return Err(Damage::Inconsistent(format!(
            "{} bytes after the last record of a batch frame",
            bytes.len() - at
        )));
    }
    Ok(Frame { header, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: BatchId = BatchId {
        host: 0xfeed,
        counter: 7,
    };

    #[test]
    fn a_frame_decodes_to_what_was_encoded() {
        let payloads: Vec<&[u8]> = vec![b"one", b"", b"three"];
        let bytes = encode(41, 100, ID, payloads.iter().copied());
        assert_eq!(bytes.len(), frame_len(payloads.iter().map(|p| p.len())));
        let frame = decode(&bytes).unwrap();
        assert_eq!(frame.header.prev_seq, 41);
        assert_eq!(frame.header.first_lsn, 100);
        assert_eq!(frame.header.batch_id, ID);
        assert_eq!(frame.header.records, 3);
        let decoded: Vec<&[u8]> = frame.records.iter().map(|r| r.2).collect();
        assert_eq!(decoded, payloads);
        assert_eq!(ID.msg_id(), "000000000000feed0000000000000007");
    }

    #[test]
    fn a_frame_whose_lsns_run_past_u64_max_is_refused() {
        // A checksummed frame from the stream claiming LSNs 2^64-1 and on
        // used to overflow `first_lsn + records - 1` when the log read its
        // last message (lsn_bound) or a snapshot's (resume_after).
        let good = encode(1, 1, ID, [&b"a"[..], b"b"].into_iter());
        for first_lsn in [0, u64::MAX - 1, u64::MAX] {
            let mut bytes = good.clone();
            bytes[24..32].copy_from_slice(&first_lsn.to_le_bytes());
            let crc = frame_crc(&bytes);
            bytes[8..12].copy_from_slice(&crc.to_le_bytes());
            assert!(
                matches!(decode(&bytes), Err(Damage::Inconsistent(_))),
                "first LSN {first_lsn}: {:?}",
                decode(&bytes).map(|frame| frame.header)
            );
        }
        let mut bytes = good.clone();
        bytes[24..32].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        let crc = frame_crc(&bytes);
        bytes[8..12].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&bytes).unwrap().header.first_lsn, u64::MAX - 2);
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_refused() {
        let bytes = encode(1, 1, ID, [&b"payload"[..], b"x"].into_iter());
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&damaged).is_err(),
                "bit {bit} flipped went unnoticed"
            );
        }
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len]).is_err(),
                "cut at {len} went unnoticed"
            );
        }
    }
}
