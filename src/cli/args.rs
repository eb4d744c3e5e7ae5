//! The command line as clap parses it. Field values that have a domain type
//! are validated here, so a bad title or status is refused before any store
//! is opened.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ticketlog::{Durability, Retention, Status, TicketDescription, TicketId, TicketTitle};

/// A durable, embedded ticket store.
#[derive(Debug, Parser)]
#[command(name = "ticketlog", version, about, long_about = None)]
pub struct Cli {
    /// Data directory [default: $TICKETLOG_DIR, else ./ticketlog-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Print one JSON object per line instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// Run add, get, list, update, delete, history and stats against a
    /// running `ticketlog serve` at this URL (e.g. http://127.0.0.1:7878)
    /// instead of opening --dir [default: $TICKETLOG_SERVER]
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// When commands are made durable: always (fdatasync before every
    /// acknowledgement), interval:MS (at most every MS milliseconds), or never
    #[arg(long, global = true, value_name = "MODE", default_value = "always", value_parser = parse_durability)]
    pub durability: Durability,

    /// What happens to log segments a snapshot covers: keep-all (history
    /// stays complete) or compact (they are deleted after each snapshot)
    #[arg(long, global = true, value_name = "POLICY", default_value = "keep-all", value_parser = parse_retention)]
    pub retention: Retention,

    /// Keep the command log on a NATS JetStream stream (R3) shared with
    /// other hosts, at these server URLs (comma-separated; give all three),
    /// instead of in --dir (which still holds the lock; snapshots go to the
    /// stream's object store bucket).
    /// Needs --stream and a build with the `jetstream` feature
    #[arg(
        long,
        global = true,
        value_name = "URL[,URL...]",
        value_delimiter = ','
    )]
    pub nats: Vec<String>,

    /// The JetStream stream that holds the log (with --nats); created if missing
    #[arg(long, global = true, value_name = "NAME")]
    pub stream: Option<String>,

    #[command(subcommand)]
    pub command: CliCommand,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// A command or query against the store in --dir.
    #[command(flatten)]
    Ticket(TicketCommand),
    /// Check, list or repair the log (verify and dump change nothing)
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Run concurrent clients against a fresh store, then reopen it and check the state
    Demo(DemoArgs),
    /// Measure a workload of the peers harness (insert, mixed, reopen) or memory use;
    /// --dir is where a fresh store is made (and removed) for the run
    Bench(BenchArgs),
    /// Create tickets from concurrent clients, printing each id as soon as it is
    /// acknowledged (for crash tests: kill the process at any moment, then check)
    Load(LoadArgs),
    /// Kill -9 soak: a child process runs concurrent clients, is killed with SIGKILL
    /// at a random moment, and the reopened store must hold every acknowledged
    /// command; repeated --cycles times (--dir: the store to use, default a fresh
    /// temporary one)
    CrashTest(CrashTestArgs),
    /// The child process of crash-test (not for direct use)
    #[command(hide = true)]
    CrashTestWorker(CrashTestWorkerArgs),
    /// Serve the store in --dir over HTTP/JSON until SIGINT or SIGTERM
    #[cfg(feature = "serve")]
    Serve(ServeArgs),
}

/// `ticketlog serve`
#[cfg(feature = "serve")]
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address bound is
    /// printed on stdout)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// Require `Authorization: Bearer <token>` with the token in FILE
    /// (its first line)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Allow listening on an address other than loopback without a token
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Most connections open at once; more wait to be accepted
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub connections_max: u32,
    /// Longest time a request may take before it is answered 503
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub request_timeout_ms: u64,
    /// Most `GET /events` streams open at once
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub sse_clients_max: u32,
    /// Longest an event stream stays silent: a heartbeat comment is sent
    /// after this long without an event
    #[arg(long, value_name = "MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub sse_heartbeat_ms: u64,
}

