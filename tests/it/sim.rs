//! Deterministic simulation: from a seed, simulated clients send random
//! command streams (creates, updates with and without expected versions,
//! deletes, commands the store must refuse, batches) to a store on
//! `SimStorage`; at random points the driver cuts the power, injects I/O
//! faults (once or persistent; EIO, ENOSPC, short writes, lying writes and
//! syncs, power cuts inside an operation), damages durable bytes, and
//! reopens. The oracle (`oracle::check_recovered`) is checked after every
//! reopen, and every reply against the model.
//!
//! `cargo test` runs `SEEDS_DEFAULT` seeds starting from a clock-derived
//! one (printed). `TICKETLOG_SIM_SEEDS=N` runs N seeds, `TICKETLOG_SIM_START=S`
//! starts at S, and `TICKETLOG_SIM_SEED=S` replays one seed verbosely (add
//! `TICKETLOG_SIM_TRACE=1` for every storage operation).

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ticketlog::storage::{Fault, FaultKind, OpKind, SECTOR_BYTES, SimStorage};
use ticketlog::testing::model::Model;
use ticketlog::{Command, Durability, OpenError, Options, Recovery, Store};

use crate::common::Rng;
use crate::driver::{Driver, Opened, Parked, Tally};
use crate::oracle::{self, Expected, Generator};

/// Seeds in a default `cargo test` run.
const SEEDS_DEFAULT: u64 = 2_000;
/// Reopen attempts before a seed is declared stuck (faults are cleared after the first).
const OPEN_ATTEMPTS_MAX: u32 = 4;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn replay_command(seed: u64) -> String {
    format!("TICKETLOG_SIM_SEED={seed} cargo test --test it sim:: -- --nocapture")
}

#[test]
fn every_seed_meets_the_oracle_through_crashes_faults_and_damage() {
    if let Some(seed) = env_u64("TICKETLOG_SIM_SEED") {
        let trace = std::env::var_os("TICKETLOG_SIM_TRACE").is_some();
        match run_seed(seed, trace) {
            Ok((tally, events)) => {
                for event in events {
                    eprintln!("  {event}");
                }
                eprintln!("sim: seed {seed} passed: {tally:?}");
            }
            Err(report) => panic!("{report}"),
        }
        return;
    }
    let count = env_u64("TICKETLOG_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let start = env_u64("TICKETLOG_SIM_START").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
            .wrapping_mul(1_000_003)
    });
    eprintln!(
        "sim: seeds {start}..{} (TICKETLOG_SIM_START={start} TICKETLOG_SIM_SEEDS={count} reruns them)",
        start.wrapping_add(count)
    );
    let began = Instant::now();
    let mut total = Total::default();
    for seed in (0..count).map(|n| start.wrapping_add(n)) {
        match run_seed(seed, false) {
            Ok((tally, _)) => total.add(&tally),
            Err(report) => panic!("{report}"),
        }
    }
    eprintln!(
        "sim: {count} seeds in {:.1?}, 0 oracle violations: {total:?}",
        began.elapsed()
    );
    // The run covered what it claims to (meaningful only with enough seeds).
    if count >= 500 {
        assert!(total.tally.crashes > count / 2, "{total:?}");
        assert!(total.tally.torn_tails > 0, "{total:?}");
        assert!(total.tally.commands_lost_to_crashes > 0, "{total:?}");
        assert!(total.tally.failed_batches > 0, "{total:?}");
        assert!(total.tally.failed_opens > 0, "{total:?}");
        assert!(total.tally.lies > 0, "{total:?}");
        assert!(total.tally.rejected > 0, "{total:?}");
        assert!(
            total.tally.damage_corrupt > 0 && total.tally.damage_truncated > 0,
            "{total:?}"
        );
    }
}

#[derive(Debug, Default)]
struct Total {
    tally: Tally,
}

