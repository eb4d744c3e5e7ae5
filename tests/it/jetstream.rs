//! The JetStream log backend against a real 3-node NATS cluster.
//!
//! The shared cluster's URLs come from `TICKETLOG_NATS_URL` (comma-separated;
//! `.ci/run` starts the cluster and sets it); each test uses a stream of its
//! own. The fault tests start a cluster of their own, on their own ports and
//! in their own directory, with `.ci/nats-cluster.sh`. Without the variable
//! every test here says how to run it and passes as skipped.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ticketlog::{
    ClientError, JetStreamOptions, LogBackend, OpenError, Status, StorageError, Store, Ticket,
    TicketDraft, TicketId, TicketPatch,
};

use crate::common::draft;
use crate::jetstream_common::{
    OwnCluster, StopOnDrop, all_tickets, assert_all_present, create_load, jetstream, open,
    open_options, request_raw, shared_cluster, stream_leader, stream_name, wait_for_next_id,
};

#[test]
fn racing_updates_across_hosts_lose_no_update_and_honour_expected_versions() {
    let Some(urls) = shared_cluster("racing_updates") else {
        return;
    };
    let stream = stream_name("race");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(dir_a.path(), &urls, &stream);
    let b = open(dir_b.path(), &urls, &stream);
    let ticket = a.client().create(draft("contended")).unwrap();
    wait_for_next_id(&b, TicketId::from(2), Duration::from_secs(10));

    // Both hosts update the same ticket, each update expecting the version
    // it read: every success must be the only one at its version.
    let rounds = 40;
    let outcomes = thread::scope(|scope| {
        let workers: Vec<_> = [&a, &b]
            .into_iter()
            .enumerate()
            .map(|(host, store)| {
                let client = store.client();
                scope.spawn(move || {
                    let mut won = Vec::new();
                    let mut conflicts = 0;
                    for round in 0..rounds {
                        let current = client.get(ticket.id).unwrap().unwrap();
                        let patch = TicketPatch {
                            title: Some(format!("h{host} r{round}").as_str().try_into().unwrap()),
                            expected_version: Some(current.version),
                            ..TicketPatch::default()
                        };
                        match client.update(ticket.id, patch) {
                            Ok(updated) => won.push(updated.version),
                            Err(ClientError::Conflict { .. }) => conflicts += 1,
                            Err(other) => panic!("unexpected error: {other}"),
                        }
                    }
                    (won, conflicts)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });
    let mut versions: Vec<u64> = outcomes.iter().flat_map(|(won, _)| won.clone()).collect();
    let successes = versions.len();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(
        versions.len(),
        successes,
        "two updates won the same version"
    );
    // Every acknowledged update is applied once on both hosts (a host's
    // reads trail the other's writes by the tail, so wait, bounded); the
    // version never passes the number of successes.
    let expected_version = 1 + successes as u64;
    let started = Instant::now();
    loop {
        let on_a = a.client().get(ticket.id).unwrap().unwrap();
        let on_b = b.client().get(ticket.id).unwrap().unwrap();
        assert!(
            on_a.version <= expected_version && on_b.version <= expected_version,
            "more versions than acknowledged updates: {} and {}",
            on_a.version,
            on_b.version
        );
        if on_a.version == expected_version && on_a == on_b {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "an acknowledged update was lost: versions {} and {}, expected {expected_version}",
            on_a.version,
            on_b.version
        );
        thread::sleep(Duration::from_millis(20));
    }
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn a_store_reopened_on_the_stream_replays_it() {
    let Some(urls) = shared_cluster("reopen") else {
        return;
    };
    let stream = stream_name("reopen");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &urls, &stream);
    let client = store.client();
    let one = client.create(draft("one")).unwrap();
    let many = client
        .create_many((0..50).map(|i| draft(&format!("many {i}"))).collect())
        .unwrap();
    client
        .update(
            one.id,
            TicketPatch {
                status: Some(Status::Done),
                ..TicketPatch::default()
            },
        )
        .unwrap();
    client.delete(many[0].id).unwrap();
    let before = all_tickets(&store);
    let history = client.history(one.id).unwrap();
    assert_eq!(history.len(), 2, "create and update");
    store.close().unwrap();

    let store = open(dir.path(), &urls, &stream);
    assert_eq!(all_tickets(&store), before);
    assert_eq!(store.recovery().records_replayed, 4);
    assert_eq!(store.client().history(one.id).unwrap(), history);
    store.snapshot().unwrap();
    store.close().unwrap();

    // The directory's snapshot is of this stream: reopening loads it, and
    // the same directory on another stream is refused.
    let store = open(dir.path(), &urls, &stream);
    assert!(store.recovery().snapshot.is_some());
    assert_eq!(store.recovery().records_replayed, 0);
    assert_eq!(all_tickets(&store), before);
    store.close().unwrap();
    let error = Store::open(dir.path(), open_options(&urls, &stream_name("other"))).unwrap_err();
    assert!(
        matches!(error, OpenError::LogConfigMismatch { .. }),
        "a directory of another stream: {error:?}"
    );
}

#[test]
fn a_big_batch_is_split_and_an_oversize_command_is_a_typed_error() {
    let Some(urls) = shared_cluster("limits") else {
        return;
    };
    let stream = stream_name("limits");
    let small = |stream: &str| {
        jetstream(&urls, stream, Duration::from_secs(15)).log_backend(LogBackend::JetStream(
            JetStreamOptions::new(urls.iter().cloned(), stream).message_bytes_max(16 << 10),
        ))
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small(&stream)).unwrap();
    let big = |i: usize| TicketDraft {
        title: format!("big {i}").as_str().try_into().unwrap(),
        description: "d".repeat(500).as_str().try_into().unwrap(),
    };
    // One create-many of 40 big drafts is ~22 KB: over the 16 KiB message.
    let error = store
        .client()
        .create_many((0..40).map(big).collect())
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Storage(StorageError::RecordTooLarge { .. })
        ),
        "{error:?}"
    );
    // Many concurrent create-manys of 10 (~5.5 KB each) make batches over
    // 16 KiB: split over several messages, every one acknowledged.
    let acked: Vec<Ticket> = thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let client = store.client();
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for round in 0..5 {
                        acked.extend(
                            client
                                .create_many(
                                    (0..10).map(|i| big(w * 1000 + round * 10 + i)).collect(),
                                )
                                .unwrap(),
                        );
                    }
                    acked
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(acked.len(), 400);
    let stats = store.client().stats().unwrap();
    assert_eq!(stats.records, 40);
    let before = all_tickets(&store);
    store.close().unwrap();
    let other = tempfile::tempdir().unwrap();
    let store = Store::open(other.path(), small(&stream)).unwrap();
    assert_eq!(
        all_tickets(&store),
        before,
        "the split batches replay whole"
    );
    store.close().unwrap();

    // The same stream with another message size is another configuration.
    let third = tempfile::tempdir().unwrap();
    let error = Store::open(third.path(), open_options(&urls, &stream)).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::LogConfigMismatch {
                field: "max_message_size",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn killing_a_node_under_load_loses_no_acknowledged_command() {
    if shared_cluster("kill_a_node").is_none() {
        return;
    }
    let cluster = OwnCluster::start(25222);
    let stream = stream_name("kill");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(dir_a.path(), &cluster.urls, &stream);
    let b = open(dir_b.path(), &cluster.urls, &stream);
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, errors) = thread::scope(|scope| {
        let load = scope.spawn(|| create_load(&[&a, &b], 4, 2_000, &stop));
        // Kill nodes one at a time under load (the stream leader is one of
        // them), each back and current before the next.
        for node in [1, 2, 3] {
            thread::sleep(Duration::from_millis(700));
            cluster.kill(node);
            thread::sleep(Duration::from_millis(1500));
            cluster.restart(node);
            let took = cluster.wait_healthy(Duration::from_secs(60));
            eprintln!("kill_a_node: node {node} healthy again {took:?} after its restart");
        }
        thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap()
    });
    eprintln!(
        "kill_a_node: {} acknowledged, {} errors (first: {:?})",
        acked.len(),
        errors.len(),
        errors.first()
    );
    assert!(!acked.is_empty());
    for error in &errors {
        assert!(
            matches!(
                error,
                ClientError::Storage(
                    StorageError::Unavailable { .. } | StorageError::Contended { .. }
                )
            ),
            "only in-doubt or contended errors are allowed: {error}"
        );
    }
    let ids: HashSet<TicketId> = acked.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), acked.len(), "an id was acknowledged twice");
    // A fresh host sees every acknowledged command.
    let dir_c = tempfile::tempdir().unwrap();
    let c = open(dir_c.path(), &cluster.urls, &stream);
    assert_all_present(&c, &acked);
    let next_id = c.client().stats().unwrap().next_id;
    eprintln!("kill_a_node: waiting for host a");
    wait_for_next_id(&a, next_id, Duration::from_secs(20));
    eprintln!("kill_a_node: waiting for host b");
    wait_for_next_id(&b, next_id, Duration::from_secs(20));
    assert_eq!(all_tickets(&a), all_tickets(&c));
    assert_eq!(all_tickets(&b), all_tickets(&c));
    drop((a, b, c));
}

#[test]
fn a_stopped_cluster_gives_unavailable_within_the_deadline_and_never_a_false_ack() {
    if shared_cluster("stopped_cluster").is_none() {
        return;
    }
    let cluster = OwnCluster::start(26222);
    let stream = stream_name("stopped");
    let dir = tempfile::tempdir().unwrap();
    let deadline = Duration::from_secs(3);
    let store = Store::open(dir.path(), jetstream(&cluster.urls, &stream, deadline)).unwrap();
    let client = store.client();
    let before = client.create(draft("before")).unwrap();
    cluster.stop();
    let started = Instant::now();
    let result = client.create(draft("while stopped"));
    let waited = started.elapsed();
    assert!(
        matches!(
            result,
            Err(ClientError::Storage(StorageError::Unavailable { .. }))
        ),
        "{result:?}"
    );
    assert!(
        waited < deadline + Duration::from_secs(3),
        "Unavailable came after {waited:?}, past the {deadline:?} deadline"
    );
    // Reads still answer from the applied state.
    assert_eq!(client.get(before.id).unwrap(), Some(before.clone()));
    // Back up: writes go on, and what was acknowledged is there.
    for node in [1, 2, 3] {
        cluster.restart(node);
    }
    let started = Instant::now();
    let after = loop {
        match client.create(draft("after")) {
            Ok(ticket) => break ticket,
            Err(ClientError::Storage(StorageError::Unavailable { .. })) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "no progress after the restart"
                );
            }
            Err(other) => panic!("unexpected error after the restart: {other}"),
        }
    };
    assert!(after.id > before.id);
    store.close().unwrap();
    let other = tempfile::tempdir().unwrap();
    let reopened = open(other.path(), &cluster.urls, &stream);
    assert_all_present(&reopened, &[before, after]);
}

