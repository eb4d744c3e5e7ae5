//! Durability modes and atomic batches: restarts and torn tails behave the
//! same under `Always`, `Interval` and `Never`; a cleanly closed log is sealed
//! so damage in its last batch is corruption, not a tail; `create_many` is all
//! or nothing across a crash.

use std::fs;
use std::path::Path;
use std::time::Duration;

use ticketlog::inspect::{self, LogEntry};
use ticketlog::{
    CREATE_MANY_MAX, ClientError, Damage, Durability, ListQuery, OpenError, Options, Status, Store,
    Ticket, TicketError, TicketId, TicketPatch,
};

use crate::common::{draft, log_path};

const MODES: [Durability; 3] = [
    Durability::Always,
    Durability::Interval(Duration::from_millis(3)),
    Durability::Never,
];

fn open_with(dir: &Path, durability: Durability) -> Store {
    Store::open(dir, Options::default().durability(durability)).unwrap()
}

fn tickets(store: &Store) -> Vec<Ticket> {
    store.client().list(ListQuery::default()).unwrap()
}

fn entries(dir: &Path) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    inspect::read_log(dir, |entry| entries.push(entry.clone())).unwrap();
    entries
}

#[test]
fn restarts_keep_the_state_in_every_mode() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for round in 0..3u64 {
            let store = open_with(dir.path(), mode);
            assert_eq!(tickets(&store), expected, "{mode} round {round}");
            let client = store.client();
            let created = client.create(draft(&format!("round {round}"))).unwrap();
            assert_eq!(created.id, TicketId::from(round * 2 + 1), "{mode}");
            let second = client.create(draft("second")).unwrap();
            client
                .update(
                    created.id,
                    TicketPatch {
                        status: Some(Status::Done),
                        ..TicketPatch::default()
                    },
                )
                .unwrap();
            client.delete(second.id).unwrap();
            expected = tickets(&store);
            store.close().unwrap();
        }
    }
}

#[test]
fn a_torn_last_record_is_cut_back_in_every_mode() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), mode);
        for n in 0..5 {
            store.client().create(draft(&format!("t{n}"))).unwrap();
        }
        let before_last: Vec<Ticket> = tickets(&store).into_iter().take(4).collect();
        store.close().unwrap();

        // A crash leaves no seal: cut inside the last command record.
        let all = entries(dir.path());
        let last = all.iter().rev().find(|e| !e.changes.is_empty()).unwrap();
        let bytes = fs::read(log_path(dir.path())).unwrap();
        for cut in [
            last.offset + 1,
            last.offset + last.len / 2,
            last.offset + last.len - 1,
        ] {
            let scratch = tempfile::tempdir().unwrap();
            fs::write(log_path(scratch.path()), &bytes[..cut as usize]).unwrap();
            let store = open_with(scratch.path(), mode);
            assert_eq!(
                store.recovery().bytes_dropped(),
                cut - last.offset,
                "{mode}"
            );
            assert_eq!(tickets(&store), before_last, "{mode} cut {cut}");
            let next = store.client().create(draft("after")).unwrap();
            assert_eq!(next.id, TicketId::from(5), "{mode}");
            store.close().unwrap();
        }
    }
}

#[test]
fn a_clean_close_seals_a_log_whose_last_batch_was_not_proven_durable() {
    // Under `Never`, every record after the first sync shares the unsynced
    // window, so only a seal tells recovery that close synced them.
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), Durability::Never);
    for n in 0..6 {
        store.client().create(draft(&format!("t{n}"))).unwrap();
    }
    store.close().unwrap();
    let all = entries(dir.path());
    assert_eq!(all.len(), 7);
    assert!(
        all.last().unwrap().changes.is_empty(),
        "the last record is the seal"
    );

    // Damage to a record of the sealed batch is corruption: nothing is cut.
    let path = log_path(dir.path());
    let clean = fs::read(&path).unwrap();
    let victim = &all[3];
    let mut damaged = clean.clone();
    damaged[(victim.offset + victim.len - 3) as usize] ^= 0x10;
    fs::write(&path, &damaged).unwrap();
    match Store::open(dir.path(), Options::default()) {
        Err(OpenError::Corrupt {
            offset,
            damage: Damage::MidLog { .. },
            ..
        }) => assert_eq!(offset, victim.offset),
        other => panic!("expected corruption at {}, got {other:?}", victim.offset),
    }
    assert_eq!(fs::read(&path).unwrap(), damaged);

    // The same damage in a log that ends without its seal (a crash) is a torn
    // write of unsynced records: cut back, because none of them was durable.
    let unsealed = &damaged[..all[6].offset as usize];
    fs::write(&path, unsealed).unwrap();
    let store = open_with(dir.path(), Durability::Never);
    assert_eq!(
        store.recovery().torn_tail.as_ref().unwrap().offset,
        victim.offset
    );
    assert_eq!(tickets(&store).len(), 3);
    store.close().unwrap();
}

