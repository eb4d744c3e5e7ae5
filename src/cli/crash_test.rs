//! `ticketlog crash-test`: a kill -9 soak with real processes.
//!
//! Each cycle starts a child process (this binary's hidden `crash-test-worker`)
//! running C client threads against the store. Each client follows its own
//! plan, derived from the seed: creates, updates (with the right expected
//! version, none, or a stale one that must be refused) and deletes, only of
//! tickets it created itself, one command at a time, printing a line for
//! every reply as soon as it has it (`client seq ok id version` or
//! `client seq refused`). After a seeded number of acknowledgements (0 means
//! at once, so some kills land in the child's own recovery), the parent
//! sends SIGKILL, reads what was already in the pipe, reopens the store and
//! checks the oracle:
//!
//! - every ticket from before the cycle is exactly as it was;
//! - every acknowledged command is there, with the plan's fields and version;
//! - each client had at most one command in flight, which may or may not be
//!   there; nothing else is (no command that was never sent);
//! - no holes: every id below the next id is present or was deleted;
//! - the log gained exactly the acknowledged commands plus the in-flight ones
//!   found applied.
//!
//! The child uses small log segments and frequent automatic snapshots
//! (`--segment-bytes`, `--snapshot-every`), so kills also land during segment
//! rolls and while a snapshot is being written; the summary counts the kills
//! that left a snapshot's temporary file behind.
//!
//! It prints cycles, commands acknowledged and recovered, and `lost: 0`, and
//! exits non-zero with the cycle and seed on any violation. The parent uses
//! the library's public API only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use ticketlog::inspect;
use ticketlog::rng::Rng;
use ticketlog::testing::model::{Model, same_ticket};
use ticketlog::{
    Client, ClientError, Durability, ListQuery, LogBackend, Options, Status, StorageError, Store,
    Ticket, TicketDraft, TicketId, TicketPatch,
};

use super::args::{CrashTestArgs, CrashTestWorkerArgs};
use super::output::Output;
use super::{CliError, dir_or_temp, open_store_with, seed_or_clock};

/// How long a child may go without printing an acknowledgement (or, for a
/// kill at once, without starting) before the run is declared stuck.
const CHILD_SILENCE_MAX: Duration = Duration::from_secs(60);
/// Exit status when the oracle is violated.
const EXIT_VIOLATION: u8 = 1;

/// The seed of one client's plan in one cycle.
fn plan_seed(seed: u64, cycle: u64, client: u32) -> u64 {
    let mut rng = Rng::new(seed ^ cycle.wrapping_mul(0xA076_1D64_78BD_642F));
    rng.next_u64() ^ u64::from(client).wrapping_mul(0xE703_7ED1_A0B4_28DB)
}

/// One step of a client's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Create {
        title: String,
        description: String,
    },
    /// Update the client's `target`-th live ticket. Refused when `stale`.
    Update {
        target: usize,
        title: Option<String>,
        description: Option<String>,
        status: Option<Status>,
        expect: Expect,
    },
    /// Delete the client's `target`-th live ticket.
    Delete {
        target: usize,
    },
    /// Update a ticket this client deleted: refused (not found).
    UpdateDeleted {
        id: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    None,
    Current,
    Stale,
}

/// What a reply said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok { id: u64, version: u64 },
    Refused,
}

/// One client's plan: a deterministic sequence of operations, each decided
/// from the seed and the client's tickets as the replies left them.
#[derive(Clone, Debug)]
struct Plan {
    cycle: u64,
    client: u32,
    rng: Rng,
    seq: u64,
    /// The tickets this client created and has not deleted, as the one
    /// model decides them: a partial view (other clients take ids between).
    model: Model,
    deleted: Vec<u64>,
    /// Replies that changed the store (and so must be in the log).
    accepted: u64,
    /// Replies that refused the command (nothing written).
    refused: u64,
}

impl Plan {
    fn new(seed: u64, cycle: u64, client: u32) -> Plan {
        Plan {
            cycle,
            client,
            rng: Rng::new(plan_seed(seed, cycle, client)),
            seq: 0,
            model: Model::default(),
            deleted: Vec::new(),
            accepted: 0,
            refused: 0,
        }
    }

    fn text(&mut self, what: &str, max: usize) -> String {
        let len = 1 + self.rng.below(40) as usize;
        let words = ["ticket", "crash", "é", "kill", "✓", "log", "🎫"];
        let mut text = format!("{what} ");
        while text.len() < len {
            text.push_str(words[self.rng.below(words.len() as u64) as usize]);
            text.push(' ');
        }
        while text.len() > max {
            text.pop();
        }
        text.trim_end().to_string()
    }

    /// The next operation; call once per sequence number, then [`Self::apply`].
    fn next_op(&mut self) -> Op {
        let roll = self.rng.below(20);
        let live = self.model.tickets().count() as u64;
        if live == 0 || roll < 7 {
            return Op::Create {
                title: format!("k{} c{} n{}", self.cycle, self.client, self.seq),
                description: self.text("made by crash-test", ticketlog::DESCRIPTION_BYTES_MAX),
            };
        }
        let target = self.rng.below(live) as usize;
        match roll {
            7..=15 => {
                let status = Status::ALL[self.rng.below(3) as usize];
                let title = (self.rng.below(3) == 0)
                    .then(|| format!("k{} c{} n{} renamed", self.cycle, self.client, self.seq));
                let description = (self.rng.below(4) == 0)
                    .then(|| self.text("changed by crash-test", ticketlog::DESCRIPTION_BYTES_MAX));
                let expect = match self.rng.below(8) {
                    0 => Expect::Stale,
                    1..=4 => Expect::Current,
                    _ => Expect::None,
                };
                Op::Update {
                    target,
                    title,
                    description,
                    status: Some(status),
                    expect,
                }
            }
            16 if !self.deleted.is_empty() => {
                let nth = self.rng.below(self.deleted.len() as u64) as usize;
                Op::UpdateDeleted {
                    id: self.deleted[nth],
                }
            }
            _ => Op::Delete { target },
        }
    }

