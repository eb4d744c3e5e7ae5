//! Snapshots and digests: opening loads the newest good snapshot and replays
//! only the records after it; the result equals a full replay for random
//! histories; a damaged snapshot falls back and says so; digest records catch
//! a replay that drifts.

use std::fs;
use std::path::{Path, PathBuf};

use ticketlog::inspect::{self, LogEntry, frame_record};
use ticketlog::{
    Change, Command, Damage, ListQuery, OpenError, Options, Retention, Stats, Status, Store,
    Ticket, TicketId, TicketPatch,
};

use crate::common::{Rng, draft, seed};

fn all(store: &Store) -> (Vec<Ticket>, Stats) {
    let client = store.client();
    let mut stats = client.stats().unwrap();
    // Log figures depend on how the log was written, not on the state.
    stats.log_bytes = 0;
    stats.records = 0;
    stats.last_lsn = 0;
    (client.list(ListQuery::default()).unwrap(), stats)
}

/// The snapshot files in `dir`, oldest first.
pub fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("snapshot-") && name.ends_with(".snap")
        })
        .collect();
    files.sort();
    files
}

fn entries(dir: &Path) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    inspect::read_log(dir, |entry| entries.push(entry.clone())).unwrap();
    entries
}

/// Copies the segments of `from` (not its snapshots) into a fresh directory.
fn without_snapshots(from: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".wal") {
            fs::copy(&path, copy.path().join(&name)).unwrap();
        }
    }
    copy
}

fn set_status(client: &ticketlog::Client, id: TicketId, status: Status) -> Ticket {
    client
        .update(
            id,
            TicketPatch {
                status: Some(status),
                ..TicketPatch::default()
            },
        )
        .unwrap()
}

#[test]
fn opening_loads_the_snapshot_and_replays_only_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().snapshot_every(0);
    let store = Store::open(dir.path(), options.clone()).unwrap();
    let client = store.client();
    for n in 0..30 {
        let ticket = client.create(draft(&format!("before {n}"))).unwrap();
        set_status(&client, ticket.id, Status::InProgress);
    }
    let info = store.snapshot().unwrap();
    assert_eq!(info.lsn, 60);
    assert_eq!(info.tickets, 30);
    assert_eq!(info.next_id, TicketId::from(31));
    assert_eq!(
        info.path,
        dir.path().join("snapshot-00000000000000000060.snap")
    );
    assert_eq!(fs::metadata(&info.path).unwrap().len(), info.bytes);
    // A second request with nothing new in between returns the same snapshot.
    assert_eq!(store.snapshot().unwrap(), info);
    for n in 0..5 {
        client.create(draft(&format!("after {n}"))).unwrap();
    }
    client.delete(TicketId::from(3)).unwrap();
    let before = all(&store);
    store.close().unwrap();

    let store = Store::open(dir.path(), options).unwrap();
    let report = store.recovery().clone();
    assert_eq!(report.snapshot.as_ref().map(|s| s.lsn), Some(60));
    assert_eq!(report.snapshots_rejected, vec![]);
    assert!(!report.fell_back());
    // 5 creates and a delete; a clean close may add a seal.
    assert!((6..=7).contains(&report.records_replayed), "{report:?}");
    assert_eq!(report.history_starts_at_lsn, 1);
    assert_eq!(all(&store), before);
    // Ids continue after the snapshot's next id.
    assert_eq!(
        store.client().create(draft("next")).unwrap().id,
        TicketId::from(36)
    );
    store.close().unwrap();
}

#[test]
fn automatic_snapshots_follow_snapshot_every() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().snapshot_every(10);
    let store = Store::open(dir.path(), options.clone()).unwrap();
    let client = store.client();
    for n in 0..45 {
        client.create(draft(&format!("t{n}"))).unwrap();
    }
    let before = all(&store);
    // Close waits for a snapshot being written.
    store.close().unwrap();
    let files = snapshot_files(dir.path());
    // At least one was taken (how many depends on how long each took to
    // write, as clients do not wait for them); KeepAll keeps at most two.
    assert!((1..=2).contains(&files.len()), "{files:?}");
    let records = entries(dir.path()).len() as u64;
    let store = Store::open(dir.path(), options).unwrap();
    let loaded = store.recovery().snapshot.clone().unwrap();
    assert!(loaded.lsn >= 10 && loaded.lsn <= records, "{loaded:?}");
    assert_eq!(store.recovery().records_replayed, records - loaded.lsn);
    assert_eq!(all(&store), before);
    store.close().unwrap();
}

