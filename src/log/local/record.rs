//! Byte-level framing of the log: the file header and the record header.
//! Written by hand, fixed-width little-endian; only the payload goes through
//! the codec. `docs/FORMAT.md` is the specification this module implements.
//!
//! Checksums are CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected,
//! init and final XOR 0xFFFFFFFF), as computed by the `crc32c` crate.

use crate::error::Damage;

/// The first eight bytes of every log file.
pub const FILE_MAGIC: [u8; 8] = *b"TKTLOG\r\n";
/// The format version this build writes. Version 2 is version 1 plus one
/// rule: the last segment may end in a zero-filled (preallocated) tail.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this build reads.
pub const FORMAT_VERSION_OLDEST: u32 = 1;
/// Length of the file header in bytes.
pub const FILE_HEADER_LEN: usize = 32;
/// Length of a record header in bytes.
pub const RECORD_HEADER_LEN: usize = 16;
/// The largest payload a record may carry. Longer records are refused on
/// write and treated as damage on read.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = crate::log::RECORD_PAYLOAD_BYTES_MAX;

/// The file header: magic, version, and the sequence number of the file's
/// first record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// The log sequence number of the file's first record (1 for a new log).
    pub first_lsn: u64,
    /// The segment's format version, from [`FORMAT_VERSION_OLDEST`] to
    /// [`FORMAT_VERSION`].
    pub version: u32,
}

impl FileHeader {
    /// The header of a new segment, in the version this build writes.
    pub fn new(first_lsn: u64) -> FileHeader {
        FileHeader {
            first_lsn,
            version: FORMAT_VERSION,
        }
    }

    /// Whether the segment may end in a zero-filled tail (version 2 on).
    pub fn allows_zero_tail(&self) -> bool {
        self.version >= 2
    }

    /// Encodes the header. Layout: `magic[8]` | version u32 | flags u32 (0) | first_lsn u64 |
    /// reserved u32 (0) | crc u32 over bytes 0..28.
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut bytes = [0u8; FILE_HEADER_LEN];
        bytes[0..8].copy_from_slice(&FILE_MAGIC);
        bytes[8..12].copy_from_slice(&self.version.to_le_bytes());
        // 12..16 flags and 24..28 reserved stay zero.
        bytes[16..24].copy_from_slice(&self.first_lsn.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Decodes and checks a file header.
    pub fn decode(bytes: &[u8; FILE_HEADER_LEN]) -> Result<FileHeader, Damage> {
        if bytes[0..8] != FILE_MAGIC {
            return Err(Damage::BadMagic);
        }
        if crc32c::crc32c(&bytes[0..28]) != read_u32(bytes, 28) {
            return Err(Damage::BadFileHeader);
        }
        let version = read_u32(bytes, 8);
        if !(FORMAT_VERSION_OLDEST..=FORMAT_VERSION).contains(&version) {
            return Err(Damage::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if read_u32(bytes, 12) != 0 || read_u32(bytes, 24) != 0 {
            return Err(Damage::BadFileHeader);
        }
        let first_lsn = read_u64(bytes, 16);
        if first_lsn == 0 {
            return Err(Damage::BadFileHeader);
        }
        Ok(FileHeader { first_lsn, version })
    }
}

/// A record header, as decoded after its own checksum has passed.
///
/// Records carry no sequence number of their own: a record's LSN is the file
/// header's first LSN plus the number of records before it, and replay's
/// per-change checks (ids, versions) catch a duplicated or misplaced record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length in bytes, at most [`RECORD_PAYLOAD_BYTES_MAX`].
    pub payload_len: u32,
    /// Bytes written after the last sync and before this record: the log was
    /// durable up to `offset - unsynced_before` when this record was written.
    pub unsynced_before: u32,
    /// CRC-32C over header bytes 4..12 (length and `unsynced_before`) and the payload.
    pub payload_crc: u32,
}

impl RecordHeader {
    /// Total bytes of the record on disk.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.payload_len)
    }

    /// Decodes and checks a header: first its checksum, then the length bound.
    /// The payload is checked by [`Self::verify_payload`].
    pub fn decode(bytes: &[u8; RECORD_HEADER_LEN]) -> Result<RecordHeader, Damage> {
        if crc32c::crc32c(&bytes[4..16]) != read_u32(bytes, 0) {
            return Err(Damage::BadRecordHeader);
        }
        let header = RecordHeader {
            payload_len: read_u32(bytes, 4),
            unsynced_before: read_u32(bytes, 8),
            payload_crc: read_u32(bytes, 12),
        };
        if header.payload_len as usize > RECORD_PAYLOAD_BYTES_MAX {
            return Err(Damage::RecordTooLong {
                len: u64::from(header.payload_len),
                max: RECORD_PAYLOAD_BYTES_MAX as u64,
            });
        }
        Ok(header)
    }

    /// Checks the payload against the header's payload checksum.
    pub fn verify_payload(&self, header_bytes: &[u8], payload: &[u8]) -> Result<(), Damage> {
        debug_assert_eq!(payload.len(), self.payload_len as usize);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header_bytes[4..12]), payload);
        if crc == self.payload_crc {
            Ok(())
        } else {
            Err(Damage::BadPayload)
        }
    }
}

