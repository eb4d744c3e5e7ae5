//! Fault tests of the JetStream log: several hosts racing, a paused leader,
//! the whole cluster killed, an application host killed mid-batch,
//! `crash-test` killing hosts and NATS nodes, the stream's leader cut off
//! from the other nodes and healed, and (ignored, a measurement)
//! the gap in acknowledgements over many leader kills.
//!
//! Each test that faults the cluster starts one of its own (its own ports
//! and temporary directory) and is bounded by a watchdog. Like
//! `jetstream.rs`, every test is skipped (saying how to run it) unless
//! `TICKETLOG_NATS_URL` names the shared cluster.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ticketlog::{ClientError, StorageError, Store, Ticket, TicketId, TicketPatch};

use crate::common::{Rng, draft, seed};
use crate::jetstream_common::{
    Bucket, OwnCluster, StopOnDrop, Watchdog, all_tickets, assert_all_present, jetstream, open,
    script, shared_cluster, stream_leader, stream_name, wait_for_lsn,
};
use crate::route_proxy::RouteProxies;

/// An acknowledged update: the ticket, the version it expected and the one
/// it made.
#[derive(Clone, Copy, Debug)]
struct AckedUpdate {
    id: TicketId,
    version: u64,
}

/// What the racing clients saw.
#[derive(Default)]
struct RaceOutcome {
    created: Vec<Ticket>,
    updated: Vec<AckedUpdate>,
    conflicts: u64,
    contended: u64,
}

