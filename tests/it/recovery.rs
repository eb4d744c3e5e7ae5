//! Recovery from damaged logs: torn tails are cut back to the last good
//! record; damage followed by durable records is corruption, reported with
//! its file and offset, and leaves the file untouched.

use std::fs;
use std::path::Path;

use ticketlog::inspect::record::{FILE_HEADER_LEN, RECORD_HEADER_LEN};
use ticketlog::inspect::{self, LogEntry, frame_record};
use ticketlog::{
    Change, Damage, ListQuery, OpenError, Options, Store, Ticket, TicketId, TicketPatch, Timestamp,
};

use crate::common::{draft, log_path, open};

/// Writes `count` tickets (with an update to every third) and returns the
/// log's entries and the tickets as they stood.
fn build_log(dir: &Path, count: u64) -> (Vec<LogEntry>, Vec<Ticket>) {
    let store = open(dir);
    let client = store.client();
    for n in 1..=count {
        let ticket = client.create(draft(&format!("ticket {n}"))).unwrap();
        if n % 3 == 0 {
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
    }
    let tickets = client.list(ListQuery::default()).unwrap();
    store.close().unwrap();
    (entries(dir), tickets)
}

fn entries(dir: &Path) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    inspect::read_log(dir, |entry| entries.push(entry.clone())).unwrap();
    entries
}

fn all_tickets(store: &Store) -> Vec<Ticket> {
    store.client().list(ListQuery::default()).unwrap()
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record_is_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, _) = build_log(dir.path(), 4);
    let full = fs::read(log_path(dir.path())).unwrap();
    let last = entries.last().unwrap().clone();
    assert_eq!(last.offset + last.len, full.len() as u64);

    // The state the log held before its last record.
    let before_last = {
        let scratch = tempfile::tempdir().unwrap();
        fs::write(log_path(scratch.path()), &full[..last.offset as usize]).unwrap();
        let store = open(scratch.path());
        let tickets = all_tickets(&store);
        store.close().unwrap();
        tickets
    };

    for cut in last.offset..last.offset + last.len {
        let scratch = tempfile::tempdir().unwrap();
        let path = log_path(scratch.path());
        fs::write(&path, &full[..cut as usize]).unwrap();

        let store = open(scratch.path());
        let report = store.recovery().clone();
        assert_eq!(
            report.records_replayed,
            entries.len() as u64 - 1,
            "cut at {cut}"
        );
        assert_eq!(report.bytes_dropped(), cut - last.offset, "cut at {cut}");
        if cut > last.offset {
            assert_eq!(report.torn_tail.as_ref().unwrap().offset, last.offset);
        }
        assert_eq!(all_tickets(&store), before_last, "cut at {cut}");
        // A version-2 segment's torn tail is zeroed in place, not cut.
        let after = fs::read(&path).unwrap();
        assert_eq!(after.len() as u64, cut, "cut at {cut}");
        assert!(after[last.offset as usize..].iter().all(|&b| b == 0));

        // New writes append cleanly after the cut.
        let next_id = store.client().stats().unwrap().next_id;
        let fresh = store.client().create(draft("after the cut")).unwrap();
        assert_eq!(fresh.id, next_id);
        let expected = all_tickets(&store);
        store.close().unwrap();

        let store = open(scratch.path());
        assert_eq!(store.recovery().torn_tail, None, "cut at {cut}");
        assert_eq!(store.recovery().records_replayed, entries.len() as u64);
        assert_eq!(all_tickets(&store), expected);
        store.close().unwrap();
    }
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail_and_zeros_are_one_only_in_version_1() {
    // (tail, format version of the segment, whether it is a torn tail)
    for (tail, version, torn) in [
        (vec![0u8; 700], 2, false),
        (vec![0u8; 3], 2, false),
        (vec![0u8; 700], 1, true),
        (vec![0xA5; 13], 2, true),
        (b"not a record at all".to_vec(), 2, true),
        (b"not a record at all".to_vec(), 1, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (entries, tickets) = build_log(dir.path(), 5);
        let path = log_path(dir.path());
        let clean_len = fs::metadata(&path).unwrap().len();
        let mut bytes = fs::read(&path).unwrap();
        let header = ticketlog::inspect::record::FileHeader {
            first_lsn: 1,
            version,
        };
        bytes[..FILE_HEADER_LEN].copy_from_slice(&header.encode());
        bytes.extend_from_slice(&tail);
        fs::write(&path, &bytes).unwrap();

        let store = open(dir.path());
        let dropped = if torn { tail.len() as u64 } else { 0 };
        let case = format!("{} tail bytes, version {version}", tail.len());
        assert_eq!(store.recovery().bytes_dropped(), dropped, "{case}");
        assert_eq!(store.recovery().torn_tail.is_some(), torn, "{case}");
        assert_eq!(store.recovery().records_replayed, entries.len() as u64);
        assert_eq!(all_tickets(&store), tickets);
        store.close().unwrap();
        // Closing seals the segment, which ends it at its last record.
        assert_eq!(fs::metadata(&path).unwrap().len(), clean_len, "{case}");
    }
}

#[test]
fn a_torn_tail_of_a_version_2_segment_is_zeroed_in_place_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, tickets) = build_log(dir.path(), 5);
    let path = log_path(dir.path());
    let clean_len = fs::metadata(&path).unwrap().len() as usize;
    let mut bytes = fs::read(&path).unwrap();
    // A torn batch: garbage, then the preallocated zeros.
    bytes.extend_from_slice(b"a torn batch");
    bytes.extend_from_slice(&[0u8; 500]);
    fs::write(&path, &bytes).unwrap();
    let total = bytes.len();
    let store = Store::open(dir.path(), Options::default().preallocate_bytes(4096)).unwrap();
    assert_eq!(store.recovery().bytes_dropped(), (total - clean_len) as u64);
    assert_eq!(store.recovery().records_replayed, entries.len() as u64);
    let after = fs::read(&path).unwrap();
    assert_eq!(after.len(), total, "the space stays allocated");
    assert_eq!(&after[..clean_len], &bytes[..clean_len]);
    assert!(
        after[clean_len..].iter().all(|&b| b == 0),
        "the torn bytes are zeroed"
    );
    assert_eq!(all_tickets(&store), tickets);
    store.close().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len() as usize, clean_len);
    let store = open(dir.path());
    assert_eq!(store.recovery().torn_tail, None);
    assert_eq!(all_tickets(&store), tickets);
    store.close().unwrap();
}

