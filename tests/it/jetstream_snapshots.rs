//! Snapshots of a JetStream store, kept in the stream's object store
//! bucket: a new host (empty data directory) starts from the newest good
//! one plus the stream's tail; a damaged one, or one whose recorded stream
//! sequence does not end at its LSN, is refused and reported, and opening
//! falls back to an older one or to a full replay.
//!
//! Runs against the shared cluster of `TICKETLOG_NATS_URL` (see
//! tests/it/jetstream.rs), one stream per test; skipped without it. The
//! tests reach into the bucket with the NATS client itself, as an operator
//! or a faulty disk would.

use ticketlog::{Damage, ListQuery, RecoveryReport, Status, Store, Ticket, TicketPatch};

use crate::common::draft;
use crate::jetstream_common::{Bucket, jetstream, open, request_raw, shared_cluster, stream_name};

/// Opens a new host (a fresh data directory) on `stream`; returns it with
/// its state: every ticket, and the state digest.
fn new_host(urls: &[String], stream: &str) -> (RecoveryReport, Vec<Ticket>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), urls, stream);
    let report = store.recovery().clone();
    let tickets = store.client().list(ListQuery::default()).unwrap();
    let digest = store.client().stats().unwrap().digest;
    store.close().unwrap();
    (report, tickets, digest)
}

/// Some commands of every kind, in `rounds` batches of their own.
fn write_some(store: &Store, label: &str, rounds: usize) {
    let client = store.client();
    for round in 0..rounds {
        let made = client
            .create_many(
                (0..20)
                    .map(|i| draft(&format!("{label} {round}.{i}")))
                    .collect(),
            )
            .unwrap();
        client
            .update(
                made[0].id,
                TicketPatch {
                    status: Some(Status::Done),
                    ..TicketPatch::default()
                },
            )
            .unwrap();
        client.delete(made[1].id).unwrap();
    }
}

fn object_name(lsn: u64) -> String {
    format!("snapshot-{lsn:020}")
}

#[test]
fn a_new_host_starts_from_the_newest_snapshot_plus_the_tail_and_equals_a_full_replay() {
    let Some(urls) = shared_cluster("bootstrap") else {
        return;
    };
    let stream = stream_name("bootstrap");
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), &urls, &stream);
    write_some(&first, "before", 5);
    let snapshot = first.snapshot().unwrap();
    assert!(
        snapshot.path.to_string_lossy().contains("nats-object:"),
        "the snapshot went to the bucket: {snapshot:?}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".snap")),
        "and not to the data directory"
    );
    write_some(&first, "after", 3);
    let expected = first.client().list(ListQuery::default()).unwrap();
    let expected_digest = first.client().stats().unwrap().digest;
    let last_lsn = first.client().stats().unwrap().last_lsn;
    first.close().unwrap();

    let (report, tickets, digest) = new_host(&urls, &stream);
    let loaded = report.snapshot.as_ref().expect("it loaded the snapshot");
    assert_eq!(loaded.lsn, snapshot.lsn);
    assert_eq!(loaded.digest, snapshot.digest);
    assert!(report.snapshots_rejected.is_empty(), "{report:?}");
    assert_eq!(
        report.records_replayed,
        last_lsn - snapshot.lsn,
        "only the tail after the snapshot is replayed"
    );
    assert_eq!(tickets, expected);
    assert_eq!(digest, expected_digest);

    // The same stream replayed in full (its snapshots removed) reaches the
    // same state.
    let bucket = Bucket::open(&urls, &stream);
    assert_eq!(bucket.names(), vec![object_name(snapshot.lsn)]);
    bucket.runtime.block_on(async {
        bucket
            .bucket
            .delete(object_name(snapshot.lsn))
            .await
            .unwrap()
    });
    let (report, tickets, digest) = new_host(&urls, &stream);
    assert!(report.snapshot.is_none(), "{report:?}");
    assert_eq!(report.records_replayed, last_lsn);
    assert_eq!(tickets, expected);
    assert_eq!(digest, expected_digest);
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_older_one_then_to_a_full_replay() {
    let Some(urls) = shared_cluster("damaged_snapshot") else {
        return;
    };
    let stream = stream_name("damaged_snapshot");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &urls, &stream);
    let mut snapshots = Vec::new();
    for round in 0..3 {
        write_some(&store, &format!("round {round}"), 2);
        snapshots.push(store.snapshot().unwrap());
    }
    write_some(&store, "tail", 1);
    let expected = store.client().list(ListQuery::default()).unwrap();
    let expected_digest = store.client().stats().unwrap().digest;
    store.close().unwrap();

    // Retention kept the newest two, as the local log keeps two files.
    let bucket = Bucket::open(&urls, &stream);
    let (older, newest) = (&snapshots[1], &snapshots[2]);
    assert_eq!(
        bucket.names(),
        vec![object_name(older.lsn), object_name(newest.lsn)]
    );

    bucket.damage(&object_name(newest.lsn));
    let (report, tickets, digest) = new_host(&urls, &stream);
    assert!(report.fell_back(), "{report:?}");
    assert_eq!(report.snapshots_rejected.len(), 1, "{report:?}");
    assert!(
        report.snapshots_rejected[0]
            .path
            .ends_with(object_name(newest.lsn)),
        "{report:?}"
    );
    assert_eq!(report.snapshot.as_ref().map(|s| s.lsn), Some(older.lsn));
    assert_eq!(tickets, expected);
    assert_eq!(digest, expected_digest);

    bucket.damage(&object_name(older.lsn));
    let (report, tickets, digest) = new_host(&urls, &stream);
    assert_eq!(report.snapshots_rejected.len(), 2, "{report:?}");
    assert!(report.snapshot.is_none(), "a full replay: {report:?}");
    assert_eq!(tickets, expected);
    assert_eq!(digest, expected_digest);
}