    /// The client's `target`-th live ticket, in creation (and id) order.
    fn live(&self, target: usize) -> Option<&Ticket> {
        self.model.tickets().nth(target)
    }

    /// The outcome the plan expects, as the model decides `op` (the step
    /// [`Self::next_op`] just returned); the id of a create is the server's.
    fn expected(&self, op: &Op) -> Result<Expected, String> {
        let command = self.command(op).map_err(|e| e.to_string())?;
        Ok(match (op, self.model.clone().execute(&command)) {
            (_, Err(_)) => Expected::Refused,
            (Op::Create { .. }, Ok(_)) => Expected::Created,
            (_, Ok(ticket)) => Expected::Ok {
                id: ticket.id.get(),
                version: ticket.version,
            },
        })
    }

    /// Records the reply to `op`; fails if it is not what the plan expects.
    fn apply(&mut self, op: &Op, outcome: Outcome) -> Result<(), String> {
        let expected = self.expected(op)?;
        let mismatch = || {
            format!(
                "client {} step {}: {op:?} expected {expected:?}, got {outcome:?}",
                self.client, self.seq
            )
        };
        match (expected, outcome) {
            (Expected::Refused, Outcome::Refused) => {
                self.refused += 1;
                self.seq += 1;
                return Ok(());
            }
            (Expected::Created, Outcome::Ok { id, version: 1 }) => {
                // Other clients took the ids between this client's creates.
                self.model
                    .skip_ids_to(TicketId::from(id))
                    .map_err(|e| format!("{}: {e}", mismatch()))?;
            }
            (Expected::Ok { .. }, got) if Expected::from(got) == expected => {}
            _ => return Err(mismatch()),
        }
        let command = self.command(op).map_err(|e| e.to_string())?;
        self.model
            .execute(&command)
            .map_err(|refusal| format!("{}: the model refuses it: {refusal:?}", mismatch()))?;
        if let Op::Delete { .. } = op
            && let Expected::Ok { id, .. } = expected
        {
            self.deleted.push(id);
        }
        self.accepted += 1;
        self.seq += 1;
        Ok(())
    }

    /// The target ticket after `op`, for an update the model accepts.
    fn after(&self, op: &Op) -> Option<Ticket> {
        let Op::Update { .. } = op else {
            return None;
        };
        let command = self.command(op).ok()?;
        self.model.clone().execute(&command).ok()
    }

    /// The library command for `op` (the step [`Self::next_op`] just
    /// returned, not yet applied).
    fn command(&self, op: &Op) -> Result<ticketlog::Command, CliError> {
        let invalid =
            |e: ticketlog::TicketError| CliError::Failed(format!("plan made bad text: {e}"));
        let owned = |target: usize| {
            self.live(target).ok_or_else(|| {
                CliError::Failed(format!(
                    "a plan step names ticket #{target} of {}",
                    self.model.tickets().count()
                ))
            })
        };
        Ok(match op {
            Op::Create { title, description } => ticketlog::Command::Create(TicketDraft {
                title: title.as_str().try_into().map_err(invalid)?,
                description: description.as_str().try_into().map_err(invalid)?,
            }),
            Op::Update {
                target,
                title,
                description,
                status,
                expect,
            } => {
                let owned = owned(*target)?;
                let expected_version = match expect {
                    Expect::None => None,
                    Expect::Current => Some(owned.version),
                    Expect::Stale => Some(owned.version + 1),
                };
                ticketlog::Command::Update(
                    owned.id,
                    TicketPatch {
                        title: title
                            .as_deref()
                            .map(TryInto::try_into)
                            .transpose()
                            .map_err(invalid)?,
                        description: description
                            .as_deref()
                            .map(TryInto::try_into)
                            .transpose()
                            .map_err(invalid)?,
                        status: *status,
                        expected_version,
                    },
                )
            }
            Op::Delete { target } => ticketlog::Command::Delete(owned(*target)?.id),
            Op::UpdateDeleted { id } => ticketlog::Command::Update(
                TicketId::from(*id),
                TicketPatch {
                    status: Some(Status::Done),
                    ..TicketPatch::default()
                },
            ),
        })
    }
}

/// A reply as the plan expects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Created,
    Ok { id: u64, version: u64 },
    Refused,
}

impl From<Outcome> for Expected {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Ok { id, version } => Expected::Ok { id, version },
            Outcome::Refused => Expected::Refused,
        }
    }
}