#[test]
fn the_cli_on_two_directories_shares_one_stream() {
    let Some(urls) = shared_cluster("cli_shares_a_stream") else {
        return;
    };
    let stream = stream_name("cli");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ticketlog = |dir: &Path, args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ticketlog"))
            .arg("--dir")
            .arg(dir)
            .args(["--nats", &urls.join(","), "--stream", &stream, "--json"])
            .args(args)
            .output()
            .expect("run ticketlog");
        assert!(
            output.status.success(),
            "ticketlog {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    };
    let added = ticketlog(
        dir_a.path(),
        &[
            "add",
            "--title",
            "from a",
            "--description",
            "written on host a",
        ],
    );
    assert!(added.contains("\"id\":1"), "{added}");
    let got = ticketlog(dir_b.path(), &["get", "1"]);
    assert!(
        got.contains("from a"),
        "host b does not see host a's ticket: {got}"
    );
    let updated = ticketlog(dir_b.path(), &["update", "1", "--status", "done"]);
    assert!(updated.contains("\"version\":2"), "{updated}");
    let history = ticketlog(dir_a.path(), &["history", "1"]);
    assert_eq!(history.lines().count(), 2, "{history}");
}

#[test]
fn losing_the_majority_gives_unavailable_and_one_node_back_resumes_writes() {
    if shared_cluster("lose_the_majority").is_none() {
        return;
    }
    let cluster = OwnCluster::start(27222);
    let stream = stream_name("majority");
    let dir = tempfile::tempdir().unwrap();
    let deadline = Duration::from_secs(3);
    let store = Store::open(dir.path(), jetstream(&cluster.urls, &stream, deadline)).unwrap();
    let client = store.client();
    let mut acked = vec![client.create(draft("before")).unwrap()];
    cluster.kill(2);
    cluster.kill(3);
    let started = Instant::now();
    let result = client.create(draft("without a quorum"));
    let waited = started.elapsed();
    assert!(
        matches!(
            result,
            Err(ClientError::Storage(StorageError::Unavailable { .. }))
        ),
        "one node of three must not acknowledge: {result:?}"
    );
    assert!(
        waited < deadline + Duration::from_secs(3),
        "Unavailable came after {waited:?}"
    );
    cluster.restart(2);
    let started = Instant::now();
    loop {
        match client.create(draft("quorum back")) {
            Ok(ticket) => {
                acked.push(ticket);
                break;
            }
            Err(ClientError::Storage(StorageError::Unavailable { .. })) => assert!(
                started.elapsed() < Duration::from_secs(60),
                "no progress with two of three nodes back"
            ),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    eprintln!(
        "lose_the_majority: writes resumed {:?} after one node came back",
        started.elapsed()
    );
    store.close().unwrap();
    let other = tempfile::tempdir().unwrap();
    let reopened = open(other.path(), &cluster.urls, &stream);
    assert_all_present(&reopened, &acked);
}

/// Publishes `payload` on `subject` with the plain NATS text protocol, as a
/// foreign writer would (no fence, no ticketlog framing), and waits for the
/// stream's publish acknowledgement, returning the sequence it was stored at.
/// Waiting for the acknowledgement, not just the server's PONG, matters: the
/// PONG only says the server read the PUB, and a ticketlog append sent right
/// after it could otherwise be stored first.
fn publish_raw(url: &str, subject: &str, payload: &[u8]) -> u64 {
    use std::io::{BufRead, BufReader, Read, Write};
    let address = url.trim_start_matches("nats://");
    let stream = std::net::TcpStream::connect(address).expect("connect to NATS");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).expect("the server's INFO");
    assert!(line.starts_with("INFO"), "{line}");
    let mut writer = stream;
    let inbox = "_INBOX.ticketlog-test-raw";
    write!(
        writer,
        "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {inbox} 1\r\nPUB {subject} {inbox} {}\r\n",
        payload.len()
    )
    .unwrap();
    writer.write_all(payload).unwrap();
    writer.write_all(b"\r\n").unwrap();
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .expect("the stream's acknowledgement");
        assert!(!line.starts_with("-ERR"), "{line}");
        if line.starts_with("PING") {
            writer.write_all(b"PONG\r\n").unwrap();
            continue;
        }
        if let Some(header) = line.strip_prefix("MSG ") {
            let size: usize = header
                .split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a MSG line: {line}"));
            let mut body = vec![0; size + 2];
            reader
                .read_exact(&mut body)
                .expect("the acknowledgement's body");
            let body = String::from_utf8_lossy(&body[..size]).into_owned();
            assert!(!body.contains("\"error\""), "the stream refused: {body}");
            let seq = body
                .split("\"seq\":")
                .nth(1)
                .and_then(|rest| {
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|n| n.parse().ok())
                })
                .unwrap_or_else(|| panic!("no sequence in the acknowledgement: {body}"));
            return seq;
        }
    }
}