/// Appends one framed record to `out`: a header followed by `payload`.
///
/// Layout of the header: header_crc u32 (over bytes 4..16) | payload_len u32 |
/// unsynced_before u32 | payload_crc u32 (over bytes 4..12 and the payload).
///
/// # Panics
/// If `payload` is longer than [`RECORD_PAYLOAD_BYTES_MAX`]; callers bound it first.
pub fn encode_record(out: &mut Vec<u8>, unsynced_before: u32, payload: &[u8]) {
    assert!(
        payload.len() <= RECORD_PAYLOAD_BYTES_MAX,
        "callers bound the payload before framing it"
    );
    let start = out.len();
    let mut header = [0u8; RECORD_HEADER_LEN];
    // The bound above makes this conversion lossless.
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..12].copy_from_slice(&unsynced_before.to_le_bytes());
    let payload_crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..12]), payload);
    header[12..16].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&header[4..16]);
    header[0..4].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    debug_assert_eq!(out.len() - start, RECORD_HEADER_LEN + payload.len());
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zeroed_record_header_never_passes_its_checksum() {
        // The rule that lets a version-2 segment end in zeros.
        assert_eq!(crc32c::crc32c(&[0u8; 12]), 0x2B60_B55D);
        assert!(RecordHeader::decode(&[0u8; RECORD_HEADER_LEN]).is_err());
    }

    #[test]
    fn both_versions_decode_and_others_are_refused() {
        for version in FORMAT_VERSION_OLDEST..=FORMAT_VERSION {
            let header = FileHeader {
                first_lsn: 7,
                version,
            };
            assert_eq!(FileHeader::decode(&header.encode()), Ok(header));
        }
        for version in [0, FORMAT_VERSION + 1] {
            let bytes = FileHeader {
                first_lsn: 7,
                version,
            }
            .encode();
            assert!(matches!(
                FileHeader::decode(&bytes),
                Err(Damage::UnsupportedVersion { found, .. }) if found == version
            ));
        }
        assert!(
            !FileHeader {
                first_lsn: 1,
                version: 1
            }
            .allows_zero_tail()
        );
        assert!(FileHeader::new(1).allows_zero_tail());
    }

    #[test]
    fn file_header_round_trips_and_rejects_every_bit_flip() {
        let header = FileHeader::new(1);
        let bytes = header.encode();
        assert_eq!(FileHeader::decode(&bytes), Ok(header));
        for bit in 0..FILE_HEADER_LEN * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(FileHeader::decode(&damaged).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn record_round_trips_and_rejects_every_header_bit_flip() {
        let mut out = Vec::new();
        encode_record(&mut out, 3, b"payload");
        let header_bytes: [u8; RECORD_HEADER_LEN] = out[..RECORD_HEADER_LEN].try_into().unwrap();
        let header = RecordHeader::decode(&header_bytes).unwrap();
        assert_eq!(header.unsynced_before, 3);
        assert_eq!(header.payload_len, 7);
        header
            .verify_payload(&header_bytes, &out[RECORD_HEADER_LEN..])
            .unwrap();
        for bit in 0..RECORD_HEADER_LEN * 8 {
            let mut damaged = header_bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(RecordHeader::decode(&damaged).is_err(), "bit {bit}");
        }
        for bit in 0..7 * 8 {
            let mut payload = out[RECORD_HEADER_LEN..].to_vec();
            payload[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                header.verify_payload(&header_bytes, &payload),
                Err(Damage::BadPayload)
            );
        }
    }

    #[test]
    fn oversized_length_is_damage_even_with_a_valid_checksum() {
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[4..8].copy_from_slice(&(RECORD_PAYLOAD_BYTES_MAX as u32 + 1).to_le_bytes());
        let crc = crc32c::crc32c(&header[4..16]);
        header[0..4].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            RecordHeader::decode(&header),
            Err(Damage::RecordTooLong { .. })
        ));
    }
}