fn assert_corrupt_at(dir: &Path, offset: u64) -> Damage {
    let path = log_path(dir);
    let before = fs::read(&path).unwrap();
    let error = Store::open(dir, Options::default()).expect_err("damaged log must not open");
    let damage = match error {
        OpenError::Corrupt {
            file,
            offset: at,
            damage,
        } => {
            assert_eq!(file, path);
            assert_eq!(at, offset, "damage reported at the wrong offset: {damage}");
            damage
        }
        other => panic!("expected Corrupt at {offset}, got {other}"),
    };
    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "a failed open changed the log"
    );
    damage
}

#[test]
fn a_bit_flip_in_a_middle_record_fails_open_naming_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, _) = build_log(dir.path(), 6);
    let path = log_path(dir.path());
    let clean = fs::read(&path).unwrap();
    let middle = &entries[entries.len() / 2];
    // Every bit of the header, and a spread of payload bits.
    let bits: Vec<u64> = (0..RECORD_HEADER_LEN as u64 * 8)
        .chain((RECORD_HEADER_LEN as u64 * 8..middle.len * 8).step_by(7))
        .collect();
    for bit in bits {
        let mut damaged = clean.clone();
        damaged[(middle.offset + bit / 8) as usize] ^= 1 << (bit % 8);
        fs::write(&path, &damaged).unwrap();
        let damage = assert_corrupt_at(dir.path(), middle.offset);
        assert!(
            matches!(damage, Damage::MidLog { .. }),
            "bit {bit}: {damage}"
        );
    }
}

#[test]
fn a_length_damaged_to_run_past_the_end_is_not_mistaken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, _) = build_log(dir.path(), 6);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let victim = &entries[1];
    // payload_len is bytes 4..8 of the record header: make it huge but under
    // the format's limit, so the record seems to run past the end of the file.
    let at = (victim.offset + 4) as usize;
    bytes[at..at + 4].copy_from_slice(&(900_000u32).to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let damage = assert_corrupt_at(dir.path(), victim.offset);
    assert!(matches!(damage, Damage::MidLog { .. }), "{damage}");
}

#[test]
fn a_zeroed_sector_in_the_middle_of_the_log_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, _) = build_log(dir.path(), 40);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    assert!(bytes.len() > 2048);
    bytes[512..1024].fill(0);
    fs::write(&path, &bytes).unwrap();
    // The first record that overlaps the zeroed sector is where damage starts.
    let first_hit = entries
        .iter()
        .find(|entry| entry.offset + entry.len > 512)
        .unwrap();
    assert_corrupt_at(dir.path(), first_hit.offset);
}