/// The child: runs every client's plan until killed.
pub(crate) fn run_worker(
    dir: &Path,
    durability: Durability,
    args: &CrashTestWorkerArgs,
) -> Result<ExitCode, CliError> {
    let options = parent_options(durability)
        .segment_bytes(args.segment_bytes)
        .snapshot_every(args.snapshot_every);
    let shared = shared_log(&options);
    let store = open_store_with(dir, options)?;
    let outcome: Result<(), CliError> = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|client| {
                let handle = store.client();
                scope.spawn(move || work(&handle, Plan::new(args.seed, args.cycle, client), shared))
            })
            .collect();
        handles.into_iter().try_for_each(|handle| {
            handle.join().unwrap_or_else(|_| {
                Err(CliError::Failed(
                    "a crash-test client thread panicked".into(),
                ))
            })
        })
    });
    let closed = store.close();
    outcome?;
    closed?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `options` put the log on a shared (replicated) backend, where a
/// write can end in doubt and every host reads the same log.
fn shared_log(options: &Options) -> bool {
    !matches!(options.get_log_backend(), LogBackend::Local)
}

/// The options the parent and the child open the store with. On a shared
/// log no digest records are written, so the log's records are exactly the
/// commands (the oracle counts them).
fn parent_options(durability: Durability) -> Options {
    let options = super::store_options().durability(durability);
    if shared_log(&options) {
        options.digest_every(0)
    } else {
        options
    }
}

/// One client of the child: each reply is printed, in one write, before the
/// next command is sent. On a shared log, a command that ends in doubt
/// (`Unavailable`: a NATS node or the quorum was lost) is printed as such
/// and the client stops: its plan cannot go on without knowing whether that
/// command is in the log, and the oracle allows either.
fn work(client: &Client, mut plan: Plan, shared: bool) -> Result<(), CliError> {
    let stdout = io::stdout();
    loop {
        let op = plan.next_op();
        let seq = plan.seq;
        let outcome = match client.execute(plan.command(&op)?) {
            Ok(ticket) => Outcome::Ok {
                id: ticket.id.get(),
                version: ticket.version,
            },
            Err(ClientError::Conflict { .. } | ClientError::NotFound(_)) => Outcome::Refused,
            Err(ClientError::Storage(
                StorageError::Unavailable { .. } | StorageError::Contended { .. },
            )) if shared => {
                let line = format!("{} {seq} unavailable\n", plan.client);
                stdout.lock().write_all(line.as_bytes())?;
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        plan.apply(&op, outcome).map_err(CliError::Failed)?;
        let line = match outcome {
            Outcome::Ok { id, version } => format!("{} {seq} ok {id} {version}\n", plan.client),
            Outcome::Refused => format!("{} {seq} refused\n", plan.client),
        };
        stdout.lock().write_all(line.as_bytes())?;
    }
}

/// What one cycle came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CycleReport {
    /// Replies that changed the store.
    acknowledged: u64,
    /// Replies that refused a command.
    refused: u64,
    /// Commands in flight at the kill (one per client).
    in_flight: u64,
    /// Of those, found applied after the reopen.
    in_flight_recovered: u64,
}

/// Why a cycle failed the oracle.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    /// Acknowledged commands missing or different after the reopen.
    lost: u64,
    /// The first problem found.
    reason: String,
}

/// The state of the store before a cycle, as checked.
#[derive(Clone, Debug, Default)]
struct Baseline {
    tickets: BTreeMap<u64, Ticket>,
    next_id: u64,
    commands: u64,
    /// The LSN of the last record and the state digest there.
    last_lsn: u64,
    digest: u64,
}

/// Checks a reopened store against the plans of a cycle: `plans[c]` has
/// applied exactly the replies client c printed, and `plans[c]`'s next
/// operation was in flight (or not yet sent) at the kill.
fn check_cycle(
    baseline: &Baseline,
    plans: &[Plan],
    recovered: &BTreeMap<u64, Ticket>,
    next_id: u64,
    commands: u64,
) -> Result<CycleReport, Violation> {
    let mut report = CycleReport::default();
    let mut lost = 0;
    let mut problems: Vec<String> = Vec::new();
    let mut explained = BTreeSet::new();
    for (id, before) in &baseline.tickets {
        match recovered.get(id) {
            Some(now) if now == before => {}
            now => {
                lost += 1;
                problems.push(format!(
                    "ticket {id} from an earlier cycle changed: {before:?} is now {now:?}"
                ));
            }
        }
        explained.insert(*id);
    }
    for id in 1..baseline.next_id {
        // Ids deleted before this cycle stay explained (and must stay absent).
        if !baseline.tickets.contains_key(&id) {
            if recovered.contains_key(&id) {
                problems.push(format!("ticket {id}, deleted before this cycle, is back"));
            }
            explained.insert(id);
        }
    }
    for plan in plans {
        report.acknowledged += plan.accepted;
        report.refused += plan.refused;
        let mut next = plan.clone();
        let in_flight = next.next_op();
        report.in_flight += 1;
        let in_flight_target = match &in_flight {
            Op::Update { target, .. } | Op::Delete { target } => {
                plan.live(*target).map(|ticket| ticket.id.get())
            }
            _ => None,
        };
        for owned in plan.model.tickets() {
            let id = owned.id.get();
            let got = recovered.get(&id);
            let as_acked = got.is_some_and(|t| same_ticket(owned, t));
            let applied = in_flight_target == Some(id)
                && match &in_flight {
                    Op::Delete { .. } => got.is_none(),
                    _ => plan
                        .after(&in_flight)
                        .is_some_and(|after| got.is_some_and(|t| same_ticket(&after, t))),
                };
            if applied {
                report.in_flight_recovered += 1;
            } else if !as_acked {
                lost += 1;
                problems.push(format!(
                    "client {}: acknowledged ticket {} is {got:?}, expected {owned:?} (in flight: {in_flight:?})",
                    plan.client, owned.id
                ));
            }
            if let Some(ticket) = got
                && ticket.updated_at < ticket.created_at
            {
                problems.push(format!(
                    "ticket {} updated before it was created",
                    ticket.id
                ));
            }
            explained.insert(id);
        }
        for id in &plan.deleted {
            if let Some(ticket) = recovered.get(id) {
                lost += 1;
                problems.push(format!(
                    "client {}: ticket {id} was deleted (acknowledged) but is back: {ticket:?}",
                    plan.client
                ));
            }
            explained.insert(*id);
        }
        if let Op::Create { title, description } = &in_flight {
            let made: Vec<&Ticket> = recovered
                .values()
                .filter(|t| t.title.as_str() == title && !explained.contains(&t.id.get()))
                .collect();
            match made.as_slice() {
                [] => {}
                [ticket]
                    if ticket.description.as_str() == description
                        && ticket.version == 1
                        && ticket.status == Status::ToDo =>
                {
                    report.in_flight_recovered += 1;
                    explained.insert(ticket.id.get());
                }
                _ => problems.push(format!(
                    "client {}: the create in flight is there as {made:?}",
                    plan.client
                )),
            }
        }
    }
    for (id, ticket) in recovered {
        if !explained.contains(id) {
            problems.push(format!(
                "ticket {id} comes from no command any client sent: {ticket:?}"
            ));
        }
    }
    if let Some(missing) = (1..next_id).find(|id| !explained.contains(id)) {
        problems.push(format!(
            "a hole: ticket {missing} (below the next id {next_id}) was neither created nor deleted"
        ));
    }
    if let Some(&above) = explained.range(next_id..).next() {
        problems.push(format!(
            "ticket {above} was created, but the next id is {next_id}"
        ));
    }
    let expected = report.acknowledged + report.in_flight_recovered;
    match commands.checked_sub(baseline.commands) {
        Some(gained) if gained == expected => {}
        gained => problems.push(format!(
            "the log gained {gained:?} commands; {} were acknowledged and {} in flight were found applied",
            report.acknowledged, report.in_flight_recovered
        )),
    }
    match problems.into_iter().next() {
        None => Ok(report),
        Some(reason) => Err(Violation { lost, reason }),
    }
}