#[test]
fn a_snapshot_whose_recorded_sequence_does_not_end_at_its_lsn_is_refused() {
    let Some(urls) = shared_cluster("misplaced_snapshot") else {
        return;
    };
    let stream = stream_name("misplaced_snapshot");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &urls, &stream);
    write_some(&store, "before", 3);
    let snapshot = store.snapshot().unwrap();
    write_some(&store, "after", 1);
    let expected = store.client().list(ListQuery::default()).unwrap();
    store.close().unwrap();

    // Good bytes, but the sequence recorded with them is one too early:
    // the message there ends at an earlier LSN.
    let bucket = Bucket::open(&urls, &stream);
    let name = object_name(snapshot.lsn);
    let (bytes, mut metadata) = bucket.get(&name);
    let seq: u64 = metadata["ticketlog-stream-seq"].parse().unwrap();
    assert!(seq > 1, "{metadata:?}");
    metadata.insert("ticketlog-stream-seq".into(), (seq - 1).to_string());
    bucket.put(&name, &bytes, metadata.clone());
    let (report, tickets, _) = new_host(&urls, &stream);
    assert!(report.snapshot.is_none(), "{report:?}");
    assert_eq!(report.snapshots_rejected.len(), 1, "{report:?}");
    let damage = &report.snapshots_rejected[0].damage;
    assert!(
        matches!(damage, Damage::Inconsistent(what) if what.contains(&format!("sequence {}", seq - 1))),
        "{damage:?}"
    );
    assert_eq!(tickets, expected);

    // Put back as it was, it is used again: the check is what refused it.
    metadata.insert("ticketlog-stream-seq".into(), seq.to_string());
    bucket.put(&name, &bytes, metadata);
    let (report, tickets, _) = new_host(&urls, &stream);
    assert_eq!(report.snapshot.as_ref().map(|s| s.lsn), Some(snapshot.lsn));
    assert!(report.snapshots_rejected.is_empty(), "{report:?}");
    assert_eq!(tickets, expected);
}

#[test]
fn a_host_whose_bucket_cannot_be_had_opens_by_a_full_replay_and_finds_the_bucket_later() {
    let Some(urls) = shared_cluster("bucket_cannot_be_had") else {
        return;
    };
    let stream = stream_name("nobucket");
    let bucket = format!("ticketlog-{stream}-snapshots");
    // Another stream holds the bucket's subjects: the bucket's own stream
    // cannot be created, and the JetStream API says so on every try.
    let blocker = format!("{stream}_blocker");
    let config = format!(
        r#"{{"name":"{blocker}","subjects":["$O.{bucket}.>"],"storage":"memory","num_replicas":1}}"#
    );
    let created = request_raw(
        &urls[0],
        &format!("$JS.API.STREAM.CREATE.{blocker}"),
        config.as_bytes(),
    )
    .expect("the JetStream API answers");
    assert!(!created.contains("\"error\""), "{created}");

    let dir = tempfile::tempdir().unwrap();
    let deadline = std::time::Duration::from_secs(2);
    let store = Store::open(dir.path(), jetstream(&urls, &stream, deadline))
        .expect("the log opens without its bucket");
    let rejected = &store.recovery().snapshots_rejected;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        rejected[0].path,
        std::path::PathBuf::from(format!("nats-object:{bucket}"))
    );
    assert!(
        matches!(rejected[0].damage, Damage::Unreadable(_)),
        "{rejected:?}"
    );
    write_some(&store, "without a bucket", 3);
    let snapshot = store.snapshot();
    assert!(snapshot.is_err(), "a snapshot with no bucket: {snapshot:?}");
    // Writes went on regardless.
    let tickets = store.client().list(ListQuery::default()).unwrap();
    assert_eq!(tickets.len(), 3 * 19);

    // The subjects are free again: the next snapshot finds the bucket.
    let deleted = request_raw(&urls[0], &format!("$JS.API.STREAM.DELETE.{blocker}"), b"")
        .expect("the JetStream API answers");
    assert!(deleted.contains("\"success\":true"), "{deleted}");
    let info = store
        .snapshot()
        .expect("a snapshot once the bucket can be had");
    store.close().unwrap();
    let (report, replayed, _) = new_host(&urls, &stream);
    assert_eq!(report.snapshot.as_ref().map(|s| s.lsn), Some(info.lsn));
    assert!(report.snapshots_rejected.is_empty(), "{report:?}");
    assert_eq!(replayed, tickets);
}