/// Builds a log by hand: the file header, then the given records.
fn write_log(dir: &Path, records: &[(u32, Vec<Change>)]) -> Vec<u64> {
    let mut bytes = ticketlog::inspect::record::FileHeader::new(1)
        .encode()
        .to_vec();
    let mut offsets = Vec::new();
    for (unsynced_before, changes) in records {
        offsets.push(bytes.len() as u64);
        frame_record(&mut bytes, *unsynced_before, changes).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    fs::write(log_path(dir), &bytes).unwrap();
    offsets
}

fn created(id: u64, at: u64) -> Vec<Change> {
    let draft = draft(&format!("hand-made {id}"));
    vec![Change::Created {
        id: TicketId::from(id),
        title: draft.title,
        description: draft.description,
        at: Timestamp::from_unix_millis(at),
    }]
}

#[test]
fn damage_inside_an_unsynced_batch_is_a_torn_tail_even_with_valid_records_after_it() {
    // Records 2 and 3 were written in one batch after record 1 was synced:
    // record 3's header says the bytes of record 2 were not yet durable. A
    // crash may keep record 3 and tear record 2, and neither was acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let first_len = {
        let mut probe = Vec::new();
        frame_record(&mut probe, 0, &created(1, 10)).unwrap();
        probe.len() as u32
    };
    let second_len = {
        let mut probe = Vec::new();
        frame_record(&mut probe, 0, &created(2, 11)).unwrap();
        probe.len() as u32
    };
    let offsets = write_log(
        dir.path(),
        &[
            (0, created(1, 10)),
            (0, created(2, 11)),
            (second_len, created(3, 12)),
        ],
    );
    assert_eq!(offsets[1], FILE_HEADER_LEN as u64 + u64::from(first_len));
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes[offsets[1] as usize + RECORD_HEADER_LEN + 2] ^= 0x40;
    fs::write(&path, &bytes).unwrap();

    let store = open(dir.path());
    assert_eq!(store.recovery().records_replayed, 1);
    assert_eq!(
        store.recovery().torn_tail.as_ref().unwrap().offset,
        offsets[1]
    );
    assert_eq!(all_tickets(&store).len(), 1);
    store.close().unwrap();

    // The same damage when record 3 says record 2 was already durable is corruption.
    let dir = tempfile::tempdir().unwrap();
    let offsets = write_log(
        dir.path(),
        &[
            (0, created(1, 10)),
            (0, created(2, 11)),
            (0, created(3, 12)),
        ],
    );
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes[offsets[1] as usize + RECORD_HEADER_LEN + 2] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    assert_corrupt_at(dir.path(), offsets[1]);
}

#[test]
fn records_that_contradict_each_other_are_corruption_not_a_tail() {
    let dir = tempfile::tempdir().unwrap();
    let offsets = write_log(
        dir.path(),
        &[
            (0, created(1, 10)),
            (
                0,
                vec![Change::Updated {
                    id: TicketId::from(7),
                    version: 2,
                    title: None,
                    description: None,
                    status: Some(ticketlog::Status::Done),
                    at: Timestamp::from_unix_millis(11),
                }],
            ),
        ],
    );
    let damage = assert_corrupt_at(dir.path(), offsets[1]);
    assert!(matches!(damage, Damage::Inconsistent(_)), "{damage}");
}

#[test]
fn a_duplicated_record_is_corruption() {
    // A block written twice by a misbehaving disk: both copies pass their
    // checksums, but the second creates an id that is not the next one.
    let dir = tempfile::tempdir().unwrap();
    let offsets = write_log(dir.path(), &[(0, created(1, 10)), (0, created(1, 10))]);
    let damage = assert_corrupt_at(dir.path(), offsets[1]);
    assert!(matches!(damage, Damage::Inconsistent(_)), "{damage}");
}

#[test]
fn an_incomplete_file_header_is_a_log_that_was_never_written() {
    for len in [0usize, 1, 8, 31, 32] {
        let dir = tempfile::tempdir().unwrap();
        let header = ticketlog::inspect::record::FileHeader::new(1).encode();
        let mut bytes = header[..len].to_vec();
        if len == 32 {
            bytes[20] ^= 1; // a whole header, damaged, with nothing after it
        }
        fs::write(log_path(dir.path()), &bytes).unwrap();
        let store = open(dir.path());
        assert_eq!(store.recovery().records_replayed, 0);
        assert_eq!(store.recovery().bytes_dropped(), len as u64);
        let ticket = store.client().create(draft("first")).unwrap();
        assert_eq!(ticket.id, TicketId::from(1));
        store.close().unwrap();
        let store = open(dir.path());
        assert_eq!(all_tickets(&store).len(), 1);
        store.close().unwrap();
    }
}

