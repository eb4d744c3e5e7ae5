//! Many clients at once. The log gives the server's order; the one model
//! (`ticketlog::testing::model`, independent of the store's own apply)
//! replays that order,
//! and the store's final state and every reply must agree with it.

use std::collections::{HashMap, HashSet};
use std::thread;

use ticketlog::inspect::{self, LogEntry};
use ticketlog::testing::model::Model;
use ticketlog::{
    Change, ClientError, Durability, ListQuery, Options, Status, Store, Ticket, TicketId,
    TicketPatch,
};

use crate::common::{Rng, draft, open, seed};

/// The one model replaying the server's order, plus every ticket version
/// it produced on the way.
struct Replayed {
    model: Model,
    versions: HashMap<(u64, u64), Ticket>,
}

impl Replayed {
    fn replay(entries: &[LogEntry]) -> Replayed {
        let mut model = Model::default();
        let mut versions = HashMap::new();
        for change in entries.iter().flat_map(|entry| &entry.changes) {
            model
                .apply(change)
                .unwrap_or_else(|error| panic!("the log does not replay: {error}"));
            if let Change::Created { id, .. } | Change::Updated { id, .. } = change {
                let ticket = model.get(*id).expect("a ticket just written is live");
                versions.insert((id.get(), ticket.version), ticket.clone());
            }
        }
        Replayed { model, versions }
    }
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Tickets returned by successful creates and updates.
    written: Vec<Ticket>,
    /// Tickets returned by successful deletes.
    deleted: Vec<Ticket>,
    /// Replies received, successful or not.
    replies: u64,
    /// Commands that were accepted (and so must be in the log).
    accepted: u64,
}

fn run_client(client: &ticketlog::Client, index: u64, ops: u64, mut rng: Rng) -> Seen {
    let mut seen = Seen::default();
    let mut known: Vec<Ticket> = Vec::new();
    for op in 0..ops {
        let roll = rng.below(100);
        // Pick ids from what this client knows, or any id up to a bound, so
        // clients collide on each other's tickets.
        let any_id = TicketId::from(1 + rng.below(16 * 60));
        let reply: Result<(), ClientError> = if known.is_empty() || roll < 30 {
            client
                .create(draft(&format!("c{index} op{op}")))
                .map(|ticket| {
                    known.push(ticket.clone());
                    seen.written.push(ticket);
                    seen.accepted += 1;
                })
        } else if roll < 55 {
            let mine = &known[rng.below(known.len() as u64) as usize];
            let expected_version = (rng.below(2) == 0).then_some(mine.version);
            let status = Status::ALL[rng.below(3) as usize];
            client
                .update(
                    mine.id,
                    TicketPatch {
                        status: Some(status),
                        expected_version,
                        ..TicketPatch::default()
                    },
                )
                .map(|ticket| {
                    assert_eq!(ticket.status, status);
                    seen.written.push(ticket);
                    seen.accepted += 1;
                })
        } else if roll < 65 {
            client
                .update(
                    any_id,
                    TicketPatch {
                        description: Some(format!("touched by {index}").try_into().unwrap()),
                        ..TicketPatch::default()
                    },
                )
                .map(|ticket| {
                    seen.written.push(ticket);
                    seen.accepted += 1;
                })
        } else if roll < 70 {
            client.delete(any_id).map(|ticket| {
                seen.deleted.push(ticket);
                seen.accepted += 1;
            })
        } else if roll < 90 {
            client.get(any_id).map(|found| {
                if let Some(ticket) = found {
                    assert_eq!(ticket.id, any_id);
                }
            })
        } else {
            client
                .list(ListQuery {
                    after: Some(any_id),
                    limit: Some(5),
                    ..ListQuery::default()
                })
                .map(|tickets| {
                    assert!(tickets.windows(2).all(|w| w[0].id < w[1].id));
                    assert!(tickets.iter().all(|t| t.id > any_id));
                })
        };
        seen.replies += 1;
        match reply {
            Ok(()) => {}
            Err(ClientError::NotFound(_) | ClientError::Conflict { .. }) => {}
            Err(other) => panic!("client {index}: unexpected error {other}"),
        }
    }
    seen
}

fn sixteen_clients_agree_with_a_sequential_model(durability: Durability) {
    let seed = seed(&format!("concurrency ({durability})"));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default().durability(durability)).unwrap();
    let (clients, ops) = (16u64, 500u64);

    let seen: Vec<Seen> = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|index| {
                let client = store.client();
                let rng = Rng::new(seed ^ (index + 1).wrapping_mul(0x0100_0000_01B3));
                scope.spawn(move || run_client(&client, index, ops, rng))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let client = store.client();
    let live = client.list(ListQuery::default()).unwrap();
    let stats = client.stats().unwrap();
    store.close().unwrap();

    // Every client got a reply to every request.
    for (index, seen) in seen.iter().enumerate() {
        assert_eq!(seen.replies, ops, "client {index} (seed {seed})");
    }

    // The log holds exactly the accepted commands, in the server's order.
    let mut entries = Vec::new();
    inspect::read_log(dir.path(), |entry| entries.push(entry.clone())).unwrap();
    // A clean close may add a seal (an empty record); it carries no command.
    let seals = entries.iter().filter(|e| e.changes.is_empty()).count();
    assert!(
        seals <= 1
            && entries
                .last()
                .is_some_and(|e| !e.changes.is_empty() || seals == 1)
    );
    entries.retain(|e| !e.changes.is_empty());
    let accepted: u64 = seen.iter().map(|s| s.accepted).sum();
    assert_eq!(entries.len() as u64, accepted, "seed {seed}");
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].changes[0].at() <= w[1].changes[0].at()),
        "timestamps never go backwards (seed {seed})"
    );
    let Replayed { model, versions } = Replayed::replay(&entries);

    // Every created id is unique and came from exactly one create.
    let created: Vec<u64> = entries
        .iter()
        .flat_map(|e| &e.changes)
        .filter_map(|e| match e {
            Change::Created { id, .. } => Some(id.get()),
            _ => None,
        })
        .collect();
    let unique: HashSet<u64> = created.iter().copied().collect();
    assert_eq!(unique.len(), created.len(), "seed {seed}");

    // The final state equals the model's.
    let model_live: Vec<Ticket> = model.tickets().cloned().collect();
    assert_eq!(live, model_live, "seed {seed}");
    assert_eq!(stats.next_id, model.next_id());
    assert_eq!(stats.records, entries.len() as u64);

    // Every reply a client got is the ticket as the model had it at that version.
    for seen in &seen {
        for ticket in seen.written.iter().chain(&seen.deleted) {
            assert_eq!(
                Some(ticket),
                versions.get(&(ticket.id.get(), ticket.version)),
                "seed {seed}"
            );
        }
    }

    // And a reopen replays to the same state.
    let store = open(dir.path());
    let client = store.client();
    assert_eq!(client.list(ListQuery::default()).unwrap(), live);
    assert_eq!(client.stats().unwrap().next_id, stats.next_id);
    store.close().unwrap();
}

#[test]
fn sixteen_clients_agree_with_a_sequential_model_in_the_servers_order() {
    sixteen_clients_agree_with_a_sequential_model(Durability::Always);
}

#[test]
fn sixteen_clients_agree_with_the_model_under_interval_durability() {
    sixteen_clients_agree_with_a_sequential_model(Durability::Interval(
        std::time::Duration::from_millis(2),
    ));
}

#[test]
fn sixteen_clients_agree_with_the_model_under_never_durability() {
    sixteen_clients_agree_with_a_sequential_model(Durability::Never);
}
