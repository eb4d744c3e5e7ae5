//! Crashes and failures at every step of the snapshot protocol, of segment
//! rolls and of compaction: the fault layer (`FaultyStorage`) fails the k-th
//! mutating operation (create, write, fdatasync, truncate, rename, remove, directory
//! fsync) — either that one only, or that one and every later one, which is
//! what a crash at that step leaves on disk. Reopening on the real file
//! system must give every acknowledged change, nothing half-applied, a log
//! that verifies, and no leftover temporary file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ticketlog::inspect;
use ticketlog::testing::FaultyStorage;
use ticketlog::testing::faults::{Effect, Fault};
use ticketlog::{
    ClientError, Durability, ListQuery, Options, Retention, Status, Store, Ticket, TicketId,
    TicketPatch,
};

use crate::common::draft;

/// How an injected failure behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailMode {
    /// Only the k-th mutating operation fails (a transient error).
    Once,
    /// The k-th and every later mutating operation fail: the process is as
    /// good as dead, and the disk stays as it was before step k.
    Crash,
}

impl FailMode {
    /// The fault that fails the `step`-th mutating operation from arming.
    fn fault(self, step: u64) -> Fault {
        let fault = Fault::after(Effect::Eio, step).mutating();
        match self {
            FailMode::Once => fault,
            FailMode::Crash => fault.persistent(),
        }
    }
}

/// A fresh directory, on tmpfs where there is one (fsync is free there, and
/// these tests open a store hundreds of times).
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

/// Small segments, so the scenario rolls several and compaction removes several.
fn options(retention: Retention, durability: Durability) -> Options {
    Options::default()
        .snapshot_every(0)
        .segment_bytes(200)
        .retention(retention)
        .durability(durability)
}

/// What the scenario learned: the acknowledged tickets, and the one change
/// whose command failed (it may or may not have reached the disk).
#[derive(Default)]
struct Outcome {
    acknowledged: BTreeMap<TicketId, Ticket>,
    /// The first failed command: `(id it targeted or would mint, was a create)`.
    failed: Option<(TicketId, bool)>,
}

impl Outcome {
    fn record(&mut self, result: Result<Ticket, ClientError>, target: TicketId, create: bool) {
        match result {
            Ok(ticket) => {
                self.acknowledged.insert(ticket.id, ticket);
            }
            Err(_) => {
                if self.failed.is_none() {
                    self.failed = Some((target, create));
                }
            }
        }
    }
}

/// Creates, a snapshot, updates, a compaction, more creates, close: every
/// step that writes goes through the fault layer, with `fault` (if any)
/// armed once the store is open. Returns the outcome and every mutating
/// operation from then on (`describe`d).
fn scenario(
    dir: &Path,
    retention: Retention,
    durability: Durability,
    fault: Option<Fault>,
) -> (Outcome, Vec<String>) {
    let storage = FaultyStorage::default();
    let store = Store::open(
        dir,
        options(retention, durability).storage(Arc::new(storage.clone())),
    )
    .unwrap();
    let armed_at = storage.op_count();
    if let Some(fault) = fault {
        storage.inject(fault);
    }
    let client = store.client();
    let mut outcome = Outcome::default();
    let next_id = |outcome: &Outcome| {
        TicketId::from(
            outcome
                .acknowledged
                .keys()
                .last()
                .map_or(1, |id| id.get() + 1),
        )
    };
    for n in 0..6 {
        let target = next_id(&outcome);
        outcome.record(client.create(draft(&format!("first {n}"))), target, true);
    }
    let _ = store.snapshot();
    for id in [2, 5] {
        let id = TicketId::from(id);
        let patch = TicketPatch {
            status: Some(Status::Done),
            ..TicketPatch::default()
        };
        outcome.record(client.update(id, patch), id, false);
    }
    for n in 0..4 {
        let target = next_id(&outcome);
        outcome.record(client.create(draft(&format!("more {n}"))), target, true);
    }
    let _ = store.compact();
    for n in 0..3 {
        let target = next_id(&outcome);
        outcome.record(client.create(draft(&format!("then {n}"))), target, true);
    }
    let _ = store.snapshot();
    let _ = store.close();
    let steps = storage
        .ops()
        .into_iter()
        .filter(|op| op.index >= armed_at && op.is_mutating())
        .map(|op| op.describe())
        .collect();
    (outcome, steps)
}