#[test]
fn three_hosts_racing_creates_and_updates_agree_and_lose_nothing() {
    let Some(urls) = shared_cluster("three_hosts_racing") else {
        return;
    };
    let _watchdog = Watchdog::start("three_hosts_racing", Duration::from_secs(120));
    let seed = seed("three_hosts_racing");
    let stream = stream_name("race3");
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    // No digest records: the stream's records are then exactly the commands.
    let options = || jetstream(&urls, &stream, Duration::from_secs(15)).digest_every(0);
    let hosts: Vec<Store> = dirs[..3]
        .iter()
        .map(|dir| Store::open(dir.path(), options()).unwrap())
        .collect();
    // The tickets every client updates: made on host 0, seen by all.
    let shared: Vec<Ticket> = (0..4)
        .map(|i| {
            hosts[0]
                .client()
                .create(draft(&format!("shared {i}")))
                .unwrap()
        })
        .collect();
    let setup_lsn = hosts[0].client().stats().unwrap().last_lsn;
    for host in &hosts {
        wait_for_lsn(host, setup_lsn, Duration::from_secs(20));
    }
    let run_for = Duration::from_secs(4);
    let outcome = Mutex::new(RaceOutcome::default());
    thread::scope(|scope| {
        for (h, host) in hosts.iter().enumerate() {
            for c in 0..8u64 {
                let client = host.client();
                let shared = &shared;
                let outcome = &outcome;
                scope.spawn(move || {
                    let mut rng = Rng::new(seed ^ ((h as u64) << 8 | c));
                    let mut mine = RaceOutcome::default();
                    let started = Instant::now();
                    let mut i = 0;
                    while started.elapsed() < run_for {
                        i += 1;
                        if rng.below(3) == 0 {
                            match client.create(draft(&format!("h{h} c{c} #{i}"))) {
                                Ok(ticket) => mine.created.push(ticket),
                                Err(ClientError::Storage(StorageError::Contended { .. })) => {
                                    mine.contended += 1
                                }
                                Err(other) => panic!("create on host {h}: {other}"),
                            }
                            continue;
                        }
                        // Update a shared ticket expecting the version this
                        // host has applied: only one update wins each version.
                        let id = shared[rng.below(shared.len() as u64) as usize].id;
                        let current = client.get(id).unwrap().expect("shared ticket");
                        let patch = TicketPatch {
                            title: Some(format!("h{h} c{c} #{i}").as_str().try_into().unwrap()),
                            expected_version: Some(current.version),
                            ..TicketPatch::default()
                        };
                        match client.update(id, patch) {
                            Ok(ticket) => {
                                assert_eq!(ticket.version, current.version + 1);
                                mine.updated.push(AckedUpdate {
                                    id,
                                    version: ticket.version,
                                });
                            }
                            Err(ClientError::Conflict { .. }) => mine.conflicts += 1,
                            Err(ClientError::Storage(StorageError::Contended { .. })) => {
                                mine.contended += 1
                            }
                            Err(other) => panic!("update on host {h}: {other}"),
                        }
                    }
                    let mut all = outcome.lock().unwrap();
                    all.created.extend(mine.created);
                    all.updated.extend(mine.updated);
                    all.conflicts += mine.conflicts;
                    all.contended += mine.contended;
                });
            }
        }
    });
    let outcome = outcome.into_inner().unwrap();
    eprintln!(
        "three_hosts_racing: {} creates and {} updates acknowledged, {} conflicts, {} contended",
        outcome.created.len(),
        outcome.updated.len(),
        outcome.conflicts,
        outcome.contended
    );
    assert!(!outcome.created.is_empty() && !outcome.updated.is_empty());
    let ids: HashSet<TicketId> = outcome.created.iter().map(|t| t.id).collect();
    assert_eq!(
        ids.len(),
        outcome.created.len(),
        "an id was acknowledged twice"
    );
    // No version of a shared ticket won twice, and none was lost: each
    // ticket's versions won are exactly 2..=1+updates.
    let mut won: BTreeMap<TicketId, Vec<u64>> = BTreeMap::new();
    for update in &outcome.updated {
        won.entry(update.id).or_default().push(update.version);
    }
    for versions in won.values_mut() {
        versions.sort_unstable();
        let expected: Vec<u64> = (2..2 + versions.len() as u64).collect();
        assert_eq!(*versions, expected, "a version won twice or was skipped");
    }

    // A fresh host replays exactly the acknowledged commands; all four
    // hosts end at the same position with the same state digest.
    let fresh = Store::open(dirs[3].path(), options()).unwrap();
    let commands = (shared.len() + outcome.created.len() + outcome.updated.len()) as u64;
    assert_eq!(
        fresh.recovery().records_replayed,
        commands,
        "the stream holds other commands than the acknowledged ones"
    );
    let last = fresh.client().stats().unwrap();
    for (h, host) in hosts.iter().enumerate() {
        let stats = wait_for_lsn(host, last.last_lsn, Duration::from_secs(20));
        assert_eq!(stats.last_lsn, last.last_lsn, "host {h} is past the stream");
        assert_eq!(stats.digest, last.digest, "host {h}'s state differs");
    }
    assert_all_present(&fresh, &outcome.created);
    for ticket in &shared {
        let versions = won.get(&ticket.id).map_or(0, Vec::len) as u64;
        let now = fresh.client().get(ticket.id).unwrap().unwrap();
        assert_eq!(now.version, 1 + versions, "an acknowledged update was lost");
    }
    for host in hosts {
        host.close().unwrap();
    }
    fresh.close().unwrap();
}

/// A load of `clients` threads per host, creating until `stop`; every
/// acknowledgement's time, every error.
struct TimedLoad {
    acked: Vec<(Instant, Ticket)>,
    errors: Vec<ClientError>,
    slowest_call: Duration,
}

fn timed_load(hosts: &[&Store], clients: usize, stop: &AtomicBool) -> TimedLoad {
    thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .iter()
            .enumerate()
            .flat_map(|(h, host)| (0..clients).map(move |c| (h, c, host.client())))
            .map(|(h, c, client)| {
                scope.spawn(move || {
                    let mut load = TimedLoad {
                        acked: Vec::new(),
                        errors: Vec::new(),
                        slowest_call: Duration::ZERO,
                    };
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let called = Instant::now();
                        let result = client.create(draft(&format!("h{h} c{c} #{i}")));
                        load.slowest_call = load.slowest_call.max(called.elapsed());
                        match result {
                            Ok(ticket) => load.acked.push((Instant::now(), ticket)),
                            Err(error) => load.errors.push(error),
                        }
                    }
                    load
                })
            })
            .collect();
        let mut all = TimedLoad {
            acked: Vec::new(),
            errors: Vec::new(),
            slowest_call: Duration::ZERO,
        };
        for worker in workers {
            let load = worker.join().expect("load thread");
            all.acked.extend(load.acked);
            all.errors.extend(load.errors);
            all.slowest_call = all.slowest_call.max(load.slowest_call);
        }
        all.acked.sort_by_key(|(at, _)| *at);
        all
    })
}

