//! Live subscriptions: order, durability, lag, resume, compaction, close,
//! and the async forms of replies and subscriptions.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use ticketlog::inspect;
use ticketlog::storage::{FileSystem, OpKind};
use ticketlog::testing::FaultyStorage;
use ticketlog::testing::faults::Ops;
use ticketlog::{
    Change, ClientError, Command, Durability, Event, Options, Position, Store, TicketPatch,
};

use crate::common::{draft, open};

/// A bound on waits that should end at once: a failure instead of a hang.
const BOUND: Duration = Duration::from_secs(30);

/// The events the log holds, in log order (read back after close).
fn events_in_log(dir: &std::path::Path) -> Vec<Event> {
    let mut events = Vec::new();
    inspect::read_log(dir, |entry| {
        for (index, change) in (0u32..).zip(entry.changes.iter().cloned()) {
            events.extend(Event::from_change(entry.lsn, index, change));
        }
    })
    .unwrap();
    events
}

fn take(subscription: &mut ticketlog::Subscription, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            subscription
                .next_timeout(BOUND)
                .unwrap_or_else(|| panic!("event {i} did not come"))
                .unwrap()
        })
        .collect()
}

#[test]
fn eight_subscribers_see_exactly_the_log_order_while_sixteen_clients_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let client = store.client();
    client.create(draft("before")).unwrap();
    let subscribers: Vec<_> = (0..8)
        .map(|n| {
            // Half start from the beginning, half from now on.
            client.subscribe(if n % 2 == 0 { 0 } else { 2 }).unwrap()
        })
        .collect();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let client = store.client();
            thread::spawn(move || {
                for n in 0..40 {
                    let ticket = client.create(draft(&format!("w{w} n{n}"))).unwrap();
                    if n % 4 == 0 {
                        client
                            .update(
                                ticket.id,
                                TicketPatch {
                                    status: Some(ticketlog::Status::Done),
                                    ..TicketPatch::default()
                                },
                            )
                            .unwrap();
                    }
                    if n % 10 == 0 {
                        client
                            .create_many(vec![draft("many a"), draft("many b")])
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let total_after_first = 16 * (40 + 10 + 4 * 2);
    let seen: Vec<Vec<Event>> = subscribers
        .into_iter()
        .enumerate()
        .map(|(n, mut s)| take(&mut s, total_after_first + usize::from(n % 2 == 0)))
        .collect();
    store.close().unwrap();
    let log = events_in_log(dir.path());
    assert_eq!(log.len(), total_after_first + 1);
    for (n, events) in seen.iter().enumerate() {
        let expected = if n % 2 == 0 { &log[..] } else { &log[1..] };
        assert_eq!(events, expected, "subscriber {n} saw the log's order");
    }
}

#[test]
fn a_stalled_subscriber_holds_up_no_writer_stays_bounded_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let client = store.client();
    let mut stalled = client.subscribe(0).unwrap();
    // Far more than a feed holds, written while the subscriber reads nothing.
    let writes = 3 * ticketlog::testing::FEED_EVENTS_MAX;
    let mut pending = Vec::new();
    for n in 0..writes {
        pending.push(
            client
                .submit(Command::Create(draft(&format!("t{n}"))))
                .unwrap(),
        );
        if pending.len() == 256 {
            for reply in pending.drain(..) {
                reply.wait().unwrap();
            }
        }
    }
    for reply in pending {
        reply.wait().unwrap();
    }
    // Counted, not timed: what the subscription holds is within its bound.
    assert!(
        stalled.buffered_events() <= 2 * ticketlog::testing::FEED_EVENTS_MAX,
        "{} events buffered",
        stalled.buffered_events()
    );
    let events = take(&mut stalled, writes);
    // No gap, no repeat: every created ticket once, in order (digest
    // records take LSNs but carry no event).
    let ids: Vec<u64> = events.iter().map(|e| e.ticket_id.get()).collect();
    let first_difference = (1..=writes as u64)
        .zip(&ids)
        .find(|(want, got)| want != *got);
    assert_eq!(first_difference, None, "(expected, seen)");
    assert!(events.windows(2).all(|w| w[0].position() < w[1].position()));
    store.close().unwrap();
    assert!(matches!(
        stalled.next_timeout(BOUND),
        Some(Err(ClientError::Closed))
    ));
    assert!(stalled.next().is_none(), "the subscription ended");
}

#[test]
fn an_event_is_delivered_only_once_its_batch_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStorage::new(FileSystem);
    let options = Options::default()
        .durability(Durability::Always)
        .storage(Arc::new(faulty.clone()));
    let store = Store::open(dir.path(), options).unwrap();
    let client = store.client();
    let mut subscription = client.subscribe(0).unwrap();
    let gate = faulty.gate(Ops::Only(OpKind::SyncData));
    let writer = {
        let client = store.client();
        thread::spawn(move || client.create(draft("held")).unwrap())
    };
    assert!(
        gate.entered_within(BOUND),
        "the batch reached its fdatasync"
    );
    // Written but not durable: nothing may be seen.
    assert!(
        subscription
            .next_timeout(Duration::from_millis(200))
            .is_none()
    );
    gate.release();
    let event = subscription.next_timeout(BOUND).unwrap().unwrap();
    assert_eq!(event.lsn, 1);
    assert_eq!(writer.join().unwrap().id, event.ticket_id);
    store.close().unwrap();
}

#[test]
fn positions_are_exact_inside_a_create_many_and_resume_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let client = store.client();
    client.create(draft("one")).unwrap();
    client
        .create_many(vec![draft("a"), draft("b"), draft("c")])
        .unwrap();
    let mut all = client.subscribe(0).unwrap();
    let events = take(&mut all, 4);
    let positions: Vec<String> = events.iter().map(|e| e.position().to_string()).collect();
    assert_eq!(positions, ["1.0", "2.0", "2.1", "2.2"]);
    let middle = events[2].position();
    assert_eq!(all.position(), Some(events[3].position()));
    store.close().unwrap();

    // After a restart, resume inside the record: exactly what followed.
    let store = open(dir.path());
    let client = store.client();
    client.create(draft("after the restart")).unwrap();
    let mut resumed = client.subscribe_after(middle).unwrap();
    let rest = take(&mut resumed, 2);
    assert_eq!(rest[0].position(), Position { lsn: 2, index: 2 });
    assert_eq!(rest[1].lsn, 3);
    assert!(matches!(rest[1].change, Change::Created { .. }));
    assert!(resumed.next_timeout(Duration::from_millis(50)).is_none());
    // From an LSN: every event of that record and after.
    let mut from_two = client.subscribe(2).unwrap();
    assert_eq!(
        take(&mut from_two, 4)[0].position(),
        Position { lsn: 2, index: 0 }
    );
    store.close().unwrap();
}

