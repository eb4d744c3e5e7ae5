//! Exhaustive damage to a ~200-record log's durable bytes: cut at every byte
//! offset; flip every bit of every record header and of the file header, and
//! a sample of payload bits; zero and randomise every 512-byte sector; append
//! zeros and garbage. Each case is opened on a fresh `SimStorage` and must
//! give the one outcome the recovery rules allow: exactly the records before
//! the damage when it is confined to the final flush (a torn write looks the
//! same), otherwise `OpenError::Corrupt` naming the log and the first damaged
//! record, with the file unchanged. Never a panic, a hang, or altered data
//! accepted (the state must equal the model's replay of the records kept).
//!
//! Three logs: one flush per record, closed (the final flush is the final
//! record); group-commit batches of up to 7 records, closed (the close
//! appends a seal, which proves the last batch durable, and cuts the zero
//! tail); and the same batches cut off by a power cut right after the last
//! batch's sync (no seal: damage anywhere in that batch reads as a torn
//! write; the file ends in its zero tail, which every case covers).
//!
//! Every case runs in an optimised build (`cargo test --release`: about
//! 200,000 opens, 15 to 45 s) or with `TICKETLOG_DAMAGE_FULL=1`. A debug
//! `cargo test` replays
//! records about ten times slower, so there the per-record cases (cuts,
//! header and payload bits) run for one record in `DEBUG_RECORD_STRIDE`
//! and for the last records and the final flush; the file header, every
//! sector and every append always run in full.

use std::path::Path;

use ticketlog::Command;
use ticketlog::inspect::record::{FILE_HEADER_LEN, RECORD_HEADER_LEN};
use ticketlog::storage::{SECTOR_BYTES, SimStorage};

use crate::common::Rng;
use crate::driver::{Driver, Opened, Parked};
use crate::oracle::{self, Expected, Generator, RecordSpan};
use crate::sim::check_damaged_open;

const DIR: &str = "/store";
const RECORDS: usize = 200;
/// In a debug build, the per-record cases cover one record in this many.
const DEBUG_RECORD_STRIDE: usize = 25;

fn full_run() -> bool {
    !cfg!(debug_assertions) || std::env::var_os("TICKETLOG_DAMAGE_FULL").is_some()
}

struct Log {
    bytes: Vec<u8>,
    spans: Vec<RecordSpan>,
    history: Vec<Command>,
}

/// How the writing run ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Close,
    /// A power cut after the last batch (of several creates) was synced.
    PowerCutAfterSync,
}

/// Writes a log of at least `RECORDS` commands through a real store, each
/// flush carrying `batch_len()` commands (refused ones write nothing).
fn build_log(seed: u64, end: End, mut batch_len: impl FnMut(&mut Rng) -> usize) -> Log {
    let sim = SimStorage::new(seed);
    let mut driver = Driver::new(sim.clone(), Path::new(DIR), Default::default(), 2);
    assert!(matches!(driver.open().unwrap(), Opened::Yes));
    let mut rng = Rng::new(seed);
    let mut generator = Generator::new(seed);
    while driver.history.len() < RECORDS {
        let last = driver.history.len() + 7 >= RECORDS && end == End::PowerCutAfterSync;
        let len = match driver.parked() {
            Some(Parked::Idle) => 1,
            _ if last => 4,
            _ => batch_len(&mut rng),
        };
        let mut live = driver.live();
        let batch = (0..len)
            .map(|n| {
                let command = if last {
                    oracle::create(&format!("last batch {n}"), "cut off by the power")
                } else {
                    generator.command(&live)
                };
                let _ = live.execute(&command);
                (n, command)
            })
            .collect();
        driver.send(batch).unwrap();
        driver.advance().unwrap();
        if last && len > 1 {
            break;
        }
    }
    match end {
        End::Close => driver.close().unwrap(),
        End::PowerCutAfterSync => {
            assert_eq!(driver.parked(), Some(Parked::AfterSync { failed: false }));
            driver.crash().unwrap();
        }
    }
    let bytes = sim.durable_contents(&driver.log_path()).unwrap();
    let spans = oracle::record_spans(&bytes);
    let seals = spans.iter().filter(|s| s.seal).count();
    assert_eq!(spans.len() - seals, driver.history.len());
    assert_eq!(seals, usize::from(spans.last().unwrap().seal));
    Log {
        bytes,
        spans,
        history: driver.history,
    }
}

