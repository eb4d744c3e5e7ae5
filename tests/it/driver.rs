//! A deterministic driver for a store on `SimStorage`.
//!
//! The store's server thread batches whatever requests are queued when it
//! looks, so with free-running threads the batches — and with them the
//! storage operations, fault indexes and crash points — depend on timing.
//! The driver removes the timing: `SimStorage::hold_file_writes` stops the
//! server after each write and each sync, and the driver sends the next
//! batch only while the server is stopped, so every batch is exactly the
//! commands the driver chose. From idle, the first command goes alone.
//!
//! The driver keeps the history (every command the server accepted, in its
//! order), how many of them were acknowledged, and a live model of what the
//! server holds in memory, and checks every reply against the model. On
//! reopen it checks the oracle (`oracle::check_recovered`).
//!
//! Under `Durability::Always` a batch is a write and a sync, and every
//! acknowledged command must survive a power cut. Under `Durability::Never`
//! a batch is only a write, acknowledged once written; several batches can
//! be unsynced at once (which is what lets a crash reorder and tear them),
//! and a power cut may lose anything after the last sync (at open or close),
//! but what survives must still be a prefix that replays to the state.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ticketlog::inspect::LOG_FILE_NAME;
use ticketlog::storage::{FaultKind, HeldOp, HeldOps, OpKind, SimStorage};
use ticketlog::testing::model::{Model, Refusal, same_ticket};
use ticketlog::{
    Client, ClientError, Command, Durability, ListQuery, OpenError, Options, PendingReply,
    StorageError, Store, Ticket,
};

use crate::oracle;

/// How long to wait for the server to reach a write or sync that the model
/// says it must reach. A bound on a wrong expectation, not a delay.
const HELD_OP_LIMIT: Duration = Duration::from_secs(60);

/// Where the server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// Waiting for requests; nothing in flight.
    Idle,
    /// Stopped after writing a batch, before syncing it.
    AfterWrite { failed: bool },
    /// Stopped after syncing a batch, before replying.
    AfterSync { failed: bool },
}

/// What an attempt to open found.
#[derive(Debug)]
pub enum Opened {
    /// Open succeeded and the store met the oracle.
    Yes,
    /// Open failed with an I/O error that an injected fault explains.
    IoFailed(OpenError),
    /// Open failed with a corruption error (allowed only after a lying disk).
    Corrupt(OpenError),
    /// Open succeeded, but the log is not a prefix of the history: allowed
    /// only after a lie about a truncation (a dropped `set_len`, or a sync
    /// that lied after an open cut a torn tail), which can bring records cut
    /// earlier back. The store is closed; the seed cannot go on.
    Diverged(String),
}

enum Expect {
    Accepted { ticket: Ticket, index: usize },
    Rejected(Refusal),
    Poisoned,
}

struct Submitted {
    command: Command,
    reply: PendingReply<Ticket>,
    expect: Expect,
}

struct Session {
    store: Store,
    clients: Vec<Client>,
    holds: Option<HeldOps>,
    /// What the server holds in memory, as far as the driver can tell.
    live: Model,
    poisoned: bool,
    parked: Parked,
    /// The batch the server is working on.
    batch: Vec<Submitted>,
    /// History index of the batch's first accepted command.
    batch_start: usize,
}

/// Counts of what happened, for coverage checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub opens: u64,
    pub failed_opens: u64,
    pub crashes: u64,
    pub batches: u64,
    pub failed_batches: u64,
    pub acknowledged: u64,
    pub rejected: u64,
    pub torn_tails: u64,
    pub commands_lost_to_crashes: u64,
    pub lies: u64,
    pub damage_corrupt: u64,
    pub damage_truncated: u64,
    /// Reopens whose log was no prefix of the history after a lie about a truncation.
    pub lie_divergences: u64,
}