/// Only in-doubt errors; no id acknowledged twice; a fresh host on the
/// stream holds every acknowledged ticket and at most the in-doubt ones
/// besides. Returns the fresh host's stats: the stream's end and the state
/// a full replay of it gives.
fn check_nothing_lost(
    test: &str,
    cluster: &OwnCluster,
    stream: &str,
    load: &TimedLoad,
) -> ticketlog::Stats {
    eprintln!(
        "{test}: {} acknowledged, {} errors (first: {:?}), slowest call {:?}",
        load.acked.len(),
        load.errors.len(),
        load.errors.first().map(ToString::to_string),
        load.slowest_call
    );
    for error in &load.errors {
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
    assert!(
        load.slowest_call < Duration::from_secs(20),
        "a call took {:?}, past the 15 s in-doubt deadline",
        load.slowest_call
    );
    let acked: Vec<Ticket> = load.acked.iter().map(|(_, t)| t.clone()).collect();
    let ids: HashSet<TicketId> = acked.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), acked.len(), "an id was acknowledged twice");
    let dir = tempfile::tempdir().unwrap();
    let fresh = open(dir.path(), &cluster.urls, stream);
    assert_all_present(&fresh, &acked);
    let everything = all_tickets(&fresh);
    let total = everything.len();
    if total > acked.len() + load.errors.len() {
        let acked_titles: HashSet<&str> = acked.iter().map(|t| t.title.as_str()).collect();
        let extra: Vec<_> = everything.iter().filter(|t| !ids.contains(&t.id)).collect();
        let repeated = extra
            .iter()
            .filter(|t| acked_titles.contains(t.title.as_str()))
            .count();
        eprintln!(
            "{test}: {} tickets not acknowledged, {repeated} of them with an acknowledged title; first:",
            extra.len()
        );
        for t in extra.iter().take(30) {
            eprintln!("  id {} v{} {:?}", t.id, t.version, t.title.as_str());
        }
    }
    assert!(
        total >= acked.len() && total <= acked.len() + load.errors.len(),
        "{total} tickets in the stream for {} acknowledged and {} in doubt",
        acked.len(),
        load.errors.len()
    );
    let stats = fresh.client().stats().unwrap();
    fresh.close().unwrap();
    stats
}

/// Each host reaches the end of the stream a fresh host replayed (a host
/// can trail another's last batches on its tail, so they are compared at
/// one LSN) with the same state digest.
fn assert_hosts_equal_the_replay(hosts: &[Store], replayed: &ticketlog::Stats) {
    for (h, host) in hosts.iter().enumerate() {
        let stats = wait_for_lsn(host, replayed.last_lsn, Duration::from_secs(20));
        assert_eq!(
            (stats.last_lsn, stats.digest),
            (replayed.last_lsn, replayed.digest),
            "host {h} differs from a full replay of the stream"
        );
    }
}

/// The longest time between two acknowledgements in `[from, to]`.
fn longest_gap(acked: &[(Instant, Ticket)], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for (at, _) in acked.iter().filter(|(at, _)| *at >= from && *at <= to) {
        longest = longest.max(at.duration_since(last));
        last = *at;
    }
    longest.max(to.saturating_duration_since(last))
}