#[test]
fn a_damaged_message_in_the_stream_stops_writes_loudly() {
    let Some(urls) = shared_cluster("damaged_message") else {
        return;
    };
    let stream = stream_name("damaged");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &urls, &stream);
    let client = store.client();
    let first = client.create(draft("before the damage")).unwrap();
    let seq = publish_raw(
        &urls[0],
        &format!("ticketlog.{stream}"),
        b"not a ticketlog batch",
    );
    assert_eq!(
        seq, 2,
        "the foreign message is stored right after the first batch"
    );
    let error = client.create(draft("after the damage")).unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Storage(StorageError::Diverged { seq: 2, .. })
        ),
        "{error:?}"
    );
    // Reads go on; writes stay refused.
    assert_eq!(client.get(first.id).unwrap(), Some(first));
    assert!(client.create(draft("still refused")).is_err());
    store.close().unwrap_err();
    // A new host refuses to open on the damaged stream, naming the sequence.
    let other = tempfile::tempdir().unwrap();
    let error = Store::open(other.path(), open_options(&urls, &stream)).unwrap_err();
    assert!(
        matches!(error, OpenError::Corrupt { offset: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn killing_the_leader_and_stepping_it_down_lose_nothing_and_the_pause_is_bounded() {
    if shared_cluster("kill_the_leader").is_none() {
        return;
    }
    let cluster = OwnCluster::start(28222);
    let stream = stream_name("leader");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &cluster.urls, &stream);
    let stop = AtomicBool::new(false);
    let kills = 4;
    let stepdowns = 4;
    let (acked, errors, gaps, slowest_call) = thread::scope(|scope| {
        let stop_load = StopOnDrop(&stop);
        let load = scope.spawn(|| {
            let client = store.client();
            let mut acked = Vec::new();
            let mut errors = Vec::new();
            let mut last_ack = Instant::now();
            let mut gaps = Vec::new();
            let mut slowest_call = Duration::ZERO;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let called = Instant::now();
                let result = client.create(draft(&format!("leader load #{i}")));
                slowest_call = slowest_call.max(called.elapsed());
                match result {
                    Ok(ticket) => {
                        gaps.push(last_ack.elapsed());
                        last_ack = Instant::now();
                        acked.push(ticket);
                    }
                    Err(error) => errors.push(error),
                }
            }
            (acked, errors, gaps, slowest_call)
        });
        let mut leaders = Vec::new();
        for round in 0..kills + stepdowns {
            thread::sleep(Duration::from_millis(500));
            // Any node can answer; ask one that is up.
            let leader = stream_leader(&cluster.urls, &stream);
            if round < kills {
                cluster.kill(leader);
                thread::sleep(Duration::from_secs(1));
                cluster.restart(leader);
                cluster.wait_healthy(Duration::from_secs(60));
            } else {
                // Any node forwards the request to the leader; one may be
                // busy, so try each until one answers.
                let stepped_down = cluster.urls.iter().any(|url| {
                    request_raw(
                        url,
                        &format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}"),
                        b"",
                    )
                    .is_some()
                });
                assert!(stepped_down, "no node answered the step-down request");
                thread::sleep(Duration::from_secs(1));
            }
            leaders.push(leader);
        }
        eprintln!("kill_the_leader: leaders faulted in turn: {leaders:?}");
        thread::sleep(Duration::from_millis(500));
        drop(stop_load);
        load.join().unwrap()
    });
    let mut gaps_ms: Vec<u128> = gaps.iter().map(Duration::as_millis).collect();
    gaps_ms.sort_unstable();
    let longest: Vec<u128> = gaps_ms
        .iter()
        .rev()
        .take(kills + stepdowns)
        .copied()
        .collect();
    eprintln!(
        "kill_the_leader: {} acknowledged, {} errors (first: {:?}); the {} longest gaps between acknowledgements (ms): {longest:?}",
        acked.len(),
        errors.len(),
        errors.first().map(ToString::to_string),
        kills + stepdowns
    );
    for error in &errors {
        assert!(
            matches!(
                error,
                ClientError::Storage(StorageError::Unavailable { .. })
            ),
            "only in-doubt errors are allowed: {error}"
        );
    }
    // Bounded: no call waits longer than the in-doubt deadline (15 s) plus
    // a margin; it is acknowledged or gets `Unavailable`.
    eprintln!("kill_the_leader: the slowest call took {slowest_call:?}");
    assert!(
        slowest_call < Duration::from_secs(20),
        "a call took {slowest_call:?}, past the in-doubt deadline"
    );
    let ids: HashSet<TicketId> = acked.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), acked.len(), "an id was acknowledged twice");
    store.close().unwrap();
    let other = tempfile::tempdir().unwrap();
    let reopened = open(other.path(), &cluster.urls, &stream);
    assert_all_present(&reopened, &acked);
    // Nothing duplicated: exactly the acknowledged tickets, plus at most
    // the in-doubt ones.
    let total = all_tickets(&reopened).len();
    assert!(total >= acked.len() && total <= acked.len() + errors.len());
}