/// Random commands with snapshots at random points, over small segments:
/// opening with the snapshots gives exactly the state a full replay of the
/// same log gives, and the state the store had before closing.
#[test]
fn opening_from_a_snapshot_equals_a_full_replay_for_random_histories() {
    let seed = seed("opening_from_a_snapshot_equals_a_full_replay_for_random_histories");
    let mut rng = Rng::new(seed);
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default()
            .segment_bytes(512 + rng.below(4096))
            .snapshot_every(rng.below(3) * (5 + rng.below(40)))
            .digest_every(1 + rng.below(20));
        let mut before = None;
        for _reopen in 0..1 + rng.below(3) {
            let store = Store::open(dir.path(), options.clone()).unwrap();
            if let Some(before) = &before {
                assert_eq!(&all(&store), before, "seed {seed} round {round}");
            }
            let client = store.client();
            for _ in 0..rng.below(120) {
                let next = client.stats().unwrap().next_id.get();
                let id = TicketId::from(1 + rng.below(next));
                let outcome = match rng.below(12) {
                    0..=4 => client.create(draft("random")).map(|_| ()),
                    5 => client
                        .create_many((0..rng.below(5)).map(|_| draft("many")).collect())
                        .map(|_| ()),
                    6..=8 => client
                        .execute(Command::Update(
                            id,
                            TicketPatch {
                                status: Some(Status::ALL[rng.below(3) as usize]),
                                title: (rng.below(3) == 0).then(|| "renamed".try_into().unwrap()),
                                ..TicketPatch::default()
                            },
                        ))
                        .map(|_| ()),
                    9 => client.delete(id).map(|_| ()),
                    _ => {
                        store.snapshot().unwrap();
                        Ok(())
                    }
                };
                // Updates and deletes of missing ids are refused; that is fine.
                if let Err(e) = outcome {
                    assert!(
                        matches!(e, ticketlog::ClientError::NotFound(_)),
                        "seed {seed}: {e}"
                    );
                }
            }
            before = Some(all(&store));
            store.close().unwrap();
        }
        let before = before.unwrap();
        let store = Store::open(dir.path(), options.clone()).unwrap();
        assert_eq!(all(&store), before, "seed {seed} round {round}");
        store.close().unwrap();

        let replay = without_snapshots(dir.path());
        let store = Store::open(replay.path(), options).unwrap();
        assert_eq!(store.recovery().snapshot, None);
        assert_eq!(
            all(&store),
            before,
            "full replay, seed {seed} round {round}"
        );
        store.close().unwrap();
        // And the inspection path agrees, snapshots included.
        let report = inspect::read_log(dir.path(), |_| {}).unwrap();
        assert_eq!(report.next_id, before.1.next_id, "seed {seed}");
        assert!(
            report.snapshots.iter().all(|check| check.result.is_ok()),
            "seed {seed}: {:?}",
            report.snapshots
        );
    }
}

/// Two snapshots (KeepAll keeps both), the newest damaged.
fn two_snapshots(dir: &Path) -> (PathBuf, PathBuf, (Vec<Ticket>, Stats)) {
    let store = Store::open(dir, Options::default().snapshot_every(0)).unwrap();
    let client = store.client();
    for n in 0..10 {
        client.create(draft(&format!("a{n}"))).unwrap();
    }
    let older = store.snapshot().unwrap();
    for n in 0..10 {
        set_status(&client, TicketId::from(n + 1), Status::Done);
    }
    let newer = store.snapshot().unwrap();
    client.create(draft("tail")).unwrap();
    let state = all(&store);
    store.close().unwrap();
    assert_eq!(
        snapshot_files(dir),
        vec![older.path.clone(), newer.path.clone()]
    );
    (older.path, newer.path, state)
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    let at = at as usize % bytes.len();
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_previous_one_and_says_so() {
    // Damage in the header, in a block frame, and in a block's tickets.
    for at in [20u64, 72, 90, 200, u64::MAX - 3] {
        let dir = tempfile::tempdir().unwrap();
        let (older, newer, state) = two_snapshots(dir.path());
        flip_byte(&newer, at);
        let store = Store::open(dir.path(), Options::default().snapshot_every(0)).unwrap();
        let report = store.recovery().clone();
        assert!(report.fell_back(), "byte {at}");
        assert_eq!(report.snapshot.as_ref().map(|s| &s.path), Some(&older));
        assert_eq!(report.snapshots_rejected.len(), 1);
        assert_eq!(report.snapshots_rejected[0].path, newer);
        assert_eq!(all(&store), state, "byte {at}");
        store.close().unwrap();
        // The damaged file is left for inspection until a newer snapshot replaces it.
        assert!(newer.exists());
    }
}

#[test]
fn with_every_snapshot_damaged_opening_replays_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let (older, newer, state) = two_snapshots(dir.path());
    flip_byte(&older, 100);
    // Truncated: the header's payload length no longer matches.
    let len = fs::metadata(&newer).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&newer)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let records = entries(dir.path()).len() as u64;
    let store = Store::open(dir.path(), Options::default().snapshot_every(0)).unwrap();
    let report = store.recovery().clone();
    assert_eq!(report.snapshot, None);
    assert_eq!(
        report
            .snapshots_rejected
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>(),
        vec![newer.clone(), older]
    );
    assert!(matches!(
        report.snapshots_rejected[0].damage,
        Damage::Truncated { .. }
    ));
    assert_eq!(report.records_replayed, records);
    assert_eq!(all(&store), state);
    // A new snapshot replaces the damaged ones.
    let fresh = store.snapshot().unwrap();
    store.close().unwrap();
    assert_eq!(snapshot_files(dir.path()), vec![fresh.path]);
}

