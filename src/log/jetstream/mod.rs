//! The JetStream log backend (feature `jetstream`): the command log as a
//! NATS JetStream stream replicated on three servers, shared by every host
//! that opens it. See docs/REPLICATION.md for the protocol and what it
//! guarantees.
//!
//! One message per group-commit batch (split over several when it would
//! pass the message size), framed and checksummed by [`frame`], published
//! with `Nats-Expected-Last-Sequence` set to the stream sequence the batch
//! was decided at: the stream takes it only if nobody appended meanwhile.
//! The ack's sequence is the batch's position; the frame carries the LSN of
//! its first record, so LSNs stay per record as the engine counts them. A
//! fence failure is [`StorageError::Fenced`]: the engine catches up
//! ([`CommandLog::catch_up`]) and decides the batch again. An append in
//! doubt is resolved by reading back the sequence it was fenced for
//! ([`io`]); past the deadline it is [`StorageError::Unavailable`], never
//! an acknowledgement.
//!
//! Every host tails the stream with an ordered consumer. Each message must
//! come at the next sequence, pass its checksums, record the sequence
//! before it and continue the LSNs; anything else poisons the log with
//! [`StorageError::Diverged`].
//!
//! Architecture invariant: `applied_seq` only moves to a sequence the
//! stream's leader confirmed holds exactly the bytes applied for it.
//! Architecture invariant: this module names no ticket; payloads are bytes.

pub mod frame;
mod images;
mod io;

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use images::bucket_for;
pub use io::{SERVER_VERSION_MIN, STREAM_REPLICAS, subject_for};

use crate::error::{Damage, OpenError, StorageError};
use crate::log::jetstream_options::JetStreamOptions;
use crate::log::local::lock_directory;
use crate::log::{
    CommandLog, Flush, ImageMark, ImageStore, LogReader, LogRecord, LogSize, LogWaker, OpeningLog,
    RecordBatch, RecordPlace, Released, Replayed,
};
use crate::storage::{OpenMode, Storage, StorageLock};
use frame::{BatchId, FRAME_HEADER_LEN, RECORD_HEADER_LEN};
use images::Images;
use io::{Io, Published, Tail, TailItem};

/// A JetStream log connected and checked, not yet replayed.
#[derive(Debug)]
pub struct JetStreamOpening {
    io: Arc<Io>,
    last_seq: u64,
    first_seq: u64,
    last_payload: Option<Bytes>,
    frame_bytes_max: usize,
    /// The stream's snapshot bucket.
    images: Arc<Images>,
    /// Where replay starts, after a snapshot's mark was checked: the
    /// sequence it ends at and the LSN of its last record.
    resume: ImageMark,
    lock: Box<dyn StorageLock>,
}

impl JetStreamOpening {
    /// Takes `dir`'s lock, connects to the servers, refuses one older than
    /// [`SERVER_VERSION_MIN`], creates the stream or checks that the
    /// existing one is configured as ticketlog needs, and does the same for
    /// its snapshot bucket ([`bucket_for`]).
    pub fn open(
        storage: &dyn Storage,
        dir: &Path,
        options: &JetStreamOptions,
    ) -> Result<JetStreamOpening, OpenError> {
        let lock = lock_directory(storage, dir)?;
        let opened = Io::open(
            options.get_servers(),
            options.get_stream(),
            options.get_message_bytes_max(),
            options.get_in_doubt_deadline(),
        )?;
        check_stream_marker(
            storage,
            dir,
            options.get_stream(),
            &format!(
                "{} created {}\n",
                options.get_stream(),
                opened.created_unix_nanos
            ),
        )?;
        let images = Arc::new(Images::open(Arc::clone(&opened.io))?);
        Ok(JetStreamOpening {
            io: opened.io,
            last_seq: opened.last_seq,
            first_seq: opened.first_seq,
            last_payload: opened.last_payload,
            frame_bytes_max: opened.frame_bytes_max,
            images,
            resume: ImageMark {
                lsn: 0,
                position: 0,
            },
            lock,
        })
    }

    fn place(&self) -> PathBuf {
        stream_place(&self.io.stream)
    }
}

/// The file in the data directory that names the stream its snapshots
/// were taken from: the stream's name and creation time.
pub const STREAM_MARKER_FILE_NAME: &str = "jetstream-stream";