fn one_flush_per_record() -> Log {
    let log = build_log(11, End::Close, |_| 1);
    assert!(!log.spans.last().unwrap().seal, "nothing to seal");
    log
}

fn batched_and_sealed() -> Log {
    let log = build_log(12, End::Close, |rng| 1 + rng.below(7) as usize);
    assert!(
        log.spans.last().unwrap().seal,
        "a close after a batch seals"
    );
    log
}

fn batched_and_cut_by_a_power_cut() -> Log {
    let log = build_log(13, End::PowerCutAfterSync, |rng| 1 + rng.below(7) as usize);
    let final_flush = log.spans.last().unwrap().batch_start;
    assert!(
        log.spans
            .iter()
            .filter(|s| s.batch_start == final_flush)
            .count()
            > 1,
        "the log should end in an unsealed batch of several records"
    );
    assert!(
        log.bytes.len() as u64 > log.spans.last().unwrap().end(),
        "the power cut should leave the zero tail after the last batch"
    );
    log
}

/// Tallies what the cases came to.
#[derive(Debug, Default)]
struct Outcomes {
    cases: u64,
    kept_prefix: u64,
    corrupt: u64,
}

impl Log {
    /// Opens `damaged` on a fresh disk and checks `expected`, after checking
    /// that the general rule agrees with the case's own derivation.
    fn check(
        &self,
        what: &str,
        damaged: &[u8],
        expected: Expected,
        strict: bool,
        tally: &mut Outcomes,
    ) {
        let general = oracle::expected_after_damage(&self.bytes, damaged);
        assert_eq!(general, expected, "{what}: the rule and the case disagree");
        let sim = SimStorage::new(0);
        sim.put_file(
            &Path::new(DIR).join(ticketlog::inspect::LOG_FILE_NAME),
            damaged,
        )
        .unwrap();
        if let Err(error) = check_damaged_open(
            &sim,
            Path::new(DIR),
            &self.history,
            damaged,
            expected,
            strict,
        ) {
            panic!("{what}: {error}");
        }
        assert_eq!(sim.open_file_count(), 0, "{what}: a handle leaked");
        tally.cases += 1;
        match expected {
            Expected::Records(_) => tally.kept_prefix += 1,
            Expected::CorruptAt(_) => tally.corrupt += 1,
        }
    }

    /// Whether this run covers the per-record cases of record `k`: all in a
    /// full run; else every `DEBUG_RECORD_STRIDE`th, the last three, and the
    /// final flush.
    fn covers(&self, k: usize) -> bool {
        let final_flush = self.spans.last().map_or(0, |s| s.batch_start);
        full_run()
            || k.is_multiple_of(DEBUG_RECORD_STRIDE)
            || k + 3 >= self.spans.len()
            || self.spans[k].batch_start >= final_flush
    }

    /// The records wholly before `cut`.
    fn records_before(&self, cut: u64) -> usize {
        self.spans.iter().take_while(|s| s.end() <= cut).count()
    }

    /// Damage first hitting record `k`: kept prefix if nothing of a later
    /// flush survives intact, else corruption at its offset.
    fn expect_for_record(&self, k: usize, damaged: &[u8]) -> Expected {
        let bad = self.spans[k];
        let later_durable_intact = self.spans[k + 1..].iter().any(|s| {
            s.batch_start > bad.offset
                && damaged.get(s.offset as usize..s.end() as usize)
                    == Some(&self.bytes[s.offset as usize..s.end() as usize])
        });
        if later_durable_intact {
            Expected::CorruptAt(bad.offset)
        } else {
            Expected::Records(k)
        }
    }

