//! Frozen fixtures: logs written by each format version must open forever
//! and replay to exactly the state they were written with.

use std::path::Path;

use ticketlog::wal;
use ticketlog::{ListQuery, Status, Ticket, TicketId, Timestamp};

use crate::common::{log_path, open};

fn ticket(
    id: u64,
    title: &str,
    description: &str,
    status: Status,
    version: u64,
    created_at: u64,
    updated_at: u64,
) -> Ticket {
    Ticket {
        id: TicketId::from(id),
        title: title.try_into().unwrap(),
        description: description.try_into().unwrap(),
        status,
        version,
        created_at: Timestamp::from_unix_millis(created_at),
        updated_at: Timestamp::from_unix_millis(updated_at),
    }
}

fn fixture_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/v1/store"))
}

#[test]
fn format_v1_fixture_opens_to_its_exact_state() {
    // Open a copy: opening takes a lock file and may write, and the fixture must stay frozen.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(log_path(fixture_dir()), log_path(dir.path())).unwrap();
    let store = open(dir.path());
    assert_eq!(store.recovery().records_replayed, 10);
    assert_eq!(store.recovery().torn_tail, None);
    let client = store.client();
    let expected = vec![
        ticket(
            1,
            "Set up CI",
            "Run .ci/run on every push.",
            Status::Done,
            3,
            1795797134734,
            1795797134794,
        ),
        ticket(
            2,
            "Fix torn-tail recovery (v2)",
            "Also report the bytes dropped.",
            Status::InProgress,
            2,
            1795797134742,
            1795797134806,
        ),
        ticket(
            3,
            "Ünïcödé títle ✓",
            "Multi-byte UTF-8 must survive byte for byte: 日本語, emoji 🎫.",
            Status::Done,
            2,
            1795797134750,
            1795797134810,
        ),
        ticket(
            4,
            &"x".repeat(50),
            &"y".repeat(500),
            Status::ToDo,
            1,
            1795797134766,
            1795797134766,
        ),
    ];
    assert_eq!(client.list(ListQuery::default()).unwrap(), expected);
    let stats = client.stats().unwrap();
    assert_eq!(
        stats.next_id,
        TicketId::from(6),
        "the deleted id 5 is never reused"
    );
    assert_eq!((stats.todo, stats.in_progress, stats.done), (1, 1, 2));
    assert_eq!((stats.records, stats.log_bytes), (10, 1158));
    assert_eq!(client.get(TicketId::from(5)).unwrap(), None);
    store.close().unwrap();
}

#[test]
fn format_v1_fixture_verifies_clean_in_place_without_changes() {
    let before = std::fs::read(log_path(fixture_dir())).unwrap();
    let mut lsns = Vec::new();
    let report = wal::read_log(fixture_dir(), |entry| lsns.push(entry.lsn)).unwrap();
    assert_eq!(lsns, (1..=10).collect::<Vec<_>>());
    assert_eq!(report.scan.torn_tail, None);
    assert_eq!(report.next_id, TicketId::from(6));
    assert_eq!(report.tickets, 4);
    assert_eq!(std::fs::read(log_path(fixture_dir())).unwrap(), before);
    assert!(
        !fixture_dir().join("LOCK").exists(),
        "verify must not create a lock file"
    );
}