/// Refuses a data directory whose snapshots belong to another stream (or to
/// an earlier stream of the same name): its snapshots would load a state
/// this stream never had. Writes the marker (durably) on first use.
fn check_stream_marker(
    storage: &dyn Storage,
    dir: &Path,
    stream: &str,
    identity: &str,
) -> Result<(), OpenError> {
    let path = dir.join(STREAM_MARKER_FILE_NAME);
    let exists = storage
        .exists(&path)
        .map_err(|e| OpenError::io("stat", &path, e))?;
    if exists {
        let mut file = storage
            .open_file(&path, OpenMode::ReadOnly)
            .map_err(|e| OpenError::io("open", &path, e))?;
        let len = file.size().map_err(|e| OpenError::io("stat", &path, e))?;
        let mut found = vec![0; usize::try_from(len.min(4096)).unwrap_or(4096)];
        crate::storage::read_exact_at(file.as_mut(), 0, &mut found)
            .map_err(|e| OpenError::io("read", &path, e))?;
        let found = String::from_utf8_lossy(&found);
        if found != identity {
            return Err(OpenError::LogConfigMismatch {
                stream: stream.to_string(),
                field: "the data directory's stream (its snapshots are of that stream)",
                expected: found.trim().to_string(),
                found: identity.trim().to_string(),
            });
        }
        return Ok(());
    }
    let temp = dir.join(format!("{STREAM_MARKER_FILE_NAME}.tmp"));
    let mut file = storage
        .open_file(&temp, OpenMode::CreateReadWrite)
        .map_err(|e| OpenError::io("create", &temp, e))?;
    file.set_len(0)
        .and_then(|()| file.write_all_at(0, identity.as_bytes()))
        .and_then(|()| file.sync_data())
        .map_err(|e| OpenError::io("write", &temp, e))?;
    drop(file);
    storage
        .rename(&temp, &path)
        .map_err(|e| OpenError::io("rename", &temp, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| OpenError::io("fsync directory", dir, e))
}

/// How errors name the stream where a file path would go.
fn stream_place(stream: &str) -> PathBuf {
    PathBuf::from(format!("nats-stream:{stream}"))
}

impl OpeningLog for JetStreamOpening {
    fn is_new(&self) -> bool {
        self.last_seq == 0
    }

    fn first_lsn(&self) -> u64 {
        1
    }

    fn lsn_bound(&self) -> Result<u64, OpenError> {
        let Some(payload) = &self.last_payload else {
            return Ok(0);
        };
        let header = frame::decode(payload)
            .map_err(|damage| OpenError::Corrupt {
                file: self.place(),
                offset: self.last_seq,
                damage,
            })?
            .header;
        // No overflow: decode refuses a frame whose LSNs run past u64::MAX,
        // and one with no record.
        Ok(header.first_lsn + u64::from(header.records) - 1)
    }

    fn image_store(&self) -> Option<Arc<dyn ImageStore>> {
        Some(Arc::clone(&self.images) as Arc<dyn ImageStore>)
    }

    fn resume_after(&mut self, mark: ImageMark) -> Result<(), Damage> {
        if mark.lsn == 0 && mark.position == 0 {
            self.resume = mark;
            return Ok(());
        }
        if mark.position == 0 || mark.lsn == 0 {
            return Err(Damage::Inconsistent(format!(
                "it records LSN {} at stream sequence {}: not a position in the stream",
                mark.lsn, mark.position
            )));
        }
        if mark.position > self.last_seq {
            return Err(Damage::Inconsistent(format!(
                "it ends at stream sequence {}, past the stream's last, {}",
                mark.position, self.last_seq
            )));
        }
        let payload = self
            .io
            .read_message(mark.position)
            .map_err(|cause| {
                Damage::Unreadable(format!(
                    "the message at stream sequence {}: {cause}",
                    mark.position
                ))
            })?
            .ok_or_else(|| {
                Damage::Inconsistent(format!(
                    "the stream holds no message at sequence {}",
                    mark.position
                ))
            })?;
        let header = frame::decode(&payload)
            .map_err(|damage| {
                Damage::Inconsistent(format!(
                    "the message at stream sequence {} is damaged: {damage}",
                    mark.position
                ))
            })?
            .header;
        // No overflow: see `lsn_bound`.
        let ends_at = header.first_lsn + u64::from(header.records) - 1;
        if ends_at != mark.lsn {
            return Err(Damage::Inconsistent(format!(
                "the message at stream sequence {} ends at LSN {ends_at}, not at the snapshot's {}",
                mark.position, mark.lsn
            )));
        }
        self.resume = mark;
        Ok(())
    }

    fn replay(
        self: Box<Self>,
        after_lsn: u64,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<(), Damage>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(Box<dyn CommandLog>, Replayed), OpenError> {
        let place = self.place();
        if self.last_seq > 0 && self.first_seq > 1 {
            return Err(OpenError::Corrupt {
                file: place,
                offset: 1,
                damage: Damage::MissingRecords {
                    first: 1,
                    last: self.first_seq - 1,
                },
            });
        }
        // From the checked snapshot mark, if one was given: the message
        // after it must continue it (`check_continuity`).
        let mut tail = self.io.start_tail(self.resume.position + 1);
        let mut next_lsn = self.resume.lsn + 1;
        let mut bytes = 0;
        let mut records_replayed = 0;
        for expected_seq in self.resume.position + 1..=self.last_seq {
            let Some(TailItem::Message { seq, payload }) =
                self.io.next_tail(&mut tail, self.io.deadline)
            else {
                return Err(OpenError::LogUnreachable {
                    servers: self.io.servers.clone(),
                    cause: format!(
                        "replay got no message at sequence {expected_seq} within {:?}",
                        self.io.deadline
                    ),
                });
            };
            let (seq, payload) = if seq == expected_seq {
                (seq, payload)
            } else {
                // The consumer delivered something else than the next
                // message. Only the stream can say a message is missing:
                // ask it, and go on from there with a new consumer.
                io::trace(|| {
                    format!("replay: the consumer delivered {seq} where {expected_seq} was due")
                });
                match self.io.read_message(expected_seq) {
                    Ok(Some(payload)) => {
                        tail = self.io.start_tail(expected_seq + 1);
                        (expected_seq, payload)
                    }
                    Ok(None) => {
                        return Err(OpenError::Corrupt {
                            file: place.clone(),
                            offset: expected_seq,
                            damage: Damage::MissingRecords {
                                first: expected_seq,
                                last: seq.saturating_sub(1).max(expected_seq),
                            },
                        });
                    }
                    Err(cause) => {
                        return Err(OpenError::LogUnreachable {
                            servers: self.io.servers.clone(),
                            cause: format!(
                                "replay could not read sequence {expected_seq}: {cause}"
                            ),
                        });
                    }
                }
            };
            let corrupt = |damage| OpenError::Corrupt {
                file: place.clone(),
                offset: seq,
                damage,
            };
            let frame = frame::decode(&payload).map_err(corrupt)?;
            check_continuity(&frame.header, seq, next_lsn).map_err(corrupt)?;
            for (offset, len, record) in frame.records {
                if next_lsn > after_lsn {
                    visit(LogRecord {
                        lsn: next_lsn,
                        place: RecordPlace {
                            file: seq,
                            offset,
                            len,
                        },
                        payload: record,
                    })
                    .map_err(corrupt)?;
                    records_replayed += 1;
                }
                next_lsn += 1;
            }
            bytes += payload.len() as u64;
            progress(seq, self.last_seq);
        }
        let mut host = RandomState::new().build_hasher();
        host.write_u64(self.last_seq);
        let log = JetStreamLog {
            io: self.io,
            tail,
            tail_next: self.last_seq + 1,
            applied_seq: self.last_seq,
            next_lsn,
            bytes,
            host: host.finish(),
            counter: 0,
            own: VecDeque::new(),
            fenced_at: None,
            poisoned: None,
            frame_bytes_max: self.frame_bytes_max,
            images: self.images,
            lost_last_race: false,
            others_writing: false,
            _lock: self.lock,
        };
        Ok((
            Box::new(log),
            Replayed {
                records_replayed,
                scans: Vec::new(),
            },
        ))
    }
}

/// A frame at `seq` must record the sequence before it and continue the
/// LSNs where the previous frame left them.
fn check_continuity(header: &frame::FrameHeader, seq: u64, next_lsn: u64) -> Result<(), Damage> {
    if header.prev_seq != seq - 1 {
        return Err(Damage::Inconsistent(format!(
            "the batch at sequence {seq} was decided at sequence {}, not {}",
            header.prev_seq,
            seq - 1
        )));
    }
    if header.first_lsn != next_lsn {
        return Err(Damage::Inconsistent(format!(
            "the batch at sequence {seq} starts at LSN {}, not {next_lsn}",
            header.first_lsn
        )));
    }
    Ok(())
}

/// The JetStream log, open: the stream position this host has applied,
/// and the tail bringing in what other hosts append.
#[derive(Debug)]
pub struct JetStreamLog {
    io: Arc<Io>,
    tail: Tail,
    /// The sequence the tail must deliver next.
    tail_next: u64,
    /// The last stream sequence applied to the engine's state.
    applied_seq: u64,
    next_lsn: u64,
    /// Message bytes applied.
    bytes: u64,
    host: u64,
    counter: u64,
    /// This host's batches the tail has not delivered back yet: (sequence,
    /// frame checksum, frame bytes).
    own: VecDeque<(u64, u32, usize)>,
    /// After a fence failure: the sequence catch-up must reach.
    fenced_at: Option<u64>,
    poisoned: Option<StorageError>,
    frame_bytes_max: usize,
    /// The stream's snapshot bucket.
    images: Arc<Images>,
    /// Whether the last append lost the race (so the next goes at once).
    lost_last_race: bool,
    /// Whether another host appended since this host's last append.
    others_writing: bool,
    // Held while the log is open, like the local log's.
    _lock: Box<dyn StorageLock>,
}

impl JetStreamLog {
    fn diverged(&mut self, seq: u64, what: String) -> StorageError {
        let error = StorageError::Diverged {
            log: self.io.stream.clone(),
            seq,
            what,
        };
        if self.poisoned.is_none() {
            self.poisoned = Some(error.clone());
        }
        error
    }

    /// A pseudo-random pause up to `max` microseconds (xorshift on the
    /// host id and counter: fairness needs no better randomness).
    fn jitter_micros(&self, max: u64) -> u64 {
        let mut x = self.host ^ self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % max.max(1)
    }

    fn next_batch_id(&mut self) -> BatchId {
        self.counter += 1;
        BatchId {
            host: self.host,
            counter: self.counter,
        }
    }

    /// Takes one message from the tail: this host's own (already applied,
    /// must match), or the next one another host appended (applied now).
    fn take_tail(
        &mut self,
        item: TailItem,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<(), Damage>,
    ) -> Result<u64, StorageError> {
        let TailItem::Message { seq, payload } = item;
        if seq != self.tail_next {
            let what = format!(
                "the tail delivered sequence {seq} after {}: a hole or a repeat",
                self.tail_next - 1
            );
            return Err(self.diverged(seq, what));
        }
        self.tail_next += 1;
        let frame = match frame::decode(&payload) {
            Ok(frame) => frame,
            Err(damage) => return Err(self.diverged(seq, format!("a damaged batch: {damage}"))),
        };
        if seq <= self.applied_seq {
            return match self.own.pop_front() {
                Some((own_seq, crc, len))
                    if own_seq == seq && crc == frame.header.crc && len == payload.len() =>
                {
                    Ok(0)
                }
                _ => Err(self.diverged(
                    seq,
                    "the stream holds another batch than the one this host committed there".into(),
                )),
            };
        }
        if let Err(damage) = check_continuity(&frame.header, seq, self.next_lsn) {
            return Err(self.diverged(seq, damage.to_string()));
        }
        let mut lsn = self.next_lsn;
        for (offset, len, record) in frame.records {
            let applied = visit(LogRecord {
                lsn,
                place: RecordPlace {
                    file: seq,
                    offset,
                    len,
                },
                payload: record,
            });
            if let Err(damage) = applied {
                return Err(self.diverged(seq, format!("record {lsn} does not apply: {damage}")));
            }
            lsn += 1;
        }
        let applied = lsn - self.next_lsn;
        self.others_writing = true;
        self.next_lsn = lsn;
        self.applied_seq = seq;
        self.bytes += payload.len() as u64;
        Ok(applied)
    }

    /// Splits the batch's records into runs that each fit one message.
    fn frames<'b>(&self, batch: &'b RecordBatch) -> Result<Vec<Vec<&'b [u8]>>, StorageError> {
        let mut frames = Vec::new();
        let mut current: Vec<&[u8]> = Vec::new();
        let mut current_len = FRAME_HEADER_LEN;
        for payload in batch.payloads() {
            let len = RECORD_HEADER_LEN + payload.len();
            if FRAME_HEADER_LEN + len > self.frame_bytes_max {
                return Err(StorageError::RecordTooLarge {
                    len: payload.len(),
                    max: self.record_payload_bytes_max(),
                });
            }
            if current_len + len > self.frame_bytes_max {
                frames.push(std::mem::take(&mut current));
                current_len = FRAME_HEADER_LEN;
            }
            current.push(payload);
            current_len += len;
        }
        if !current.is_empty() {
            frames.push(current);
        }
        Ok(frames)
    }
}