/// The commands and queries that open the store, run one request, and close it.
#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Create a ticket and print it
    Add {
        /// Title: 1 to 50 bytes
        #[arg(long, value_parser = parse_title)]
        title: TicketTitle,
        /// Description: 1 to 500 bytes
        #[arg(long, value_parser = parse_description)]
        description: TicketDescription,
    },
    /// Print one ticket
    Get {
        /// Ticket id
        #[arg(value_parser = parse_id)]
        id: TicketId,
    },
    /// List tickets in ascending id order
    List {
        /// Only tickets with this status (todo, in-progress, done)
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        /// Only tickets with an id greater than this
        #[arg(long, value_parser = parse_id)]
        after: Option<TicketId>,
        /// At most this many tickets
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Change a ticket and print it
    Update {
        /// Ticket id
        #[arg(value_parser = parse_id)]
        id: TicketId,
        /// New title
        #[arg(long, value_parser = parse_title)]
        title: Option<TicketTitle>,
        /// New description
        #[arg(long, value_parser = parse_description)]
        description: Option<TicketDescription>,
        /// New status (todo, in-progress, done)
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        /// Change only if the ticket is at this version
        #[arg(long, value_name = "VERSION")]
        expect_version: Option<u64>,
    },
    /// Delete a ticket and print it
    Delete {
        /// Ticket id
        #[arg(value_parser = parse_id)]
        id: TicketId,
    },
    /// Print counts by status, the next id and the log size
    Stats,
    /// Print every change of a ticket still in the log, oldest first
    History {
        /// Ticket id
        #[arg(value_parser = parse_id)]
        id: TicketId,
    },
    /// Write a snapshot of the state now, so the next open replays less
    Snapshot,
    /// Write a snapshot, then delete the log segments and older snapshots it
    /// covers; prints the bytes reclaimed (history then starts later)
    Compact,
}

/// `ticketlog log …`
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check every record; exit 0 if clean, 1 if the tail is torn, 2 if corrupt
    Verify,
    /// Print one line per record
    Dump {
        /// Only records with this LSN or a later one
        #[arg(long, value_name = "LSN")]
        from_lsn: Option<u64>,
        /// Only records with this LSN or an earlier one
        #[arg(long, value_name = "LSN")]
        to_lsn: Option<u64>,
    },
    /// Cut a torn tail off the log (as opening the store would); with
    /// --drop-after-corruption, also cut mid-log corruption and every record
    /// after it. The bytes cut are saved to a *.damaged file beside the log
    Repair {
        /// Cut the log at mid-log corruption, dropping every record from the
        /// first damaged one on (acknowledged ones too)
        #[arg(long)]
        drop_after_corruption: bool,
    },
}

/// `ticketlog demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Client threads
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// Operations per client
    #[arg(long, default_value_t = 2000)]
    pub ops: u64,
    /// Seed for the operation mix [default: from the clock; printed]
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The most operations per client `bench` takes: a billion keeps every total
/// (at most 4,096 clients) far inside a u64 and every run finite.
pub const OPS_PER_CLIENT_MAX: u64 = 1_000_000_000;

/// `ticketlog bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Client threads
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: u32,
    /// Operations per client (for reopen and memory: tickets per client)
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=OPS_PER_CLIENT_MAX))]
    pub ops: u64,
    /// Commands each client keeps in flight (insert only; 1 waits for each reply)
    #[arg(long, default_value_t = 1, value_parser = parse_pipeline)]
    pub pipeline: usize,
    /// Keep the store directory after the run
    #[arg(long)]
    pub keep: bool,
    /// Segment size limit for the store under test (bytes)
    #[arg(long, value_name = "BYTES")]
    pub segment_bytes: Option<u64>,
    /// snapshot-latency only: the snapshot writer's pace in bytes per second
    /// (0: no limit) [default: the store's, 32 MiB/s]
    #[arg(long, value_name = "BYTES")]
    pub snapshot_write_bytes_per_s: Option<u64>,
}