#[test]
fn asking_for_compacted_events_names_the_oldest_position() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().segment_bytes(4096);
    let store = Store::open(dir.path(), options).unwrap();
    let client = store.client();
    for n in 0..200 {
        client.create(draft(&format!("t{n}"))).unwrap();
    }
    let compacted = store.compact().unwrap();
    let oldest = compacted.history_starts_at_lsn;
    assert!(oldest > 1, "compaction removed segments");
    match client.subscribe(0) {
        Err(ClientError::Compacted { oldest_lsn }) => assert_eq!(oldest_lsn, oldest),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut from_oldest = client.subscribe(oldest).unwrap();
    let after = client.create(draft("after compaction")).unwrap();
    let event = take(&mut from_oldest, 1).remove(0);
    assert_eq!(event.ticket_id, after.id);
    assert!(event.lsn >= oldest);
    store.close().unwrap();
}

/// A minimal executor: polls, parks until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn replies_and_subscriptions_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let client = store.client();
    let mut subscription = client.subscribe(0).unwrap();
    let pending = client.submit(Command::Create(draft("awaited"))).unwrap();
    let ticket = block_on(pending).unwrap();
    let many = block_on(
        client
            .submit_create_many(vec![draft("x"), draft("y")])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(many.len(), 2);
    let first = block_on(subscription.next_event()).unwrap().unwrap();
    assert_eq!(first.ticket_id, ticket.id);
    let writer = {
        let client = store.client();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            client.create(draft("later")).unwrap()
        })
    };
    let next: Vec<Event> = (0..3)
        .map(|_| block_on(subscription.next_event()).unwrap().unwrap())
        .collect();
    assert_eq!(next[2].ticket_id, writer.join().unwrap().id);
    store.close().unwrap();
    assert!(matches!(
        block_on(subscription.next_event()),
        Some(Err(ClientError::Closed))
    ));
    assert!(block_on(subscription.next_event()).is_none());
}

