//! Snapshots: the whole state at one LSN, in one file, so that opening a
//! store replays only the records after it.
//!
//! A snapshot file is `snapshot-{lsn:020}.snap`: a fixed 72-byte header
//! (magic, format version, the LSN it covers, next id, ticket count, state
//! digest, last timestamp, payload length, block count, header CRC) and then
//! blocks of tickets in id order, each framed with its length and a CRC-32C
//! over length and bytes. `docs/FORMAT.md` is the specification.
//!
//! Writing follows the only protocol under which a crash at any step leaves
//! either the old snapshot or the new one, never a half-written file under a
//! snapshot's name: write `….snap.tmp`, `fdatasync` it, rename it to
//! `….snap`, `fsync` the directory. A leftover `.tmp` is never read and is
//! removed by the next successful open.
//!
//! Reading checks everything before any of it is used: the header CRC, the
//! file length, each block's CRC and decoding, ticket order, the counts, and
//! finally the digest recomputed from the decoded tickets against the one the
//! header carries. A snapshot that fails any check is not used; opening then
//! falls back to an older snapshot or to replaying the whole log.
//!
//! This module never runs on the server thread's hot path: the server
//! freezes the state ([`State::freeze`]) and a helper thread calls
//! [`write_snapshot`].

use std::io;
use std::path::{Path, PathBuf};

use crate::domain::codec::{self, SNAPSHOT_BLOCK_BYTES_MAX};
use crate::domain::command::CREATE_MANY_MAX;
use crate::domain::ticket::TicketId;
use crate::domain::time::Timestamp;
use crate::error::{Damage, StorageError};
use crate::state::{BLOCK_IDS, Frozen, State, StateBuilder};
use crate::storage::{OpenMode, Storage, StorageFile, read_exact_at};

/// The first eight bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"TKTSNP\r\n";
/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
/// Length of the snapshot header in bytes.
pub const SNAPSHOT_HEADER_LEN: usize = 72;
/// Length of a block's frame (length and CRC) in bytes.
pub const SNAPSHOT_BLOCK_HEADER_LEN: usize = 8;

const FILE_PREFIX: &str = "snapshot-";
const FILE_SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";

/// Bytes written to the file at a time.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// The writer syncs the file every this many bytes, so the page cache never
/// holds much of it dirty: a final `fdatasync` of hundreds of MiB would
/// make the log's own syncs, meanwhile, wait behind it. It is also where the
/// writer paces itself (see `Options::snapshot_write_bytes_per_s`).
const SYNC_EVERY_BYTES: u64 = 1 << 20;

/// Sleeps as long as the writer is ahead of `bytes_per_s` (0: no limit),
/// counting from `started`.
fn pace(started: std::time::Instant, written: u64, bytes_per_s: u64) {
    if bytes_per_s == 0 {
        return;
    }
    let due = std::time::Duration::from_secs_f64(written as f64 / bytes_per_s as f64);
    if let Some(ahead) = due.checked_sub(started.elapsed()) {
        std::thread::sleep(ahead);
    }
}

/// The file name of the snapshot that covers the log up to `lsn`.
pub fn snapshot_file_name(lsn: u64) -> String {
    format!("{FILE_PREFIX}{lsn:020}{FILE_SUFFIX}")
}

/// The LSN a snapshot file name stands for, if `name` is one.
pub fn parse_snapshot_file_name(name: &str) -> Option<u64> {
    parse_lsn_digits(name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?)
}

/// Whether `name` is a snapshot's temporary file (a write that never finished).
fn is_snapshot_temp_file(name: &str) -> bool {
    name.strip_suffix(TEMP_SUFFIX)
        .and_then(parse_snapshot_file_name)
        .is_some()
}

/// A snapshot on disk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotInfo {
    /// The LSN it covers: the state after every record up to and including this one.
    pub lsn: u64,
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Live tickets it holds.
    pub tickets: u64,
    /// The id the next created ticket gets, in that state.
    pub next_id: TicketId,
    /// The state digest (see `docs/FORMAT.md`).
    pub digest: u64,
}

/// A snapshot that opening did not use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSnapshot {
    /// Its file.
    pub path: PathBuf,
    /// Where in the file the damage was found.
    pub offset: u64,
    /// What is wrong with it.
    pub damage: Damage,
}