impl CommandLog for JetStreamLog {
    fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    fn first_lsn(&self) -> u64 {
        1
    }

    fn size(&self) -> LogSize {
        LogSize {
            bytes: self.bytes,
            records: self.next_lsn - 1,
            // One message per batch: the stream's messages.
            files: self.applied_seq,
        }
    }

    fn append(&mut self, batch: &RecordBatch, _flush: Flush) -> Result<u64, StorageError> {
        // Every acknowledgement is durable on a quorum: `Flush` asks nothing more.
        self.check_healthy()?;
        let first = self.next_lsn;
        if let Some(target) = self.fenced_at
            && self.applied_seq < target
        {
            return Err(StorageError::Unavailable {
                appended: 0,
                waited_ms: 0,
                cause: format!(
                    "this host has not yet seen the batch at sequence {target} that got in first"
                ),
            });
        }
        let frames = self.frames(batch)?;
        // Fairness under contention: a host that just won is ready with its
        // next batch before the loser has caught up, so it would win every
        // time. While others write, a host that did not just lose waits a
        // little, at random, so the one that lost goes first.
        if self.others_writing && !self.lost_last_race {
            self.io
                .pause(Duration::from_micros(self.jitter_micros(2_000)));
        }
        let mut appended = 0;
        for records in frames {
            let batch_id = self.next_batch_id();
            let count = records.len();
            let bytes = frame::encode(
                self.applied_seq,
                self.next_lsn,
                batch_id,
                records.into_iter(),
            );
            let crc = match frame::decode(&bytes) {
                Ok(decoded) => decoded.header.crc,
                Err(damage) => return Err(self.diverged(self.applied_seq + 1, damage.to_string())),
            };
            let len = bytes.len();
            match self
                .io
                .publish(self.applied_seq, Bytes::from(bytes), &batch_id.msg_id())
            {
                Published::Committed(seq) => {
                    debug_assert_eq!(seq, self.applied_seq + 1);
                    self.applied_seq = seq;
                    self.next_lsn += count as u64;
                    self.bytes += len as u64;
                    self.own.push_back((seq, crc, len));
                    appended += count;
                    self.lost_last_race = false;
                    self.others_writing = false;
                }
                Published::Fenced => {
                    self.lost_last_race = true;
                    self.fenced_at = Some(self.applied_seq + 1);
                    return Err(StorageError::Fenced { appended });
                }
                Published::Unavailable { waited, cause } => {
                    return Err(StorageError::Unavailable {
                        appended,
                        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                        cause,
                    });
                }
            }
        }
        Ok(first)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_healthy()
    }