#[test]
fn always_mode_with_one_client_needs_no_seal() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), Durability::Always);
    for n in 0..3 {
        store.client().create(draft(&format!("t{n}"))).unwrap();
    }
    store.close().unwrap();
    // Each record was synced alone, so its own header proves the ones before it.
    assert!(entries(dir.path()).iter().all(|e| !e.changes.is_empty()));
    // And reopening without writing changes nothing.
    let before = fs::read(log_path(dir.path())).unwrap();
    open_with(dir.path(), Durability::Always).close().unwrap();
    assert_eq!(fs::read(log_path(dir.path())).unwrap(), before);
}

#[test]
fn create_many_is_one_record_with_consecutive_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), Durability::Always);
    let client = store.client();
    client.create(draft("before")).unwrap();
    let drafts: Vec<_> = (0..10).map(|n| draft(&format!("batch {n}"))).collect();
    let created = client.create_many(drafts.clone()).unwrap();
    let ids: Vec<u64> = created.iter().map(|t| t.id.get()).collect();
    assert_eq!(ids, (2..=11).collect::<Vec<_>>());
    for (ticket, draft) in created.iter().zip(&drafts) {
        assert_eq!(ticket.title, draft.title);
        assert_eq!(client.get(ticket.id).unwrap().as_ref(), Some(ticket));
    }
    assert_eq!(client.stats().unwrap().records, 2);
    assert!(client.create_many(Vec::new()).unwrap().is_empty());
    assert_eq!(
        client.stats().unwrap().records,
        2,
        "an empty batch writes nothing"
    );
    let too_many = vec![draft("x"); CREATE_MANY_MAX + 1];
    assert!(matches!(
        client.create_many(too_many),
        Err(ClientError::Invalid(TicketError::BatchTooLarge { .. }))
    ));
    // The largest batch allowed, at the largest field sizes, fits in one record.
    let biggest = ticketlog::TicketDraft {
        title: "t".repeat(50).as_str().try_into().unwrap(),
        description: "d".repeat(500).as_str().try_into().unwrap(),
    };
    let created = client.create_many(vec![biggest; CREATE_MANY_MAX]).unwrap();
    assert_eq!(created.len(), CREATE_MANY_MAX);
    store.close().unwrap();
    let all = entries(dir.path());
    assert_eq!(all[1].changes.len(), 10);
    assert_eq!(all[2].changes.len(), CREATE_MANY_MAX);
}

#[test]
fn create_many_is_all_or_nothing_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), Durability::Always);
    store.client().create(draft("before")).unwrap();
    let drafts: Vec<_> = (0..20).map(|n| draft(&format!("batch {n}"))).collect();
    store.client().create_many(drafts).unwrap();
    store.close().unwrap();
    let all = entries(dir.path());
    let batch = &all[1];
    assert_eq!(batch.changes.len(), 20);
    let bytes = fs::read(log_path(dir.path())).unwrap();
    // Cut the log at offsets all through the batch record.
    for cut in (batch.offset..batch.offset + batch.len).step_by(37) {
        let scratch = tempfile::tempdir().unwrap();
        fs::write(log_path(scratch.path()), &bytes[..cut as usize]).unwrap();
        let store = open_with(scratch.path(), Durability::Always);
        let present = tickets(&store);
        assert_eq!(
            present.len(),
            1,
            "cut at {cut}: the batch is all or nothing"
        );
        assert_eq!(present[0].title.as_str(), "before");
        store.close().unwrap();
    }
}

#[test]
fn a_clean_close_after_a_crash_seals_the_batch_the_crash_left_unsealed() {
    // A crash after the final sync leaves the last batch without its seal;
    // the next open syncs it, and its clean close must seal it even if that
    // session writes nothing, or later damage there would be cut as a torn
    // tail instead of reported.
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), Durability::Never);
    for n in 0..4 {
        store.client().create(draft(&format!("t{n}"))).unwrap();
    }
    store.close().unwrap();
    let all = entries(dir.path());
    let seal = all.last().unwrap();
    assert!(seal.changes.is_empty());
    let path = log_path(dir.path());
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..seal.offset as usize]).unwrap();

    open_with(dir.path(), Durability::Never).close().unwrap();
    let resealed = entries(dir.path());
    assert_eq!(
        resealed.len(),
        all.len(),
        "sealed again by a close that wrote nothing else"
    );
    assert!(resealed.last().unwrap().changes.is_empty());

    let victim = &resealed[resealed.len() - 2];
    let mut damaged = fs::read(&path).unwrap();
    damaged[(victim.offset + victim.len - 2) as usize] ^= 0x01;
    fs::write(&path, &damaged).unwrap();
    match Store::open(dir.path(), Options::default()) {
        Err(OpenError::Corrupt { offset, .. }) => assert_eq!(offset, victim.offset),
        other => panic!("expected corruption at {}, got {other:?}", victim.offset),
    }
}