/// The snapshot header, as decoded after its checksum passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The LSN the snapshot covers.
    pub lsn: u64,
    /// The next id in that state.
    pub next_id: u64,
    /// Live tickets in that state.
    pub tickets: u64,
    /// The state digest.
    pub digest: u64,
    /// The latest timestamp applied in that state (ms since the epoch).
    pub last_at: u64,
    /// Bytes of blocks after the header.
    pub payload_len: u64,
    /// Blocks after the header.
    pub blocks: u32,
}

impl SnapshotHeader {
    /// Encodes the header. Layout: `magic[8]` | version u32 | flags u32 (0) |
    /// lsn u64 | next_id u64 | tickets u64 | digest u64 | last_at u64 |
    /// payload_len u64 | blocks u32 | crc u32 over bytes 0..68.
    pub fn encode(&self) -> [u8; SNAPSHOT_HEADER_LEN] {
        let mut bytes = [0u8; SNAPSHOT_HEADER_LEN];
        bytes[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
        bytes[8..12].copy_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        // 12..16 flags stay zero.
        bytes[16..24].copy_from_slice(&self.lsn.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.next_id.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.tickets.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.digest.to_le_bytes());
        bytes[48..56].copy_from_slice(&self.last_at.to_le_bytes());
        bytes[56..64].copy_from_slice(&self.payload_len.to_le_bytes());
        bytes[64..68].copy_from_slice(&self.blocks.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..68]);
        bytes[68..72].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Decodes and checks a header: magic, checksum, version, flags.
    pub fn decode(bytes: &[u8; SNAPSHOT_HEADER_LEN]) -> Result<SnapshotHeader, Damage> {
        if bytes[0..8] != SNAPSHOT_MAGIC {
            return Err(Damage::BadMagic);
        }
        if crc32c::crc32c(&bytes[0..68]) != u32_at(bytes, 68) {
            return Err(Damage::BadFileHeader);
        }
        let version = u32_at(bytes, 8);
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(Damage::UnsupportedVersion {
                found: version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let header = SnapshotHeader {
            lsn: u64_at(bytes, 16),
            next_id: u64_at(bytes, 24),
            tickets: u64_at(bytes, 32),
            digest: u64_at(bytes, 40),
            last_at: u64_at(bytes, 48),
            payload_len: u64_at(bytes, 56),
            blocks: u32_at(bytes, 64),
        };
        if u32_at(bytes, 12) != 0 || header.next_id == 0 || header.tickets >= header.next_id {
            return Err(Damage::BadFileHeader);
        }
        Ok(header)
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Frames one block: length u32 | CRC-32C over the length bytes and the block | block.
fn frame_block(block: &[u8], out: &mut Vec<u8>) {
    debug_assert!(block.len() <= SNAPSHOT_BLOCK_BYTES_MAX);
    // Bounded by SNAPSHOT_BLOCK_BYTES_MAX, so the conversion is lossless.
    let len = (block.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), block);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(block);
}

/// Snapshot files found in a directory: (LSN, path), oldest first.
pub(crate) type SnapshotFiles = Vec<(u64, PathBuf)>;

/// The snapshots in `dir`, oldest first, and any leftover temporary files.
pub(crate) fn list_snapshots(
    storage: &dyn Storage,
    dir: &Path,
) -> io::Result<(SnapshotFiles, Vec<PathBuf>)> {
    let mut snapshots = Vec::new();
    let mut temps = Vec::new();
    for name in storage.list_dir(dir)? {
        if let Some(lsn) = parse_snapshot_file_name(&name) {
            snapshots.push((lsn, dir.join(&name)));
        } else if is_snapshot_temp_file(&name) {
            temps.push(dir.join(&name));
        }
    }
    snapshots.sort();
    Ok((snapshots, temps))
}

/// Writes a snapshot of `frozen`, the state after every record up to `lsn`,
/// to `dir`, crash-safely: temporary file, `fdatasync`, rename, directory
/// `fsync`. Calls `progress` with the tickets written so far. When this
/// returns `Ok`, the snapshot is durable under its name.
pub(crate) fn write_snapshot(
    storage: &dyn Storage,
    dir: &Path,
    lsn: u64,
    frozen: &Frozen,
    bytes_per_s: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<SnapshotInfo, StorageError> {
    let path = dir.join(snapshot_file_name(lsn));
    let temp = dir.join(format!("{}{TEMP_SUFFIX}", snapshot_file_name(lsn)));
    let result = write_temp(storage, &temp, lsn, frozen, bytes_per_s, progress).and_then(|bytes| {
        storage
            .rename(&temp, &path)
            .map_err(|e| StorageError::io("rename", &temp, e))?;
        storage
            .sync_dir(dir)
            .map_err(|e| StorageError::io("fsync directory", dir, e))?;
        Ok(bytes)
    });
    match result {
        Ok(bytes) => Ok(SnapshotInfo {
            lsn,
            path,
            bytes,
            tickets: frozen.tickets,
            next_id: TicketId::from(frozen.next_id),
            digest: frozen.digest,
        }),
        Err(error) => {
            // Best effort: a leftover temporary file is harmless (never read,
            // removed at the next open), so a failure to remove it is not reported.
            let _ = storage.remove_file(&temp);
            Err(error)
        }
    }
}

/// Encodes a snapshot of `frozen`, the state after every record up to
/// `lsn`, in memory: the bytes of a snapshot file, for a log that keeps
/// snapshots itself ([`ImageStore`](crate::log::ImageStore)). `place`
/// names it in errors. Calls `progress` with the tickets encoded so far.
pub(crate) fn encode_snapshot(
    place: &Path,
    lsn: u64,
    frozen: &Frozen,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u8>, StorageError> {
    let mut file = MemoryFile::default();
    // Nothing to pace: no disk is written here (the store's upload is).
    write_to(&mut file, place, lsn, frozen, 0, progress)?;
    Ok(file.bytes)
}

/// Reads, checks and loads a snapshot from `bytes` (as
/// [`encode_snapshot`] made them, named for `lsn`, `place` in reports)
/// exactly as [`load_snapshot`] does a file.
pub(crate) fn decode_snapshot(
    bytes: Vec<u8>,
    place: &Path,
    lsn: u64,
    lsn_max: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(State, SnapshotInfo), (u64, Damage)> {
    let mut file = MemoryFile { bytes };
    load_from(&mut file, place, lsn, lsn_max, progress)
}

/// A file in memory, for encoding and decoding snapshots held elsewhere.
#[derive(Debug, Default)]
struct MemoryFile {
    bytes: Vec<u8>,
}

impl StorageFile for MemoryFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start
            .checked_add(data.len())
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[start..end].copy_from_slice(data);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.bytes
            .resize(usize::try_from(len).map_err(io::Error::other)?, 0);
        Ok(())
    }
}

/// Writes the whole snapshot to `temp` and syncs it; returns its length.
fn write_temp(
    storage: &dyn Storage,
    temp: &Path,
    lsn: u64,
    frozen: &Frozen,
    bytes_per_s: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StorageError> {
    let mut file = storage
        .open_file(temp, OpenMode::CreateReadWrite)
        .map_err(|e| StorageError::io("create", temp, e))?;
    write_to(file.as_mut(), temp, lsn, frozen, bytes_per_s, progress)
}

/// Writes the whole snapshot to `file` (`temp` in errors) and syncs it;
/// returns its length.
fn write_to(
    file: &mut dyn StorageFile,
    temp: &Path,
    lsn: u64,
    frozen: &Frozen,
    bytes_per_s: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StorageError> {
    let io_error = |op: &'static str| move |e: io::Error| StorageError::io(op, temp, e);
    // A leftover of an earlier attempt may be longer than what is written now.
    file.set_len(0).map_err(io_error("truncate"))?;
    let mut offset = SNAPSHOT_HEADER_LEN as u64;
    let started = std::time::Instant::now();
    let mut buffer = Vec::with_capacity(WRITE_BUFFER_BYTES + SNAPSHOT_BLOCK_BYTES_MAX);
    let mut block = Vec::with_capacity(BLOCK_IDS * 256);
    let mut blocks = 0u32;
    let mut tickets = 0u64;
    for block_tickets in frozen.blocks() {
        let mut in_block = 0;
        block.clear();
        codec::encode_snapshot_block(block_tickets.inspect(|_| in_block += 1), &mut block)
            .map_err(|reason| StorageError::io("encode", temp, io::Error::other(reason)))?;
        if in_block == 0 {
            continue;
        }
        frame_block(&block, &mut buffer);
        blocks += 1;
        tickets += in_block;
        if buffer.len() >= WRITE_BUFFER_BYTES {
            file.write_all_at(offset, &buffer)
                .map_err(io_error("write"))?;
            let synced_before = offset / SYNC_EVERY_BYTES;
            offset += buffer.len() as u64;
            buffer.clear();
            if offset / SYNC_EVERY_BYTES > synced_before {
                file.sync_data().map_err(io_error("fdatasync"))?;
                pace(started, offset, bytes_per_s);
            }
            progress(tickets);
        }
    }
    file.write_all_at(offset, &buffer)
        .map_err(io_error("write"))?;
    offset += buffer.len() as u64;
    debug_assert_eq!(
        tickets, frozen.tickets,
        "the frozen count matches the tickets"
    );
    let header = SnapshotHeader {
        lsn,
        next_id: frozen.next_id,
        tickets,
        digest: frozen.digest,
        last_at: frozen.last_at.as_unix_millis(),
        payload_len: offset - SNAPSHOT_HEADER_LEN as u64,
        blocks,
    };
    file.write_all_at(0, &header.encode())
        .map_err(io_error("write"))?;
    file.sync_data().map_err(io_error("fdatasync"))?;
    progress(tickets);
    Ok(offset)
}

/// Reads, checks and loads the snapshot at `path` (named for `lsn`) into a
/// fresh state. Calls `progress` with the tickets loaded so far. Any failed
/// check is returned as the damage and the byte offset where it was found;
/// an I/O error is returned as damage at offset 0 (the snapshot is then not
/// used, like a damaged one).
///
/// `lsn_max` bounds the LSN a snapshot may cover (the log's [`OpeningLog::lsn_bound`](crate::log::OpeningLog::lsn_bound)):
/// a header claiming more, or a next id more than [`CREATE_MANY_MAX`] per
/// covered record, is damage — checked before anything is allocated from it.
pub(crate) fn load_snapshot(
    storage: &dyn Storage,
    path: &Path,
    lsn: u64,
    lsn_max: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(State, SnapshotInfo), (u64, Damage)> {
    let mut file = storage
        .open_file(path, OpenMode::ReadOnly)
        .map_err(|e| (0, Damage::Unreadable(e.to_string())))?;
    load_from(file.as_mut(), path, lsn, lsn_max, progress)
}

/// [`load_snapshot`] of an open file.
fn load_from(
    file: &mut dyn StorageFile,
    path: &Path,
    lsn: u64,
    lsn_max: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(State, SnapshotInfo), (u64, Damage)> {
    let io_damage = |e: io::Error| (0, Damage::Unreadable(e.to_string()));
    let file_len = file.size().map_err(io_damage)?;
    let mut header_bytes = [0u8; SNAPSHOT_HEADER_LEN];
    if file_len < SNAPSHOT_HEADER_LEN as u64 {
        return Err((
            0,
            Damage::Truncated {
                len: SNAPSHOT_HEADER_LEN as u64,
            },
        ));
    }
    read_exact_at(file, 0, &mut header_bytes).map_err(io_damage)?;
    let header = SnapshotHeader::decode(&header_bytes).map_err(|damage| (0, damage))?;
    if header.lsn != lsn {
        return Err((
            0,
            Damage::Misnamed {
                named: lsn,
                header: header.lsn,
            },
        ));
    }
    if header.lsn > lsn_max {
        return Err((
            0,
            Damage::SnapshotBeyondLog {
                snapshot_lsn: header.lsn,
                log_end_lsn: lsn_max,
            },
        ));
    }
    // Replay goes on at the LSN after the snapshot's, and every ticket's
    // next version must fit below it (see the per-ticket checks below).
    if header.lsn == u64::MAX {
        return Err((
            0,
            Damage::Inconsistent(format!(
                "it covers LSN {}, which leaves no LSN for a record after it",
                header.lsn
            )),
        ));
    }
    // Every ticket id was minted by a record at or before `lsn`, and one
    // record creates at most CREATE_MANY_MAX tickets.
    if header.lsn.saturating_mul(CREATE_MANY_MAX as u64) < header.next_id - 1 {
        return Err((
            0,
            Damage::Inconsistent(format!(
                "next id {} is more than {CREATE_MANY_MAX} ids per record of the {} it covers",
                header.next_id, header.lsn
            )),
        ));
    }
    let expected_len = (SNAPSHOT_HEADER_LEN as u64).checked_add(header.payload_len);
    if expected_len != Some(file_len) {
        return Err((
            0,
            Damage::Truncated {
                len: expected_len.unwrap_or(u64::MAX),
            },
        ));
    }
    let mut builder = StateBuilder::default();
    let mut offset = SNAPSHOT_HEADER_LEN as u64;
    let mut block = Vec::new();
    let mut loaded = 0u64;
    for _ in 0..header.blocks {
        let block_offset = offset;
        let damaged = |damage: Damage| (block_offset, damage);
        let mut frame = [0u8; SNAPSHOT_BLOCK_HEADER_LEN];
        if offset + SNAPSHOT_BLOCK_HEADER_LEN as u64 > file_len {
            return Err(damaged(Damage::Truncated {
                len: SNAPSHOT_BLOCK_HEADER_LEN as u64,
            }));
        }
        read_exact_at(file, offset, &mut frame).map_err(io_damage)?;
        let len = u32_at(&frame, 0) as usize;
        // Bound the length before allocating anything from it.
        if len > SNAPSHOT_BLOCK_BYTES_MAX {
            return Err(damaged(Damage::RecordTooLong {
                len: len as u64,
                max: SNAPSHOT_BLOCK_BYTES_MAX as u64,
            }));
        }
        if offset + (SNAPSHOT_BLOCK_HEADER_LEN + len) as u64 > file_len {
            return Err(damaged(Damage::Truncated {
                len: (SNAPSHOT_BLOCK_HEADER_LEN + len) as u64,
            }));
        }
        block.resize(len, 0);
        read_exact_at(file, offset + SNAPSHOT_BLOCK_HEADER_LEN as u64, &mut block)
            .map_err(io_damage)?;
        if crc32c::crc32c_append(crc32c::crc32c(&frame[0..4]), &block) != u32_at(&frame, 4) {
            return Err(damaged(Damage::BadPayload));
        }
        let tickets = codec::decode_snapshot_block(&block)
            .map_err(|reason| damaged(Damage::Undecodable(reason)))?;
        for ticket in tickets {
            // Checked before the builder sizes the state from the id (a huge
            // one would overflow `id + 1` or pad the state out to it).
            if ticket.id.get() >= header.next_id {
                return Err(damaged(Damage::Inconsistent(format!(
                    "ticket {} is not below the next id {}",
                    ticket.id, header.next_id
                ))));
            }
            // A ticket's version counts the records that changed it, so it
            // is at most the LSN covered; this keeps every later `version + 1`
            // (deciding or replaying an update) from overflowing.
            if ticket.version > header.lsn {
                return Err(damaged(Damage::Inconsistent(format!(
                    "ticket {} is at version {}, past the {} records the snapshot covers",
                    ticket.id, ticket.version, header.lsn
                ))));
            }
            builder
                .push(ticket)
                .map_err(|reason| damaged(Damage::Inconsistent(reason)))?;
            loaded += 1;
        }
        offset += (SNAPSHOT_BLOCK_HEADER_LEN + len) as u64;
        progress(loaded, header.tickets);
    }
    if offset != file_len {
        return Err((
            offset,
            Damage::Inconsistent(format!(
                "the header says {} blocks, but {} bytes follow them",
                header.blocks,
                file_len - offset
            )),
        ));
    }
    if loaded != header.tickets {
        return Err((
            0,
            Damage::Inconsistent(format!(
                "the header says {} tickets, the blocks hold {loaded}",
                header.tickets
            )),
        ));
    }
    let state = builder
        .finish(header.next_id, Timestamp::from_unix_millis(header.last_at))
        .map_err(|reason| (0, Damage::Inconsistent(reason)))?;
    let found = state.digest();
    if found != header.digest {
        return Err((
            0,
            Damage::DigestMismatch {
                lsn,
                expected: header.digest,
                found,
            },
        ));
    }
    Ok((
        state,
        SnapshotInfo {
            lsn,
            path: path.to_path_buf(),
            bytes: file_len,
            tickets: header.tickets,
            next_id: TicketId::from(header.next_id),
            digest: header.digest,
        },
    ))
}

/// The size in bytes of the file at `path`.
pub(crate) fn file_size(storage: &dyn Storage, path: &Path) -> io::Result<u64> {
    storage.open_file(path, OpenMode::ReadOnly)?.size()
}

/// Digits in a snapshot's LSN, zero-padded so that names sort in LSN order.
const LSN_DIGITS: usize = 20;

/// Parses exactly [`LSN_DIGITS`] ASCII digits.
fn parse_lsn_digits(digits: &str) -> Option<u64> {
    if digits.len() != LSN_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(snapshot_file_name(42), "snapshot-00000000000000000042.snap");
        assert_eq!(parse_snapshot_file_name(&snapshot_file_name(42)), Some(42));
        assert_eq!(parse_snapshot_file_name(&snapshot_file_name(0)), Some(0));
        assert!(is_snapshot_temp_file(
            "snapshot-00000000000000000042.snap.tmp"
        ));
        for other in [
            "snapshot-42.snap",
            "snapshot-00000000000000000042.snap.tmp",
            "00000000000000000042.wal",
            "snapshot-0000000000000000004x.snap",
        ] {
            assert_eq!(parse_snapshot_file_name(other), None, "{other}");
        }
    }

    /// A snapshot whose checksums all pass, holding `tickets`.
    fn snapshot_bytes(
        lsn: u64,
        next_id: u64,
        tickets: &[crate::domain::ticket::Ticket],
    ) -> Vec<u8> {
        let mut block = Vec::new();
        codec::encode_snapshot_block(tickets.iter(), &mut block).unwrap();
        let mut payload = Vec::new();
        frame_block(&block, &mut payload);
        let header = SnapshotHeader {
            lsn,
            next_id,
            tickets: tickets.len() as u64,
            digest: 0,
            last_at: 0,
            payload_len: payload.len() as u64,
            blocks: 1,
        };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(&payload);
        bytes
    }

    fn ticket(id: u64, version: u64) -> crate::domain::ticket::Ticket {
        crate::domain::ticket::Ticket {
            id: TicketId::from(id),
            title: "t".try_into().unwrap(),
            description: "d".try_into().unwrap(),
            status: crate::domain::ticket::Status::ToDo,
            version,
            created_at: Timestamp::from_unix_millis(0),
            updated_at: Timestamp::from_unix_millis(0),
        }
    }

    #[test]
    fn a_ticket_id_at_or_past_the_next_id_is_damage_not_a_panic() {
        // Ticket u64::MAX used to overflow `id + 1` in the state builder
        // (and a large id padded the state out to it before any check).
        for id in [u64::MAX, 10, 1 << 40] {
            let bytes = snapshot_bytes(5, 10, &[ticket(id, 1)]);
            let found = decode_snapshot(bytes, Path::new("s"), 5, 5, &mut |_, _| {});
            assert!(
                matches!(found, Err((72, Damage::Inconsistent(_)))),
                "id {id}: {:?}",
                found.map(|(_, info)| info)
            );
        }
    }

    #[test]
    fn a_ticket_version_past_the_snapshot_lsn_is_damage() {
        // A version of u64::MAX made the next update's `version + 1` overflow.
        let bytes = snapshot_bytes(5, 10, &[ticket(1, u64::MAX)]);
        let found = decode_snapshot(bytes, Path::new("s"), 5, 5, &mut |_, _| {});
        assert!(
            matches!(found, Err((72, Damage::Inconsistent(_)))),
            "{:?}",
            found.map(|(_, info)| info)
        );
    }

    #[test]
    fn a_snapshot_at_the_last_lsn_is_damage() {
        // Replay starts at the LSN after the snapshot's: there is none.
        let bytes = snapshot_bytes(u64::MAX, 1, &[]);
        let found = decode_snapshot(bytes, Path::new("s"), u64::MAX, u64::MAX, &mut |_, _| {});
        assert!(
            matches!(found, Err((0, Damage::Inconsistent(_)))),
            "{:?}",
            found.map(|(_, info)| info)
        );
    }

    #[test]
    fn header_round_trips_and_rejects_every_bit_flip() {
        let header = SnapshotHeader {
            lsn: 77,
            next_id: 10,
            tickets: 4,
            digest: 0xdead_beef_0123_4567,
            last_at: 1_800_000_000_000,
            payload_len: 1234,
            blocks: 1,
        };
        let bytes = header.encode();
        assert_eq!(SnapshotHeader::decode(&bytes), Ok(header));
        for bit in 0..SNAPSHOT_HEADER_LEN * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(SnapshotHeader::decode(&damaged).is_err(), "bit {bit}");
        }
    }
}
