//! A store's life: commands and queries, restarts, the directory lock,
//! permissions, and shutdown while clients are busy or blocked.

use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;
use std::thread;

use ticketlog::{
    ClientError, ListQuery, OpenError, Options, Status, Store, Ticket, TicketError, TicketId,
    TicketPatch,
};

use crate::common::{draft, log_path, open};

fn status(status: Status) -> TicketPatch {
    TicketPatch {
        status: Some(status),
        ..TicketPatch::default()
    }
}

fn everything(store: &Store) -> (Vec<Ticket>, ticketlog::Stats) {
    let client = store.client();
    (
        client.list(ListQuery::default()).unwrap(),
        client.stats().unwrap(),
    )
}

#[test]
fn commands_and_queries_behave_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let client = store.client();

    let one = client.create(draft("one")).unwrap();
    assert_eq!(one.id, TicketId::from(1));
    assert_eq!((one.status, one.version), (Status::ToDo, 1));
    assert_eq!(one.created_at, one.updated_at);
    let two = client.create(draft("two")).unwrap();
    assert_eq!(two.id, TicketId::from(2));

    let updated = client
        .update(
            one.id,
            TicketPatch {
                title: Some("one, renamed".try_into().unwrap()),
                status: Some(Status::InProgress),
                expected_version: Some(1),
                ..TicketPatch::default()
            },
        )
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.title.as_str(), "one, renamed");
    assert_eq!(updated.description, one.description);
    assert_eq!(updated.created_at, one.created_at);
    assert!(updated.updated_at >= one.updated_at);
    assert_eq!(client.get(one.id).unwrap(), Some(updated.clone()));

    match client
        .update(one.id, status(Status::Done))
        .map(|t| t.version)
    {
        Ok(3) => {}
        other => panic!("{other:?}"),
    }
    match client.update(
        one.id,
        TicketPatch {
            status: Some(Status::ToDo),
            expected_version: Some(2),
            ..TicketPatch::default()
        },
    ) {
        Err(ClientError::Conflict {
            id,
            expected: 2,
            actual: 3,
        }) => assert_eq!(id, one.id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client.update(one.id, TicketPatch::default()),
        Err(ClientError::Invalid(TicketError::EmptyPatch))
    ));

    let removed = client.delete(two.id).unwrap();
    assert_eq!(removed, two);
    assert_eq!(client.get(two.id).unwrap(), None);
    assert!(matches!(client.delete(two.id), Err(ClientError::NotFound(id)) if id == two.id));
    assert!(matches!(
        client.update(two.id, status(Status::Done)),
        Err(ClientError::NotFound(_))
    ));

    // Ids are never reused, even after a delete.
    assert_eq!(client.create(draft("three")).unwrap().id, TicketId::from(3));

    let stats = client.stats().unwrap();
    assert_eq!((stats.todo, stats.in_progress, stats.done), (1, 0, 1));
    assert_eq!(stats.next_id, TicketId::from(4));
    assert_eq!(stats.records, 6);
    store.close().unwrap();
    // Closed, the segment ends at its last record (open, it ends in zeros).
    assert_eq!(
        stats.log_bytes,
        std::fs::metadata(log_path(dir.path())).unwrap().len()
    );
}

#[test]
fn list_filters_pages_and_orders_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let client = store.client();
    for n in 1..=10u64 {
        let ticket = client.create(draft(&format!("t{n}"))).unwrap();
        if n % 2 == 0 {
            client.update(ticket.id, status(Status::Done)).unwrap();
        }
    }
    let ids = |query: ListQuery| -> Vec<u64> {
        client
            .list(query)
            .unwrap()
            .iter()
            .map(|t| t.id.get())
            .collect()
    };
    assert_eq!(ids(ListQuery::default()), (1..=10).collect::<Vec<_>>());
    assert_eq!(
        ids(ListQuery {
            status: Some(Status::Done),
            ..ListQuery::default()
        }),
        vec![2, 4, 6, 8, 10]
    );
    assert_eq!(
        ids(ListQuery {
            after: Some(TicketId::from(4)),
            limit: Some(3),
            ..ListQuery::default()
        }),
        vec![5, 6, 7]
    );
    assert_eq!(
        ids(ListQuery {
            status: Some(Status::ToDo),
            after: Some(TicketId::from(5)),
            limit: Some(10),
        }),
        vec![7, 9]
    );
    assert!(
        ids(ListQuery {
            limit: Some(0),
            ..ListQuery::default()
        })
        .is_empty()
    );
    store.close().unwrap();
}