#[test]
fn a_leader_paused_past_the_election_timeout_loses_nothing_and_writes_resume() {
    if shared_cluster("paused_leader").is_none() {
        return;
    }
    let _watchdog = Watchdog::start("paused_leader", Duration::from_secs(150));
    let cluster = OwnCluster::start(30222);
    let stream = stream_name("paused");
    // Three hosts, and more (up to six) until one is connected to the
    // leader: its socket stays open while the leader is paused, the case
    // a host must notice by itself (each host picks a server at random).
    let mut dirs = Vec::new();
    let mut hosts: Vec<Store> = Vec::new();
    let mut leader = 0;
    let mut on_leader = 0;
    while hosts.len() < 3 || (on_leader == 0 && hosts.len() < 6) {
        let dir = tempfile::tempdir().unwrap();
        hosts.push(open(dir.path(), &cluster.urls, &stream));
        dirs.push(dir);
        leader = stream_leader(&cluster.urls, &stream);
        on_leader = cluster.client_connections(leader).unwrap_or(0);
    }
    eprintln!(
        "paused_leader: {} hosts, {on_leader} of them connected to the leader n{leader}",
        hosts.len()
    );
    let stop = AtomicBool::new(false);
    let pause = Duration::from_secs(12);
    let (load, leader, paused_at, resumed_at) = thread::scope(|scope| {
        let stop_load = StopOnDrop(&stop);
        let load = scope.spawn(|| timed_load(&hosts.iter().collect::<Vec<_>>(), 2, &stop));
        thread::sleep(Duration::from_secs(1));
        let now = stream_leader(&cluster.urls, &stream);
        if now != leader {
            eprintln!("paused_leader: the leader moved to n{now} under load");
        }
        let leader = now;
        cluster.signal(leader, "STOP");
        let paused_at = Instant::now();
        thread::sleep(pause);
        cluster.signal(leader, "CONT");
        let resumed_at = Instant::now();
        cluster.wait_healthy(Duration::from_secs(60));
        thread::sleep(Duration::from_secs(2));
        drop(stop_load);
        (load.join().unwrap(), leader, paused_at, resumed_at)
    });
    eprintln!("paused_leader: node {leader} (the stream's leader) paused for {pause:?}");
    // Writes went on while the old leader was paused: a new one was elected
    // (4-9 s) and every host got through to it.
    let during: Vec<_> = load
        .acked
        .iter()
        .filter(|(at, _)| *at > paused_at && *at < resumed_at)
        .collect();
    let first_during = during.first().map(|(at, _)| at.duration_since(paused_at));
    eprintln!(
        "paused_leader: {} acknowledged while paused, the first {first_during:?} after the pause; \
         longest gap while paused {:?}",
        during.len(),
        longest_gap(&load.acked, paused_at, resumed_at)
    );
    assert!(
        !during.is_empty(),
        "no write was acknowledged while the old leader was paused"
    );
    // Every host writes again once the pause has begun: during it (a new
    // leader, and a host on the paused node reconnected elsewhere) or, at
    // the latest, after SIGCONT.
    for h in 0..hosts.len() {
        let prefix = format!("h{h} ");
        let first = load
            .acked
            .iter()
            .find(|(at, t)| *at > paused_at && t.title.as_str().starts_with(&prefix))
            .map(|(at, _)| at.duration_since(paused_at));
        eprintln!("paused_leader: host {h}: first acknowledgement {first:?} after the pause began");
        assert!(
            first.is_some(),
            "host {h} never wrote again after the pause"
        );
    }
    let replayed = check_nothing_lost("paused_leader", &cluster, &stream, &load);
    // The hosts agree with a full replay of the stream once the old leader
    // is back.
    assert_hosts_equal_the_replay(&hosts, &replayed);
    drop(hosts);
}

