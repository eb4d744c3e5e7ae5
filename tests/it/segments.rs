//! Log segments: the log rolls to a new file named by its first LSN once a
//! segment reaches the size limit; recovery checks the run of segments is
//! contiguous and that only the last one can have a torn tail.

use std::fs;
use std::path::{Path, PathBuf};

use ticketlog::inspect::{self, LogEntry, segment_file_name};
use ticketlog::{Damage, ListQuery, OpenError, Options, Status, Store, Ticket, TicketPatch};

use crate::common::draft;

/// Small segments, so a few dozen commands make several.
const SEGMENT_BYTES: u64 = 1024;

fn options() -> Options {
    Options::default().segment_bytes(SEGMENT_BYTES)
}

fn open_small(dir: &Path) -> Store {
    Store::open(dir, options()).expect("open store")
}

/// The segment files in `dir`, in name (= LSN) order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| inspect::parse_segment_file_name(n).is_some())
        })
        .collect();
    files.sort();
    files
}

/// Creates `count` tickets, updating every other one, and returns the tickets.
fn fill(store: &Store, count: u64) -> Vec<Ticket> {
    let client = store.client();
    for n in 1..=count {
        let ticket = client
            .create(draft(&format!("segment ticket {n}")))
            .unwrap();
        if n % 2 == 0 {
            client
                .update(
                    ticket.id,
                    TicketPatch {
                        status: Some(Status::InProgress),
                        ..TicketPatch::default()
                    },
                )
                .unwrap();
        }
    }
    client.list(ListQuery::default()).unwrap()
}

fn entries(dir: &Path) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    inspect::read_log(dir, |entry| entries.push(entry.clone())).unwrap();
    entries
}

/// A store with several segments, closed; returns its tickets.
fn build(dir: &Path) -> Vec<Ticket> {
    let store = open_small(dir);
    let tickets = fill(&store, 40);
    store.close().unwrap();
    assert!(segment_files(dir).len() >= 4, "{:?}", segment_files(dir));
    tickets
}

#[test]
fn the_log_rolls_into_segments_named_by_their_first_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let tickets = build(dir.path());
    let files = segment_files(dir.path());
    let all = entries(dir.path());
    // LSNs run 1, 2, 3, … across every segment.
    assert_eq!(
        all.iter().map(|e| e.lsn).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>()
    );
    // Each file is named by the LSN of its first record, and every entry
    // says which segment holds it.
    let firsts: Vec<u64> = files
        .iter()
        .map(|f| {
            inspect::parse_segment_file_name(f.file_name().unwrap().to_str().unwrap()).unwrap()
        })
        .collect();
    for (index, first) in firsts.iter().enumerate() {
        let in_segment: Vec<&LogEntry> = all.iter().filter(|e| e.segment == *first).collect();
        if index + 1 < firsts.len() {
            assert_eq!(in_segment.first().unwrap().lsn, *first);
            assert_eq!(in_segment.last().unwrap().lsn + 1, firsts[index + 1]);
        }
    }
    // No closed segment is much over the limit (a batch here is one record).
    for file in &files[..files.len() - 1] {
        let len = fs::metadata(file).unwrap().len();
        assert!((SEGMENT_BYTES..SEGMENT_BYTES + 512).contains(&len), "{len}");
    }

    let store = open_small(dir.path());
    assert_eq!(store.recovery().segments, files.len() as u64);
    assert_eq!(store.recovery().records_replayed, all.len() as u64);
    assert_eq!(store.client().list(ListQuery::default()).unwrap(), tickets);
    let stats = store.client().stats().unwrap();
    assert_eq!(stats.records, all.len() as u64);
    assert_eq!(
        stats.log_bytes,
        files
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum::<u64>()
    );
    store.close().unwrap();
}

#[test]
fn every_segment_but_the_last_ends_with_a_record_proven_durable() {
    let dir = tempfile::tempdir().unwrap();
    // Never: records share syncs, so only the roll's seal proves them durable.
    let store = Store::open(
        dir.path(),
        options().durability(ticketlog::Durability::Never),
    )
    .unwrap();
    fill(&store, 40);
    store.close().unwrap();
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    for file in &files[..files.len() - 1] {
        let bytes = fs::read(file).unwrap();
        // Walk the records to the last one and check its `unsynced before` is 0.
        let mut offset = inspect::record::FILE_HEADER_LEN;
        let mut last_unsynced = None;
        while offset < bytes.len() {
            let (header, _) = inspect::decode_record(&bytes[offset..]).unwrap();
            last_unsynced = Some(header.unsynced_before);
            offset += header.record_len() as usize;
        }
        assert_eq!(last_unsynced, Some(0), "{}", file.display());
    }
}