/// `ticketlog bench --workload`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Each client creates --ops tickets, each acknowledged before the next
    Insert,
    /// 10,000 preloaded; 80% get, 15% status update, 5% create
    Mixed,
    /// Time to open a store holding clients x ops single creates
    Reopen,
    /// Peak resident memory with clients x ops tickets held
    Memory,
    /// Open time of clients x ops tickets each updated 9 times, with a recent
    /// snapshot, against the open time of just the creates (full replay); and
    /// the time of one ticket's history over that log
    ReopenHistory,
    /// Write latency (p50/p99/max) of clients updating clients x ops tickets,
    /// while a snapshot of them is written and while none is
    SnapshotLatency,
    /// Disk use after compaction of clients x ops tickets each updated 9
    /// times, against the snapshot size plus the segment limit
    CompactDisk,
    /// A shared log only (--nats): the time for a new host (empty data
    /// directory) to open a stream of clients x ops tickets each updated 9
    /// times, by replaying it all, against from the newest snapshot plus a
    /// 1,000-update tail
    Join,
    /// Like insert, but over HTTP: an in-process `ticketlog serve` on
    /// 127.0.0.1 and one keep-alive connection per client, each create
    /// answered before the next
    #[cfg(feature = "serve")]
    HttpInsert,
}

impl Workload {
    /// The name used in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Insert => "insert",
            Workload::Mixed => "mixed",
            Workload::Reopen => "reopen",
            Workload::Memory => "memory",
            Workload::ReopenHistory => "reopen-history",
            Workload::SnapshotLatency => "snapshot-latency",
            Workload::CompactDisk => "compact-disk",
            Workload::Join => "join",
            #[cfg(feature = "serve")]
            Workload::HttpInsert => "http-insert",
        }
    }
}

fn parse_pipeline(input: &str) -> Result<usize, String> {
    match input.parse::<usize>() {
        Ok(depth) if (1..=65_536).contains(&depth) => Ok(depth),
        _ => Err(format!(
            "pipeline depth {input:?} is not valid: use 1 to 65536"
        )),
    }
}

/// `ticketlog load`
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Client threads
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// Tickets per client (0: until killed)
    #[arg(long, default_value_t = 0)]
    pub count: u64,
}

fn parse_title(input: &str) -> Result<TicketTitle, String> {
    TicketTitle::try_from(input).map_err(|e| e.to_string())
}

fn parse_description(input: &str) -> Result<TicketDescription, String> {
    TicketDescription::try_from(input).map_err(|e| e.to_string())
}

fn parse_status(input: &str) -> Result<Status, String> {
    input
        .parse()
        .map_err(|e: ticketlog::TicketError| e.to_string())
}

fn parse_id(input: &str) -> Result<TicketId, String> {
    input
        .parse()
        .map_err(|e: ticketlog::TicketError| e.to_string())
}

fn parse_durability(input: &str) -> Result<Durability, String> {
    input.parse()
}

/// `ticketlog crash-test`
#[derive(Debug, Args)]
pub struct CrashTestArgs {
    /// Kill cycles
    #[arg(long, default_value_t = 20)]
    pub cycles: u64,
    /// Client threads in the child process
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// Seed for the workload and the kill points [default: from the clock; printed]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most acknowledgements to read before a kill (each cycle draws up to this)
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub acks_max: u64,
    /// The child's log segment size, small so that kills land during segment rolls
    #[arg(long, default_value_t = 64 << 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_bytes: u64,
    /// The child snapshots every this many records, often so that kills land
    /// while a snapshot is being written (0: never)
    #[arg(long, default_value_t = 250)]
    pub snapshot_every: u64,
    /// With --nats: the directory of the cluster (started with
    /// .ci/nats-cluster.sh); NATS nodes are then killed and restarted at
    /// random during the cycles too
    #[arg(long, value_name = "DIR")]
    pub nats_cluster: Option<PathBuf>,
    /// The script that kills and restarts the cluster's nodes
    #[arg(long, value_name = "PATH", default_value = ".ci/nats-cluster.sh")]
    pub nats_cluster_script: PathBuf,
}

/// `ticketlog crash-test-worker` (hidden): the child of `crash-test`.
#[derive(Debug, Args)]
pub struct CrashTestWorkerArgs {
    /// Client threads
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// The parent's seed
    #[arg(long)]
    pub seed: u64,
    /// The cycle number
    #[arg(long)]
    pub cycle: u64,
    /// Log segment size
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_bytes: u64,
    /// Snapshot every this many records (0: never)
    #[arg(long)]
    pub snapshot_every: u64,
}

fn parse_retention(input: &str) -> Result<Retention, String> {
    input.parse()
}