    fn has_unsynced(&self) -> bool {
        false
    }

    fn check_healthy(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn reader(&self) -> Result<Box<dyn LogReader>, StorageError> {
        Ok(Box::new(JetStreamReader {
            io: Arc::clone(&self.io),
            end_seq: self.applied_seq,
            end_lsn: self.next_lsn,
        }))
    }

    fn between_batches(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), StorageError> {
        // Everything applied is on a quorum's disks already.
        Ok(())
    }

    fn release_through(
        &mut self,
        _lsn: u64,
        _on_removed: &mut dyn FnMut(),
    ) -> Result<Released, StorageError> {
        // The stream denies purges: it is every host's history.
        Ok(Released::default())
    }

    fn releasable_through(&self, _lsn: u64) -> u64 {
        0
    }

    fn seal(&mut self) -> Result<(), StorageError> {
        self.check_healthy()
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn record_payload_bytes_max(&self) -> usize {
        self.frame_bytes_max - FRAME_HEADER_LEN - RECORD_HEADER_LEN
    }

    fn catch_up(
        &mut self,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<(), Damage>,
    ) -> Result<u64, StorageError> {
        self.check_healthy()?;
        self.tail.rearm();
        let started = Instant::now();
        let mut applied = 0;
        loop {
            let item = match self.tail.try_next() {
                Some(item) => item,
                None => match self.fenced_at {
                    Some(target) if self.applied_seq < target => {
                        let left = self.io.deadline.saturating_sub(started.elapsed());
                        if left.is_zero() {
                            return Err(StorageError::Unavailable {
                                appended: 0,
                                waited_ms: u64::try_from(started.elapsed().as_millis())
                                    .unwrap_or(u64::MAX),
                                cause: format!(
                                    "the batch at sequence {target} that got in first did not arrive"
                                ),
                            });
                        }
                        match self.io.next_tail(&mut self.tail, left) {
                            Some(item) => item,
                            None => continue,
                        }
                    }
                    _ => {
                        self.fenced_at = None;
                        return Ok(applied);
                    }
                },
            };
            applied += self.take_tail(item, visit)?;
        }
    }

    fn set_waker(&mut self, wake: LogWaker) {
        self.tail.set_waker(wake);
    }

    fn image_store(&self) -> Option<Arc<dyn ImageStore>> {
        Some(Arc::clone(&self.images) as Arc<dyn ImageStore>)
    }

    fn image_mark(&self) -> ImageMark {
        ImageMark {
            lsn: self.next_lsn - 1,
            position: self.applied_seq,
        }
    }
}

/// Reads the stream up to where the log was when the reader was made.
#[derive(Debug)]
struct JetStreamReader {
    io: Arc<Io>,
    end_seq: u64,
    end_lsn: u64,
}

impl LogReader for JetStreamReader {
    fn first_lsn(&self) -> u64 {
        1
    }

    fn end_lsn(&self) -> u64 {
        self.end_lsn
    }

    fn read(
        &mut self,
        from_lsn: u64,
        visit: &mut dyn FnMut(LogRecord<'_>) -> Result<ControlFlow<()>, StorageError>,
    ) -> Result<(), StorageError> {
        let stream = self.io.stream.clone();
        let mut next_seq = 1;
        let mut next_lsn = 1;
        let mut failure = None;
        let diverged = |seq: u64, what: String| StorageError::Diverged {
            log: stream.clone(),
            seq,
            what,
        };
        let result = self.io.read_range(1, self.end_seq, &mut |seq, payload| {
            let checked = (|| {
                if seq != next_seq {
                    return Err(diverged(seq, format!("expected sequence {next_seq}")));
                }
                let frame = frame::decode(payload).map_err(|d| diverged(seq, d.to_string()))?;
                check_continuity(&frame.header, seq, next_lsn)
                    .map_err(|d| diverged(seq, d.to_string()))?;
                for (offset, len, record) in frame.records {
                    if next_lsn >= from_lsn {
                        let flow = visit(LogRecord {
                            lsn: next_lsn,
                            place: RecordPlace {
                                file: seq,
                                offset,
                                len,
                            },
                            payload: record,
                        })?;
                        if flow.is_break() {
                            return Ok(false);
                        }
                    }
                    next_lsn += 1;
                }
                next_seq += 1;
                Ok(true)
            })();
            checked.map_err(|error| {
                let text = error.to_string();
                failure = Some(error);
                text
            })
        });
        match (result, failure) {
            (_, Some(error)) => Err(error),
            (Ok(()), None) => Ok(()),
            (Err(cause), None) => Err(StorageError::Unavailable {
                appended: 0,
                waited_ms: u64::try_from(self.io.deadline.as_millis()).unwrap_or(u64::MAX),
                cause,
            }),
        }
    }
}
