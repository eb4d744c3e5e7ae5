//! `ticketlog bench`: the workloads of the peers harness (`insert`, `mixed`,
//! `reopen`), run against ticketlog with the same ticket contents and the same
//! JSON fields, so results can be compared line for line in one run. Plus
//! `memory`: peak resident memory with N tickets held.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};
use ticketlog::rng::Rng;
use ticketlog::{
    Client, ClientError, Command, Durability, LogBackend, Options, PendingReply, Retention, Status,
    Store, Ticket, TicketDraft, TicketId, TicketPatch,
};

use super::CliError;
use super::args::{BenchArgs, Workload};
use super::output::Output;

/// Tickets loaded before a `mixed` run, as in the peers harness.
const PRELOAD: u64 = 10_000;
/// The most latencies a client's buffer is sized for up front.
const LATENCIES_PRESIZE_MAX: u64 = 1 << 20;
/// The most commands a pipelined client makes before the timed phase
/// (about 300 MB of tickets); the rest are generated as it goes.
const PREGENERATE_MAX: u64 = 1 << 20;
/// Length of every generated description, as in the peers harness.
const DESCRIPTION_LEN: usize = 200;

/// The peers harness's ticket `n`: a 24-byte title and a 200-byte
/// pseudo-random lowercase description that depend only on `n`. The
/// description's letters come from the crate's one generator, not the
/// harness's xorshift: the same shape and sizes (nothing here compresses),
/// so the workloads cost the same.
fn generate(n: u64) -> TicketDraft {
    let title = format!("Ticket number {:010}", n % 10_000_000_000);
    let mut rng = Rng::new(n);
    let mut description = String::with_capacity(DESCRIPTION_LEN);
    while description.len() < DESCRIPTION_LEN {
        let c = (rng.next_u64() % 28) as u8;
        description.push(if c >= 26 { ' ' } else { (b'a' + c) as char });
    }
    TicketDraft {
        title: title.try_into().expect("24 bytes"),
        description: description.try_into().expect("200 bytes"),
    }
}

fn status_pick(r: u64) -> Status {
    Status::ALL[(r % 3) as usize]
}

/// Latencies of one run, in nanoseconds; the low bit marks a write.
struct Latencies(Vec<u64>);

fn percentile_us(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1);
    Some(sorted[i] as f64 / 1000.0)
}

/// (allocated, logical) bytes of every file under `dir`.
fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut allocated = 0;
    let mut logical = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                let (a, l) = disk_usage(&entry.path());
                allocated += a;
                logical += l;
            } else {
                allocated += meta.blocks() * 512;
                logical += meta.len();
            }
        }
    }
    (allocated, logical)
}

/// (write requests, flush requests) completed by the block device holding
/// `dir`, from /proc/diskstats; `None` where that is not available.
fn device_counters(dir: &Path) -> Option<(u64, u64)> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).ok()?;
    let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let line = stats
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(name))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((*fields.get(4)?, *fields.get(15)?))
}