#[test]
fn a_damaged_file_header_before_records_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 3);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes[3] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let damage = assert_corrupt_at(dir.path(), 0);
    assert_eq!(damage, Damage::BadMagic);
}

#[test]
fn a_newer_format_version_is_refused_without_changes() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 2);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crate::common::crc32c(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let damage = assert_corrupt_at(dir.path(), 0);
    assert!(
        matches!(damage, Damage::UnsupportedVersion { found: 3, .. }),
        "{damage}"
    );
}

#[test]
fn read_log_reports_a_torn_tail_without_cutting_it() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 3);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    fs::write(&path, &bytes).unwrap();
    let report = inspect::read_log(dir.path(), |_| {}).unwrap();
    assert_eq!(report.scan.torn_tail.as_ref().unwrap().bytes, 3);
    assert_eq!(report.next_id, TicketId::from(4));
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

fn open_strict(dir: &Path) -> Result<Store, OpenError> {
    Store::open(
        dir,
        Options::default().recovery(ticketlog::Recovery::Strict),
    )
}

#[test]
fn strict_recovery_refuses_a_torn_tail_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, tickets) = build_log(dir.path(), 5);
    let path = log_path(dir.path());
    let clean_len = fs::metadata(&path).unwrap().len();
    let last = entries.last().unwrap();

    // A clean log opens as usual.
    let store = open_strict(dir.path()).unwrap();
    assert_eq!(all_tickets(&store), tickets);
    store.close().unwrap();

    for damaged in [
        {
            let mut bytes = fs::read(&path).unwrap();
            bytes.extend_from_slice(&[0xA5u8; 40]);
            bytes
        },
        fs::read(&path).unwrap()[..(last.offset + 5) as usize].to_vec(),
    ] {
        fs::write(&path, &damaged).unwrap();
        let good_end = if damaged.len() as u64 > clean_len {
            clean_len
        } else {
            last.offset
        };
        match open_strict(dir.path()) {
            Err(OpenError::TornTail {
                file,
                offset,
                bytes,
                ..
            }) => {
                assert_eq!(file, path);
                assert_eq!(offset, good_end);
                assert_eq!(bytes, damaged.len() as u64 - good_end);
            }
            other => panic!("expected TornTail, got {other:?}"),
        }
        assert_eq!(
            fs::read(&path).unwrap(),
            damaged,
            "strict open changed the log"
        );
        // The default recovery cuts the same tail.
        let store = open(dir.path());
        assert!(store.recovery().torn_tail.is_some());
        store.close().unwrap();
        let store = open_strict(dir.path()).unwrap();
        store.close().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), good_end);
    }
}

#[test]
fn strict_recovery_refuses_an_interrupted_header_and_mid_log_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let header = ticketlog::inspect::record::FileHeader::new(1).encode();
    fs::write(log_path(dir.path()), &header[..10]).unwrap();
    assert!(matches!(
        open_strict(dir.path()),
        Err(OpenError::TornTail {
            offset: 0,
            bytes: 10,
            ..
        })
    ));
    assert_eq!(fs::read(log_path(dir.path())).unwrap(), &header[..10]);

    let dir = tempfile::tempdir().unwrap();
    let (entries, _) = build_log(dir.path(), 6);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes[entries[2].offset as usize + 30] ^= 4;
    fs::write(&path, &bytes).unwrap();
    match open_strict(dir.path()) {
        Err(OpenError::Corrupt { offset, .. }) => assert_eq!(offset, entries[2].offset),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn decode_record_checks_what_recovery_checks() {
    let changes = created(1, 10);
    let mut framed = Vec::new();
    frame_record(&mut framed, 0, &changes).unwrap();
    let (header, decoded) = inspect::decode_record(&framed).unwrap();
    assert_eq!(decoded, changes);
    assert_eq!(header.record_len(), framed.len() as u64);
    for cut in 0..framed.len() {
        assert!(matches!(
            inspect::decode_record(&framed[..cut]),
            Err(Damage::Truncated { .. })
        ));
    }
    let mut damaged = framed.clone();
    *damaged.last_mut().unwrap() ^= 1;
    assert_eq!(
        inspect::decode_record(&damaged).unwrap_err(),
        Damage::BadPayload
    );
    damaged = framed.clone();
    damaged[5] ^= 1;
    assert_eq!(
        inspect::decode_record(&damaged).unwrap_err(),
        Damage::BadRecordHeader
    );
}