#[test]
fn stats_report_the_last_lsn_and_a_digest_two_copies_can_compare() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let stats: Vec<_> = [a.path(), b.path()]
        .into_iter()
        .map(|dir| {
            let store = open(dir);
            let client = store.client();
            client.create(draft("same")).unwrap();
            let stats = client.stats().unwrap();
            store.close().unwrap();
            stats
        })
        .collect();
    assert_eq!(stats[0].last_lsn, 1);
    // Timestamps differ between the copies, so the digests do too…
    let store = open(a.path());
    let again = store.client().stats().unwrap();
    // …but a reopen of the same copy reaches the same digest.
    assert_eq!(again.digest, stats[0].digest);
    assert_eq!(again.last_lsn, stats[0].last_lsn);
    store.close().unwrap();
}

#[test]
fn an_awaited_subscription_restarting_after_a_lag_never_blocks_on_a_full_request_queue() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStorage::new(FileSystem);
    let options = Options::default()
        .durability(Durability::Always)
        .channel_capacity(2)
        .storage(Arc::new(faulty.clone()));
    let store = Store::open(dir.path(), options).unwrap();
    let client = store.client();
    let mut lagging = client.subscribe(0).unwrap();
    // More than the live feed holds: the server drops the subscription's
    // feed, and the subscription must ask for a new one.
    let writes = ticketlog::testing::FEED_EVENTS_MAX + 100;
    for chunk in (0..writes).collect::<Vec<_>>().chunks(64) {
        let pending: Vec<_> = chunk
            .iter()
            .map(|n| {
                client
                    .submit(Command::Create(draft(&format!("t{n}"))))
                    .unwrap()
            })
            .collect();
        for reply in pending {
            reply.wait().unwrap();
        }
    }
    // Hold the server in its next fdatasync, then fill the queue behind it.
    let gate = faulty.gate(Ops::Only(OpKind::SyncData));
    let held = {
        let client = store.client();
        thread::spawn(move || client.create(draft("held")).unwrap())
    };
    assert!(
        gate.entered_within(BOUND),
        "the batch reached its fdatasync"
    );
    let mut queued = Vec::new();
    loop {
        match client.try_submit(Command::Create(draft("queued"))) {
            Ok(reply) => queued.push(reply),
            Err(ClientError::Overloaded) => break,
            Err(other) => panic!("{other}"),
        }
    }
    // Polled as an async executor would: the buffered events come out, then
    // the restart must answer Pending at once, not wait for room.
    let (polled, polled_in_time) = std::sync::mpsc::channel();
    let poller = thread::spawn(move || {
        let mut cx = Context::from_waker(Waker::noop());
        let mut delivered = Vec::new();
        loop {
            let mut next = lagging.next_event();
            match std::pin::Pin::new(&mut next).poll(&mut cx) {
                Poll::Ready(Some(Ok(event))) => delivered.push(event.ticket_id.get()),
                Poll::Ready(other) => panic!("before the restart: {other:?}"),
                Poll::Pending => break,
            }
        }
        polled.send(delivered.len()).unwrap();
        (lagging, delivered)
    });
    let buffered = polled_in_time
        .recv_timeout(BOUND)
        .expect("polling the subscription blocked on the full request queue");
    assert!(buffered > 0 && buffered < writes, "{buffered} delivered");
    gate.release();
    let (mut lagging, mut seen) = poller.join().unwrap();
    held.join().unwrap();
    let total = writes + 1 + queued.len();
    for reply in queued {
        reply.wait().unwrap();
    }
    // Then everything, once, in order: the restart lost and repeated nothing.
    while seen.len() < total {
        match block_on(lagging.next_event()) {
            Some(Ok(event)) => seen.push(event.ticket_id.get()),
            other => panic!("after {} events: {other:?}", seen.len()),
        }
    }
    assert_eq!(seen, (1..=total as u64).collect::<Vec<_>>());
    store.close().unwrap();
}

#[test]
fn timeouts_too_long_for_an_instant_wait_without_a_deadline() {
    // `Instant::now() + Duration::MAX` used to panic inside the library.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let client = store.client();
    let pending = client.submit(Command::Create(draft("patient"))).unwrap();
    let created = match pending.wait_timeout(Duration::MAX) {
        Ok(reply) => reply.unwrap(),
        Err(_) => panic!("a wait without a deadline does not time out"),
    };
    let mut subscription = client.subscribe(0).unwrap();
    let event = subscription.next_timeout(Duration::MAX).unwrap().unwrap();
    assert_eq!(event.ticket_id, created.id);
    drop(subscription);
    store.close().unwrap();
}
