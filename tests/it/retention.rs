//! Retention: `KeepAll` keeps every segment (and the newest two snapshots);
//! `Compact` removes what a durable snapshot covers, so disk use stays near
//! one snapshot plus the segments after it; `Store::compact` does it on demand
//! and reports what it reclaimed.

use std::fs;
use std::path::Path;

use ticketlog::inspect::{self, parse_segment_file_name};
use ticketlog::{ListQuery, Options, Retention, Status, Store, TicketId, TicketPatch};

use crate::common::{Rng, draft};
use crate::snapshots::snapshot_files;

/// (first LSN, bytes) of every segment in `dir`, in LSN order.
fn segments(dir: &Path) -> Vec<(u64, u64)> {
    let mut found: Vec<(u64, u64)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            parse_segment_file_name(&name).map(|lsn| (lsn, entry.metadata().unwrap().len()))
        })
        .collect();
    found.sort();
    found
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum()
}

fn write_some(store: &Store, count: u64) {
    let client = store.client();
    for n in 0..count {
        let ticket = client.create(draft(&format!("ticket {n}"))).unwrap();
        if n % 3 == 0 {
            client
                .update(
                    ticket.id,
                    TicketPatch {
                        status: Some(Status::Done),
                        ..TicketPatch::default()
                    },
                )
                .unwrap();
        }
    }
}

#[test]
fn compact_retention_removes_what_each_snapshot_covers() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .segment_bytes(1024)
        .snapshot_every(40)
        .retention(Retention::Compact);
    let store = Store::open(dir.path(), options.clone()).unwrap();
    write_some(&store, 150);
    let before = store.client().list(ListQuery::default()).unwrap();
    store.close().unwrap();

    // One snapshot left, and only the segments holding records after it.
    let snapshots = snapshot_files(dir.path());
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let store = Store::open(dir.path(), options).unwrap();
    let snapshot_lsn = store.recovery().snapshot.as_ref().unwrap().lsn;
    let left = segments(dir.path());
    assert!(
        left[0].0 > 1,
        "the start of the log was compacted: {left:?}"
    );
    assert!(left[0].0 <= snapshot_lsn + 1, "{left:?}");
    if let Some(second) = left.get(1) {
        assert!(second.0 > snapshot_lsn + 1, "{left:?} vs {snapshot_lsn}");
    }
    assert_eq!(store.recovery().history_starts_at_lsn, left[0].0);
    assert_eq!(store.client().list(ListQuery::default()).unwrap(), before);
    store.close().unwrap();
    // The inspection path starts from the snapshot and agrees.
    let report = inspect::read_log(dir.path(), |_| {}).unwrap();
    assert_eq!(report.base_snapshot.map(|s| s.lsn), Some(snapshot_lsn));
    assert_eq!(report.tickets, before.len() as u64);
}

#[test]
fn keep_all_keeps_every_segment_and_the_newest_two_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().segment_bytes(1024).snapshot_every(0);
    let store = Store::open(dir.path(), options).unwrap();
    for _ in 0..3 {
        write_some(&store, 50);
        store.snapshot().unwrap();
    }
    store.close().unwrap();
    let left = segments(dir.path());
    assert_eq!(left[0].0, 1);
    assert!(left.len() > 5, "{left:?}");
    assert_eq!(snapshot_files(dir.path()).len(), 2);
    let mut lsns = Vec::new();
    inspect::read_log(dir.path(), |entry| lsns.push(entry.lsn)).unwrap();
    assert_eq!(lsns, (1..=lsns.len() as u64).collect::<Vec<_>>());
}

