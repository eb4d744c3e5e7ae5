//! Per-ticket history: every change of a ticket, in LSN order, with its
//! version, across segments, snapshots, restarts and compaction.

use ticketlog::{
    Change, ClientError, Event, Options, Retention, Status, Store, TicketDraft, TicketId,
    TicketPatch,
};

use crate::common::draft;

fn options() -> Options {
    Options::default().segment_bytes(300).snapshot_every(7)
}

fn patch(title: Option<&str>, status: Option<Status>) -> TicketPatch {
    TicketPatch {
        title: title.map(|t| t.try_into().unwrap()),
        status,
        ..TicketPatch::default()
    }
}

/// What an event says changed, as a short string.
fn describe(event: &Event) -> String {
    match &event.change {
        Change::Created { title, .. } => format!("created {title}"),
        Change::Updated { title, status, .. } => format!(
            "updated{}{}",
            title
                .as_ref()
                .map_or(String::new(), |t| format!(" title={t}")),
            status.map_or(String::new(), |s| format!(" status={s}"))
        ),
        Change::Deleted { .. } => "deleted".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn history_is_complete_and_ordered_across_segments_snapshots_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    let watched;
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let client = store.client();
        client.create(draft("noise before")).unwrap();
        watched = client.create(draft("watched")).unwrap().id;
        expected.push("created watched".to_string());
        store.close().unwrap();
    }
    for round in 0..4 {
        let store = Store::open(dir.path(), options()).unwrap();
        let client = store.client();
        for n in 0..5 {
            client.create(draft(&format!("noise {round}.{n}"))).unwrap();
        }
        client
            .update(watched, patch(Some(&format!("watched {round}")), None))
            .unwrap();
        expected.push(format!("updated title=watched {round}"));
        client
            .update(watched, patch(None, Some(Status::ALL[round % 3])))
            .unwrap();
        expected.push(format!("updated status={}", Status::ALL[round % 3]));
        if round == 2 {
            store.snapshot().unwrap();
        }
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), options()).unwrap();
    assert!(
        store.recovery().snapshot.is_some(),
        "opened from a snapshot"
    );
    assert!(store.recovery().segments > 3, "{:?}", store.recovery());
    let client = store.client();
    client.delete(watched).unwrap();
    expected.push("deleted".into());

    let history = client.history(watched).unwrap();
    assert_eq!(history.iter().map(describe).collect::<Vec<_>>(), expected);
    // Versions 1, 2, …, 9, and the delete at the last version; LSNs ascend;
    // fields and methods agree.
    let versions: Vec<u64> = history.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 9]);
    assert!(history.windows(2).all(|w| w[0].lsn() < w[1].lsn()));
    for event in &history {
        assert_eq!(event.version(), event.version);
        assert_eq!(event.ticket_id(), watched);
        assert_eq!(event.at(), event.change.at().unwrap());
    }
    let full = client.history_with_start(watched).unwrap();
    assert_eq!(full.first_lsn, 1);
    assert!(full.is_complete());
    assert_eq!(full.events, history);
    store.close().unwrap();
}

#[test]
fn history_of_tickets_never_created_is_not_found_and_of_deleted_ones_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let client = store.client();
    let made = client
        .create_many(vec![draft("one"), draft("two"), draft("three")])
        .unwrap();
    client.delete(made[1].id).unwrap();
    assert!(matches!(
        client.history(TicketId::from(4)),
        Err(ClientError::NotFound(id)) if id == TicketId::from(4)
    ));
    assert!(matches!(
        client.history(TicketId::from(0)),
        Err(ClientError::NotFound(_))
    ));
    // Created in one create_many record: each ticket gets only its own change.
    let second = client.history(made[1].id).unwrap();
    assert_eq!(second.len(), 2);
    assert_eq!(second[0].lsn, 1);
    assert!(matches!(second[0].change, Change::Created { id, .. } if id == made[1].id));
    assert!(matches!(second[1].change, Change::Deleted { .. }));
    assert_eq!(client.history(made[2].id).unwrap().len(), 1);
    store.close().unwrap();
}

#[test]
fn with_compaction_history_says_where_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .segment_bytes(300)
        .snapshot_every(0)
        .retention(Retention::Compact);
    let store = Store::open(dir.path(), options.clone()).unwrap();
    let client = store.client();
    let early = client.create(draft("early")).unwrap().id;
    for n in 0..12 {
        client.create(draft(&format!("filler {n}"))).unwrap();
    }
    let compacted = store.compact().unwrap();
    assert!(compacted.segments_removed > 0, "{compacted:?}");
    assert!(compacted.history_starts_at_lsn > 1);
    client
        .update(early, patch(None, Some(Status::Done)))
        .unwrap();
    let late = client
        .create(TicketDraft {
            title: "late".try_into().unwrap(),
            description: "after compaction".try_into().unwrap(),
        })
        .unwrap()
        .id;

    let early_history = client.history_with_start(early).unwrap();
    assert_eq!(early_history.first_lsn, compacted.history_starts_at_lsn);
    assert!(!early_history.is_complete());
    assert_eq!(early_history.events.len(), 1, "only the update is left");
    assert!(early_history.events[0].lsn >= early_history.first_lsn);
    let late_history = client.history_with_start(late).unwrap();
    assert!(late_history.is_complete());
    store.close().unwrap();

    // After a restart the store says the same.
    let store = Store::open(dir.path(), options).unwrap();
    assert_eq!(
        store.recovery().history_starts_at_lsn,
        compacted.history_starts_at_lsn
    );
    assert_eq!(
        store.client().history_with_start(early).unwrap(),
        early_history
    );
    store.close().unwrap();
}

#[test]
fn history_sees_changes_made_while_clients_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let client = store.client();
    let id = client.create(draft("busy")).unwrap().id;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let client = store.client();
            scope.spawn(move || {
                for n in 0..25 {
                    client.create(draft(&format!("writer {t}.{n}"))).unwrap();
                }
            });
        }
        for n in 1..=20u64 {
            client
                .update(id, patch(Some(&format!("v{}", n + 1)), None))
                .unwrap();
            // Everything acknowledged before the query is in its answer.
            let history = client.history(id).unwrap();
            assert_eq!(history.len() as u64, n + 1);
            assert_eq!(history.last().unwrap().version, n + 1);
        }
    });
    store.close().unwrap();
}