#[test]
fn a_damaged_snapshot_whose_log_was_compacted_fails_the_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .snapshot_every(0)
        .segment_bytes(256)
        .retention(Retention::Compact);
    let store = Store::open(dir.path(), options.clone()).unwrap();
    for n in 0..20 {
        store.client().create(draft(&format!("c{n}"))).unwrap();
    }
    let info = store.snapshot().unwrap();
    store.close().unwrap();
    assert!(
        !dir.path().join(inspect::LOG_FILE_NAME).exists(),
        "compacted"
    );
    flip_byte(&info.path, 100);
    match Store::open(dir.path(), options) {
        Err(OpenError::Corrupt { file, .. }) => assert_eq!(file, info.path),
        other => panic!("expected corruption naming the snapshot, got {other:?}"),
    }
}

#[test]
fn a_leftover_temporary_snapshot_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.client().create(draft("one")).unwrap();
    store.close().unwrap();
    let temp = dir.path().join("snapshot-00000000000000000001.snap.tmp");
    fs::write(&temp, b"half a snapshot").unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.recovery().snapshot, None);
    assert_eq!(store.recovery().snapshots_rejected, vec![]);
    assert_eq!(all(&store).0.len(), 1);
    store.close().unwrap();
    assert!(!temp.exists());
}

#[test]
fn the_log_carries_a_digest_record_every_k_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default().digest_every(5)).unwrap();
    let client = store.client();
    for n in 0..23 {
        client.create(draft(&format!("d{n}"))).unwrap();
    }
    store.close().unwrap();
    let digests: Vec<u64> = entries(dir.path())
        .iter()
        .filter(|e| matches!(e.changes.as_slice(), [Change::Digest { .. }]))
        .map(|e| e.lsn)
        .collect();
    // One command per batch here: records 1..5, digest 6, 7..11, digest 12, …
    assert_eq!(digests, vec![6, 12, 18, 24]);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(all(&store).0.len(), 23);
    store.close().unwrap();
}