impl Total {
    fn add(&mut self, t: &Tally) {
        let s = &mut self.tally;
        s.opens += t.opens;
        s.failed_opens += t.failed_opens;
        s.crashes += t.crashes;
        s.batches += t.batches;
        s.failed_batches += t.failed_batches;
        s.acknowledged += t.acknowledged;
        s.rejected += t.rejected;
        s.torn_tails += t.torn_tails;
        s.commands_lost_to_crashes += t.commands_lost_to_crashes;
        s.lies += t.lies;
        s.damage_corrupt += t.damage_corrupt;
        s.damage_truncated += t.damage_truncated;
        s.lie_divergences += t.lie_divergences;
    }
}

/// Runs one seed; on failure returns a report naming the seed, the replay
/// command and what the driver did.
fn run_seed(seed: u64, trace: bool) -> Result<(Tally, Vec<String>), String> {
    let sim = SimStorage::new(seed);
    sim.record_trace(trace);
    let dirs = ["/store", "/sim/store", "/sim/a/b/store"];
    let mut rng = Rng::new(seed);
    let dir = Path::new(dirs[rng.below(dirs.len() as u64) as usize]);
    // A quarter of the seeds run without per-batch syncs, so that several
    // batches are unsynced at once when the power goes.
    let durability = if rng.below(4) == 0 {
        Durability::Never
    } else {
        Durability::Always
    };
    let options = Options::default()
        .channel_capacity(64)
        .durability(durability);
    let mut driver = Driver::new(sim.clone(), dir, options, 3);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        Scenario {
            rng,
            generator: Generator::new(seed ^ 0x5EED),
        }
        .run(&mut driver)
    }));
    let error = match outcome {
        Ok(Ok(())) => return Ok((driver.tally, std::mem::take(&mut driver.events))),
        Ok(Err(error)) => error,
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "a panic".into()),
    };
    let mut report = format!(
        "sim: seed {seed} FAILED: {error}\nreplay: {}\nlast events:\n",
        replay_command(seed)
    );
    let events = &driver.events;
    let shown = if trace { events.len() } else { 40 };
    for event in &events[events.len().saturating_sub(shown)..] {
        report += &format!("  {event}\n");
    }
    for line in sim.take_trace() {
        report += &format!("  trace: {line}\n");
    }
    Err(report)
}

struct Scenario {
    rng: Rng,
    generator: Generator,
}

impl Scenario {
    fn chance(&mut self, in_n: u64) -> bool {
        self.rng.below(in_n) == 0
    }

    fn run(mut self, driver: &mut Driver) -> Result<(), String> {
        let sessions = 1 + self.rng.below(5);
        for _ in 0..sessions {
            if self.chance(6) {
                self.inject_fault(driver, true);
            }
            if !self.open(driver)? {
                return Ok(()); // corruption after a lying disk: the seed ends there
            }
            let steps = self.rng.below(40);
            for _ in 0..steps {
                if !driver.is_open() {
                    break; // a crash fault cut the power
                }
                self.step(driver)?;
            }
            if driver.is_open() {
                match self.rng.below(10) {
                    0..=4 => driver.crash()?,
                    // Damage needs a clean log: not after a lying disk holed it.
                    5 if driver.lie_from.is_none() => {
                        driver.close()?;
                        if self.damage(driver)? {
                            return Ok(());
                        }
                    }
                    _ => driver.close()?,
                }
            }
        }
        driver.sim.clear_faults();
        if self.open(driver)? {
            driver.close()?;
        }
        Ok(())
    }

    /// Opens, clearing faults after a failed attempt. False if the store is
    /// corrupt after a lying disk (the oracle allows that, and the seed ends).
    fn open(&mut self, driver: &mut Driver) -> Result<bool, String> {
        for attempt in 1..=OPEN_ATTEMPTS_MAX {
            match driver.open()? {
                Opened::Yes => return Ok(true),
                Opened::Corrupt(_) | Opened::Diverged(_) => return Ok(false),
                Opened::IoFailed(_) => {
                    // Sometimes the failed open is followed by a crash.
                    if self.chance(3) {
                        driver.sim.crash();
                    }
                    if attempt > 1 || self.chance(2) {
                        driver.sim.clear_faults();
                    }
                }
            }
        }
        Err(format!(
            "the store did not open in {OPEN_ATTEMPTS_MAX} attempts"
        ))
    }

    fn command(&mut self, driver: &Driver) -> (usize, Command) {
        let live = driver.live();
        let client = self.rng.below(3) as usize;
        (client, self.generator.command(&live))
    }