#[test]
fn a_leader_cut_off_from_the_other_nodes_takes_no_writes_and_the_cluster_converges_after_the_heal()
{
    if shared_cluster("partition").is_none() {
        return;
    }
    let _watchdog = Watchdog::start("partition", Duration::from_secs(180));
    let base = 31222;
    let proxies = RouteProxies::start(base);
    let cluster = OwnCluster::start_through_proxies(base);
    let stream = stream_name("partition");
    // Host h talks to node h+1 only: the host on the node that is cut off
    // cannot reconnect elsewhere, so it is the minority's client.
    let deadline = Duration::from_secs(5);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<Store> = dirs
        .iter()
        .zip(&cluster.urls)
        .map(|(dir, url)| {
            Store::open(
                dir.path(),
                jetstream(std::slice::from_ref(url), &stream, deadline),
            )
            .expect("open on JetStream")
        })
        .collect();
    let leader = stream_leader(&cluster.urls, &stream);
    assert!(
        proxies.connections_of(leader) > 0,
        "the routes bypass the proxies"
    );
    let stop = AtomicBool::new(false);
    let partition = Duration::from_secs(15);
    let (load, isolated, cut_at, healed_at) = thread::scope(|scope| {
        let stop_load = StopOnDrop(&stop);
        let load = scope.spawn(|| timed_load(&hosts.iter().collect::<Vec<_>>(), 2, &stop));
        thread::sleep(Duration::from_secs(2));
        let isolated = stream_leader(&cluster.urls, &stream);
        proxies.isolate(isolated);
        let cut_at = Instant::now();
        thread::sleep(partition);
        proxies.heal();
        let healed_at = Instant::now();
        cluster.wait_healthy(Duration::from_secs(60));
        // The minority's host writes again: bounded by the watchdog.
        let prefix = format!("h{} ", isolated - 1);
        let mut retried = Vec::new();
        let resumed = loop {
            match hosts[isolated as usize - 1]
                .client()
                .create(draft(&format!("{prefix}after the heal")))
            {
                Ok(ticket) => break (Instant::now(), ticket),
                Err(error) => retried.push(error),
            }
            thread::sleep(Duration::from_millis(200));
        };
        thread::sleep(Duration::from_secs(2));
        drop(stop_load);
        let mut load = load.join().unwrap();
        load.acked.push(resumed);
        load.errors.extend(retried);
        load.acked.sort_by_key(|(at, _)| *at);
        (load, isolated, cut_at, healed_at)
    });
    let minority = format!("h{} ", isolated - 1);
    let in_window = |from: Instant, to: Instant, of_minority: bool| {
        load.acked
            .iter()
            .filter(|(at, t)| {
                *at > from && *at < to && t.title.as_str().starts_with(&minority) == of_minority
            })
            .count()
    };
    // A batch the old leader committed just before the cut may be answered
    // just after it; past that, nothing it is asked can reach a majority.
    let settled = cut_at + Duration::from_secs(2);
    let minority_acked = in_window(settled, healed_at, true);
    let majority_acked = in_window(cut_at, healed_at, false);
    let minority_errors = load.errors.len();
    eprintln!(
        "partition: n{isolated} (the stream's leader) cut off for {partition:?}: \
         {majority_acked} acknowledged on the other two nodes meanwhile, {minority_acked} on it \
         after the first 2 s, {minority_errors} errors in all; longest gap {:?}",
        longest_gap(&load.acked, cut_at, healed_at)
    );
    assert!(
        majority_acked > 0,
        "the two connected nodes took no write while n{isolated} was cut off"
    );
    assert_eq!(
        minority_acked, 0,
        "a host on the cut-off node n{isolated} was acknowledged without a majority"
    );
    assert!(
        minority_errors > 0,
        "the cut-off node's host got no Unavailable while it could not reach a majority"
    );
    let first_after_heal = load
        .acked
        .iter()
        .find(|(at, t)| *at > healed_at && t.title.as_str().starts_with(&minority))
        .map(|(at, _)| at.duration_since(healed_at));
    eprintln!("partition: the cut-off node's host wrote again {first_after_heal:?} after the heal");
    assert!(first_after_heal.is_some());
    let replayed = check_nothing_lost("partition", &cluster, &stream, &load);
    assert_hosts_equal_the_replay(&hosts, &replayed);
    drop(hosts);
    drop(cluster);
    drop(proxies);
}

#[test]
fn killing_all_three_nodes_under_load_loses_no_acknowledged_command() {
    if shared_cluster("kill_all_nodes").is_none() {
        return;
    }
    let _watchdog = Watchdog::start("kill_all_nodes", Duration::from_secs(150));
    let cluster = OwnCluster::start(21222);
    let stream = stream_name("killall");
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<Store> = dirs
        .iter()
        .map(|dir| open(dir.path(), &cluster.urls, &stream))
        .collect();
    let stop = AtomicBool::new(false);
    let (load, restarted_at) = thread::scope(|scope| {
        let stop_load = StopOnDrop(&stop);
        let load = scope.spawn(|| timed_load(&hosts.iter().collect::<Vec<_>>(), 4, &stop));
        thread::sleep(Duration::from_millis(1500));
        for node in [1, 2, 3] {
            cluster.kill(node);
        }
        thread::sleep(Duration::from_secs(1));
        for node in [1, 2, 3] {
            cluster.restart(node);
        }
        let restarted_at = Instant::now();
        let took = cluster.wait_healthy(Duration::from_secs(60));
        eprintln!("kill_all_nodes: the cluster was healthy {took:?} after the restart");
        // Writes resume: wait (bounded) for acknowledgements after the restart.
        thread::sleep(Duration::from_secs(3));
        drop(stop_load);
        (load.join().unwrap(), restarted_at)
    });
    let after = load
        .acked
        .iter()
        .find(|(at, _)| *at > restarted_at)
        .map(|(at, _)| at.duration_since(restarted_at));
    eprintln!("kill_all_nodes: the first acknowledgement {after:?} after the restart");
    assert!(
        after.is_some(),
        "no write was acknowledged after the restart"
    );
    check_nothing_lost("kill_all_nodes", &cluster, &stream, &load);
    drop(hosts);
}

