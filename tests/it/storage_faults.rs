//! The store on a storage layer that counts, orders, blocks and fails
//! operations: poisoning after a failed write or fsync, group commit measured
//! in flushes (not time), back-pressure, and the order of syncs.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use ticketlog::storage::OpKind;
use ticketlog::testing::FaultyStorage;
use ticketlog::testing::faults::{Effect, Fault, Gate, Ops};
use ticketlog::{
    ClientError, Command, ListQuery, Options, StorageError, Store, TicketId, TicketPatch,
};

use crate::common::{draft, open};

/// How long a test waits for the server to reach a gated sync: a bound so
/// that a wrong expectation fails instead of hanging.
const GATE_WAIT: Duration = Duration::from_secs(60);

/// The operations so far that change or claim something (not `exists`,
/// listings, sizes and reads, nor a probe the file system refused), as
/// "op name": the order the store must keep.
fn ops(faults: &FaultyStorage) -> Vec<String> {
    faults
        .ops()
        .iter()
        .filter(|op| op.error.is_none())
        .filter(|op| match op.op {
            OpKind::Exists | OpKind::ListDir | OpKind::Size | OpKind::ReadAt => false,
            OpKind::CreateDirAll => op.creates,
            _ => true,
        })
        .map(|op| op.describe())
        .collect()
}

/// The next file sync fails with `EIO`.
fn fail_next_sync(faults: &FaultyStorage) {
    faults.inject(Fault::after(Effect::Eio, 0).only(OpKind::SyncData));
}

/// The next file sync blocks until the gate is released.
fn gate_next_sync(faults: &FaultyStorage) -> Gate {
    faults.gate(Ops::Only(OpKind::SyncData))
}

fn open_faulty(dir: &Path) -> (Store, FaultyStorage) {
    open_faulty_with(dir, Options::default())
}

fn open_faulty_with(dir: &Path, options: Options) -> (Store, FaultyStorage) {
    let faults = FaultyStorage::default();
    let store = Store::open(dir, options.storage(Arc::new(faults.clone()))).unwrap();
    (store, faults)
}

/// After a failed flush: the command that failed and every later command get
/// a storage error, queries still answer from durable state, and a reopen
/// shows a prefix that holds every acknowledged ticket.
fn check_poisoning(fail: impl FnOnce(&FaultyStorage), expected_op: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path());
    let client = store.client();
    for n in 1..=3 {
        client.create(draft(&format!("acknowledged {n}"))).unwrap();
    }
    let before = client.list(ListQuery::default()).unwrap();

    fail(&faults);
    match client.create(draft("never acknowledged")) {
        Err(ClientError::Storage(StorageError::Io { op, .. })) => assert_eq!(op, expected_op),
        other => panic!("expected a {expected_op} failure, got {other:?}"),
    }
    // Poisoned: no retry, even though the storage would now succeed.
    for attempt in [
        client.create(draft("after the failure")),
        client.update(
            TicketId::from(1),
            TicketPatch {
                status: Some(ticketlog::Status::Done),
                ..TicketPatch::default()
            },
        ),
        client.delete(TicketId::from(2)),
    ] {
        assert!(
            matches!(
                attempt,
                Err(ClientError::Storage(StorageError::Poisoned { .. }))
            ),
            "{attempt:?}"
        );
    }
    // Queries keep working and never show the failed command.
    assert_eq!(client.list(ListQuery::default()).unwrap(), before);
    assert_eq!(client.stats().unwrap().next_id, TicketId::from(4));
    assert!(matches!(store.close(), Err(StorageError::Poisoned { .. })));

    let store = open(dir.path());
    let after = store.client().list(ListQuery::default()).unwrap();
    // The failed command may or may not have reached the disk; nothing else may differ.
    assert_eq!(&after[..3], &before[..]);
    assert!(after.len() <= 4);
    if let Some(extra) = after.get(3) {
        assert_eq!(extra.title.as_str(), "never acknowledged");
    }
    store.close().unwrap();
}

#[test]
fn a_failed_fsync_poisons_the_store() {
    check_poisoning(fail_next_sync, "fdatasync");
}

#[test]
fn a_failed_write_poisons_the_store() {
    check_poisoning(
        |faults| faults.inject(Fault::after(Effect::NoSpace, 0).only(OpKind::WriteAt)),
        "write",
    );
}