/// A log built by hand whose digest record carries a wrong digest: replay
/// notices that the state it produced is not the one the record describes.
#[test]
fn a_digest_record_that_disagrees_with_replay_fails_the_open() {
    // Take a real digest record, then build a log whose digest is off by one bit.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default().digest_every(3)).unwrap();
    for n in 0..3 {
        store.client().create(draft(&format!("d{n}"))).unwrap();
    }
    store.close().unwrap();
    let written = entries(dir.path());
    let (digest_lsn, real) = written
        .iter()
        .find_map(|e| match e.changes.as_slice() {
            [Change::Digest { digest, .. }] => Some((e.lsn, *digest)),
            _ => None,
        })
        .expect("a digest record after 3 records");
    assert_eq!(digest_lsn, 4);

    for (digest, should_open) in [(real, true), (real ^ 1, false)] {
        let scratch = tempfile::tempdir().unwrap();
        let mut bytes = inspect::record::FileHeader::new(1).encode().to_vec();
        for entry in &written {
            let changes: Vec<Change> = entry
                .changes
                .iter()
                .map(|change| match change {
                    Change::Digest {
                        next_id, tickets, ..
                    } => Change::Digest {
                        digest,
                        next_id: *next_id,
                        tickets: *tickets,
                    },
                    other => other.clone(),
                })
                .collect();
            frame_record(&mut bytes, 0, &changes).unwrap();
        }
        fs::write(scratch.path().join(inspect::LOG_FILE_NAME), &bytes).unwrap();
        match Store::open(scratch.path(), Options::default()) {
            Ok(store) if should_open => {
                assert_eq!(all(&store).0.len(), 3);
                store.close().unwrap();
            }
            Err(OpenError::Corrupt { damage, .. }) if !should_open => {
                assert_eq!(
                    damage,
                    Damage::DigestMismatch {
                        lsn: digest_lsn,
                        expected: real ^ 1,
                        found: real
                    }
                );
                // Verify reports the same.
                assert!(matches!(
                    inspect::read_log(scratch.path(), |_| {}),
                    Err(OpenError::Corrupt {
                        damage: Damage::DigestMismatch { .. },
                        ..
                    })
                ));
            }
            other => panic!("digest {digest:#x}: unexpected {other:?}"),
        }
    }
}

/// A snapshot ends a well-filled segment first, so opening never reads the
/// segments before it: damage there goes unnoticed by open (verify finds it).
#[test]
fn opening_does_not_read_segments_a_snapshot_covers() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().segment_bytes(4096).snapshot_every(0);
    let store = Store::open(dir.path(), options.clone()).unwrap();
    for n in 0..20 {
        store.client().create(draft(&format!("s{n}"))).unwrap();
    }
    let info = store.snapshot().unwrap();
    store.client().create(draft("tail")).unwrap();
    let state = all(&store);
    store.close().unwrap();
    // The snapshot rolled the log: the record after it starts a segment.
    let after = dir.path().join(inspect::segment_file_name(info.lsn + 1));
    assert!(
        after.exists(),
        "{:?}",
        fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>()
    );

    let first = dir.path().join(inspect::LOG_FILE_NAME);
    flip_byte(&first, 600);
    let store = Store::open(dir.path(), options).unwrap();
    assert_eq!(store.recovery().records_replayed, 1);
    assert_eq!(all(&store), state);
    store.close().unwrap();
    assert!(matches!(
        inspect::read_log(dir.path(), |_| {}),
        Err(OpenError::Corrupt { file, .. }) if file == first
    ));
}

#[test]
fn a_snapshot_thread_that_panics_fails_the_snapshot_instead_of_hanging() {
    // A progress callback is user code: if it panics on the snapshot thread,
    // `snapshot` must return an error and `close` must still return.
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().progress(|progress| {
        if progress.step == ticketlog::ProgressStep::WriteSnapshot {
            panic!("injected: a progress callback that panics");
        }
    });
    let store = Store::open(dir.path(), options).unwrap();
    store.client().create(crate::common::draft("one")).unwrap();
    assert!(store.snapshot().is_err());
    // The store keeps working and closes.
    store.client().create(crate::common::draft("two")).unwrap();
    store.close().unwrap();
    let store = crate::common::open(dir.path());
    assert_eq!(store.client().stats().unwrap().tickets(), 2);
    store.close().unwrap();
}

#[test]
fn a_forged_snapshot_header_is_refused_before_anything_is_allocated_from_it() {
    // A header with a valid checksum claiming a next id of 2^40 (or an LSN
    // far beyond the log) must be rejected, not turned into billions of
    // empty ticket slots.
    for (field, value) in [(24usize, 1u64 << 40), (16, 1 << 40)] {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::common::open(dir.path());
        store.client().create(draft("one")).unwrap();
        store.snapshot().unwrap();
        store.client().create(draft("two")).unwrap();
        store.close().unwrap();
        let path = snapshot_files(dir.path()).pop().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[field..field + 8].copy_from_slice(&value.to_le_bytes());
        let crc = crate::common::crc32c(&bytes[0..68]);
        bytes[68..72].copy_from_slice(&crc.to_le_bytes());
        fs::write(&path, &bytes).unwrap();

        let store = crate::common::open(dir.path());
        assert_eq!(
            store.recovery().snapshots_rejected.len(),
            1,
            "field at {field}"
        );
        assert_eq!(store.client().stats().unwrap().tickets(), 2);
        store.close().unwrap();
    }
}
