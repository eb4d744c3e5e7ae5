//! Power cuts under a real store, on `SimStorage`: regression tests for
//! engine bugs the simulation found, each reproducing the bug's scenario
//! over many crash outcomes.

use std::path::Path;
use std::sync::Arc;

use ticketlog::storage::{Fault, FaultKind, OpKind, SimStorage};
use ticketlog::{ClientError, Options, Store};

use crate::common::draft;

fn options(sim: &SimStorage) -> Options {
    Options::default().storage(Arc::new(sim.clone()))
}

/// Opens a store on `sim`, creates one ticket (acknowledged), cuts the power,
/// reopens, and returns how many tickets survived.
fn acknowledged_ticket_survives(sim: &SimStorage, dir: &Path) -> bool {
    let store = Store::open(dir, options(sim)).expect("open");
    store
        .client()
        .create(draft("acknowledged"))
        .expect("create");
    sim.crash();
    drop(store);
    let store = Store::open(dir, options(sim)).expect("reopen");
    let survived = store.client().stats().unwrap().tickets() == 1;
    store.close().unwrap();
    survived
}

#[test]
fn a_store_created_several_directories_deep_survives_a_power_cut() {
    for seed in 0..64 {
        let sim = SimStorage::new(seed);
        assert!(
            acknowledged_ticket_survives(&sim, Path::new("/data/tickets/store")),
            "seed {seed}: the new directories were not all made durable"
        );
    }
}

#[test]
fn a_store_whose_first_open_failed_to_sync_a_directory_survives_a_power_cut() {
    // Creating /data/store syncs the parents of new directories, then the
    // data directory once the log exists: fail each of those syncs in turn.
    for failing_sync in 0..4 {
        for seed in 0..32 {
            let sim = SimStorage::new(seed);
            sim.inject(Fault::after(FaultKind::Eio, failing_sync).only(OpKind::SyncDir));
            let first = Store::open("/data/store", options(&sim));
            if first.is_ok() {
                continue; // fewer syncs than `failing_sync`
            }
            sim.clear_faults();
            assert!(
                acknowledged_ticket_survives(&sim, Path::new("/data/store")),
                "seed {seed}: after sync_dir #{failing_sync} failed, a reopen left a \
                 directory entry that was never made durable"
            );
        }
    }
}

#[test]
fn bytes_a_previous_run_left_unsynced_are_not_mistaken_for_durable_ones() {
    // Run 1: one acknowledged ticket, then a batch whose fdatasync fails: its
    // bytes stay in the page cache, never synced, and the store is poisoned.
    // Run 2, same boot: reads that batch back and appends one more record;
    // the power is cut before that record's sync. A crash that keeps the new
    // record but tears the old unsynced batch must read as a torn tail: the
    // new record may not claim the old batch was durable.
    let mut torn_tails = 0;
    for seed in 0..64 {
        let sim = SimStorage::new(seed);
        let dir = Path::new("/store");
        let store = Store::open(dir, options(&sim)).unwrap();
        let client = store.client();
        client.create(draft("acknowledged")).unwrap();
        sim.inject(Fault::after(FaultKind::Eio, 0).only(OpKind::SyncData));
        let batch: Vec<_> = (0..4)
            .map(|n| {
                client
                    .submit(ticketlog::Command::Create(draft(&format!("unsynced {n}"))))
                    .unwrap()
            })
            .collect();
        for reply in batch {
            // Whether the four share one flush or not, none is acknowledged.
            assert!(matches!(reply.wait(), Err(ClientError::Storage(_))));
        }
        drop(store);

        let store = Store::open(dir, options(&sim)).unwrap();
        sim.inject(Fault::after(FaultKind::Crash, 0).only(OpKind::SyncData));
        assert!(store.client().create(draft("cut off")).is_err());
        drop(store);

        let store = Store::open(dir, options(&sim)).unwrap_or_else(|e| {
            panic!("seed {seed}: a torn unsynced write was reported as corruption: {e}")
        });
        let stats = store.client().stats().unwrap();
        assert!(
            stats.records >= 1,
            "seed {seed}: the acknowledged ticket is gone"
        );
        torn_tails += u64::from(store.recovery().torn_tail.is_some());
        store.close().unwrap();
    }
    assert!(torn_tails > 0);
}
