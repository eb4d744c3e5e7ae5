//! `ticketlog demo`: the main job in one command. Concurrent clients create,
//! update, read and delete tickets through the server thread; then the store
//! is closed and reopened, and the replayed state must equal the state
//! before close.

use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use ticketlog::rng::Rng;
use ticketlog::{
    Client, ClientError, Durability, ListQuery, Status, Ticket, TicketDraft, TicketId, TicketPatch,
};

use super::args::DemoArgs;
use super::output::Output;
use super::{CliError, dir_or_temp, open_store, seed_or_clock};

/// What one client did.
#[derive(Debug, Default)]
struct Tally {
    created: u64,
    updated: u64,
    deleted: u64,
    reads: u64,
    /// Updates sent with a deliberately stale version, refused as they should be.
    conflicts: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.created += other.created;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.reads += other.reads;
        self.conflicts += other.conflicts;
    }
}

pub(crate) fn run(
    dir: Option<&Path>,
    durability: Durability,
    args: &DemoArgs,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let seed = seed_or_clock(args.seed);
    let (dir, _temp) = dir_or_temp(dir, "ticketlog-demo-")?;
    let store = open_store(&dir, durability)?;
    if store.recovery().records_replayed > 0 {
        return Err(CliError::Failed(format!(
            "demo needs a fresh store, but {} already holds {} records",
            dir.display(),
            store.recovery().records_replayed
        )));
    }
    eprintln!(
        "demo: {} clients x {} operations on {} (durability {durability}, seed {seed})",
        args.clients,
        args.ops,
        dir.display()
    );

    let started = Instant::now();
    let results: Vec<Result<Tally, ClientError>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|index| {
                let client = store.client();
                let rng = Rng::new(seed ^ u64::from(index).wrapping_mul(0x1000_0000_01B3));
                scope.spawn(move || run_client(&client, index, args.ops, rng))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(Err(ClientError::Closed)))
            .collect()
    });
    let elapsed = started.elapsed();
    let mut tally = Tally::default();
    for result in results {
        tally += result?;
    }

    let client = store.client();
    let stats_before = client.stats()?;
    let tickets_before = client.list(ListQuery::default())?;
    store.close()?;

    let reopen_started = Instant::now();
    let store = open_store(&dir, durability)?;
    let reopen_elapsed = reopen_started.elapsed();
    let client = store.client();
    let stats_after = client.stats()?;
    let tickets_after = client.list(ListQuery::default())?;
    store.close()?;
    // The log may have grown by a seal record at close; the state may not change.
    let identical = tickets_before == tickets_after
        && (stats_before.next_id, stats_before.tickets())
            == (stats_after.next_id, stats_after.tickets());

    let operations = u64::from(args.clients) * args.ops;
    let writes = tally.created + tally.updated + tally.deleted;
    let secs = elapsed.as_secs_f64().max(1e-9);
    if out.is_json() {
        out.json_line(&serde_json::json!({
            "clients": args.clients,
            "ops": operations,
            "seed": seed,
            "secs": secs,
            "ops_per_s": operations as f64 / secs,
            "durable_commands_per_s": writes as f64 / secs,
            "created": tally.created,
            "updated": tally.updated,
            "deleted": tally.deleted,
            "reads": tally.reads,
            "conflicts": tally.conflicts,
            "tickets": stats_after.tickets(),
            "log_records": stats_after.records,
            "log_bytes": stats_after.log_bytes,
            "reopen_secs": reopen_elapsed.as_secs_f64(),
            "identical_after_reopen": identical,
        }))?;
    } else {
        out.text(&format!(
            "did: {} created, {} updated, {} deleted, {} reads, {} stale-version updates refused",
            tally.created, tally.updated, tally.deleted, tally.reads, tally.conflicts
        ))?;
        out.text(&format!(
            "throughput: {operations} operations in {secs:.3} s = {:.0} ops/s ({:.0} durable commands/s)",
            operations as f64 / secs,
            writes as f64 / secs
        ))?;
        out.text(&format!(
            "store: {} tickets (todo {}, in-progress {}, done {}), next id {}, log {} records / {} bytes",
            stats_after.tickets(),
            stats_after.todo,
            stats_after.in_progress,
            stats_after.done,
            stats_after.next_id,
            stats_after.records,
            stats_after.log_bytes
        ))?;
        out.text(&format!(
            "reopen: replayed {} records in {:.1} ms; state {}",
            stats_after.records,
            reopen_elapsed.as_secs_f64() * 1e3,
            if identical {
                "identical to before close"
            } else {
                "DIFFERENT from before close"
            }
        ))?;
    }
    if !identical {
        return Err(CliError::Failed(
            "the reopened store's state differs from the state before close".into(),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// One client's share of the work. It updates and deletes only tickets it
/// created itself, so every outcome is predictable and any surprise is an error.
fn run_client(client: &Client, index: u32, ops: u64, mut rng: Rng) -> Result<Tally, ClientError> {
    let mut tally = Tally::default();
    let mut mine: Vec<Ticket> = Vec::new();
    for op in 0..ops {
        let roll = rng.below(100);
        // Every other branch indexes `mine` with `rng.below(mine.len())`:
        // an empty `mine` always takes this one, so those indexes are in bounds.
        if mine.is_empty() || roll < 30 {
            let ticket = client.create(TicketDraft {
                title: format!("Client {index} ticket {op}")
                    .try_into()
                    .map_err(ClientError::Invalid)?,
                description: format!("Created by demo client {index} as operation {op}.")
                    .try_into()
                    .map_err(ClientError::Invalid)?,
            })?;
            tally.created += 1;
            mine.push(ticket);
        } else if roll < 55 {
            let at = rng.below(mine.len() as u64) as usize;
            let status = Status::ALL[rng.below(3) as usize];
            let ticket = client.update(
                mine[at].id,
                TicketPatch {
                    status: Some(status),
                    expected_version: Some(mine[at].version),
                    ..TicketPatch::default()
                },
            )?;
            tally.updated += 1;
            mine[at] = ticket;
        } else if roll < 60 {
            let at = rng.below(mine.len() as u64) as usize;
            let stale = mine[at].version.saturating_sub(1);
            match client.update(
                mine[at].id,
                TicketPatch {
                    status: Some(Status::Done),
                    expected_version: Some(stale),
                    ..TicketPatch::default()
                },
            ) {
                Err(ClientError::Conflict { .. }) => tally.conflicts += 1,
                Err(e) => return Err(e),
                Ok(_) => {
                    return Err(ClientError::Invalid(ticketlog::TicketError::InvalidId {
                        input: "a stale-version update was accepted".into(),
                    }));
                }
            }
        } else if roll < 90 {
            let at = rng.below(mine.len() as u64) as usize;
            let found = client.get(mine[at].id)?;
            if found.as_ref() != Some(&mine[at]) {
                return Err(ClientError::NotFound(mine[at].id));
            }
            tally.reads += 1;
        } else if roll < 95 {
            let after = TicketId::from(rng.below(mine.len() as u64 * 4));
            client.list(ListQuery {
                after: Some(after),
                limit: Some(20),
                ..ListQuery::default()
            })?;
            tally.reads += 1;
        } else {
            let at = rng.below(mine.len() as u64) as usize;
            let ticket = mine.swap_remove(at);
            let removed = client.delete(ticket.id)?;
            if removed != ticket {
                return Err(ClientError::NotFound(ticket.id));
            }
            tally.deleted += 1;
        }
    }
    Ok(tally)
}
