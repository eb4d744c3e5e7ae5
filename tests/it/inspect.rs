//! `log verify` / `log dump` are the ordinary open path run read-only, on
//! any storage: here on `SimStorage`, through power cuts, checked against
//! the store the same disk reopens to, and checked to change nothing.

use std::path::Path;
use std::sync::Arc;

use ticketlog::inspect::{self, LogEntry};
use ticketlog::storage::{SimStorage, Storage};
use ticketlog::{Change, ListQuery, Options, Store, TicketPatch};

use crate::common::draft;

fn options(sim: &SimStorage) -> Options {
    Options::default()
        .storage(Arc::new(sim.clone()))
        .segment_bytes(4096)
}

/// Every file in `dir` and its bytes as the disk holds them now.
fn files(sim: &SimStorage, dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut names = sim.list_dir(dir).unwrap();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = sim.file_contents(&dir.join(&name));
            (name, bytes)
        })
        .collect()
}

#[test]
fn verify_and_dump_run_on_sim_storage_agree_with_reopening_and_change_nothing() {
    let dir = Path::new("/data/store");
    for seed in 0..16 {
        let sim = SimStorage::new(seed);
        let store = Store::open(dir, options(&sim)).unwrap();
        let client = store.client();
        for n in 0..60 {
            let ticket = client.create(draft(&format!("ticket {n}"))).unwrap();
            if n % 3 == 0 {
                client
                    .update(
                        ticket.id,
                        TicketPatch {
                            title: Some(format!("renamed {n}").try_into().unwrap()),
                            ..TicketPatch::default()
                        },
                    )
                    .unwrap();
            }
            if n == 30 {
                store.snapshot().unwrap();
            }
        }
        // Some of these may be lost to the power cut: never acknowledged.
        let pending: Vec<_> = (0..5)
            .map(|n| client.submit(ticketlog::Command::Create(draft(&format!("late {n}")))))
            .collect();
        sim.crash();
        drop(pending);
        drop(store);

        let before = files(&sim, dir);
        let mut entries: Vec<LogEntry> = Vec::new();
        let report = inspect::read_log_with(Arc::new(sim.clone()), dir, 1..=u64::MAX, |entry| {
            entries.push(entry.clone())
        })
        .unwrap_or_else(|e| panic!("seed {seed}: verify failed: {e}"));
        assert_eq!(
            before,
            files(&sim, dir),
            "seed {seed}: verify changed the disk"
        );
        assert!(report.segments.len() > 1, "seed {seed}: the log rolled");
        assert!(
            report.snapshots.iter().all(|check| check.result.is_ok()),
            "seed {seed}: {:?}",
            report.snapshots
        );
        let lsns: Vec<u64> = entries.iter().map(|e| e.lsn).collect();
        assert_eq!(
            lsns,
            (1..=lsns.len() as u64).collect::<Vec<_>>(),
            "seed {seed}: dump lists every record once, in order"
        );
        let created = entries
            .iter()
            .flat_map(|e| &e.changes)
            .filter(|c| matches!(c, Change::Created { .. }))
            .count() as u64;

        // The store the same disk reopens to is what verify replayed.
        let store = Store::open(dir, options(&sim)).unwrap();
        let stats = store.client().stats().unwrap();
        assert_eq!(stats.next_id, report.next_id, "seed {seed}");
        assert_eq!(stats.tickets(), report.tickets, "seed {seed}");
        assert_eq!(stats.next_id.get() - 1, created, "seed {seed}");
        assert!(
            report.tickets >= 60,
            "seed {seed}: every acknowledged ticket"
        );
        let listed = store.client().list(ListQuery::default()).unwrap();
        assert_eq!(listed.len() as u64, report.tickets);
        store.close().unwrap();
    }
}

#[test]
fn verify_refuses_a_store_that_is_open_and_dump_of_a_torn_tail_cuts_nothing() {
    let dir = Path::new("/data/store");
    let sim = SimStorage::new(7);
    let store = Store::open(dir, options(&sim)).unwrap();
    store.client().create(draft("one")).unwrap();
    assert!(matches!(
        inspect::read_log_with(Arc::new(sim.clone()), dir, 1..=u64::MAX, |_| {}),
        Err(ticketlog::OpenError::AlreadyOpen { .. })
    ));
    store.close().unwrap();
    // A torn tail: garbage after the last record of the last segment.
    let segment = dir.join(inspect::LOG_FILE_NAME);
    let mut bytes = sim.file_contents(&segment).unwrap();
    let clean_len = bytes.len();
    bytes.extend_from_slice(&[0xAB; 40]);
    sim.put_file(&segment, &bytes).unwrap();
    let report = inspect::read_log_with(Arc::new(sim.clone()), dir, 1..=u64::MAX, |_| {}).unwrap();
    let torn = report
        .scan
        .torn_tail
        .expect("the garbage reads as a torn tail");
    assert_eq!(torn.offset, clean_len as u64);
    assert_eq!(torn.bytes, 40);
    assert_eq!(
        sim.file_contents(&segment).unwrap(),
        bytes,
        "nothing was cut"
    );
}

#[test]
fn a_read_only_open_of_a_live_store_reads_what_is_committed_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = crate::common::open(dir.path());
    let client = writer.client();
    let first = client.create(draft("first")).unwrap();
    client.create(draft("second")).unwrap();
    let snapshot_of_files = || {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot_of_files();

    let reader = Store::open_read_only(dir.path(), Options::default()).unwrap();
    assert!(reader.recovery().live, "the writer holds the lock");
    let view = reader.client();
    assert_eq!(view.get(first.id).unwrap().unwrap().title, first.title);
    assert_eq!(view.stats().unwrap().last_lsn, 2);
    assert_eq!(view.history(first.id).unwrap().len(), 1);
    assert!(matches!(
        view.create(draft("refused")),
        Err(ticketlog::ClientError::Storage(
            ticketlog::StorageError::ReadOnly { .. }
        ))
    ));
    assert!(
        reader.snapshot().is_err(),
        "no snapshot from a read-only store"
    );
    // The writer goes on; the reader's view is the log as it stood.
    client.create(draft("third")).unwrap();
    assert_eq!(view.stats().unwrap().tickets(), 2);
    reader.close().unwrap();

    // Verify and dump of the live store work, and say so.
    let report = inspect::read_log_live(dir.path(), 1..=u64::MAX, |_| {}).unwrap();
    assert!(report.live);
    assert_eq!(report.tickets, 3);
    writer.close().unwrap();
    // Nothing the reader did changed a byte (the writer's third create and
    // close appended, over the zeros the writer had preallocated; compare
    // the prefix that existed before them).
    let after = snapshot_of_files();
    assert_eq!(after.len(), before.len(), "no file created or removed");
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        let written = old.len() - old.iter().rev().take_while(|&&b| b == 0).count();
        assert!(
            new.starts_with(&old[..written]),
            "{name} was rewritten, not only appended to"
        );
    }
    // Without another holder it is not live.
    let reader = Store::open_read_only(dir.path(), Options::default()).unwrap();
    assert!(!reader.recovery().live);
    assert_eq!(reader.client().stats().unwrap().tickets(), 3);
    reader.close().unwrap();
}