#[test]
fn an_application_host_killed_mid_batch_reopens_from_snapshot_and_tail() {
    let Some(urls) = shared_cluster("kill_an_app_host") else {
        return;
    };
    let _watchdog = Watchdog::start("kill_an_app_host", Duration::from_secs(120));
    let seed = seed("kill_an_app_host");
    let mut rng = Rng::new(seed);
    let stream = stream_name("apphost");
    let (dir, fresh_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A snapshot in the host's directory, so the reopen loads it and
    // replays only the tail.
    let store = open(dir.path(), &urls, &stream);
    let before: Vec<Ticket> = (0..20)
        .map(|i| {
            store
                .client()
                .create(draft(&format!("before {i}")))
                .unwrap()
        })
        .collect();
    store.snapshot().unwrap();
    store.close().unwrap();

    let clients = 8;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketlog"))
        .arg("--dir")
        .arg(dir.path())
        .args(["--nats", &urls.join(","), "--stream", &stream])
        .args(["load", "--clients", &clients.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ticketlog load");
    let kill_after = 200 + rng.below(800) as usize;
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut printed: Vec<u64> = Vec::new();
    let mut line = String::new();
    while printed.len() < kill_after {
        line.clear();
        let read = lines.read_line(&mut line).expect("read the child's output");
        assert!(read > 0, "the child ended after {} ids", printed.len());
        printed.push(line.trim().parse().expect("an id per line"));
    }
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();
    // Ids already in the pipe were printed, so acknowledged, before the kill.
    loop {
        line.clear();
        if lines.read_line(&mut line).unwrap_or(0) == 0 || !line.ends_with('\n') {
            break;
        }
        printed.push(line.trim().parse().expect("an id per line"));
    }
    eprintln!(
        "kill_an_app_host: killed after {kill_after} acknowledgements, {} printed in all",
        printed.len()
    );

    // Reopened from its directory: the snapshot plus the tail.
    let reopened = open(dir.path(), &urls, &stream);
    assert!(
        reopened.recovery().snapshot.is_some(),
        "the reopen did not load the snapshot"
    );
    // The fresh host replays the whole stream: without the bucket's
    // snapshots it is an oracle independent of them.
    Bucket::open(&urls, &stream).clear();
    let fresh = open(fresh_dir.path(), &urls, &stream);
    let a = reopened.client().stats().unwrap();
    let b = wait_for_lsn(&fresh, a.last_lsn, Duration::from_secs(20));
    assert_eq!(
        (a.last_lsn, a.digest),
        (b.last_lsn, b.digest),
        "snapshot + tail differs from a full replay"
    );
    assert_eq!(
        fresh.recovery().records_replayed,
        a.records,
        "the fresh host replayed every record"
    );
    // Every printed id is there (no acknowledgement of a batch that did not
    // commit); besides them, at most one create in flight per client.
    let tickets: BTreeMap<u64, Ticket> = all_tickets(&fresh)
        .into_iter()
        .map(|t| (t.id.get(), t))
        .collect();
    assert_all_present(&fresh, &before);
    let unique: HashSet<u64> = printed.iter().copied().collect();
    assert_eq!(unique.len(), printed.len(), "an id was printed twice");
    for id in &printed {
        assert!(tickets.contains_key(id), "acknowledged id {id} is missing");
    }
    let extra = tickets.len() - before.len() - printed.len();
    assert!(
        extra <= clients,
        "{extra} tickets that were never acknowledged, more than the {clients} in flight"
    );
    reopened.close().unwrap();
    fresh.close().unwrap();
}

/// The gap in acknowledgements when the stream leader is SIGKILLed under
/// load, over 12 kills: a measurement, not run in CI (about 3 minutes).
/// `cargo test --features jetstream --test it leader_kill_gaps -- --ignored --nocapture`
#[test]
#[ignore = "a measurement: about 3 minutes of leader kills"]
fn leader_kill_gaps() {
    if shared_cluster("leader_kill_gaps").is_none() {
        return;
    }
    let kills = 12;
    let _watchdog = Watchdog::start("leader_kill_gaps", Duration::from_secs(600));
    let cluster = OwnCluster::start(23222);
    let stream = stream_name("gaps");
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path(), &cluster.urls, &stream);
    let stop = AtomicBool::new(false);
    let (load, windows) = thread::scope(|scope| {
        let stop_load = StopOnDrop(&stop);
        let load = scope.spawn(|| timed_load(&[&host], 1, &stop));
        let mut windows = Vec::new();
        for _ in 0..kills {
            thread::sleep(Duration::from_secs(1));
            let leader = stream_leader(&cluster.urls, &stream);
            let killed_at = Instant::now();
            cluster.kill(leader);
            thread::sleep(Duration::from_secs(1));
            cluster.restart(leader);
            cluster.wait_healthy(Duration::from_secs(60));
            // Wait for acknowledgements to flow again before the next kill.
            thread::sleep(Duration::from_secs(2));
            windows.push((leader, killed_at, Instant::now()));
        }
        drop(stop_load);
        (load.join().unwrap(), windows)
    });
    let mut gaps: Vec<Duration> = windows
        .iter()
        .map(|(leader, from, to)| {
            let gap = longest_gap(&load.acked, *from, *to);
            eprintln!("leader_kill_gaps: killed n{leader}: longest gap {gap:?}");
            gap
        })
        .collect();
    gaps.sort_unstable();
    eprintln!(
        "leader_kill_gaps: {kills} kills: median {:?}, worst {:?}; {} acknowledged, {} Unavailable",
        gaps[gaps.len() / 2],
        gaps[gaps.len() - 1],
        load.acked.len(),
        load.errors.len()
    );
    check_nothing_lost("leader_kill_gaps", &cluster, &stream, &load);
}

#[test]
fn crash_test_on_a_stream_kills_hosts_and_nats_nodes_and_loses_nothing() {
    if shared_cluster("crash_test_nats").is_none() {
        return;
    }
    let _watchdog = Watchdog::start("crash_test_nats", Duration::from_secs(240));
    let seed = seed("crash_test_nats").to_string();
    let cluster = OwnCluster::start(22222);
    let stream = stream_name("crash");
    let dir = tempfile::tempdir().unwrap();
    let cycles = 4;
    let output = Command::new(env!("CARGO_BIN_EXE_ticketlog"))
        .env_remove("TICKETLOG_DIR")
        .arg("--dir")
        .arg(dir.path())
        .args([
            "--nats",
            &cluster.urls.join(","),
            "--stream",
            &stream,
            "--json",
        ])
        .args([
            "crash-test",
            "--cycles",
            &cycles.to_string(),
            "--clients",
            "4",
        ])
        .args([
            "--acks-max",
            "300",
            "--snapshot-every",
            "100",
            "--seed",
            &seed,
        ])
        .arg("--nats-cluster")
        .arg(cluster.dir.path())
        .arg("--nats-cluster-script")
        .arg(script())
        .output()
        .expect("run ticketlog crash-test");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "crash-test failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("crash_test_nats: {}", stdout.trim());
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let field = |name: &str| {
        summary[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {summary}"))
    };
    assert_eq!(field("cycles"), cycles);
    assert_eq!(field("lost"), 0);
    assert_eq!(field("violations"), 0);
    assert!(
        field("nats_node_kills") >= 1,
        "the first cycle kills a node"
    );
    assert!(field("commands_acknowledged") > 0);
}
