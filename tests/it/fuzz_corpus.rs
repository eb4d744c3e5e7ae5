//! Replays every committed fuzz input — the seed corpora in
//! `data/fuzz/<target>/` and the minimised crashers in
//! `data/fuzz/regressions/<target>/` — through `ticketlog::testing::fuzz`, the very
//! checking code the cargo-fuzz targets run, on stable and on every test run.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ticketlog::testing::fuzz::{command_stream, log_decode, record_roundtrip};

fn fuzz_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fuzz")
}

/// Every file in `dir`, sorted by name; none if the directory does not exist.
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = read
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = fs::read(&path).expect("a readable fuzz input");
            (path, bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

/// Runs `check` on every corpus and regression input of `target`; fails
/// naming each input that panicked. Returns how many inputs ran.
fn replay(target: &str, check: fn(&[u8])) -> (usize, usize) {
    let corpus = inputs(&fuzz_data().join(target));
    let regressions = inputs(&fuzz_data().join("regressions").join(target));
    let mut failed = Vec::new();
    for (path, bytes) in corpus.iter().chain(&regressions) {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| check(bytes))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failed.len(),
        corpus.len() + regressions.len(),
        failed.join("\n")
    );
    (corpus.len(), regressions.len())
}

#[test]
fn command_stream_corpus_and_regressions_pass() {
    let (corpus, _) = replay("command_stream", command_stream::check_bytes);
    assert!(
        corpus >= 20,
        "the command_stream seed corpus has {corpus} inputs"
    );
}

#[test]
fn log_decode_corpus_and_regressions_pass() {
    let (corpus, _) = replay("log_decode", log_decode::check_bytes);
    assert!(
        corpus >= 20,
        "the log_decode seed corpus has {corpus} inputs"
    );
}

#[test]
fn record_roundtrip_corpus_and_regressions_pass() {
    let (corpus, regressions) = replay("record_roundtrip", record_roundtrip::check_bytes);
    assert!(
        corpus >= 20,
        "the record_roundtrip seed corpus has {corpus} inputs"
    );
    assert!(
        regressions >= 1,
        "the non-canonical varint regression is replayed"
    );
}