    fn step(&mut self, driver: &mut Driver) -> Result<(), String> {
        let Some(parked) = driver.parked() else {
            return Ok(());
        };
        if driver.ready_for_batch() {
            return match self.rng.below(20) {
                0..=12 => {
                    // A batch of up to 8 commands, each decided against the
                    // model as it will be when the server reaches it.
                    let len = 1 + self.rng.below(8) as usize;
                    let mut live: Model = driver.live();
                    let mut batch = Vec::with_capacity(len);
                    for _ in 0..len {
                        let client = self.rng.below(3) as usize;
                        let command = self.generator.command(&live);
                        let _ = live.execute(&command);
                        batch.push((client, command));
                    }
                    driver.send(batch)
                }
                13..=15 => driver.advance(),
                16 | 17 => {
                    self.inject_fault(driver, false);
                    Ok(())
                }
                _ => driver.crash(),
            };
        }
        match parked {
            Parked::Idle => match self.rng.below(20) {
                0..=14 => {
                    let command = self.command(driver);
                    driver.send(vec![command])
                }
                15 | 16 => driver.check_queries(),
                17 | 18 => {
                    self.inject_fault(driver, false);
                    Ok(())
                }
                _ => driver.crash(),
            },
            Parked::AfterWrite { .. } => {
                if self.chance(5) {
                    driver.crash()
                } else {
                    driver.advance()
                }
            }
            Parked::AfterSync { failed: false } => {
                Err("the driver is ready for a batch after a sync only under Always".into())
            }
            Parked::AfterSync { failed: true } => {
                if self.chance(4) {
                    driver.crash()
                } else {
                    driver.advance()
                }
            }
        }
    }

    /// Arms a fault a few operations ahead: `at_open` aims at the operations
    /// of the next open, otherwise at the server's writes and syncs.
    fn inject_fault(&mut self, driver: &mut Driver, at_open: bool) {
        let kind = match self.rng.below(12) {
            0..=2 => FaultKind::Eio,
            3 | 4 => FaultKind::NoSpace,
            5..=7 => FaultKind::ShortWrite,
            8 => FaultKind::DropWrite,
            _ => FaultKind::Crash,
        };
        let skip = self.rng.below(if at_open { 12 } else { 4 });
        let mut fault = Fault::after(kind, skip);
        if !at_open {
            let only = match self.rng.below(3) {
                0 => Some(OpKind::WriteAt),
                1 => Some(OpKind::SyncData),
                _ => None,
            };
            if let Some(only) = only {
                fault = fault.only(only);
            }
        }
        if self.chance(3) {
            fault = fault.persistent();
        }
        driver.note(format!("inject {fault:?}"));
        driver.sim.inject(fault);
    }