#[test]
fn state_survives_three_restarts_in_a_row_and_ids_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = {
        let store = open(dir.path());
        let client = store.client();
        let a = client.create(draft("a")).unwrap();
        let b = client.create(draft("b")).unwrap();
        client.create(draft("c")).unwrap();
        client.update(a.id, status(Status::InProgress)).unwrap();
        client.delete(b.id).unwrap();
        let state = everything(&store);
        store.close().unwrap();
        state
    };
    for restart in 1..=3u64 {
        let store = open(dir.path());
        assert_eq!(everything(&store), expected, "after restart {restart}");
        assert_eq!(store.recovery().torn_tail, None);
        let client = store.client();
        let fresh = client
            .create(draft(&format!("after restart {restart}")))
            .unwrap();
        assert_eq!(fresh.id, TicketId::from(3 + restart));
        client
            .update(TicketId::from(1), status(Status::Done))
            .unwrap();
        expected = everything(&store);
        store.close().unwrap();
    }
    // Dropping without close is a clean shutdown too.
    {
        let store = open(dir.path());
        assert_eq!(everything(&store), expected);
        store.client().create(draft("before drop")).unwrap();
        expected = everything(&store);
    }
    let store = open(dir.path());
    assert_eq!(everything(&store), expected);
    store.close().unwrap();
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.client().create(draft("held")).unwrap();
    let log_before = std::fs::read(log_path(dir.path())).unwrap();
    match Store::open(dir.path(), Options::default()) {
        Err(OpenError::AlreadyOpen { dir: named }) => assert_eq!(named, dir.path()),
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
    assert_eq!(std::fs::read(log_path(dir.path())).unwrap(), log_before);
    store.close().unwrap();
    // Closing releases the lock.
    open(dir.path()).close().unwrap();
}

#[test]
fn files_are_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("fresh");
    open(&dir).close().unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&log_path(&dir)), 0o600);
    assert_eq!(mode(&dir.join("LOCK")), 0o600);
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for options in [
        Options::default().channel_capacity(0),
        Options::default().batch_commands_max(0),
    ] {
        assert!(matches!(
            Store::open(dir.path(), options),
            Err(OpenError::InvalidOptions(_))
        ));
    }
}

#[test]
fn clients_of_a_closed_store_get_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let client = store.client();
    let ticket = client.create(draft("one")).unwrap();
    store.close().unwrap();
    assert!(matches!(client.get(ticket.id), Err(ClientError::Closed)));
    assert!(matches!(
        client.create(draft("x")),
        Err(ClientError::Closed)
    ));
    assert!(matches!(
        client.try_create(draft("x")),
        Err(ClientError::Closed)
    ));
    assert!(matches!(client.stats(), Err(ClientError::Closed)));
    assert!(matches!(
        client.clone().list(ListQuery::default()),
        Err(ClientError::Closed)
    ));
}

/// Many clients keep a one-slot channel full, so most of them are blocked
/// sending or waiting when the store goes away. Every one of them must wake
/// with `Closed` (none hang), every acknowledged ticket must survive, and the
/// store must be reopenable at once (the server thread let go of the lock).
fn shutdown_while_clients_are_blocked(close: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default().channel_capacity(1)).unwrap();
    let (acked_tx, acked_rx) = mpsc::channel::<TicketId>();
    let clients = 12;
    let outcomes: Vec<ClientError> = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|index| {
                let client = store.client();
                let acked = acked_tx.clone();
                scope.spawn(move || {
                    let mut n = 0u64;
                    loop {
                        match client.create(draft(&format!("client {index} #{n}"))) {
                            Ok(ticket) => {
                                let _ = acked.send(ticket.id);
                                n += 1;
                            }
                            Err(error) => return error,
                        }
                    }
                })
            })
            .collect();
        drop(acked_tx);
        // Wait for real progress, then pull the store out from under them.
        for _ in 0..200 {
            acked_rx.recv().unwrap();
        }
        if close {
            store.close().unwrap();
        } else {
            drop(store);
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.len(), clients);
    for outcome in &outcomes {
        assert!(matches!(outcome, ClientError::Closed), "{outcome:?}");
    }
    let acked: Vec<TicketId> = acked_rx.try_iter().collect();
    let store = open(dir.path());
    let client = store.client();
    let stats = client.stats().unwrap();
    assert!(stats.tickets() >= 200 + acked.len() as u64);
    for id in acked {
        assert!(client.get(id).unwrap().is_some(), "acknowledged {id} lost");
    }
    store.close().unwrap();
}

#[test]
fn closing_the_store_wakes_blocked_clients_with_closed() {
    shutdown_while_clients_are_blocked(true);
}

#[test]
fn dropping_the_store_wakes_blocked_clients_with_closed() {
    shutdown_while_clients_are_blocked(false);
}

#[test]
fn client_handles_are_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<ticketlog::Client>();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
}

#[test]
fn closing_and_reopening_is_not_refused_while_other_threads_spawn_processes() {
    // Spawning a child copies every file descriptor, the lock file's
    // included, and the copies live until the child execs. A store closed
    // and reopened in that window must still open: the lock's holder is a
    // process that is about to let go of it, not another store.
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut spawned = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::process::Command::new("true")
                    .status()
                    .expect("run true");
                spawned += 1;
            }
            spawned
        })
    };
    let mut refused = 0;
    for _ in 0..300 {
        match Store::open(dir.path(), Options::default()) {
            Ok(store) => store.close().unwrap(),
            Err(OpenError::AlreadyOpen { .. }) => refused += 1,
            Err(other) => panic!("{other}"),
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let spawned = spawner.join().unwrap();
    assert!(spawned > 0);
    assert_eq!(
        refused, 0,
        "refused {refused} of 300 reopens while {spawned} children were spawned"
    );
}