/// Reopens on the real file system and checks the outcome.
fn check_reopen(dir: &Path, retention: Retention, outcome: &Outcome, context: &str) {
    let store = Store::open(dir, options(retention, Durability::Always))
        .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
    let found: BTreeMap<TicketId, Ticket> = store
        .client()
        .list(ListQuery::default())
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    store.close().unwrap();
    // Every acknowledged change is there. Beyond them, at most the one
    // failed command's change (its bytes may have reached the disk).
    for (id, acked) in &outcome.acknowledged {
        let Some(ticket) = found.get(id) else {
            panic!("{context}: acknowledged ticket {id} is gone");
        };
        if ticket != acked {
            assert_eq!(
                outcome.failed,
                Some((*id, false)),
                "{context}: ticket {id} is {ticket:?}, acknowledged as {acked:?}"
            );
            assert_eq!(ticket.version, acked.version + 1, "{context}");
        }
    }
    for id in found.keys() {
        if !outcome.acknowledged.contains_key(id) {
            assert_eq!(
                outcome.failed,
                Some((*id, true)),
                "{context}: ticket {id} was never acknowledged"
            );
        }
    }
    // The log verifies, every snapshot checks out, and no temporary file is left.
    let report =
        inspect::read_log(dir, |_| {}).unwrap_or_else(|e| panic!("{context}: verify failed: {e}"));
    assert_eq!(report.scan.torn_tail, None, "{context}");
    for check in &report.snapshots {
        assert!(check.result.is_ok(), "{context}: {check:?}");
    }
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{context}: {leftovers:?}");
}

fn every_step(retention: Retention, mode: FailMode) {
    for durability in [Durability::Always, Durability::Never] {
        every_step_with(retention, durability, mode);
    }
}

fn every_step_with(retention: Retention, durability: Durability, mode: FailMode) {
    // A clean run counts the steps.
    let dir = scratch_dir();
    let (clean, trace) = scenario(dir.path(), retention, durability, None);
    assert_eq!(clean.acknowledged.len(), 13);
    assert!(clean.failed.is_none());
    let steps = trace.len() as u64;
    let removed_segments = trace
        .iter()
        .filter(|t| t.contains("remove") && t.ends_with(".wal"))
        .count();
    assert!(
        removed_segments >= 2,
        "compaction removes segments: {trace:?}"
    );
    for op in ["rename", "remove", "sync_dir", "set_len"] {
        assert!(
            trace.iter().any(|t| t.contains(op)),
            "the scenario exercises {op}: {trace:?}"
        );
    }
    assert!(steps > 40, "{steps} steps");

    for fail_at in 0..steps {
        let dir = scratch_dir();
        let (outcome, _) = scenario(dir.path(), retention, durability, Some(mode.fault(fail_at)));
        let context = format!(
            "{retention:?} {durability} {mode:?} failing at step {fail_at} ({})",
            trace[fail_at as usize]
        );
        check_reopen(dir.path(), retention, &outcome, &context);
    }
}

#[test]
fn a_crash_at_any_step_of_snapshots_rolls_and_compaction_loses_nothing_acknowledged() {
    every_step(Retention::Compact, FailMode::Crash);
    every_step(Retention::KeepAll, FailMode::Crash);
}

#[test]
fn a_failure_at_any_step_of_snapshots_rolls_and_compaction_loses_nothing_acknowledged() {
    every_step(Retention::Compact, FailMode::Once);
    every_step(Retention::KeepAll, FailMode::Once);
}