    /// The record holding byte `at` (which lies past the file header), or
    /// `None` for a byte of the zero tail after the last record (a log
    /// left by a power cut: docs/FORMAT.md, "The zero tail").
    fn record_at(&self, at: u64) -> Option<usize> {
        let found = self
            .spans
            .iter()
            .position(|s| s.offset <= at && at < s.end());
        if found.is_none() {
            let end = self
                .spans
                .last()
                .map_or(FILE_HEADER_LEN as u64, |s| s.end());
            assert!(
                at >= end,
                "a byte past the header and before the tail is in a record"
            );
        }
        found
    }
}

fn truncate_at_every_offset(log: &Log) -> Outcomes {
    let mut tally = Outcomes::default();
    for cut in 0..log.bytes.len() as u64 {
        if cut >= FILE_HEADER_LEN as u64 && log.record_at(cut).is_some_and(|k| !log.covers(k)) {
            continue;
        }
        let damaged = &log.bytes[..cut as usize];
        let expected = Expected::Records(log.records_before(cut));
        // Cuts at and around record boundaries also under strict recovery.
        let strict = log.spans.iter().any(|s| s.offset.abs_diff(cut) <= 1);
        log.check(
            &format!("cut at {cut}"),
            damaged,
            expected,
            strict,
            &mut tally,
        );
    }
    tally
}

fn flip_header_bits(log: &Log) -> Outcomes {
    let mut tally = Outcomes::default();
    for bit in 0..FILE_HEADER_LEN as u64 * 8 {
        let mut damaged = log.bytes.clone();
        damaged[(bit / 8) as usize] ^= 1 << (bit % 8);
        log.check(
            &format!("file header bit {bit}"),
            &damaged,
            Expected::CorruptAt(0),
            false,
            &mut tally,
        );
    }
    for (k, span) in log.spans.iter().enumerate() {
        if !log.covers(k) {
            continue;
        }
        for bit in 0..RECORD_HEADER_LEN as u64 * 8 {
            let mut damaged = log.bytes.clone();
            damaged[(span.offset + bit / 8) as usize] ^= 1 << (bit % 8);
            let expected = log.expect_for_record(k, &damaged);
            log.check(
                &format!("record {k} header bit {bit}"),
                &damaged,
                expected,
                false,
                &mut tally,
            );
        }
    }
    tally
}

fn flip_payload_bits(log: &Log, every: u64) -> Outcomes {
    let mut tally = Outcomes::default();
    for (k, span) in log.spans.iter().enumerate() {
        if !log.covers(k) {
            continue;
        }
        let payload_bits = (span.len - RECORD_HEADER_LEN as u64) * 8;
        // A different phase per record, so the sample covers every bit position.
        for bit in (k as u64 % every..payload_bits).step_by(every as usize) {
            let at = span.offset + RECORD_HEADER_LEN as u64 + bit / 8;
            let mut damaged = log.bytes.clone();
            damaged[at as usize] ^= 1 << (bit % 8);
            let expected = log.expect_for_record(k, &damaged);
            log.check(
                &format!("record {k} payload bit {bit}"),
                &damaged,
                expected,
                false,
                &mut tally,
            );
        }
    }
    tally
}