#[test]
fn compact_on_demand_reports_the_bytes_it_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    // No zero tail: the directory's size, measured while the store is open,
    // is then exactly its records (what reclaiming counts).
    let options = Options::default()
        .segment_bytes(1024)
        .snapshot_every(0)
        .preallocate_bytes(0);
    let store = Store::open(dir.path(), options).unwrap();
    write_some(&store, 60);
    store.snapshot().unwrap();
    write_some(&store, 10);
    let before_bytes = dir_bytes(dir.path());
    let before = segments(dir.path());
    let before_segments = before.len() as u64;
    let info = store.compact().unwrap();
    let after_bytes = dir_bytes(dir.path());
    // The snapshot ended the full segment first: the new one holds just its header.
    let started: Vec<(u64, u64)> = segments(dir.path())
        .into_iter()
        .filter(|segment| !before.contains(segment) && segment.0 > before.last().unwrap().0)
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0].1, inspect::record::FILE_HEADER_LEN as u64);
    // What it says it removed is what left the directory (the new snapshot
    // and segment came in).
    assert_eq!(
        before_bytes + info.snapshot.bytes + started[0].1 - info.bytes_reclaimed,
        after_bytes
    );
    assert_eq!(info.snapshots_removed, 1);
    assert_eq!(
        info.segments_removed,
        before_segments + 1 - segments(dir.path()).len() as u64
    );
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "only the current segment is left"
    );
    assert_eq!(info.log_bytes, segments(dir.path())[0].1);
    assert_eq!(info.history_starts_at_lsn, segments(dir.path())[0].0);
    // Disk after compaction: the snapshot plus at most one segment (and the lock file).
    assert!(
        after_bytes <= info.snapshot.bytes + 1024 + 4096,
        "{after_bytes}"
    );
    // Compacting again finds nothing more.
    let again = store.compact().unwrap();
    assert_eq!((again.segments_removed, again.snapshots_removed), (0, 0));
    assert_eq!(again.bytes_reclaimed, 0);
    store.close().unwrap();
}

/// Compactions while clients keep writing: segments rolled after a
/// snapshot's LSN stay, every acknowledged ticket survives, the log verifies.
#[test]
fn compaction_under_concurrent_writes_keeps_every_acknowledged_change() {
    let seed =
        crate::common::seed("compaction_under_concurrent_writes_keeps_every_acknowledged_change");
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .segment_bytes(600)
        .snapshot_every(25)
        .retention(Retention::Compact);
    let store = Store::open(dir.path(), options.clone()).unwrap();
    let acknowledged: Vec<Vec<ticketlog::Ticket>> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let client = store.client();
                scope.spawn(move || {
                    let mut rng = Rng::new(seed ^ w);
                    let mut mine = Vec::new();
                    for n in 0..60 {
                        let mut ticket = client.create(draft(&format!("w{w} n{n}"))).unwrap();
                        if rng.below(2) == 0 {
                            ticket = client
                                .update(
                                    ticket.id,
                                    TicketPatch {
                                        status: Some(Status::InProgress),
                                        ..TicketPatch::default()
                                    },
                                )
                                .unwrap();
                        }
                        mine.push(ticket);
                    }
                    mine
                })
            })
            .collect();
        for _ in 0..5 {
            store.compact().unwrap();
        }
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    store.close().unwrap();
    let report = inspect::read_log(dir.path(), |_| {}).unwrap();
    assert!(report.snapshots.iter().all(|c| c.result.is_ok()));
    let store = Store::open(dir.path(), options).unwrap();
    let client = store.client();
    for ticket in acknowledged.iter().flatten() {
        assert_eq!(
            client.get(ticket.id).unwrap().as_ref(),
            Some(ticket),
            "seed {seed}"
        );
    }
    assert_eq!(client.stats().unwrap().next_id, TicketId::from(241));
    store.close().unwrap();
}

#[test]
fn compaction_never_removes_the_snapshot_it_relies_on_when_a_damaged_one_sorts_after_it() {
    // A damaged snapshot named beyond the log's end (left, say, by a repair
    // that cut records it covered) is rejected at open but stays on disk,
    // sorted after every real snapshot. Compaction must still keep the one
    // it just wrote: the segments it covered are gone.
    let dir = tempfile::tempdir().unwrap();
    let options = || {
        Options::default()
            .segment_bytes(4096)
            .retention(Retention::Compact)
    };
    let store = Store::open(dir.path(), options()).unwrap();
    write_some(&store, 200);
    let expected = store.client().list(ListQuery::default()).unwrap();
    store.close().unwrap();
    fs::write(
        dir.path().join(format!("snapshot-{:020}.snap", 999_999)),
        b"not a snapshot",
    )
    .unwrap();

    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(store.recovery().snapshots_rejected.len(), 1);
    store.compact().unwrap();
    store.close().unwrap();
    assert!(
        !snapshot_files(dir.path()).is_empty(),
        "the snapshot compaction relies on is still there"
    );

    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(store.client().list(ListQuery::default()).unwrap(), expected);
    store.close().unwrap();
}