#[test]
fn commands_queued_during_a_flush_share_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path());
    let client = store.client();
    let syncs_at_open = faults.count(OpKind::SyncData);

    let gate = gate_next_sync(&faults);
    let first = client.submit(Command::Create(draft("first"))).unwrap();
    assert!(gate.entered_within(GATE_WAIT)); // the server is inside the first flush
    let queued: Vec<_> = (0..200)
        .map(|n| {
            client
                .submit(Command::Create(draft(&format!("queued {n}"))))
                .unwrap()
        })
        .collect();
    gate.release();

    assert_eq!(first.wait().unwrap().id, TicketId::from(1));
    for (n, pending) in queued.into_iter().enumerate() {
        assert_eq!(pending.wait().unwrap().id, TicketId::from(n as u64 + 2));
    }
    // 201 durable commands, 2 flushes: the first, and one for all 200 queued.
    assert_eq!(faults.count(OpKind::SyncData) - syncs_at_open, 2);
    assert_eq!(client.stats().unwrap().records, 201);
    store.close().unwrap();
}

#[test]
fn try_methods_refuse_at_once_when_the_channel_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty_with(dir.path(), Options::default().channel_capacity(1));
    let client = store.client();
    let gate = gate_next_sync(&faults);
    let first = client.submit(Command::Create(draft("in flight"))).unwrap();
    assert!(gate.entered_within(GATE_WAIT));
    let queued = client.submit(Command::Create(draft("queued"))).unwrap();

    // The server is blocked in a flush and the one slot is taken.
    assert!(matches!(
        client.try_create(draft("refused")),
        Err(ClientError::Overloaded)
    ));
    assert!(matches!(
        client.try_update(TicketId::from(1), TicketPatch::default()),
        Err(ClientError::Overloaded)
    ));
    assert!(matches!(
        client.try_delete(TicketId::from(1)),
        Err(ClientError::Overloaded)
    ));

    gate.release();
    first.wait().unwrap();
    queued.wait().unwrap();
    let third = client.try_create(draft("room again")).unwrap();
    assert_eq!(third.id, TicketId::from(3));
    store.close().unwrap();
}

#[test]
fn creating_a_store_syncs_directories_before_anything_is_acknowledged() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("store");
    let (store, faults) = open_faulty(&dir);
    let log = ticketlog::inspect::LOG_FILE_NAME;
    let open_ops = ops(&faults);
    // The new directory's parent, and every directory above it (a new
    // store's path must survive a crash even if an earlier open created
    // some of it and failed), then the data directory once the log exists.
    let mut expected_prefix = vec!["create_dir store".to_string()];
    for ancestor in parent.path().ancestors() {
        let name = ancestor.file_name().map_or_else(
            || ancestor.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        expected_prefix.push(format!("sync_dir {name}"));
    }
    expected_prefix.extend([
        "lock LOCK".to_string(),
        format!("create {log}"),
        "sync_dir store".to_string(),
        format!("write {log}"),
        format!("sync_data {log}"),
    ]);
    assert_eq!(open_ops, expected_prefix);

    store.client().create(draft("one")).unwrap();
    let create_ops = ops(&faults)[open_ops.len()..].to_vec();
    // The record is written and synced before the create returns.
    assert_eq!(
        create_ops,
        vec![format!("write {log}"), format!("sync_data {log}")]
    );
    store.close().unwrap();

    // Reopening syncs the data directory (an earlier open may have failed
    // to) and nothing above it: the store's path was made durable when the
    // log was created. It syncs the log before appending to it: a previous
    // run may have left bytes unsynced that later records count as durable.
    let (store, faults) = open_faulty(&dir);
    assert_eq!(
        ops(&faults),
        vec![
            "lock LOCK".to_string(),
            // Twice for its size (the bound on snapshot LSNs, replay
            // progress), once to scan and append.
            format!("open {log}"),
            format!("open {log}"),
            format!("open {log}"),
            "sync_dir store".to_string(),
            format!("sync_data {log}"),
        ]
    );
    store.close().unwrap();
}

#[test]
fn a_rejected_command_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path());
    let client = store.client();
    let ticket = client.create(draft("one")).unwrap();
    let ops_before = ops(&faults).len();
    let rejected = [
        client.update(
            ticket.id,
            TicketPatch {
                status: Some(ticketlog::Status::Done),
                expected_version: Some(9),
                ..TicketPatch::default()
            },
        ),
        client.update(ticket.id, TicketPatch::default()),
        client.delete(TicketId::from(99)),
        client.update(
            TicketId::from(99),
            TicketPatch {
                status: Some(ticketlog::Status::Done),
                ..TicketPatch::default()
            },
        ),
    ];
    assert!(matches!(
        rejected[0],
        Err(ClientError::Conflict {
            expected: 9,
            actual: 1,
            ..
        })
    ));
    assert!(matches!(rejected[1], Err(ClientError::Invalid(_))));
    assert!(matches!(rejected[2], Err(ClientError::NotFound(id)) if id == TicketId::from(99)));
    assert!(matches!(rejected[3], Err(ClientError::NotFound(_))));
    assert_eq!(ops(&faults).len(), ops_before, "{:?}", ops(&faults));
    assert_eq!(client.stats().unwrap().records, 1);
    store.close().unwrap();
}