/// Totals over every cycle.
#[derive(Debug, Default)]
struct Totals {
    cycles: u64,
    acknowledged: u64,
    refused: u64,
    in_flight: u64,
    in_flight_recovered: u64,
    killed_at_once: u64,
    /// Kills after which a snapshot's temporary file was left behind.
    killed_mid_snapshot: u64,
    lost: u64,
    violations: u64,
    /// On a shared log with --nats-cluster: cycles that killed one NATS
    /// node, and cycles that killed two (the quorum).
    node_kills: u64,
    majority_losses: u64,
    /// Commands that ended in doubt (`Unavailable`; the client stopped).
    unavailable: u64,
}

impl Totals {
    fn add(&mut self, report: &CycleReport) {
        self.cycles += 1;
        self.acknowledged += report.acknowledged;
        self.refused += report.refused;
        self.in_flight += report.in_flight;
        self.in_flight_recovered += report.in_flight_recovered;
    }
}

/// The parent: `args.cycles` kill cycles on one data directory.
pub(crate) fn run(
    dir: Option<&Path>,
    durability: Durability,
    args: &CrashTestArgs,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let seed = seed_or_clock(args.seed);
    let (dir, _temp) = dir_or_temp(dir, "ticketlog-crash-test-")?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("finding this program to run as the child: {e}")))?;
    eprintln!(
        "crash-test: {} cycles, {} clients, durability {durability}, seed {seed} in {} \
         (replay with --seed {seed})",
        args.cycles,
        args.clients,
        dir.display()
    );
    let shared = shared_log(&parent_options(durability));
    let nodes = match &args.nats_cluster {
        Some(cluster) if shared => Some(NatsNodes {
            script: args.nats_cluster_script.clone(),
            dir: cluster.clone(),
        }),
        Some(_) => {
            return Err(CliError::Failed(
                "--nats-cluster needs --nats and --stream".into(),
            ));
        }
        None => None,
    };
    if let Some(nodes) = &nodes {
        nodes.wait_healthy()?;
    }
    let began = Instant::now();
    let mut baseline = read_state(&dir, durability)?;
    let mut rng = Rng::new(seed);
    let mut totals = Totals::default();
    let mut violation = None;
    for cycle in 0..args.cycles {
        // The NATS fault of this cycle, drawn from the seed (its timing
        // against the child's progress is not reproducible).
        let fault = nodes.as_ref().map(|_| NodeFault::draw(&mut rng, cycle));
        match fault {
            Some(NodeFault::KillOne { .. }) => totals.node_kills += 1,
            Some(NodeFault::KillTwo { .. }) => totals.majority_losses += 1,
            _ => {}
        }
        // One kill in eight as soon as the child starts (often inside its
        // own recovery); the rest after 1..=acks_max acknowledgements.
        let kill_after = if rng.below(8) == 0 {
            0
        } else {
            1 + rng.below(args.acks_max.max(1))
        };
        if kill_after == 0 {
            totals.killed_at_once += 1;
        }
        let injected = match (&nodes, fault) {
            (Some(nodes), Some(fault)) => {
                let nodes = nodes.clone();
                Some(thread::spawn(move || nodes.inject(fault)))
            }
            _ => None,
        };
        let cycled = kill_cycle(
            &exe, &dir, durability, args, seed, cycle, kill_after, shared,
        );
        if let Some(injected) = injected {
            injected
                .join()
                .map_err(|_| CliError::Failed("the fault thread panicked".into()))??;
        }
        if let Some(nodes) = &nodes {
            // Every node up and current again before the oracle reads.
            nodes.restart_dead()?;
            nodes.wait_healthy()?;
        }
        let plans = match cycled {
            Ok((plans, in_doubt)) => {
                totals.unavailable += in_doubt;
                plans
            }
            Err(reason) => {
                violation = Some(Violation { lost: 0, reason });
                break;
            }
        };
        if snapshot_in_progress(&dir)? {
            totals.killed_mid_snapshot += 1;
        }
        let after = read_state(&dir, durability)?;
        if shared && let Err(failed) = check_fresh_host(durability, &after) {
            violation = Some(Violation {
                lost: 0,
                reason: format!("cycle {cycle}: {failed}"),
            });
            break;
        }
        let recovered: BTreeMap<u64, Ticket> = after.tickets.clone();
        match check_cycle(&baseline, &plans, &recovered, after.next_id, after.commands) {
            Ok(report) => totals.add(&report),
            Err(failed) => {
                violation = Some(Violation {
                    lost: failed.lost,
                    reason: format!("cycle {cycle}: {}", failed.reason),
                });
                break;
            }
        }
        baseline = after;
        if (cycle + 1) % 100 == 0 {
            eprintln!(
                "crash-test: {} cycles, {} commands acknowledged, {:.1?}",
                cycle + 1,
                totals.acknowledged,
                began.elapsed()
            );
        }
    }
    if let Some(failed) = &violation {
        totals.lost = failed.lost;
        totals.violations = 1;
    }
    print_totals(out, &totals, seed, began.elapsed())?;
    match violation {
        None => Ok(ExitCode::SUCCESS),
        Some(failed) => {
            eprintln!(
                "ticketlog: crash-test failed (seed {seed}, replay with --seed {seed}): {}",
                failed.reason
            );
            Ok(ExitCode::from(EXIT_VIOLATION))
        }
    }
}