    /// Damages durable bytes of the closed log and checks that the reopen
    /// does exactly what the recovery rules allow; true if it did (which
    /// ends the seed). Only a clean log, all of it durable, is damaged: not
    /// one a poisoned store left with unsynced bytes.
    fn damage(&mut self, driver: &mut Driver) -> Result<bool, String> {
        let path = driver.log_path();
        let sim = driver.sim.clone();
        let Some(clean) = sim.durable_contents(&path) else {
            return Ok(false); // the log was never created (every open failed)
        };
        if sim.file_contents(&path).as_ref() != Some(&clean)
            || clean.len() <= ticketlog::inspect::record::FILE_HEADER_LEN
            || driver.lie_from.is_some()
            || oracle::commands_in_log(&clean).1.is_some()
        {
            // Not clean: a fault or a lie during the close (the seal).
            return Ok(false);
        }
        // Damage at rest only: no I/O fault may blur what the reopen shows.
        sim.clear_faults();
        let len = clean.len() as u64;
        let what = match self.rng.below(5) {
            0 => {
                let bit = self.rng.below(len * 8);
                sim.flip_bit(&path, bit).map_err(|e| e.to_string())?;
                format!("flip bit {bit}")
            }
            1 => {
                let sector = self.rng.below(len.div_ceil(SECTOR_BYTES));
                sim.zero_sector(&path, sector).map_err(|e| e.to_string())?;
                format!("zero sector {sector}")
            }
            2 => {
                let at = self.rng.below(len);
                let n = (1 + self.rng.below(16)).min(len - at);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                sim.overwrite(&path, at, &bytes)
                    .map_err(|e| e.to_string())?;
                format!("overwrite {n} bytes at {at}")
            }
            3 => {
                let cut = self.rng.below(len);
                sim.put_file(&path, &clean[..cut as usize])
                    .map_err(|e| e.to_string())?;
                format!("truncate to {cut}")
            }
            _ => {
                let mut bytes = clean.clone();
                let n = 1 + self.rng.below(600);
                let zeros = self.chance(2);
                bytes.extend((0..n).map(|_| if zeros { 0 } else { self.rng.next_u64() as u8 }));
                sim.put_file(&path, &bytes).map_err(|e| e.to_string())?;
                format!("append {n} {} bytes", if zeros { "zero" } else { "random" })
            }
        };
        let damaged = sim.durable_contents(&path).ok_or("log vanished")?;
        let expected = oracle::expected_after_damage(&clean, &damaged);
        let strict = self.chance(4);
        driver.note(format!(
            "damage: {what}; expect {expected} (strict: {strict})"
        ));
        check_damaged_open(
            &sim,
            &driver.dir,
            &driver.history,
            &damaged,
            expected,
            strict,
        )?;
        match expected {
            Expected::CorruptAt(_) => driver.tally.damage_corrupt += 1,
            Expected::Records(n) if n < oracle::record_spans(&clean).len() => {
                driver.tally.damage_truncated += 1;
            }
            Expected::Records(_) => {}
        }
        Ok(true)
    }
}

/// Opens a damaged log on `sim` and checks the one allowed outcome: the
/// typed corruption error naming the log and the offset (with the file left
/// as it was), or exactly the first `n` commands of `history`. Under strict
/// recovery anything that would be cut is refused instead, unchanged.
pub fn check_damaged_open(
    sim: &SimStorage,
    dir: &Path,
    history: &[Command],
    damaged: &[u8],
    expected: Expected,
    strict: bool,
) -> Result<(), String> {
    let path = dir.join(ticketlog::inspect::LOG_FILE_NAME);
    let mut options = Options::default()
        .preallocate_bytes(crate::driver::PREALLOCATE_BYTES)
        .storage(Arc::new(sim.clone()));
    if strict {
        options = options.recovery(Recovery::Strict);
    }
    let unchanged = |what: &str| -> Result<(), String> {
        if sim.file_contents(&path).as_deref() != Some(damaged)
            || sim.durable_contents(&path).as_deref() != Some(damaged)
        {
            return Err(format!("{what} changed the log"));
        }
        Ok(())
    };
    let result = Store::open(dir, options);
    match (expected, result) {
        (
            Expected::CorruptAt(offset),
            Err(OpenError::Corrupt {
                file, offset: at, ..
            }),
        ) if file == path && at == offset => unchanged("a failed open"),
        (Expected::Records(n), Err(OpenError::TornTail { file, offset, .. }))
            if strict && file == path && oracle::kept_len(damaged, n) == offset =>
        {
            unchanged("a strict open")
        }
        (Expected::Records(n), Ok(store)) => {
            let kept = oracle::kept_len(damaged, n);
            if strict && kept != damaged.len() as u64 && !oracle::zero_tail_at(damaged, kept) {
                return Err(format!(
                    "a strict open accepted a log it had to cut (recovery {:?})",
                    store.recovery()
                ));
            }
            let commands = oracle::commands_in_first(damaged, n);
            let log = sim.file_contents(&path).unwrap_or_default();
            let records = oracle::check_recovered(&store, &log, history, commands)?;
            oracle::check_whole(&log)?;
            if records != commands {
                return Err(format!(
                    "opened with {records} commands; expected exactly {commands} (the first {n} records)"
                ));
            }
            store.close().map_err(|e| format!("close: {e}"))
        }
        (expected, Ok(store)) => Err(format!(
            "opened (recovery {:?}); expected {expected}",
            store.recovery()
        )),
        (expected, Err(error)) => Err(format!("expected {expected}, got: {error}")),
    }
}