#[test]
fn a_missing_middle_segment_is_corruption_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let files = segment_files(dir.path());
    let missing = files[1].clone();
    let missing_first =
        inspect::parse_segment_file_name(missing.file_name().unwrap().to_str().unwrap()).unwrap();
    let next_first =
        inspect::parse_segment_file_name(files[2].file_name().unwrap().to_str().unwrap()).unwrap();
    fs::remove_file(&missing).unwrap();
    let before: Vec<Vec<u8>> = segment_files(dir.path())
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();

    match Store::open(dir.path(), options()) {
        Err(OpenError::Corrupt { file, damage, .. }) => {
            assert_eq!(file, missing);
            assert_eq!(
                damage,
                Damage::MissingRecords {
                    first: missing_first,
                    last: next_first - 1
                }
            );
            let message = OpenError::Corrupt {
                file: file.clone(),
                offset: 0,
                damage,
            }
            .to_string();
            assert!(
                message.contains(&segment_file_name(missing_first)),
                "{message}"
            );
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Nothing was changed, and verify says the same.
    let after: Vec<Vec<u8>> = segment_files(dir.path())
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();
    assert_eq!(before, after);
    assert!(matches!(
        inspect::read_log(dir.path(), |_| {}),
        Err(OpenError::Corrupt {
            damage: Damage::MissingRecords { .. },
            ..
        })
    ));
}

#[test]
fn a_missing_first_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let files = segment_files(dir.path());
    fs::remove_file(&files[0]).unwrap();
    match Store::open(dir.path(), options()) {
        Err(OpenError::Corrupt { file, damage, .. }) => {
            assert_eq!(file, files[0]);
            assert!(
                matches!(damage, Damage::MissingRecords { first: 1, .. }),
                "{damage}"
            );
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_torn_end_of_a_segment_that_is_not_the_last_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let files = segment_files(dir.path());
    let victim = &files[1];
    let len = fs::metadata(victim).unwrap().len();
    // Cut the last 5 bytes: in the last segment this would be a torn tail.
    fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    match Store::open(dir.path(), options()) {
        Err(OpenError::Corrupt { file, damage, .. }) => {
            assert_eq!(&file, victim);
            assert!(matches!(damage, Damage::DamagedSegment { .. }), "{damage}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(fs::metadata(victim).unwrap().len(), len - 5, "nothing cut");
}

#[test]
fn a_segment_renamed_to_another_lsn_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let files = segment_files(dir.path());
    let last = files.last().unwrap();
    let first =
        inspect::parse_segment_file_name(last.file_name().unwrap().to_str().unwrap()).unwrap();
    // Renamed one LSN later: a gap before it, and its header disagrees.
    let moved = dir.path().join(segment_file_name(first + 1));
    fs::rename(last, &moved).unwrap();
    assert!(matches!(
        Store::open(dir.path(), options()),
        Err(OpenError::Corrupt {
            damage: Damage::MissingRecords { .. },
            ..
        })
    ));
    // Renamed one LSN earlier: it overlaps the segment before it.
    let overlapping = dir.path().join(segment_file_name(first - 1));
    fs::rename(&moved, &overlapping).unwrap();
    match Store::open(dir.path(), options()) {
        Err(OpenError::Corrupt { file, damage, .. }) => {
            assert_eq!(file, overlapping);
            assert!(
                matches!(damage, Damage::OverlappingSegment { .. }),
                "{damage}"
            );
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_crash_while_creating_the_next_segment_leaves_a_log_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let tickets = build(dir.path());
    let files = segment_files(dir.path());
    let last_first = inspect::parse_segment_file_name(
        files.last().unwrap().file_name().unwrap().to_str().unwrap(),
    )
    .unwrap();
    let all = entries(dir.path());
    let next_lsn = all.last().unwrap().lsn + 1;
    assert!(next_lsn > last_first);
    // The roll created the next file but crashed before (or while) writing its header.
    for partial in [0usize, 7, 31] {
        let scratch = tempfile::tempdir().unwrap();
        for file in &files {
            fs::copy(file, scratch.path().join(file.file_name().unwrap())).unwrap();
        }
        let new_segment = scratch.path().join(segment_file_name(next_lsn));
        let header = inspect::record::FileHeader::new(next_lsn).encode();
        fs::write(&new_segment, &header[..partial]).unwrap();

        let store = open_small(scratch.path());
        assert_eq!(store.recovery().bytes_dropped(), partial as u64);
        let client = store.client();
        assert_eq!(client.list(ListQuery::default()).unwrap(), tickets);
        let fresh = client.create(draft("after the interrupted roll")).unwrap();
        store.close().unwrap();
        // The new record went into the new segment, after a rewritten header.
        let reopened = entries(scratch.path());
        let last = reopened.last().unwrap();
        assert_eq!(last.segment, next_lsn);
        assert_eq!(last.lsn, next_lsn);
        let store = open_small(scratch.path());
        assert_eq!(store.client().get(fresh.id).unwrap(), Some(fresh));
        store.close().unwrap();
    }
}

#[test]
fn a_torn_tail_in_the_last_segment_is_still_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    let tickets = build(dir.path());
    let files = segment_files(dir.path());
    let last = files.last().unwrap();
    let mut bytes = fs::read(last).unwrap();
    let clean = bytes.len();
    bytes.extend_from_slice(&[0xA5; 20]);
    fs::write(last, &bytes).unwrap();
    let store = open_small(dir.path());
    assert_eq!(store.recovery().bytes_dropped(), 20);
    assert_eq!(store.client().list(ListQuery::default()).unwrap(), tickets);
    store.close().unwrap();
    assert_eq!(fs::metadata(last).unwrap().len(), clean as u64);
}

#[test]
fn durable_appends_inside_the_preallocated_tail_leave_the_file_size_alone() {
    let dir = tempfile::tempdir().unwrap();
    let fill_bytes = 8 << 10;
    let store = Store::open(dir.path(), Options::default().preallocate_bytes(fill_bytes)).unwrap();
    let client = store.client();
    let path = crate::common::log_path(dir.path());
    let mut sizes = Vec::new();
    let mut log_bytes = Vec::new();
    for n in 0..200 {
        client.create(draft(&format!("ticket {n}"))).unwrap();
        sizes.push(fs::metadata(&path).unwrap().len());
        log_bytes.push(client.stats().unwrap().log_bytes);
    }
    // Each change of size is a fill: the batch that passed the end wrote
    // `fill_bytes` of zeros past itself; every other batch overwrote zeros.
    let changes = sizes.windows(2).filter(|w| w[0] != w[1]).count();
    let records = log_bytes.last().unwrap() - log_bytes[0];
    assert!(
        (changes as u64) <= records / fill_bytes + 1,
        "{changes} size changes for {records} bytes of records"
    );
    assert!(changes >= 1, "200 creates pass one 8 KiB fill");
    for (size, logical) in sizes.iter().zip(&log_bytes) {
        assert!(
            size > logical && size - logical <= fill_bytes,
            "{size} vs {logical}"
        );
    }
    // The file holds the records and then only zeros; a clean close cuts them.
    let bytes = fs::read(&path).unwrap();
    let end = *log_bytes.last().unwrap() as usize;
    assert!(bytes[end..].iter().all(|&b| b == 0));
    store.close().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), end as u64);
}

#[test]
fn a_zero_tail_left_on_a_segment_that_is_not_the_last_ends_its_records_for_readers() {
    let dir = tempfile::tempdir().unwrap();
    let tickets = build(dir.path());
    let before = entries(dir.path());
    // A crash after a roll's truncate was issued but before it was durable
    // leaves the finished segment with its zero tail: extend one with zeros.
    let files = segment_files(dir.path());
    let victim = &files[1];
    let len = fs::metadata(victim).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len + 4096)
        .unwrap();
    let store = open_small(dir.path());
    let client = store.client();
    assert_eq!(client.list(ListQuery::default()).unwrap(), tickets);
    // The readers of closed segments (history, a subscription from the
    // start) stop at that segment's last record and go on into the next.
    for ticket in &tickets {
        let events = client.history(ticket.id).unwrap();
        assert_eq!(events.last().unwrap().version, ticket.version, "{ticket:?}");
    }
    let mut events = client.subscribe(0).unwrap();
    let expected_events: usize = tickets.iter().map(|t| t.version as usize).sum();
    for n in 0..expected_events {
        match events.next_timeout(std::time::Duration::from_secs(30)) {
            Some(Ok(_)) => {}
            other => panic!("event {n} of {expected_events}: {other:?}"),
        }
    }
    store.close().unwrap();
    assert_eq!(entries(dir.path()), before);
}