fn print_totals(out: &mut Output, totals: &Totals, seed: u64, elapsed: Duration) -> io::Result<()> {
    if out.is_json() {
        return out.json_line(&serde_json::json!({
            "cycles": totals.cycles,
            "commands_acknowledged": totals.acknowledged,
            "commands_recovered": totals.acknowledged + totals.in_flight_recovered,
            "refused": totals.refused,
            "in_flight_at_kill": totals.in_flight,
            "in_flight_recovered": totals.in_flight_recovered,
            "killed_at_start": totals.killed_at_once,
            "killed_mid_snapshot": totals.killed_mid_snapshot,
            "violations": totals.violations,
            "lost": totals.lost,
            "nats_node_kills": totals.node_kills,
            "nats_majority_losses": totals.majority_losses,
            "unavailable": totals.unavailable,
            "seed": seed,
            "seconds": elapsed.as_secs_f64(),
        }));
    }
    let recovered = totals.acknowledged + totals.in_flight_recovered;
    for line in [
        format!("cycles: {}", totals.cycles),
        format!("commands acknowledged: {}", totals.acknowledged),
        format!(
            "commands recovered: {recovered} (the acknowledged ones, and {} of {} in flight at a kill)",
            totals.in_flight_recovered, totals.in_flight
        ),
        format!("refused as planned: {}", totals.refused),
        format!("kills at start-up: {}", totals.killed_at_once),
        format!(
            "kills while a snapshot was being written: {}",
            totals.killed_mid_snapshot
        ),
        if totals.node_kills + totals.majority_losses + totals.unavailable > 0 {
            format!(
                "NATS faults: {} cycles killed a node, {} killed two; {} commands in doubt (Unavailable)",
                totals.node_kills, totals.majority_losses, totals.unavailable
            )
        } else {
            String::new()
        },
        format!("lost: {}", totals.lost),
        format!("violations: {}", totals.violations),
        format!("seed: {seed}, {:.1?}", elapsed),
    ] {
        if !line.is_empty() {
            out.text(&line)?;
        }
    }
    Ok(())
}

/// The store's tickets, next id and commands in the log (seals left out),
/// read by opening and closing it, then scanning the log.
fn read_state(dir: &Path, durability: Durability) -> Result<Baseline, CliError> {
    let options = parent_options(durability);
    let shared = shared_log(&options);
    let store = Store::open(dir, options)?;
    let client = store.client();
    let tickets = client.list(ListQuery::default())?;
    let stats = client.stats()?;
    store.close()?;
    let commands = if shared {
        // No digest records on a shared log (see `parent_options`): every
        // record is a command. The log is not in `dir` to scan.
        stats.records
    } else {
        let mut commands = 0;
        inspect::read_log(dir, |entry| {
            if !entry.changes.is_empty() {
                commands += 1;
            }
        })?;
        commands
    };
    Ok(Baseline {
        tickets: tickets.into_iter().map(|t| (t.id.get(), t)).collect(),
        next_id: stats.next_id.get(),
        commands,
        last_lsn: stats.last_lsn,
        digest: stats.digest,
    })
}