#[test]
fn a_subscriber_on_one_host_sees_both_hosts_events_in_the_streams_order() {
    let Some(urls) = shared_cluster("subscriber_sees_both_hosts") else {
        return;
    };
    let stream = stream_name("subscribe");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(dir_a.path(), &urls, &stream);
    let b = open(dir_b.path(), &urls, &stream);
    let mut events = b.client().subscribe(0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, errors) = create_load(&[&a, &b], 2, 30, &stop);
    assert!(errors.is_empty(), "no write may fail here: {errors:?}");
    let mut seen = Vec::new();
    while seen.len() < acked.len() {
        match events.next_timeout(Duration::from_secs(30)) {
            Some(Ok(event)) => seen.push(event),
            other => panic!("after {} events: {other:?}", seen.len()),
        }
    }
    // Every acknowledged create of either host, once, in one order that a
    // fresh subscription (read from the stream) repeats exactly.
    let ids: HashSet<TicketId> = seen.iter().map(|e| e.ticket_id).collect();
    assert_eq!(ids, acked.iter().map(|t| t.id).collect::<HashSet<_>>());
    assert!(seen.windows(2).all(|w| w[0].position() < w[1].position()));
    let mut replayed = a.client().subscribe(0).unwrap();
    let again: Vec<_> = (0..seen.len())
        .map(|_| {
            replayed
                .next_timeout(Duration::from_secs(30))
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(again, seen);
    a.close().unwrap();
    b.close().unwrap();
}

/// A NATS server older than 2.12.3, started by the test: Debian's 2.9.10
/// (`TICKETLOG_OLD_NATS_SERVER` names its binary; `.ci/run` unpacks it from
/// Debian's package), a single node with JetStream on port 29222.
struct OldServer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl OldServer {
    fn start(test: &str) -> Option<OldServer> {
        let Ok(binary) = std::env::var("TICKETLOG_OLD_NATS_SERVER") else {
            eprintln!(
                "{test}: skipped: TICKETLOG_OLD_NATS_SERVER is unset. Unpack Debian's 2.9.10 \
                 with `apt-get download nats-server && dpkg-deb -x nats-server_*.deb old-nats` \
                 and set TICKETLOG_OLD_NATS_SERVER=old-nats/usr/sbin/nats-server"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = 29222;
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let server = OldServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        };
        // Bounded: a server that never listens fails the test, not hangs it.
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{binary} did not listen on {port} within 20 s"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }
}

impl Drop for OldServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_server_older_than_2_12_3_is_refused_and_nothing_is_created_on_it() {
    let test = "old_server_refused";
    let Some(server) = OldServer::start(test) else {
        return;
    };
    let stream = stream_name("old_server");
    let dir = tempfile::tempdir().unwrap();
    let urls = vec![server.url.clone()];
    let refused = Store::open(dir.path(), open_options(&urls, &stream));
    match refused {
        Err(OpenError::LogServerTooOld { version, min, .. }) => {
            assert!(version.starts_with("2.9."), "the server said {version}");
            assert_eq!(min, "2.12.3");
        }
        Err(other) => panic!("expected LogServerTooOld, got {other}"),
        Ok(_) => panic!("a 2.9 server was accepted"),
    }
    // Refused before anything was asked of it: no stream was created.
    let info = request_raw(&server.url, &format!("$JS.API.STREAM.INFO.{stream}"), b"")
        .expect("the old server answers stream info");
    assert!(info.contains("\"code\":404"), "{info}");
    // And the data directory was not bound to any stream.
    assert!(!dir.path().join("jetstream-stream").exists());
}