pub struct Driver {
    pub sim: SimStorage,
    pub dir: PathBuf,
    pub options: Options,
    /// Every command the server accepted, in its order, cut back to the log
    /// on every reopen.
    pub history: Vec<Command>,
    /// How many of `history` were acknowledged (always a prefix).
    pub acked: usize,
    /// How many acknowledged commands a completed sync covers: all of
    /// `acked` under `Always`; under `Never`, those before the last open or
    /// clean close.
    pub synced: usize,
    /// Under `Never`: the power was cut since the last sync, so commands
    /// acknowledged after it may be gone.
    unsynced_at_risk: bool,
    /// The store syncs only on open and close.
    never: bool,
    /// A lying disk (a dropped write or sync) may have lost commands from
    /// this history index on.
    pub lie_from: Option<usize>,
    /// What the driver did, for the failure report.
    pub events: Vec<String>,
    pub tally: Tally,
    session: Option<Session>,
    /// Whether the power was cut since the last lie: a lie's damage (a hole,
    /// an entry never made durable) stays latent until a crash shows it.
    crashed_since_lie: bool,
    /// A lie covered a truncation, so a crash may bring back bytes recovery
    /// had cut: the reopen may hold commands from a discarded history.
    lie_covered_a_cut: bool,
    crashes_seen: u64,
    faults_seen: usize,
    clients: usize,
}

/// How far ahead the driver's stores zero-fill their segments.
pub const PREALLOCATE_BYTES: u64 = 1024;

impl Driver {
    /// A driver of stores opened with `options`, except that segments are
    /// preallocated [`PREALLOCATE_BYTES`] ahead: small enough that sweeps
    /// over the file stay short, and filled every few batches, so every
    /// crash and fault meets both a batch that passes the zero tail's end
    /// and batches that overwrite it.
    pub fn new(sim: SimStorage, dir: &Path, options: Options, clients: usize) -> Driver {
        let never = options.get_durability() == Durability::Never;
        Driver {
            sim,
            dir: dir.to_path_buf(),
            options: options.preallocate_bytes(PREALLOCATE_BYTES),
            history: Vec::new(),
            acked: 0,
            synced: 0,
            unsynced_at_risk: false,
            never,
            lie_from: None,
            events: Vec::new(),
            tally: Tally::default(),
            session: None,
            crashed_since_lie: false,
            lie_covered_a_cut: false,
            crashes_seen: 0,
            faults_seen: 0,
            clients: clients.max(1),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE_NAME)
    }

    pub fn note(&mut self, event: impl Into<String>) {
        self.events.push(event.into());
    }

    pub fn is_open(&self) -> bool {
        self.session.is_some()
    }

    pub fn parked(&self) -> Option<Parked> {
        self.session.as_ref().map(|s| s.parked)
    }