#[test]
fn interval_durability_acknowledges_after_the_write_and_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let every = std::time::Duration::from_millis(200);
    let (store, faults) = open_faulty_with(
        dir.path(),
        Options::default().durability(ticketlog::Durability::Interval(every)),
    );
    let client = store.client();
    let gate = gate_next_sync(&faults);
    let pending = client.submit(Command::Create(draft("one"))).unwrap();
    let (acked_tx, acked) = mpsc::channel();
    let waiter = std::thread::spawn(move || acked_tx.send(pending.wait()).unwrap());

    // Acknowledged while no sync has completed (the gate holds any sync).
    let ticket = acked
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("acknowledged after the write, without waiting for a sync")
        .unwrap();
    assert_eq!(ticket.id, TicketId::from(1));
    // With no further requests, the server syncs on its own within the interval.
    assert!(
        gate.entered_within(std::time::Duration::from_secs(10)),
        "a background sync"
    );
    gate.release();
    waiter.join().unwrap();
    store.close().unwrap();
}

#[test]
fn never_durability_syncs_only_when_closing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty_with(
        dir.path(),
        Options::default().durability(ticketlog::Durability::Never),
    );
    let syncs_at_open = faults.count(OpKind::SyncData);
    let client = store.client();
    for n in 0..20 {
        client.create(draft(&format!("t{n}"))).unwrap();
    }
    assert_eq!(faults.count(OpKind::SyncData), syncs_at_open);
    store.close().unwrap();
    // One sync for the records, one for the seal that proves them durable.
    assert_eq!(faults.count(OpKind::SyncData), syncs_at_open + 2);
}

#[test]
fn clients_of_a_server_thread_that_died_get_closed_never_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path());
    let client = store.client();
    client.create(draft("before the crash")).unwrap();

    // Simulates a bug: the next file sync panics, killing the server thread.
    faults.inject(Fault::after(Effect::Panic, 0).only(OpKind::SyncData));
    let outcomes: Vec<Result<ticketlog::Ticket, ClientError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|n| {
                let client = store.client();
                scope.spawn(move || client.create(draft(&format!("in flight {n}"))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Whoever was in the dying batch or queued behind it gets Closed; nobody
    // hangs, and nobody is told a create succeeded that was never synced.
    for outcome in &outcomes {
        assert!(matches!(outcome, Err(ClientError::Closed)), "{outcome:?}");
    }
    assert!(matches!(
        client.get(TicketId::from(1)),
        Err(ClientError::Closed)
    ));
    assert!(matches!(
        client.create(draft("after")),
        Err(ClientError::Closed)
    ));
    assert!(matches!(store.close(), Err(StorageError::ServerGone)));

    // The directory is released and the acknowledged ticket is there.
    let store = open(dir.path());
    assert_eq!(
        store
            .client()
            .get(TicketId::from(1))
            .unwrap()
            .unwrap()
            .title
            .as_str(),
        "before the crash"
    );
    store.close().unwrap();
}

#[test]
fn a_batch_whose_flush_failed_is_in_neither_stats_nor_history() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path());
    let client = store.client();
    let ticket = client.create(draft("one")).unwrap();
    let before = client.stats().unwrap();

    fail_next_sync(&faults);
    let failed = client.update(
        ticket.id,
        TicketPatch {
            status: Some(ticketlog::Status::Done),
            ..TicketPatch::default()
        },
    );
    assert!(matches!(failed, Err(ClientError::Storage(_))), "{failed:?}");

    // The update's bytes reached the file, but it was never acknowledged:
    // the store reports what it holds, and that is the state before it.
    let after = client.stats().unwrap();
    assert_eq!(
        (after.records, after.log_bytes, after.next_id),
        (before.records, before.log_bytes, before.next_id)
    );
    let history = client.history(ticket.id).unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].version, 1);
    assert_eq!(client.get(ticket.id).unwrap().unwrap().version, 1);
    assert!(store.close().is_err());
}