fn overwrite_every_sector(log: &Log, seed: u64) -> Outcomes {
    let mut tally = Outcomes::default();
    let mut rng = Rng::new(seed);
    let len = log.bytes.len() as u64;
    for sector in 0..len.div_ceil(SECTOR_BYTES) {
        let start = sector * SECTOR_BYTES;
        let end = (start + SECTOR_BYTES).min(len);
        for random in [false, true] {
            let mut damaged = log.bytes.clone();
            for byte in &mut damaged[start as usize..end as usize] {
                *byte = if random { rng.next_u64() as u8 } else { 0 };
            }
            let first_changed =
                (start..end).find(|&i| damaged[i as usize] != log.bytes[i as usize]);
            let expected = match first_changed {
                None => Expected::Records(log.spans.len()),
                Some(at) if at < FILE_HEADER_LEN as u64 => Expected::CorruptAt(0),
                Some(at) => match log.record_at(at) {
                    Some(k) => log.expect_for_record(k, &damaged),
                    // Garbage in the zero tail: a torn tail after every record.
                    None => Expected::Records(log.spans.len()),
                },
            };
            let what = format!(
                "{} sector {sector}",
                if random { "randomised" } else { "zeroed" }
            );
            log.check(&what, &damaged, expected, sector % 4 == 0, &mut tally);
        }
    }
    tally
}

fn append_past_the_end(log: &Log, seed: u64) -> Outcomes {
    let mut tally = Outcomes::default();
    let mut rng = Rng::new(seed);
    for len in [1usize, 7, 23, 24, 25, 511, 512, 513, 4096] {
        for random in [false, true] {
            let mut damaged = log.bytes.clone();
            damaged.extend((0..len).map(|_| if random { rng.next_u64() as u8 } else { 0 }));
            let what = format!(
                "{len} {} bytes appended",
                if random { "random" } else { "zero" }
            );
            let expected = Expected::Records(log.spans.len());
            log.check(&what, &damaged, expected, false, &mut tally);
            log.check(&what, &damaged, expected, true, &mut tally);
        }
    }
    tally
}

/// Every case of one kind, on both logs; prints the tally.
fn run(kind: &str, cases: impl Fn(&Log) -> Outcomes) {
    for (name, log) in [
        ("one flush per record", one_flush_per_record()),
        ("batched, sealed", batched_and_sealed()),
        (
            "batched, cut by a power cut",
            batched_and_cut_by_a_power_cut(),
        ),
    ] {
        let tally = cases(&log);
        eprintln!(
            "damage: {kind}, {name} ({} records, {} bytes, {}): {tally:?}",
            log.spans.len(),
            log.bytes.len(),
            if full_run() {
                "every record"
            } else {
                "sampled records"
            }
        );
        assert!(tally.cases > 0);
    }
}

#[test]
fn a_cut_at_every_byte_offset_keeps_exactly_the_whole_records_before_it() {
    run("truncation", truncate_at_every_offset);
}

#[test]
fn every_header_bit_flip_is_reported_at_its_record_or_cut_as_the_final_flush() {
    run("header bit flips", |log| {
        let tally = flip_header_bits(log);
        // Only the final flush can be cut; everything before it is loud.
        let final_flush = log.spans.last().unwrap().batch_start;
        let final_records = log
            .spans
            .iter()
            .filter(|s| s.batch_start == final_flush)
            .count();
        assert_eq!(
            tally.kept_prefix,
            final_records as u64 * RECORD_HEADER_LEN as u64 * 8
        );
        let covered = (0..log.spans.len()).filter(|&k| log.covers(k)).count() as u64;
        assert_eq!(
            tally.cases,
            (FILE_HEADER_LEN as u64 + covered * RECORD_HEADER_LEN as u64) * 8
        );
        tally
    });
}

#[test]
fn sampled_payload_bit_flips_are_reported_at_their_record() {
    run("payload bit flips (1 in 13)", |log| {
        flip_payload_bits(log, 13)
    });
}

#[test]
fn every_sector_zeroed_or_randomised_meets_the_recovery_rules() {
    run("sector overwrites", |log| overwrite_every_sector(log, 99));
}

#[test]
fn zeros_or_garbage_appended_after_the_last_record_keep_every_record() {
    run("appends", |log| append_past_the_end(log, 7));
}