/// Writes the hand-made part of the `log_decode` seed corpus: valid logs,
/// the v1 fixture, and each kind of damage FORMAT.md names. Each file is a
/// mode byte (see `log_decode::check_bytes`) followed by the file's bytes.
/// Run with `cargo test --test it -- --ignored write_log_decode_seeds`.
#[test]
#[ignore = "regenerates committed seed files; run by hand"]
fn write_log_decode_seeds() {
    use ticketlog::inspect::frame_record;
    use ticketlog::inspect::record::{FILE_HEADER_LEN, FileHeader, RECORD_HEADER_LEN};
    use ticketlog::{Change, Status, TicketId, Timestamp};

    let dir = fuzz_data().join("log_decode");
    fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, mode: u8, bytes: &[u8]| {
        let mut seed = vec![mode];
        seed.extend_from_slice(bytes);
        fs::write(dir.join(name), seed).unwrap();
    };
    let header = |first_lsn: u64| FileHeader::new(first_lsn).encode().to_vec();
    let at = |ms: u64| Timestamp::from_unix_millis(1_795_000_000_000 + ms);
    let created = |id: u64, title: &str, ms: u64| Change::Created {
        id: TicketId::from(id),
        title: title.try_into().unwrap(),
        description: "seed".try_into().unwrap(),
        at: at(ms),
    };
    let updated = |id: u64, version: u64, ms: u64| Change::Updated {
        id: TicketId::from(id),
        version,
        title: Some("renamed é中".try_into().unwrap()),
        description: None,
        status: Some(Status::Done),
        at: at(ms),
    };
    let deleted = |id: u64, version: u64, ms: u64| Change::Deleted {
        id: TicketId::from(id),
        version,
        at: at(ms),
    };
    // Records carry no LSN (the file header's first LSN numbers them), so the
    // first argument only documents which header the records are meant for.
    let records = |_first_lsn: u64, batches: &[(u32, Vec<Change>)]| {
        let mut out = Vec::new();
        for (unsynced, changes) in batches {
            frame_record(&mut out, *unsynced, changes).unwrap();
        }
        out
    };

    let fixture = fs::read(fuzz_data().join("../v1/store/00000000000000000001.wal")).unwrap();
    write("fixture-v1", 0, &fixture);
    write(
        "fixture-v1-records-after-generated-header",
        1,
        &fixture[FILE_HEADER_LEN..],
    );
    write("empty-file", 0, &[]);
    write("header-torn", 0, &fixture[..13]);
    write("header-only", 0, &fixture[..FILE_HEADER_LEN]);
    write(
        "fixture-cut-mid-last-record",
        0,
        &fixture[..fixture.len() - 7],
    );
    write(
        "fixture-cut-mid-first-header",
        0,
        &fixture[..FILE_HEADER_LEN + 10],
    );
    let mut flipped = fixture.clone();
    flipped[FILE_HEADER_LEN + 30] ^= 0x10;
    write("fixture-bit-flip-in-first-record", 0, &flipped);
    let mut flipped = fixture.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    write("fixture-bit-flip-in-last-record", 0, &flipped);
    let mut zeros = fixture.clone();
    zeros.resize(fixture.len() + 100, 0);
    write("fixture-zeros-appended", 0, &zeros);
    let mut bad_magic = fixture.clone();
    bad_magic[0] = b'X';
    write("fixture-bad-magic", 0, &bad_magic);
    let mut version_2 = header(1);
    version_2[8] = 2;
    let crc = crc32c_of_header(&version_2);
    version_2[28..32].copy_from_slice(&crc.to_le_bytes());
    write("header-version-2", 0, &version_2);

    let lifecycle = records(
        1,
        &[
            (0, vec![created(1, "one", 0)]),
            (0, vec![created(2, "two", 1)]),
            (0, vec![updated(1, 2, 2)]),
            (0, vec![deleted(2, 1, 3)]),
            (0, vec![created(3, "three", 3)]),
        ],
    );
    write("lifecycle", 1, &lifecycle);
    write(
        "lifecycle-cut-in-payload",
        1,
        &lifecycle[..lifecycle.len() - 3],
    );
    let multi = records(
        1,
        &[(
            0,
            vec![created(1, "a", 0), updated(1, 2, 0), deleted(1, 2, 0)],
        )],
    );
    write("three-events-in-one-record", 1, &multi);
    // A group commit: later records of the batch count the bytes before them.
    let mut batch = Vec::new();
    frame_record(&mut batch, 0, &[created(1, "b1", 0)]).unwrap();
    let first_len = batch.len() as u32;
    frame_record(&mut batch, first_len, &[created(2, "b2", 0)]).unwrap();
    write("group-commit-batch", 1, &batch);
    let mut torn_batch = batch.clone();
    torn_batch[FILE_HEADER_LEN / 2] ^= 0xff;
    write("group-commit-first-record-damaged", 1, &torn_batch);
    write(
        "first-lsn-7",
        3,
        &[&[7u8][..], &records(7, &[(0, vec![created(1, "x", 0)])])].concat(),
    );
    write(
        "sequence-gap",
        1,
        &records(2, &[(0, vec![created(1, "x", 0)])]),
    );
    write(
        "update-of-missing-ticket",
        1,
        &records(1, &[(0, vec![updated(9, 2, 0)])]),
    );
    write(
        "wrong-first-id",
        1,
        &records(1, &[(0, vec![created(5, "x", 0)])]),
    );
    write(
        "timestamp-goes-back",
        1,
        &records(
            1,
            &[(0, vec![created(1, "x", 9)]), (0, vec![created(2, "y", 1)])],
        ),
    );
    write("empty-event-list", 1, &records(1, &[(0, vec![])]));
    // Valid checksums around a payload that is not the canonical encoding.
    let mut wide = Vec::new();
    ticketlog::inspect::record::encode_record(
        &mut wide,
        0,
        &[1, 0, 251, 1, 0, 1, b'x', 1, b'y', 0],
    );
    write("non-canonical-varint", 1, &wide);
    // A header whose checksum is right but whose length is over the limit.
    let mut too_long = vec![0u8; RECORD_HEADER_LEN];
    too_long[4..8].copy_from_slice(&(2u32 << 20).to_le_bytes());
    let crc = crate::common::crc32c(&too_long[4..RECORD_HEADER_LEN]);
    too_long[0..4].copy_from_slice(&crc.to_le_bytes());
    write("record-length-over-limit", 1, &too_long);
    // Damage followed by a record that proves it was durable: mid-log corruption.
    let mut mid = lifecycle.clone();
    mid[FILE_HEADER_LEN - 32 + 40] ^= 0x04;
    write("mid-log-corruption", 1, &mid);
    write("garbage", 0, b"not a log at all, just some text\n");
    write("garbage-after-header", 1, b"\xff\xff\xff\xff garbage");
}

/// The file header's checksum over its first 28 bytes.
fn crc32c_of_header(header: &[u8]) -> u32 {
    crate::common::crc32c(&header[..28])
}