/// On a shared log: a fresh host (an empty directory) replays the whole log
/// to the same position and state digest as `reopened`, the host reopened
/// from its own directory (snapshot plus tail).
fn check_fresh_host(durability: Durability, reopened: &Baseline) -> Result<(), CliError> {
    let temp = tempfile::Builder::new()
        .prefix("ticketlog-crash-test-fresh-")
        .tempdir()
        .map_err(|e| CliError::Failed(format!("a directory for a fresh host: {e}")))?;
    let store = Store::open(temp.path(), parent_options(durability))?;
    let stats = store.client().stats()?;
    store.close()?;
    if (stats.last_lsn, stats.digest) != (reopened.last_lsn, reopened.digest) {
        return Err(CliError::Failed(format!(
            "a fresh host replayed the log to LSN {} digest {:#x}; the reopened host is at LSN {} digest {:#x}",
            stats.last_lsn, stats.digest, reopened.last_lsn, reopened.digest
        )));
    }
    Ok(())
}

/// Whether a snapshot was being written when the child died: its temporary
/// file (`….snap.tmp`) is still there (the next open removes it).
fn snapshot_in_progress(dir: &Path) -> Result<bool, CliError> {
    let listing = |e: io::Error| CliError::Failed(format!("listing {}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(listing)? {
        if entry
            .map_err(listing)?
            .file_name()
            .to_string_lossy()
            .ends_with(".snap.tmp")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How long the cluster may take to be healthy again after a fault.
const CLUSTER_HEALTHY_MAX: Duration = Duration::from_secs(90);

/// The NATS cluster's nodes, killed and restarted through its script
/// (`.ci/nats-cluster.sh kill|restart|check DIR [N]`).
#[derive(Clone, Debug)]
struct NatsNodes {
    script: std::path::PathBuf,
    dir: std::path::PathBuf,
}

/// What happens to the NATS nodes during one cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeFault {
    /// Nothing.
    None,
    /// SIGKILL node `node` after `after`, restart it `down` later.
    KillOne {
        node: u32,
        after: Duration,
        down: Duration,
    },
    /// SIGKILL two nodes (the quorum is lost), restart both `down` later.
    KillTwo {
        nodes: [u32; 2],
        after: Duration,
        down: Duration,
    },
}

impl NodeFault {
    /// Half the cycles kill one node, one in eight two, the rest none; the
    /// first cycle always kills one, so that every run faults the cluster.
    fn draw(rng: &mut Rng, cycle: u64) -> NodeFault {
        let roll = if cycle == 0 { 0 } else { rng.below(8) };
        let after = Duration::from_millis(rng.below(1_500));
        let down = Duration::from_millis(300 + rng.below(2_700));
        let node = 1 + rng.below(3) as u32;
        match roll {
            0..=3 => NodeFault::KillOne { node, after, down },
            4 => NodeFault::KillTwo {
                nodes: [node, node % 3 + 1],
                after,
                down,
            },
            _ => NodeFault::None,
        }
    }
}

impl NatsNodes {
    fn script(&self, verb: &str, node: Option<u32>) -> Result<bool, CliError> {
        let mut command = Command::new("bash");
        command.arg(&self.script).arg(verb).arg(&self.dir);
        if let Some(node) = node {
            command.arg(node.to_string());
        }
        let status = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| CliError::Failed(format!("running {}: {e}", self.script.display())))?;
        Ok(status.success())
    }

    fn run(&self, verb: &str, node: u32) -> Result<(), CliError> {
        if self.script(verb, Some(node))? {
            Ok(())
        } else {
            Err(CliError::Failed(format!(
                "{} {verb} {} {node} failed",
                self.script.display(),
                self.dir.display()
            )))
        }
    }

    fn inject(&self, fault: NodeFault) -> Result<(), CliError> {
        let (nodes, after, down): (&[u32], _, _) = match &fault {
            NodeFault::None => return Ok(()),
            NodeFault::KillOne { node, after, down } => (std::slice::from_ref(node), after, down),
            NodeFault::KillTwo { nodes, after, down } => (nodes, after, down),
        };
        thread::sleep(*after);
        for &node in nodes {
            self.run("kill", node)?;
        }
        thread::sleep(*down);
        for &node in nodes {
            self.run("restart", node)?;
        }
        Ok(())
    }

    /// Restarts every node that is not running (`restart` refuses a live one).
    fn restart_dead(&self) -> Result<(), CliError> {
        for node in 1..=3 {
            let pid_file = self.dir.join(format!("n{node}.pid"));
            let alive = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                self.run("restart", node)?;
            }
        }
        Ok(())
    }

    fn wait_healthy(&self) -> Result<(), CliError> {
        let started = Instant::now();
        while !self.script("check", None)? {
            if started.elapsed() > CLUSTER_HEALTHY_MAX {
                return Err(CliError::Failed(format!(
                    "the NATS cluster in {} was not healthy within {CLUSTER_HEALTHY_MAX:?}",
                    self.dir.display()
                )));
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

/// Kills the child if the cycle is abandoned before it is reaped.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One cycle: start the child, read `kill_after` acknowledgements, SIGKILL
/// it, read what is left in the pipe. Returns every client's plan with the
/// printed replies applied; the error is a violation.
#[allow(clippy::too_many_arguments)]
fn kill_cycle(
    exe: &Path,
    dir: &Path,
    durability: Durability,
    args: &CrashTestArgs,
    seed: u64,
    cycle: u64,
    kill_after: u64,
    shared: bool,
) -> Result<(Vec<Plan>, u64), String> {
    let clients = args.clients;
    let child = Command::new(exe)
        .env_remove("TICKETLOG_DIR")
        .arg("--dir")
        .arg(dir)
        .arg("--durability")
        .arg(durability.to_string())
        .args(super::log_backend_args())
        .arg("crash-test-worker")
        .args(["--clients", &clients.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--cycle", &cycle.to_string()])
        .args(["--segment-bytes", &args.segment_bytes.to_string()])
        .args(["--snapshot-every", &args.snapshot_every.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the child: {e}"))?;
    let mut reaper = Reaper(Some(child));
    let child = reaper.0.as_mut().ok_or("the child is gone")?;
    let stdout = child.stdout.take().ok_or("the child has no stdout")?;
    let mut stderr = child.stderr.take().ok_or("the child has no stderr")?;
    let (lines, replies) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                // A line cut short by the kill would lack its newline; each
                // line is one write of a few bytes, so none is.
                Ok(_) if line.ends_with('\n') => {
                    if lines.send(line.trim_end().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = io::Read::read_to_string(&mut stderr, &mut text);
        text
    });

    let mut plans: Vec<Plan> = (0..clients).map(|c| Plan::new(seed, cycle, c)).collect();
    let mut unavailable = vec![false; plans.len()];
    let mut read = 0;
    while read < kill_after {
        match replies.recv_timeout(CHILD_SILENCE_MAX) {
            Ok(line) => {
                if apply_line(&mut plans, &mut unavailable, shared, &line)? == Line::Reply {
                    read += 1;
                }
            }
            // Every client stopped on a command in doubt: the child closes
            // its store and ends by itself.
            Err(RecvTimeoutError::Disconnected) if unavailable.iter().all(|&u| u) => {
                let status = child
                    .wait()
                    .map_err(|e| format!("reaping the child: {e}"))?;
                reaper.0 = None;
                let text = errors.join().unwrap_or_default();
                if !status.success() {
                    return Err(format!(
                        "every client was in doubt, then the child ended with {status:?}: {}",
                        text.trim()
                    ));
                }
                let _ = reader.join();
                return Ok((plans, unavailable.len() as u64));
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "the child printed nothing for {CHILD_SILENCE_MAX:?} after {read} replies"
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait();
                let text = errors.join().unwrap_or_default();
                return Err(format!(
                    "the child ended by itself after {read} replies ({status:?}): {}",
                    text.trim()
                ));
            }
        }
    }
    child.kill().map_err(|e| format!("SIGKILL: {e}"))?;
    let status = child
        .wait()
        .map_err(|e| format!("reaping the child: {e}"))?;
    reaper.0 = None;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if status.signal() != Some(9) {
            let text = errors.join().unwrap_or_default();
            return Err(format!(
                "the child was not killed but ended with {status:?}: {}",
                text.trim()
            ));
        }
    }
    // Replies already in the pipe were printed, so acknowledged, before the kill.
    for line in replies.iter() {
        apply_line(&mut plans, &mut unavailable, shared, &line)?;
    }
    let _ = reader.join();
    let _ = errors.join();
    let in_doubt = unavailable.iter().filter(|&&u| u).count() as u64;
    Ok((plans, in_doubt))
}

/// What one printed line said.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A reply, applied to the client's plan.
    Reply,
    /// The client's command ended in doubt and the client stopped.
    Unavailable,
}

/// Applies one printed reply to its client's plan. `unavailable` marks the
/// clients that stopped on a command in doubt (allowed only on a shared log).
fn apply_line(
    plans: &mut [Plan],
    unavailable: &mut [bool],
    shared: bool,
    line: &str,
) -> Result<Line, String> {
    let bad = || format!("the child printed {line:?}");
    let mut fields = line.split(' ');
    let client: usize = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
    let seq: u64 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
    if unavailable.get(client).copied().unwrap_or(false) {
        return Err(format!("client {client} printed {line:?} after it stopped"));
    }
    let outcome = match fields.next() {
        Some("unavailable") if shared => {
            let plan = plans.get(client).ok_or_else(bad)?;
            if seq != plan.seq {
                return Err(format!(
                    "client {client} gave up on step {seq}, expected step {}",
                    plan.seq
                ));
            }
            // `unavailable` has one flag per plan (the caller sizes it so),
            // and `plans.get(client)` just found this one.
            unavailable[client] = true;
            return Ok(Line::Unavailable);
        }
        Some("ok") => {
            let id = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
            let version = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
            Outcome::Ok { id, version }
        }
        Some("refused") => Outcome::Refused,
        _ => return Err(bad()),
    };
    let plan = plans.get_mut(client).ok_or_else(bad)?;
    if seq != plan.seq {
        return Err(format!(
            "client {client} replied to step {seq}, expected step {}",
            plan.seq
        ));
    }
    let op = plan.next_op();
    plan.apply(&op, outcome)?;
    Ok(Line::Reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlog::{TicketDescription, TicketTitle, Timestamp};

    /// A ticket as a store would hold it, with the server's timestamps.
    fn stored(ticket: &Ticket) -> Ticket {
        Ticket {
            created_at: Timestamp::from_unix_millis(1),
            updated_at: Timestamp::from_unix_millis(2),
            ..ticket.clone()
        }
    }

    /// Plays `steps` replies through fresh plans as a well-behaved store
    /// would, returning the plans, the tickets and the next id.
    fn play(steps: u64) -> (Vec<Plan>, BTreeMap<u64, Ticket>, u64) {
        let mut plans: Vec<Plan> = (0..2).map(|c| Plan::new(7, 3, c)).collect();
        let mut next_id = 1;
        for _ in 0..steps {
            for plan in &mut plans {
                let op = plan.next_op();
                let outcome = match plan.expected(&op).unwrap() {
                    Expected::Created => {
                        next_id += 1;
                        Outcome::Ok {
                            id: next_id - 1,
                            version: 1,
                        }
                    }
                    Expected::Ok { id, version } => Outcome::Ok { id, version },
                    Expected::Refused => Outcome::Refused,
                };
                plan.apply(&op, outcome).unwrap();
            }
        }
        let tickets = plans
            .iter()
            .flat_map(|p| p.model.tickets().map(|t| (t.id.get(), stored(t))))
            .collect();
        (plans, tickets, next_id)
    }

    fn commands(plans: &[Plan]) -> u64 {
        plans.iter().map(|p| p.accepted).sum()
    }

    #[test]
    fn a_faithful_recovery_passes() {
        let (plans, tickets, next_id) = play(40);
        let report = check_cycle(
            &Baseline::default(),
            &plans,
            &tickets,
            next_id,
            commands(&plans),
        )
        .unwrap();
        assert_eq!(report.acknowledged, commands(&plans));
        assert!(report.refused > 0, "plans include refused commands");
        assert_eq!(report.in_flight, 2);
    }

    #[test]
    fn a_lost_acknowledged_ticket_is_a_violation() {
        let (plans, mut tickets, next_id) = play(40);
        let victim = *tickets.keys().next().unwrap();
        tickets.remove(&victim);
        let failed = check_cycle(
            &Baseline::default(),
            &plans,
            &tickets,
            next_id,
            commands(&plans) - 1,
        )
        .unwrap_err();
        // Unless the command in flight was its delete, the ticket was lost.
        assert!(
            failed.lost >= 1 || failed.reason.contains("gained"),
            "{failed:?}"
        );
    }

    #[test]
    fn an_older_version_of_an_acknowledged_update_is_a_violation() {
        let (plans, mut tickets, next_id) = play(40);
        let (_, ticket) = tickets.iter_mut().find(|(_, t)| t.version > 1).unwrap();
        ticket.version -= 1;
        let failed = check_cycle(
            &Baseline::default(),
            &plans,
            &tickets,
            next_id,
            commands(&plans),
        )
        .unwrap_err();
        assert_eq!(failed.lost, 1, "{failed:?}");
    }

    #[test]
    fn a_ticket_no_client_sent_is_a_violation() {
        let (plans, mut tickets, next_id) = play(10);
        let stray = Ticket {
            id: TicketId::from(next_id),
            title: TicketTitle::try_from("never sent").unwrap(),
            description: TicketDescription::try_from("d").unwrap(),
            status: Status::ToDo,
            version: 1,
            created_at: Timestamp::from_unix_millis(1),
            updated_at: Timestamp::from_unix_millis(1),
        };
        tickets.insert(next_id, stray);
        let failed = check_cycle(
            &Baseline::default(),
            &plans,
            &tickets,
            next_id + 1,
            commands(&plans) + 1,
        )
        .unwrap_err();
        assert!(failed.reason.contains("no command"), "{failed:?}");
    }

    #[test]
    fn a_hole_in_the_ids_is_a_violation() {
        let (plans, tickets, next_id) = play(10);
        let failed = check_cycle(
            &Baseline::default(),
            &plans,
            &tickets,
            next_id + 1,
            commands(&plans),
        )
        .unwrap_err();
        assert!(failed.reason.contains("hole"), "{failed:?}");
    }

    #[test]
    fn a_changed_ticket_from_an_earlier_cycle_is_a_violation() {
        let (plans, tickets, next_id) = play(10);
        let mut baseline = Baseline {
            tickets: tickets.clone(),
            next_id,
            commands: commands(&plans),
            ..Baseline::default()
        };
        let fresh: Vec<Plan> = (0..2).map(|c| Plan::new(7, 4, c)).collect();
        let first = *tickets.keys().next().unwrap();
        baseline.tickets.get_mut(&first).unwrap().status = Status::Done;
        let failed =
            check_cycle(&baseline, &fresh, &tickets, next_id, baseline.commands).unwrap_err();
        assert!(failed.reason.contains("earlier cycle"), "{failed:?}");
    }

    #[test]
    fn a_command_counted_twice_in_the_log_is_a_violation() {
        let (plans, tickets, next_id) = play(10);
        let failed = check_cycle(
            &Baseline::default(),
            &plans,
            &tickets,
            next_id,
            commands(&plans) + 1,
        )
        .unwrap_err();
        assert!(failed.reason.contains("gained"), "{failed:?}");
    }

    #[test]
    fn parent_and_child_plans_agree_on_every_step() {
        let mut a = Plan::new(99, 5, 1);
        let mut b = Plan::new(99, 5, 1);
        for _ in 0..200 {
            let (op_a, op_b) = (a.next_op(), b.next_op());
            assert_eq!(op_a, op_b);
            let outcome = match a.expected(&op_a).unwrap() {
                Expected::Created => Outcome::Ok {
                    id: 1000 + a.seq,
                    version: 1,
                },
                Expected::Ok { id, version } => Outcome::Ok { id, version },
                Expected::Refused => Outcome::Refused,
            };
            assert!(a.command(&op_a).is_ok());
            a.apply(&op_a, outcome).unwrap();
            b.apply(&op_b, outcome).unwrap();
        }
    }
}