/// A progress bar on stderr that appears only once a run has taken a second,
/// and never when stderr is not a terminal. Clients bump `done`; the bar is
/// drawn by its own thread, so the measured threads never touch the terminal.
struct Progress {
    done: &'static AtomicU64,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Progress {
    fn start(label: &str, total: u64) -> Progress {
        let done: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        if !std::io::stderr().is_terminal() {
            return Progress {
                done,
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let label = label.to_owned();
        let thread = thread::spawn(move || {
            if stopped.recv_timeout(Duration::from_secs(1)).is_ok() {
                return;
            }
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            {
                bar.set_style(style);
            }
            bar.set_message(label);
            loop {
                bar.set_position(done.load(Ordering::Relaxed));
                match stopped.recv_timeout(Duration::from_millis(100)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            bar.finish_and_clear();
        });
        Progress {
            done,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn finish(mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a timed phase measured.
struct Timed {
    secs: f64,
    latencies: Latencies,
    device_before: Option<(u64, u64)>,
    device_after: Option<(u64, u64)>,
}

/// Runs `body` on `clients` threads, released together; times the whole.
fn run_clients(
    store: &Store,
    dir: &Path,
    clients: u32,
    body: impl Fn(u32, &Client) -> Result<Vec<u64>, ClientError> + Sync,
) -> Result<Timed, ClientError> {
    run_prepared_clients(
        store,
        dir,
        clients,
        |_| (),
        |index, client, ()| body(index, client),
    )
}

/// Like [`run_clients`], but each client thread first runs `prepare`, before
/// the clients are released and the clock starts: what it returns (the
/// commands the client will send) is made outside the timed phase.
fn run_prepared_clients<P>(
    store: &Store,
    dir: &Path,
    clients: u32,
    prepare: impl Fn(u32) -> P + Sync,
    body: impl Fn(u32, &Client, P) -> Result<Vec<u64>, ClientError> + Sync,
) -> Result<Timed, ClientError> {
    let barrier = Barrier::new(clients as usize + 1);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|index| {
                let client = store.client();
                let (barrier, prepare, body) = (&barrier, &prepare, &body);
                scope.spawn(move || {
                    let prepared = prepare(index);
                    barrier.wait();
                    body(index, &client, prepared)
                })
            })
            .collect();
        let device_before = device_counters(dir);
        barrier.wait();
        let started = Instant::now();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.join().unwrap_or(Err(ClientError::Closed))?);
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(Timed {
            secs,
            latencies: Latencies(all),
            device_before,
            device_after: device_counters(dir),
        })
    })
}

/// Sends `command` and, with a pipeline of `depth`, keeps up to that many in
/// flight; each latency runs from submit to reply.
struct Pipeline {
    depth: usize,
    in_flight: VecDeque<(Instant, PendingReply<Ticket>)>,
}

impl Pipeline {
    fn push(
        &mut self,
        client: &Client,
        command: Command,
        latencies: &mut Vec<u64>,
    ) -> Result<(), ClientError> {
        if self.in_flight.len() >= self.depth {
            self.pop(latencies)?;
        }
        let started = Instant::now();
        let pending = client.submit(command)?;
        self.in_flight.push_back((started, pending));
        Ok(())
    }

    fn pop(&mut self, latencies: &mut Vec<u64>) -> Result<(), ClientError> {
        if let Some((started, pending)) = self.in_flight.pop_front() {
            pending.wait()?;
            latencies.push((started.elapsed().as_nanos() as u64) << 1 | 1);
        }
        Ok(())
    }

    fn drain(&mut self, latencies: &mut Vec<u64>) -> Result<(), ClientError> {
        while !self.in_flight.is_empty() {
            self.pop(latencies)?;
        }
        Ok(())
    }
}

/// A fresh directory under `parent` for one run, removed afterwards unless kept.
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    fn new(parent: &Path, workload: &str, keep: bool) -> Result<RunDir, CliError> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = parent.join(format!(
            "ticketlog-bench-{workload}-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| CliError::Failed(format!("creating {}: {e}", path.display())))?;
        Ok(RunDir { path, keep })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn open(dir: &Path, durability: Durability) -> Result<Store, CliError> {
    Ok(Store::open(
        dir,
        super::store_options().durability(durability),
    )?)
}

pub(crate) fn run(
    parent: Option<&Path>,
    durability: Durability,
    args: &BenchArgs,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let workload = args.workload.name();
    let run_dir = RunDir::new(&parent, workload, args.keep)?;
    let dir = run_dir.path.as_path();
    let mut fields = Map::new();
    fields.insert("engine".into(), json!("ticketlog"));
    fields.insert("workload".into(), json!(workload));
    fields.insert("clients".into(), json!(args.clients));
    match args.workload {
        Workload::Insert => insert(dir, durability, args, &mut fields)?,
        Workload::Mixed => mixed(dir, durability, args, &mut fields)?,
        Workload::Reopen => reopen(dir, durability, args, &mut fields)?,
        Workload::Memory => memory(dir, durability, args, &mut fields)?,
        Workload::ReopenHistory => reopen_history(dir, durability, args, &mut fields)?,
        Workload::SnapshotLatency => snapshot_latency(dir, durability, args, &mut fields)?,
        Workload::CompactDisk => compact_disk(dir, args, &mut fields)?,
        Workload::Join => join(dir, args, &mut fields)?,
        #[cfg(feature = "serve")]
        Workload::HttpInsert => http_insert(dir, durability, args, &mut fields)?,
    }
    fields.insert("durable".into(), json!(durability == Durability::Always));
    fields.insert("durability".into(), json!(durability.to_string()));
    if out.is_json() {
        out.json_line(&Value::Object(fields))?;
    } else {
        let get = |key: &str| fields.get(key).cloned().unwrap_or(Value::Null);
        out.text(&format!(
            "{workload}: {} ops by {} clients in {} s = {} ops/s; p50 {} us, p99 {} us; {} bytes on disk ({durability})",
            get("ops"),
            args.clients,
            get("secs"),
            get("ops_per_s"),
            get("p50_us"),
            get("p99_us"),
            get("bytes_on_disk")
        ))?;
        if let Some(extra) = fields.get("peak_rss_bytes") {
            out.text(&format!(
                "memory: peak RSS {extra} bytes for {} tickets = {} x their raw field bytes",
                get("ops"),
                get("rss_over_raw")
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

fn add_latencies(fields: &mut Map<String, Value>, timed: &Timed, total: u64) {
    let mut all: Vec<u64> = timed.latencies.0.iter().map(|x| x >> 1).collect();
    all.sort_unstable();
    fields.insert("ops".into(), json!(total));
    fields.insert("secs".into(), round3(timed.secs));
    fields.insert("ops_per_s".into(), round3(total as f64 / timed.secs));
    for (key, p) in [
        ("p50_us", 50.0),
        ("p99_us", 99.0),
        ("p999_us", 99.9),
        ("max_us", 100.0),
    ] {
        fields.insert(
            key.into(),
            percentile_us(&all, p).map_or(Value::Null, round3),
        );
    }
    if let (Some(before), Some(after)) = (timed.device_before, timed.device_after) {
        fields.insert(
            "dev_writes_per_op".into(),
            round3((after.0 - before.0) as f64 / total as f64),
        );
        fields.insert(
            "dev_flushes_per_op".into(),
            round3((after.1 - before.1) as f64 / total as f64),
        );
    }
}

fn add_disk(fields: &mut Map<String, Value>, dir: &Path) {
    let (allocated, logical) = disk_usage(dir);
    fields.insert("bytes_on_disk".into(), json!(allocated));
    fields.insert("logical_bytes".into(), json!(logical));
}

fn insert(
    dir: &Path,
    durability: Durability,
    args: &BenchArgs,
    fields: &mut Map<String, Value>,
) -> Result<(), CliError> {
    let store = open(dir, durability)?;
    let total = u64::from(args.clients) * args.ops;
    let progress = Progress::start("insert", total);
    // Pipelined, the client thread's own work is what is measured next to
    // the server thread's, and generating a ticket costs more than the
    // server spends on it: its commands are made before the clock starts
    // (up to a bound; past it, in the timed phase). One command at a time,
    // as in the peers harness, each ticket is generated in the timed phase,
    // outside its latency; there the flush dominates.
    let pregenerate = if args.pipeline > 1 {
        args.ops.min(PREGENERATE_MAX)
    } else {
        0
    };
    let timed = run_prepared_clients(
        &store,
        dir,
        args.clients,
        |index| {
            let first = 1 + u64::from(index) * args.ops;
            (first..first + pregenerate)
                .map(|n| Command::Create(generate(n)))
                .collect::<Vec<_>>()
        },
        |index, client, prepared| {
            // Sized for the run, up to a bound: a huge --ops grows as it goes.
            let mut latencies = Vec::with_capacity(args.ops.min(LATENCIES_PRESIZE_MAX) as usize);
            let mut pipeline = Pipeline {
                depth: args.pipeline,
                in_flight: VecDeque::with_capacity(args.pipeline),
            };
            let first_late = 1 + u64::from(index) * args.ops + pregenerate;
            let late = (first_late..).map(|n| Command::Create(generate(n)));
            let commands = prepared.into_iter().chain(late);
            for command in commands.take(args.ops as usize) {
                if args.pipeline <= 1 {
                    let started = Instant::now();
                    client.execute(command)?;
                    latencies.push((started.elapsed().as_nanos() as u64) << 1 | 1);
                } else {
                    pipeline.push(client, command, &mut latencies)?;
                }
                progress.tick();
            }
            pipeline.drain(&mut latencies)?;
            Ok(latencies)
        },
    );
    progress.finish();
    let timed = timed?;
    store.close()?;
    add_latencies(fields, &timed, total);
    add_disk(fields, dir);
    fields.insert("ops_per_client".into(), json!(args.ops));
    fields.insert("pipeline".into(), json!(args.pipeline));
    Ok(())
}

/// `insert` over HTTP: the same tickets, each client a thread with one
/// keep-alive connection to an in-process server, each create answered
/// (201) before the next; latencies are request to full reply.
#[cfg(feature = "serve")]
fn http_insert(
    dir: &Path,
    durability: Durability,
    args: &BenchArgs,
    fields: &mut Map<String, Value>,
) -> Result<(), CliError> {
    let store = open(dir, durability)?;
    let background = crate::cli::services()
        .ok_or_else(|| CliError::Failed("this build has no HTTP server".into()))?
        .background;
    let (addr, server) = background(store.client(), args.clients as usize + 8)?;
    let url = format!("http://{addr}/tickets");
    let total = u64::from(args.clients) * args.ops;
    let next = AtomicU64::new(1);
    let progress = Progress::start("http-insert", total);
    let barrier = Barrier::new(args.clients as usize + 1);
    let timed: Result<Timed, String> = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|_| {
                let (barrier, next, progress, url) = (&barrier, &next, &progress, &url);
                scope.spawn(move || -> Result<Vec<u64>, String> {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(60)))
                        .build()
                        .into();
                    let mut latencies =
                        Vec::with_capacity(args.ops.min(LATENCIES_PRESIZE_MAX) as usize);
                    barrier.wait();
                    for _ in 0..args.ops {
                        let draft = generate(next.fetch_add(1, Ordering::Relaxed));
                        let body = json!({
                            "title": draft.title.as_str(),
                            "description": draft.description.as_str(),
                        })
                        .to_string();
                        let started = Instant::now();
                        let mut reply = agent
                            .post(url.as_str())
                            .header("Content-Type", "application/json")
                            .send(body.as_str())
                            .map_err(|e| format!("POST /tickets: {e}"))?;
                        let status = reply.status().as_u16();
                        let _ = reply
                            .body_mut()
                            .read_to_string()
                            .map_err(|e| format!("reading a reply: {e}"))?;
                        if status != 201 {
                            return Err(format!("POST /tickets answered {status}"));
                        }
                        latencies.push((started.elapsed().as_nanos() as u64) << 1 | 1);
                        progress.tick();
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let device_before = device_counters(dir);
        barrier.wait();
        let started = Instant::now();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(
                handle
                    .join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))?,
            );
        }
        Ok(Timed {
            secs: started.elapsed().as_secs_f64(),
            latencies: Latencies(all),
            device_before,
            device_after: device_counters(dir),
        })
    });
    progress.finish();
    drop(server);
    let timed = timed.map_err(CliError::Failed)?;
    store.close()?;
    add_latencies(fields, &timed, total);
    add_disk(fields, dir);
    fields.insert("ops_per_client".into(), json!(args.ops));
    Ok(())
}

fn mixed(
    dir: &Path,
    durability: Durability,
    args: &BenchArgs,
    fields: &mut Map<String, Value>,
) -> Result<(), CliError> {
    let store = open(dir, durability)?;
    {
        let client = store.client();
        let drafts: Vec<TicketDraft> = (1..=PRELOAD).map(generate).collect();
        for chunk in drafts.chunks(1000) {
            client.create_many(chunk.to_vec())?;
        }
    }
    let total = u64::from(args.clients) * args.ops;
    let next = AtomicU64::new(PRELOAD + 1);
    let progress = Progress::start("mixed", total);
    let timed = run_clients(&store, dir, args.clients, |index, client| {
        let mut rng = Rng::new(0xC0FFEE + u64::from(index) * 7919);
        // Sized for the run, up to a bound: a huge --ops grows as it goes.
        let mut latencies = Vec::with_capacity(args.ops.min(LATENCIES_PRESIZE_MAX) as usize);
        for _ in 0..args.ops {
            let pick = rng.next_u64() % 100;
            let id = TicketId::from(1 + rng.below(PRELOAD));
            let started;
            let write;
            if pick < 80 {
                started = Instant::now();
                if client.get(id)?.is_none() {
                    return Err(ClientError::NotFound(id));
                }
                write = 0;
            } else if pick < 95 {
                let patch = TicketPatch {
                    status: Some(status_pick(rng.next_u64())),
                    ..TicketPatch::default()
                };
                started = Instant::now();
                client.update(id, patch)?;
                write = 1;
            } else {
                let draft = generate(next.fetch_add(1, Ordering::Relaxed));
                started = Instant::now();
                client.create(draft)?;
                write = 1;
            }
            latencies.push((started.elapsed().as_nanos() as u64) << 1 | write);
            progress.tick();
        }
        Ok(latencies)
    });
    progress.finish();
    let timed = timed?;
    store.close()?;
    add_latencies(fields, &timed, total);
    add_disk(fields, dir);
    let split = |write: u64| {
        let mut part: Vec<u64> = timed
            .latencies
            .0
            .iter()
            .filter(|x| *x & 1 == write)
            .map(|x| x >> 1)
            .collect();
        part.sort_unstable();
        part
    };
    let (reads, writes) = (split(0), split(1));
    for (key, sorted, p) in [
        ("read_p50_us", &reads, 50.0),
        ("read_p99_us", &reads, 99.0),
        ("write_p50_us", &writes, 50.0),
        ("write_p99_us", &writes, 99.0),
    ] {
        fields.insert(
            key.into(),
            percentile_us(sorted, p).map_or(Value::Null, round3),
        );
    }
    fields.insert("writes".into(), json!(writes.len()));
    fields.insert("ops_per_client".into(), json!(args.ops));
    fields.insert("preload".into(), json!(PRELOAD));
    Ok(())
}

/// Drops the page cache (needs root), as the peers harness's `--cold` does.
fn drop_caches() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn reopen(
    dir: &Path,
    durability: Durability,
    args: &BenchArgs,
    fields: &mut Map<String, Value>,
) -> Result<(), CliError> {
    let total = u64::from(args.clients) * args.ops;
    let build_started = Instant::now();
    {
        // Single durable creates, as the peers harness builds its stores.
        let store = open(dir, durability)?;
        let next = AtomicU64::new(1);
        let progress = Progress::start("reopen: build", total);
        let built = run_clients(&store, dir, args.clients, |_, client| {
            for _ in 0..args.ops {
                client.create(generate(next.fetch_add(1, Ordering::Relaxed)))?;
                progress.tick();
            }
            Ok(Vec::new())
        });
        progress.finish();
        built?;
        store.close()?;
    }
    let build_secs = build_started.elapsed().as_secs_f64();
    add_disk(fields, dir);
    let cold = drop_caches();

    let started = Instant::now();
    let store = open(dir, durability)?;
    let client = store.client();
    let first = client.get(TicketId::from(1))?;
    let secs = started.elapsed().as_secs_f64();
    if first.is_none() || client.get(TicketId::from(total))?.is_none() {
        return Err(CliError::Failed(
            "the reopened store is missing tickets".into(),
        ));
    }
    let mut missing = 0u64;
    for id in 1..=total {
        if client.get(TicketId::from(id))?.is_none() {
            missing += 1;
        }
    }
    let records = store.recovery().records_replayed;
    store.close()?;
    fields.insert("ops".into(), json!(total));
    fields.insert("secs".into(), round3(secs));
    fields.insert("ops_per_s".into(), round3(total as f64 / secs));
    fields.insert("p50_us".into(), Value::Null);
    fields.insert("p99_us".into(), Value::Null);
    fields.insert("records_replayed".into(), json!(records));
    fields.insert("cold_cache".into(), json!(cold));
    fields.insert("build_secs".into(), round3(build_secs));
    fields.insert("build_clients".into(), json!(args.clients));
    fields.insert("missing".into(), json!(missing));
    Ok(())
}

/// Resident memory figures of this process from /proc/self/status, in bytes.
fn rss_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn memory(
    dir: &Path,
    durability: Durability,
    args: &BenchArgs,
    fields: &mut Map<String, Value>,
) -> Result<(), CliError> {
    let total = u64::from(args.clients) * args.ops;
    let rss_before = rss_bytes("VmRSS:").unwrap_or(0);
    let store = open(dir, durability)?;
    let client = store.client();
    let started = Instant::now();
    let progress = Progress::start("memory", total);
    let mut raw_bytes = 0u64;
    let mut n = 1;
    while n <= total {
        let batch: Vec<TicketDraft> = (n..=total.min(n + 999)).map(generate).collect();
        for draft in &batch {
            // id, version, status, two timestamps, and the two strings.
            raw_bytes += 8
                + 8
                + 1
                + 16
                + draft.title.as_str().len() as u64
                + draft.description.as_str().len() as u64;
        }
        n += batch.len() as u64;
        client.create_many(batch)?;
        for _ in 0..1000 {
            progress.tick();
        }
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let stats = client.stats()?;
    let rss_after = rss_bytes("VmRSS:").unwrap_or(0);
    let peak = rss_bytes("VmHWM:").unwrap_or(0);
    store.close()?;
    add_disk(fields, dir);
    fields.insert("ops".into(), json!(stats.tickets()));
    fields.insert("secs".into(), round3(secs));
    fields.insert("ops_per_s".into(), round3(stats.tickets() as f64 / secs));
    fields.insert("p50_us".into(), Value::Null);
    fields.insert("p99_us".into(), Value::Null);
    fields.insert("raw_field_bytes".into(), json!(raw_bytes));
    fields.insert("rss_before_bytes".into(), json!(rss_before));
    fields.insert("rss_after_bytes".into(), json!(rss_after));
    fields.insert("peak_rss_bytes".into(), json!(peak));
    fields.insert(
        "rss_over_raw".into(),
        round3(peak as f64 / raw_bytes.max(1) as f64),
    );
    Ok(())
}

/// Updates each ticket's status or title per round, as the history workloads do.
fn update_patch(round: u64, id: u64) -> TicketPatch {
    if round % 3 == 2 {
        TicketPatch {
            title: Some(
                format!("Ticket {id:010} rev {round}")
                    .try_into()
                    .expect("under 50 bytes"),
            ),
            ..TicketPatch::default()
        }
    } else {
        TicketPatch {
            status: Some(status_pick(round + id)),
            ..TicketPatch::default()
        }
    }
}

/// Creates `tickets` tickets, one command each, and then updates each
/// `rounds` times, from `clients` threads with 64 commands in flight each:
/// `tickets * (rounds + 1)` commands, one record each.
fn build_history(
    store: &Store,
    tickets: u64,
    rounds: u64,
    clients: u32,
    label: &str,
) -> Result<(), CliError> {
    let progress = Progress::start(label, tickets * (rounds + 1));
    {
        let client = store.client();
        let mut pipeline = Pipeline {
            depth: 64,
            in_flight: VecDeque::with_capacity(64),
        };
        let mut ignored = Vec::new();
        for n in 1..=tickets {
            pipeline.push(&client, Command::Create(generate(n)), &mut ignored)?;
            ignored.clear();
            progress.tick();
        }
        pipeline.drain(&mut ignored)?;
    }
    let clients = u64::from(clients.max(1));
    let updated: Result<(), ClientError> = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|index| {
                let client = store.client();
                let progress = &progress;
                scope.spawn(move || -> Result<(), ClientError> {
                    let mut pipeline = Pipeline {
                        depth: 64,
                        in_flight: VecDeque::with_capacity(64),
                    };
                    let mut ignored = Vec::new();
                    for round in 0..rounds {
                        for id in (1 + index..=tickets).step_by(clients as usize) {
                            let command =
                                Command::Update(TicketId::from(id), update_patch(round, id));
                            pipeline.push(&client, command, &mut ignored)?;
                            ignored.clear();
                            progress.tick();
                        }
                    }
                    pipeline.drain(&mut ignored)
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or(Err(ClientError::Closed)))
    });
    progress.finish();
    Ok(updated?)
}

/// Opens `dir`, reads one ticket, and returns the seconds that took and the store.
fn timed_open(dir: &Path, options: Options) -> Result<(f64, Store), CliError> {
    let started = Instant::now();
    let store = Store::open(dir, options)?;
    store.client().get(TicketId::from(1))?;
    Ok((started.elapsed().as_secs_f64(), store))
}

fn reopen_history(
    dir: &Path,
    durability: Durability,
    args: &BenchArgs,
    fields: &mut Map<String, Value>,
) -> Result<(), CliError> {
    const ROUNDS: u64 = 9;
    /// Updates written after the snapshot, so the open replays a tail.
    const TAIL: u64 = 1000;
    let tickets = u64::from(args.clients) * args.ops;
    let build = |options: Options| {
        let options = options.durability(Durability::Never).snapshot_every(0);
        match args.segment_bytes {
            Some(bytes) => options.segment_bytes(bytes),
            None => options,
        }
    };
    let open_options = |options: Options| {
        let options = options.durability(durability).snapshot_every(0);
        match args.segment_bytes {
            Some(bytes) => options.segment_bytes(bytes),
            None => options,
        }
    };

    // The baseline: just the creates, opened by replaying them all.
    let creates_dir = dir.join("creates");
    let store = Store::open(&creates_dir, build(super::store_options()))?;
    build_history(&store, tickets, 0, args.clients, "reopen-history: creates")?;
    store.close()?;
    let cold = drop_caches();
    let (creates_secs, store) = timed_open(&creates_dir, open_options(super::store_options()))?;
    let creates_replayed = store.recovery().records_replayed;
    store.close()?;

    // The history: creates and 9 updates each, a snapshot, then a short tail.
    let history_dir = dir.join("history");
    let store = Store::open(&history_dir, build(super::store_options()))?;
    build_history(
        &store,
        tickets,
        ROUNDS,
        args.clients,
        "reopen-history: build",
    )?;
    let snapshot = store.snapshot()?;
    let client = store.client();
    for id in 1..=TAIL.min(tickets) {
        client.update(TicketId::from(id), update_patch(ROUNDS, id))?;
    }
    store.close()?;
    let (_, log_bytes) = disk_usage(&history_dir);
    drop_caches();
    let (history_secs, store) = timed_open(&history_dir, open_options(super::store_options()))?;
    let recovery = store.recovery().clone();
    let commands = store.client().stats()?.records;
    // One ticket's full history: a read of the whole log, off the server thread.
    let started = Instant::now();
    let events = store.client().history(TicketId::from(tickets / 2 + 1))?;
    let history_query_secs = started.elapsed().as_secs_f64();
    store.close()?;

    fields.insert("ops".into(), json!(commands));
    fields.insert("tickets".into(), json!(tickets));
    fields.insert("secs".into(), round3(history_secs));
    fields.insert("ops_per_s".into(), round3(commands as f64 / history_secs));
    fields.insert("p50_us".into(), Value::Null);
    fields.insert("p99_us".into(), Value::Null);
    fields.insert("creates_open_secs".into(), round3(creates_secs));
    fields.insert("creates_records_replayed".into(), json!(creates_replayed));
    fields.insert("history_open_secs".into(), round3(history_secs));
    fields.insert(
        "history_records_replayed".into(),
        json!(recovery.records_replayed),
    );
    fields.insert(
        "open_ratio".into(),
        round3(history_secs / creates_secs.max(1e-9)),
    );
    fields.insert("snapshot_lsn".into(), json!(snapshot.lsn));
    fields.insert("snapshot_bytes".into(), json!(snapshot.bytes));
    fields.insert("log_bytes".into(), json!(log_bytes));
    fields.insert("history_events".into(), json!(events.len()));
    fields.insert("history_query_secs".into(), round3(history_query_secs));
    fields.insert("cold_cache".into(), json!(cold));
    add_disk(fields, &history_dir);
    Ok(())
}

/// A new host joining a shared log: opened on an empty directory, first
/// with no snapshot to load (a full replay of the stream), then after a
/// snapshot and a short tail; both must reach the writer's state.
fn join(dir: &Path, args: &BenchArgs, fields: &mut Map<String, Value>) -> Result<(), CliError> {
    const ROUNDS: u64 = 9;
    /// Updates written after the snapshot, so the join replays a tail.
    const TAIL: u64 = 1000;
    if matches!(super::store_options().get_log_backend(), LogBackend::Local) {
        return Err(CliError::Failed(
            "the join workload needs a shared log: give --nats and --stream (a new stream)".into(),
        ));
    }
    let tickets = u64::from(args.clients) * args.ops;
    let options = || super::store_options().snapshot_every(0);
    let state = |store: &Store| -> Result<(u64, u64), CliError> {
        let stats = store.client().stats()?;
        Ok((stats.digest, stats.tickets()))
    };
    let writer = Store::open(dir.join("writer"), options())?;
    if writer.client().stats()?.last_lsn != 0 {
        return Err(CliError::Failed(
            "the join workload needs a new, empty stream".into(),
        ));
    }
    let build_started = Instant::now();
    build_history(&writer, tickets, ROUNDS, args.clients, "join: build")?;
    let build_secs = build_started.elapsed().as_secs_f64();
    let built = state(&writer)?;

    let (replay_secs, host) = timed_open(&dir.join("replay"), options())?;
    let replay_recovery = host.recovery().clone();
    let replayed = state(&host)?;
    host.close()?;

    let snapshot_started = Instant::now();
    let snapshot = writer.snapshot()?;
    let snapshot_secs = snapshot_started.elapsed().as_secs_f64();
    let client = writer.client();
    for id in 1..=TAIL.min(tickets) {
        client.update(TicketId::from(id), update_patch(ROUNDS, id))?;
    }
    let written = state(&writer)?;
    let commands = writer.client().stats()?.records;
    writer.close()?;

    let (join_secs, host) = timed_open(&dir.join("join"), options())?;
    let join_recovery = host.recovery().clone();
    let joined = state(&host)?;
    host.close()?;
    if replayed != built || joined != written || replay_recovery.snapshot.is_some() {
        return Err(CliError::Failed(format!(
            "a new host did not reach the writer's state: replay {replayed:?} vs {built:?}, \
             join {joined:?} vs {written:?}"
        )));
    }
    if join_recovery.snapshot.as_ref().map(|s| s.lsn) != Some(snapshot.lsn) {
        return Err(CliError::Failed(format!(
            "the joining host did not load the snapshot: {join_recovery:?}"
        )));
    }
    fields.insert("ops".into(), json!(commands));
    fields.insert("tickets".into(), json!(tickets));
    fields.insert("secs".into(), round3(join_secs));
    fields.insert("ops_per_s".into(), round3(commands as f64 / join_secs));
    fields.insert("p50_us".into(), Value::Null);
    fields.insert("p99_us".into(), Value::Null);
    fields.insert("build_secs".into(), round3(build_secs));
    fields.insert("full_replay_open_secs".into(), round3(replay_secs));
    fields.insert(
        "full_replay_records".into(),
        json!(replay_recovery.records_replayed),
    );
    fields.insert("snapshot_secs".into(), round3(snapshot_secs));
    fields.insert("snapshot_lsn".into(), json!(snapshot.lsn));
    fields.insert("snapshot_bytes".into(), json!(snapshot.bytes));
    fields.insert("join_open_secs".into(), round3(join_secs));
    fields.insert(
        "join_records_replayed".into(),
        json!(join_recovery.records_replayed),
    );
    fields.insert(
        "open_ratio".into(),
        round3(join_secs / replay_secs.max(1e-9)),
    );
    Ok(())
}

/// Write latencies (ns) of `clients` threads updating random tickets until
/// `stop` says so, at least `min_per_client` each.
fn update_until(
    store: &Store,
    tickets: u64,
    clients: u32,
    min_per_client: u64,
    stop: &AtomicU64,
) -> Result<Vec<u64>, ClientError> {
    thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|index| {
                let client = store.client();
                scope.spawn(move || -> Result<Vec<u64>, ClientError> {
                    let mut rng = Rng::new(0xBEEF + u64::from(index) * 31);
                    let mut latencies = Vec::new();
                    let mut done = 0;
                    while done < min_per_client || stop.load(Ordering::Acquire) == 0 {
                        let id = 1 + rng.below(tickets);
                        let patch = TicketPatch {
                            status: Some(status_pick(rng.next_u64())),
                            ..TicketPatch::default()
                        };
                        let started = Instant::now();
                        client.update(TicketId::from(id), patch)?;
                        latencies.push(started.elapsed().as_nanos() as u64);
                        done += 1;
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.join().unwrap_or(Err(ClientError::Closed))?);
        }
        all.sort_unstable();
        Ok(all)
    })
}

/// Updates each client makes in the baseline phase even if a snapshot takes
/// less time than that.
const BASELINE_MIN_PER_CLIENT: u64 = 500;

fn snapshot_latency(
    dir: &Path,
    durability: Durability,
    args: &BenchArgs,
    fields: &mut Map<String, Value>,
) -> Result<(), CliError> {
    let tickets = u64::from(args.clients) * args.ops;
    let clients = args.clients.max(1);
    let mut options = super::store_options()
        .durability(durability)
        .snapshot_every(0);
    if let Some(bytes) = args.segment_bytes {
        options = options.segment_bytes(bytes);
    }
    if let Some(bytes_per_s) = args.snapshot_write_bytes_per_s {
        options = options.snapshot_write_bytes_per_s(bytes_per_s);
    }
    let store = Store::open(dir, options)?;
    {
        let client = store.client();
        let progress = Progress::start("snapshot-latency: preload", tickets);
        let mut n = 1;
        while n <= tickets {
            let batch: Vec<TicketDraft> = (n..=tickets.min(n + 999)).map(generate).collect();
            n += batch.len() as u64;
            for _ in 0..batch.len() {
                progress.tick();
            }
            client.create_many(batch)?;
        }
        progress.finish();
    }
    // Without a snapshot: updates for as long as a snapshot takes (timed
    // here, with nothing else running), so that both phases' p99 rest on
    // about as many samples.
    let started = Instant::now();
    let first = store.snapshot()?;
    let snapshot_secs_warmup = started.elapsed().as_secs_f64();
    let baseline_started = Instant::now();
    let baseline = {
        let stop = AtomicU64::new(0);
        let phase = Duration::from_secs_f64(snapshot_secs_warmup);
        thread::scope(|scope| {
            let writer = scope
                .spawn(|| update_until(&store, tickets, clients, BASELINE_MIN_PER_CLIENT, &stop));
            thread::sleep(phase);
            stop.store(1, Ordering::Release);
            writer.join().unwrap_or(Err(ClientError::Closed))
        })?
    };
    let baseline_secs = baseline_started.elapsed().as_secs_f64();
    let stop = AtomicU64::new(0);

    // During a snapshot: clients update until the snapshot is durable.
    let (during, snapshot, snapshot_secs) = thread::scope(|scope| {
        let writer = scope.spawn(|| update_until(&store, tickets, clients, 0, &stop));
        let started = Instant::now();
        let snapshot = store.snapshot();
        let secs = started.elapsed().as_secs_f64();
        stop.store(1, Ordering::Release);
        let during = writer.join().unwrap_or(Err(ClientError::Closed));
        (during, snapshot, secs)
    });
    let during = during?;
    let snapshot = snapshot?;
    store.close()?;
    let p = |sorted: &[u64], q: f64| percentile_us(sorted, q).map_or(Value::Null, round3);
    fields.insert("ops".into(), json!(during.len()));
    fields.insert("tickets".into(), json!(tickets));
    fields.insert("secs".into(), round3(snapshot_secs));
    fields.insert(
        "ops_per_s".into(),
        round3(during.len() as f64 / snapshot_secs),
    );
    fields.insert("p50_us".into(), p(&during, 50.0));
    fields.insert("p99_us".into(), p(&during, 99.0));
    fields.insert("max_us".into(), p(&during, 100.0));
    fields.insert("baseline_ops".into(), json!(baseline.len()));
    fields.insert("baseline_secs".into(), round3(baseline_secs));
    fields.insert("baseline_p50_us".into(), p(&baseline, 50.0));
    fields.insert("baseline_p99_us".into(), p(&baseline, 99.0));
    fields.insert("baseline_max_us".into(), p(&baseline, 100.0));
    fields.insert(
        "p99_ratio".into(),
        match (percentile_us(&during, 99.0), percentile_us(&baseline, 99.0)) {
            (Some(d), Some(b)) => round3(d / b.max(1e-9)),
            _ => Value::Null,
        },
    );
    fields.insert("snapshot_secs".into(), round3(snapshot_secs));
    fields.insert("first_snapshot_secs".into(), round3(snapshot_secs_warmup));
    fields.insert("snapshot_bytes".into(), json!(snapshot.bytes));
    fields.insert("snapshot_lsn".into(), json!(snapshot.lsn));
    fields.insert("first_snapshot_lsn".into(), json!(first.lsn));
    add_disk(fields, dir);
    Ok(())
}

fn compact_disk(
    dir: &Path,
    args: &BenchArgs,
    fields: &mut Map<String, Value>,
) -> Result<(), CliError> {
    const ROUNDS: u64 = 9;
    let tickets = u64::from(args.clients) * args.ops;
    let segment_bytes = args
        .segment_bytes
        .unwrap_or(ticketlog::SEGMENT_BYTES_DEFAULT);
    let options = super::store_options()
        .durability(Durability::Never)
        .snapshot_every(0)
        .segment_bytes(segment_bytes)
        .retention(Retention::Compact);
    let store = Store::open(dir, options)?;
    build_history(&store, tickets, ROUNDS, args.clients, "compact-disk: build")?;
    let (before, _) = disk_usage(dir);
    let started = Instant::now();
    let compacted = store.compact()?;
    let secs = started.elapsed().as_secs_f64();
    let (after, after_logical) = disk_usage(dir);
    store.close()?;
    let bound = 1.5 * compacted.snapshot.bytes as f64 + segment_bytes as f64;
    fields.insert("ops".into(), json!(compacted.snapshot.lsn));
    fields.insert("tickets".into(), json!(tickets));
    fields.insert("secs".into(), round3(secs));
    fields.insert("ops_per_s".into(), Value::Null);
    fields.insert("p50_us".into(), Value::Null);
    fields.insert("p99_us".into(), Value::Null);
    fields.insert("bytes_before".into(), json!(before));
    fields.insert("bytes_after".into(), json!(after));
    fields.insert("logical_bytes_after".into(), json!(after_logical));
    fields.insert("snapshot_bytes".into(), json!(compacted.snapshot.bytes));
    fields.insert("segment_bytes".into(), json!(segment_bytes));
    fields.insert("bytes_reclaimed".into(), json!(compacted.bytes_reclaimed));
    fields.insert("segments_removed".into(), json!(compacted.segments_removed));
    fields.insert("bound_bytes".into(), round3(bound));
    fields.insert("after_over_bound".into(), round3(after as f64 / bound));
    fields.insert("bytes_on_disk".into(), json!(after));
    Ok(())
}