    pub fn is_poisoned(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.poisoned)
    }

    /// The live model (what the open store holds), or the history's replay.
    pub fn live(&self) -> Model {
        match &self.session {
            Some(session) => session.live.clone(),
            None => Model::from_commands(&self.history).unwrap_or_default(),
        }
    }

    /// Faults and crashes that fired since the last look: lies lower
    /// `lie_from`; returns whether the power was cut.
    fn observe(&mut self) -> bool {
        let fired = self.sim.faults_fired();
        // What a lie may lose: in a session, the batch being flushed; in an
        // open, everything not yet synced (the open's own sync is what makes
        // records it read back from the cache durable, including, under
        // Never, acknowledged ones).
        let batch_start = self
            .session
            .as_ref()
            .map_or(self.synced, |s| s.batch_start.min(self.history.len()));
        for fault in &fired[self.faults_seen..] {
            self.events.push(format!(
                "fault {:?} hit op {} ({:?} {})",
                fault.kind,
                fault.op_index,
                fault.op,
                fault.path.display()
            ));
            if fault.kind == FaultKind::DropWrite {
                if fault.op == OpKind::SetLen {
                    self.lie_covered_a_cut = true;
                }
                self.tally.lies += 1;
                self.lie_from = Some(self.lie_from.map_or(batch_start, |l| l.min(batch_start)));
                self.crashed_since_lie = false;
            }
        }
        self.faults_seen = fired.len();
        let crashes = self.sim.crash_count();
        let crashed = crashes > self.crashes_seen;
        self.crashes_seen = crashes;
        if crashed {
            self.crashed_since_lie = true;
            if self.never {
                self.unsynced_at_risk = true;
            }
        }
        crashed
    }

    fn faults_fired_since(&self, seen: usize) -> bool {
        self.sim.faults_fired().len() > seen
    }

    /// Opens the store and checks the oracle against the history.
    pub fn open(&mut self) -> Result<Opened, String> {
        self.open_with(self.options.clone())
    }

    pub fn open_with(&mut self, options: Options) -> Result<Opened, String> {
        assert!(self.session.is_none(), "open while a store is open");
        let faults_before = self.faults_seen;
        let lies_before = self.tally.lies;
        let result = Store::open(&self.dir, options.storage(Arc::new(self.sim.clone())));
        let fault_hit = self.faults_fired_since(faults_before);
        self.observe();
        self.tally.opens += 1;
        let store = match result {
            Ok(store) => store,
            Err(error @ OpenError::Io { .. }) if fault_hit => {
                self.note(format!("open failed: {error}"));
                self.tally.failed_opens += 1;
                self.check_no_leaks("after a failed open")?;
                return Ok(Opened::IoFailed(error));
            }
            Err(error @ OpenError::Corrupt { .. }) if self.lie_from.is_some() => {
                self.note(format!("open after a lying disk: {error}"));
                if let OpenError::Corrupt { file, .. } = &error
                    && *file != self.log_path()
                {
                    return Err(format!("corruption reported in the wrong file: {error}"));
                }
                return Ok(Opened::Corrupt(error));
            }
            Err(error) => {
                return Err(format!(
                    "open failed with no fault to explain it: {error} ({error:?})"
                ));
            }
        };
        let acked_surviving = if self.unsynced_at_risk {
            self.synced
        } else {
            self.acked
        };
        let at_least = match self.lie_from {
            Some(lie) => acked_surviving.min(lie),
            None => acked_surviving,
        };
        let log = self.sim.file_contents(&self.log_path()).unwrap_or_default();
        let records = match oracle::check_recovered(&store, &log, &self.history, at_least) {
            Ok(records) => records,
            Err(why) if self.lie_from.is_some() && self.lie_covered_a_cut => {
                self.note(format!("diverged after a lie about a truncation: {why}"));
                self.tally.lie_divergences += 1;
                store.close().ok();
                return Ok(Opened::Diverged(why));
            }
            Err(why) => return Err(why),
        };
        if self.tally.lies > lies_before && store.recovery().torn_tail.is_some() {
            // This open cut a torn tail, and a lie during it (its sync) may
            // leave the cut undone by the next crash.
            self.lie_covered_a_cut = true;
        }
        if self.lie_from.is_none() {
            oracle::check_whole(&log)?;
        }
        if store.recovery().torn_tail.is_some() {
            self.tally.torn_tails += 1;
        }
        self.tally.commands_lost_to_crashes += (self.history.len() - records) as u64;
        self.note(format!(
            "opened: {records} of {} commands recovered ({} acknowledged), recovery {:?}",
            self.history.len(),
            self.acked,
            store.recovery()
        ));
        self.history.truncate(records);
        self.acked = self.acked.min(records);
        // The open synced what it read, unless its sync lied.
        self.synced = if self.tally.lies == lies_before {
            self.acked
        } else {
            self.synced.min(self.acked)
        };
        self.unsynced_at_risk = false;
        // A lie is settled once a reopen after a crash met the oracle: what
        // the crash left is all durable. Until then its damage may be latent.
        self.lie_from = match self.lie_from {
            Some(_) if self.crashed_since_lie => None,
            lie => lie.map(|l| l.min(records)),
        };
        if self.lie_from.is_none() && self.tally.lies == lies_before {
            self.lie_covered_a_cut = false;
        }
        let live = Model::from_commands(&self.history)?;
        let clients = (0..self.clients).map(|_| store.client()).collect();
        let holds = self.sim.hold_file_writes();
        self.session = Some(Session {
            store,
            clients,
            holds: Some(holds),
            live,
            poisoned: false,
            parked: Parked::Idle,
            batch: Vec::new(),
            batch_start: records,
        });
        Ok(Opened::Yes)
    }

    /// Sends `commands` (client index, command) so that they form one batch.
    /// From idle only one command may be sent (the server takes the first
    /// request of a batch as soon as it arrives).
    pub fn send(&mut self, commands: Vec<(usize, Command)>) -> Result<(), String> {
        let history_len = self.history.len();
        let session = self.session.as_mut().ok_or("send with no store open")?;
        let flushed = if self.never {
            Parked::AfterWrite { failed: false }
        } else {
            Parked::AfterSync { failed: false }
        };
        match session.parked {
            Parked::Idle if commands.len() == 1 => {}
            parked if parked == flushed && !commands.is_empty() => {}
            parked => {
                return Err(format!(
                    "driver misuse: sending {} commands while {parked:?}",
                    commands.len()
                ));
            }
        }
        let poisoned = session.poisoned;
        if poisoned {
            // A poisoned store must not write again: stop holding, so that a
            // write it tried anyway would run (and be counted) instead of
            // waiting for a release that never comes.
            session.holds = None;
        }
        let ops_before = self.sim.op_count();
        let mut batch = Vec::new();
        let mut batch_start = None;
        for (client, command) in commands {
            let expect = if session.poisoned {
                Expect::Poisoned
            } else {
                match session.live.execute(&command) {
                    Ok(ticket) => {
                        let index = self.history.len();
                        self.history.push(command.clone());
                        batch_start.get_or_insert(index);
                        Expect::Accepted { ticket, index }
                    }
                    Err(rejection) => Expect::Rejected(rejection),
                }
            };
            let reply = session.clients[client % session.clients.len()]
                .submit(command.clone())
                .map_err(|e| format!("submit failed: {e}"))?;
            batch.push(Submitted {
                command,
                reply,
                expect,
            });
        }
        let accepted = self.history.len() - history_len;
        self.events.push(format!(
            "send {} commands ({accepted} accepted) while {:?}",
            batch.len(),
            session.parked
        ));
        if session.parked != Parked::Idle {
            self.release_and_finish(true)?;
        }
        let session = self.session.as_mut().ok_or("store gone")?;
        session.batch = batch;
        session.batch_start = batch_start.unwrap_or(self.history.len());
        if accepted > 0 {
            self.wait_held(OpKind::WriteAt)
        } else {
            self.finish_batch(true)?;
            if poisoned && self.sim.op_count() != ops_before {
                return Err(format!(
                    "a poisoned store touched storage again ({} operations): a retry",
                    self.sim.op_count() - ops_before
                ));
            }
            Ok(())
        }
    }

    /// Whether the server is stopped after a batch that has been flushed as
    /// far as the durability mode goes, so the next batch may be sent.
    pub fn ready_for_batch(&self) -> bool {
        match self.parked() {
            Some(Parked::AfterSync { failed: false }) => !self.never,
            Some(Parked::AfterWrite { failed: false }) => self.never,
            _ => false,
        }
    }

    /// Lets the server go on from where it stopped, to its next stop.
    pub fn advance(&mut self) -> Result<(), String> {
        let session = self.session.as_ref().ok_or("advance with no store open")?;
        match session.parked {
            Parked::Idle => Ok(()),
            // Under Never a written batch is answered without a sync.
            Parked::AfterWrite { failed: false } if self.never => self.release_and_finish(true),
            Parked::AfterWrite { failed: false } => {
                self.release();
                self.wait_held(OpKind::SyncData)
            }
            Parked::AfterWrite { failed: true } | Parked::AfterSync { failed: true } => {
                self.release_and_finish(false)
            }
            Parked::AfterSync { failed: false } => self.release_and_finish(true),
        }
    }

    fn release(&mut self) {
        if let Some(holds) = self.session.as_ref().and_then(|s| s.holds.as_ref()) {
            holds.release();
        }
    }

    fn release_and_finish(&mut self, flushed: bool) -> Result<(), String> {
        self.release();
        self.finish_batch(flushed)
    }

    /// Waits for the server to stop after `op`, and records the result.
    fn wait_held(&mut self, op: OpKind) -> Result<(), String> {
        let session = self.session.as_ref().ok_or("no store open")?;
        let holds = session.holds.as_ref().ok_or("not holding")?;
        let Some(held) = holds.next_within(HELD_OP_LIMIT) else {
            return Err(format!(
                "the server never reached its {op:?} within {HELD_OP_LIMIT:?}"
            ));
        };
        self.check_held(&held, op)?;
        let failed = held.error.is_some();
        self.events.push(format!(
            "server stopped after {:?} (op {}){}",
            held.op,
            held.op_index,
            held.error.map_or(String::new(), |e| format!(": {e:?}"))
        ));
        let session = self.session.as_mut().ok_or("no store open")?;
        session.parked = match op {
            OpKind::WriteAt => Parked::AfterWrite { failed },
            _ => Parked::AfterSync { failed },
        };
        if self.observe() {
            self.after_crash()?;
        }
        Ok(())
    }

    fn check_held(&self, held: &HeldOp, op: OpKind) -> Result<(), String> {
        if held.op != op || held.path != self.log_path() {
            return Err(format!(
                "the server did {:?} on {} where {op:?} on the log was expected",
                held.op,
                held.path.display()
            ));
        }
        Ok(())
    }

    /// Collects the replies of the current batch, which was flushed
    /// (`flushed`) or failed, and checks each against its expectation.
    fn finish_batch(&mut self, flushed: bool) -> Result<(), String> {
        let session = self.session.as_mut().ok_or("no store open")?;
        let batch = std::mem::take(&mut session.batch);
        let has_record = batch
            .iter()
            .any(|s| matches!(s.expect, Expect::Accepted { .. }));
        let mut acked = self.acked;
        let mut after_first_accepted = false;
        let mut rejected = 0;
        for submitted in batch {
            let reply = submitted.reply.wait();
            match (&submitted.expect, flushed) {
                (Expect::Accepted { ticket, index }, true) => match &reply {
                    Ok(got) if same_ticket(ticket, got) => acked = acked.max(index + 1),
                    _ => {
                        return Err(format!(
                            "{:?}: expected {ticket:?}, got {reply:?}",
                            submitted.command
                        ));
                    }
                },
                (Expect::Accepted { .. }, false) => {
                    after_first_accepted = true;
                    if !matches!(reply, Err(ClientError::Storage(StorageError::Io { .. }))) {
                        return Err(format!(
                            "{:?} in a failed flush: expected a storage error, got {reply:?}",
                            submitted.command
                        ));
                    }
                }
                (Expect::Rejected(rejection), _) => {
                    rejected += 1;
                    // Behind an accepted command of a failed flush, a refusal
                    // is answered with the flush's error instead.
                    let storage_error =
                        matches!(reply, Err(ClientError::Storage(StorageError::Io { .. })));
                    let ok = match &reply {
                        Err(error) => rejection.matches(error),
                        Ok(_) => false,
                    } || (!flushed && after_first_accepted && storage_error);
                    if !ok {
                        return Err(format!(
                            "{:?}: expected {rejection:?}, got {reply:?}",
                            submitted.command
                        ));
                    }
                }
                (Expect::Poisoned, _) => {
                    if !matches!(
                        reply,
                        Err(ClientError::Storage(StorageError::Poisoned { .. }))
                    ) {
                        return Err(format!(
                            "{:?} on a poisoned store: expected Poisoned, got {reply:?}",
                            submitted.command
                        ));
                    }
                }
            }
        }
        self.tally.rejected += rejected;
        if has_record {
            self.tally.batches += 1;
            self.tally.acknowledged += (acked - self.acked) as u64;
        }
        self.acked = acked;
        if !self.never {
            self.synced = self.acked;
        }
        let session = self.session.as_mut().ok_or("no store open")?;
        session.parked = Parked::Idle;
        if !flushed && has_record {
            self.tally.failed_batches += 1;
            session.poisoned = true;
            // The server undid the batch in memory.
            session.live = Model::from_commands(&self.history[..session.batch_start])?;
            self.events
                .push("flush failed: the store is poisoned".to_string());
        }
        Ok(())
    }

    /// Checks queries against the live model (only while idle: a query
    /// behind an unflushed batch waits for its flush).
    pub fn check_queries(&mut self) -> Result<(), String> {
        let session = self.session.as_ref().ok_or("no store open")?;
        if session.parked != Parked::Idle {
            return Err("driver misuse: query while the server is stopped".into());
        }
        let client = &session.clients[0];
        let stats = client.stats().map_err(|e| format!("stats: {e}"))?;
        let tickets = client
            .list(ListQuery::default())
            .map_err(|e| format!("list: {e}"))?;
        session
            .live
            .check_tickets(&tickets, stats.next_id)
            .map_err(|e| format!("query answer: {e}"))?;
        for ticket in tickets.iter().take(3) {
            let got = client.get(ticket.id).map_err(|e| format!("get: {e}"))?;
            if got.as_ref() != Some(ticket) {
                return Err(format!(
                    "get({}) = {got:?}, list said {ticket:?}",
                    ticket.id
                ));
            }
        }
        Ok(())
    }

    /// Cuts the power now.
    pub fn crash(&mut self) -> Result<(), String> {
        if self.never {
            self.unsynced_at_risk = true;
        }
        self.note(format!(
            "crash while {:?}",
            self.session.as_ref().map(|s| s.parked)
        ));
        self.sim.crash();
        self.observe();
        self.after_crash()
    }

    /// After a power cut: lets the dead server run into its errors, collects
    /// every reply (an acknowledgement now is fine only if its sync finished
    /// before the cut, which the oracle checks on reopen), and closes.
    fn after_crash(&mut self) -> Result<(), String> {
        self.tally.crashes += 1;
        let Some(mut session) = self.session.take() else {
            return Ok(());
        };
        drop(session.holds.take());
        let mut acked = self.acked;
        let mut failed_before = false;
        for submitted in std::mem::take(&mut session.batch) {
            let reply = submitted.reply.wait();
            match (&submitted.expect, &reply) {
                (Expect::Accepted { ticket, index }, Ok(got)) if same_ticket(ticket, got) => {
                    if failed_before {
                        return Err(format!(
                            "{:?} acknowledged after an earlier command of its batch failed",
                            submitted.command
                        ));
                    }
                    acked = acked.max(index + 1);
                }
                (Expect::Accepted { .. }, Err(ClientError::Storage(_))) => failed_before = true,
                (Expect::Rejected(rejection), Err(error))
                    if rejection.matches(error) || matches!(error, ClientError::Storage(_)) => {}
                (Expect::Poisoned, Err(ClientError::Storage(_))) => {}
                _ => {
                    return Err(format!(
                        "after the crash, {:?} got {reply:?}",
                        submitted.command
                    ));
                }
            }
        }
        self.acked = acked;
        if !self.never {
            self.synced = self.acked;
        }
        // The server may be poisoned or not; either way it must stop.
        let closed = session.store.close();
        self.note(format!("closed after the crash: {closed:?}"));
        drop(session.clients);
        self.check_no_leaks("after closing a crashed store")
    }

    /// Closes cleanly: lets the server finish, then closes and checks that
    /// the close reports poisoning exactly when the store was poisoned.
    pub fn close(&mut self) -> Result<(), String> {
        while let Some(parked) = self.parked() {
            if parked == Parked::Idle {
                break;
            }
            self.advance()?;
            if self.session.is_none() {
                return Ok(()); // a crash fault fired on the way
            }
        }
        let Some(mut session) = self.session.take() else {
            return Ok(());
        };
        drop(session.holds.take());
        let faults_before = self.sim.faults_fired().len();
        // A clean close syncs, and may seal, the log: it does I/O of its own.
        let closed = session.store.close();
        let fault_hit = self.sim.faults_fired().len() > faults_before;
        let lies_before = self.tally.lies;
        // Lies during the close count from what was synced before it.
        let crashed = self.observe();
        if crashed {
            self.tally.crashes += 1;
        }
        match (&closed, session.poisoned) {
            // The close's sync covers every acknowledged command, unless it lied.
            (Ok(()), false) if self.tally.lies == lies_before => self.synced = self.acked,
            (Ok(()), false) | (Err(StorageError::Poisoned { .. }), true) => {}
            (Err(StorageError::Io { .. }), false) if fault_hit => {}
            _ => {
                return Err(format!(
                    "close returned {closed:?}, poisoned = {}",
                    session.poisoned
                ));
            }
        }
        drop(session.clients);
        self.note(format!("closed: {closed:?}"));
        self.check_no_leaks("after close")
    }

    /// No file handle or lock outlives the store.
    pub fn check_no_leaks(&self, when: &str) -> Result<(), String> {
        let files = self.sim.open_file_count();
        let locks = self.sim.held_lock_count();
        if files != 0 || locks != 0 {
            return Err(format!(
                "{when}: {files} file handles and {locks} locks still open"
            ));
        }
        Ok(())
    }
}
