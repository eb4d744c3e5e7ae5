//! The `ticketlog` binary: parse the arguments, resolve them into what to do,
//! run it against the library, print data to stdout and diagnostics to
//! stderr. Every failure ends as one line on stderr and a non-zero exit.

pub(crate) mod args;
mod bench;
mod crash_test;
mod demo;
pub(crate) mod json;
mod load;
mod output;
pub(crate) use output::Output;
pub(crate) mod progress;
mod remote;
mod repair;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use ticketlog::inspect::{self, LogEntry};
use ticketlog::{
    ClientError, Durability, JetStreamOptions, ListQuery, LogBackend, OpenError, Options,
    StorageError, Store, TicketDraft, TicketId, TicketPatch,
};

use args::{Cli, CliCommand, LogCommand, TicketCommand};
use json::{HistoryJson, StatsJson, TicketJson};

/// The data directory when neither `--dir` nor `$TICKETLOG_DIR` is given.
const DIR_DEFAULT: &str = "ticketlog-data";
/// The environment variable naming the data directory.
const DIR_ENV: &str = "TICKETLOG_DIR";
/// The environment variable naming a running server (as `--server` does).
const SERVER_ENV: &str = "TICKETLOG_SERVER";

/// Exit status of a command that failed (bad request, missing ticket, I/O).
const EXIT_FAILURE: u8 = 1;
/// Exit status for a command line that does not parse.
const EXIT_USAGE: u8 = 2;
/// `log verify`/`log dump`: the log has a torn tail.
const EXIT_TORN_TAIL: u8 = 1;
/// `log verify`/`log dump`/`log repair`: the log is corrupt (and was left alone).
pub(crate) const EXIT_CORRUPT: u8 = 2;
/// `log verify`/`log dump`/`log repair`: the log could not be read at all.
pub(crate) const EXIT_UNREADABLE: u8 = 3;

/// Why a command failed; displayed as the one line on stderr.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("closing the store: {0}")]
    Close(#[from] StorageError),
    #[error("taking a snapshot: {0}")]
    Snapshot(StorageError),
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
    #[error("{0}")]
    Failed(String),
}

/// Parses the command line, runs it, and turns the outcome into an exit status.
/// What the binary's optional parts give the CLI, set once by `main.rs`:
/// `serve/` builds on `cli/`, so `cli/` reaches the server only through
/// these (dependencies run one way).
#[cfg(feature = "serve")]
pub struct Services {
    /// `ticketlog serve`.
    pub serve: fn(&Path, Options, &args::ServeArgs, &mut Output) -> Result<ExitCode, CliError>,
    /// Serves `client` on 127.0.0.1 (an ephemeral port) in this process
    /// with room for `connections` connections; returns the address and a
    /// handle that stops the server when dropped (`bench --workload http-insert`).
    pub background: fn(ticketlog::Client, usize) -> Result<Running, CliError>,
}

/// A server running in this process: its address, and a handle that stops
/// it when dropped.
#[cfg(feature = "serve")]
pub type Running = (std::net::SocketAddr, Box<dyn Send>);

#[cfg(feature = "serve")]
static SERVICES: std::sync::OnceLock<Services> = std::sync::OnceLock::new();

/// The services `main` installed.
#[cfg(feature = "serve")]
pub(crate) fn services() -> Option<&'static Services> {
    SERVICES.get()
}

/// Runs the CLI with the HTTP server's `services`.
#[cfg(feature = "serve")]
pub fn main(services: Services) -> ExitCode {
    let _ = SERVICES.set(services);
    run_main()
}

/// Runs the CLI (built without the HTTP server).
#[cfg(not(feature = "serve"))]
pub fn main() -> ExitCode {
    run_main()
}

fn run_main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = error.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    let rendered = error.render().to_string();
                    let first_line = rendered.lines().next().unwrap_or("invalid arguments");
                    let reason = first_line.strip_prefix("error: ").unwrap_or(first_line);
                    eprintln!("ticketlog: {reason} (see 'ticketlog --help')");
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        // Output cut short by a closed pipe (`ticketlog list | head`) is not a failure.
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ticketlog: {error}");
            ExitCode::from(match error {
                CliError::Open(OpenError::Corrupt { .. }) => EXIT_CORRUPT,
                _ => EXIT_FAILURE,
            })
        }
    }
}

fn data_dir(cli_dir: Option<PathBuf>) -> PathBuf {
    cli_dir
        .or_else(|| std::env::var_os(DIR_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DIR_DEFAULT))
}

/// The log backend --nats and --stream chose, for every store this run opens.
static LOG_BACKEND: std::sync::OnceLock<LogBackend> = std::sync::OnceLock::new();

/// The options every verb starts from: the defaults, with the log backend
/// the command line chose.
pub(crate) fn store_options() -> Options {
    Options::default().log_backend(LOG_BACKEND.get().cloned().unwrap_or_default())
}

/// The global arguments that pass on to a child process (crash-test's worker).
pub(crate) fn log_backend_args() -> Vec<String> {
    match LOG_BACKEND.get() {
        Some(LogBackend::JetStream(jetstream)) => vec![
            "--nats".into(),
            jetstream.get_servers().join(","),
            "--stream".into(),
            jetstream.get_stream().into(),
        ],
        _ => Vec::new(),
    }
}

fn log_backend(nats: Vec<String>, stream: Option<String>) -> Result<LogBackend, CliError> {
    match (nats.is_empty(), stream) {
        (true, None) => Ok(LogBackend::Local),
        (false, Some(stream)) => Ok(LogBackend::JetStream(JetStreamOptions::new(nats, stream))),
        (false, None) => Err(CliError::Failed("--nats needs --stream NAME".into())),
        (true, Some(_)) => Err(CliError::Failed(
            "--stream needs --nats URL[,URL...]".into(),
        )),
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let mut out = Output::new(cli.json);
    let backend = log_backend(cli.nats, cli.stream)?;
    // Set once, before any store is opened.
    let _ = LOG_BACKEND.set(backend);
    let server = cli
        .server
        .clone()
        .or_else(|| std::env::var(SERVER_ENV).ok().filter(|url| !url.is_empty()));
    if cli.server.is_some() && !matches!(cli.command, CliCommand::Ticket(_)) {
        return Err(CliError::Failed(
            "--server applies to add, get, list, update, delete, history and stats".into(),
        ));
    }
    match cli.command {
        CliCommand::Ticket(command) => match server {
            Some(server) => run_remote_command(&server, command, &mut out),
            None => run_ticket_command(
                &data_dir(cli.dir),
                store_options()
                    .durability(cli.durability)
                    .retention(cli.retention),
                command,
                &mut out,
            ),
        },
        #[cfg(feature = "serve")]
        CliCommand::Serve(serve_args) => {
            let serve = services()
                .ok_or_else(|| CliError::Failed("this build has no HTTP server".into()))?
                .serve;
            serve(
                &data_dir(cli.dir),
                store_options()
                    .durability(cli.durability)
                    .retention(cli.retention),
                &serve_args,
                &mut out,
            )
        }
        CliCommand::Demo(demo_args) => {
            demo::run(cli.dir.as_deref(), cli.durability, &demo_args, &mut out)
        }
        CliCommand::Bench(bench_args) => {
            bench::run(cli.dir.as_deref(), cli.durability, &bench_args, &mut out)
        }
        CliCommand::Load(load_args) => load::run(&data_dir(cli.dir), cli.durability, &load_args),
        CliCommand::CrashTest(crash_args) => {
            crash_test::run(cli.dir.as_deref(), cli.durability, &crash_args, &mut out)
        }
        CliCommand::CrashTestWorker(worker_args) => {
            crash_test::run_worker(&data_dir(cli.dir), cli.durability, &worker_args)
        }
        CliCommand::Log { command } => run_log(&data_dir(cli.dir), command, &mut out),
    }
}

/// Opens the store, runs one command or query, prints the outcome, closes.
fn run_ticket_command(
    dir: &Path,
    options: Options,
    command: TicketCommand,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let bars = progress::StepBars::start();
    let reads_only = matches!(
        command,
        TicketCommand::Get { .. }
            | TicketCommand::List { .. }
            | TicketCommand::Stats
            | TicketCommand::History { .. }
    );
    let options = bars.install(options);
    let store = match open_store_with(dir, options.clone()) {
        // Another process has the store open: a read looks at it read-only.
        Err(CliError::Open(OpenError::AlreadyOpen { .. })) if reads_only => {
            let store = Store::open_read_only(dir, options)?;
            let read_to = store.client().stats()?.last_lsn;
            eprintln!(
                "ticketlog: {} is open in another process: read it read-only, up to LSN {read_to}",
                dir.display()
            );
            store
        }
        opened => opened?,
    };
    let outcome = match command {
        TicketCommand::Snapshot => store
            .snapshot()
            .map_err(CliError::Snapshot)
            .and_then(|info| Ok(out.snapshot(&info)?)),
        TicketCommand::Compact => store
            .compact()
            .map_err(CliError::Snapshot)
            .and_then(|info| Ok(out.compaction(&info)?)),
        command => run_on(&store.client(), command, out),
    };
    // Close even after a failed command, so the store shuts down cleanly; the
    // command's own error is the one worth reporting.
    let closed = store.close();
    outcome?;
    closed?;
    Ok(ExitCode::SUCCESS)
}

/// Runs one command or query against a running `ticketlog serve`.
fn run_remote_command(
    server: &str,
    command: TicketCommand,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    if matches!(command, TicketCommand::Snapshot | TicketCommand::Compact) {
        return Err(CliError::Failed(
            "snapshot and compact run only on a store opened here, not with --server".into(),
        ));
    }
    run_on(&remote::RemoteStore::new(server)?, command, out)?;
    Ok(ExitCode::SUCCESS)
}

/// Where a ticket command runs: a store opened in this process, or a
/// running `ticketlog serve`. Both answer in the wire types, so both print
/// the same.
pub(crate) trait TicketStore {
    fn create(&self, draft: TicketDraft) -> Result<TicketJson, CliError>;
    /// The ticket, or `ClientError::NotFound`.
    fn get(&self, id: TicketId) -> Result<TicketJson, CliError>;
    fn list(&self, query: ListQuery) -> Result<Vec<TicketJson>, CliError>;
    fn update(&self, id: TicketId, patch: TicketPatch) -> Result<TicketJson, CliError>;
    fn delete(&self, id: TicketId) -> Result<TicketJson, CliError>;
    fn stats(&self) -> Result<StatsJson, CliError>;
    fn history(&self, id: TicketId) -> Result<HistoryJson, CliError>;
}

impl TicketStore for ticketlog::Client {
    fn create(&self, draft: TicketDraft) -> Result<TicketJson, CliError> {
        Ok(TicketJson::from(&ticketlog::Client::create(self, draft)?))
    }

    fn get(&self, id: TicketId) -> Result<TicketJson, CliError> {
        match ticketlog::Client::get(self, id)? {
            Some(ticket) => Ok(TicketJson::from(&ticket)),
            None => Err(ClientError::NotFound(id).into()),
        }
    }

    fn list(&self, query: ListQuery) -> Result<Vec<TicketJson>, CliError> {
        Ok(ticketlog::Client::list(self, query)?
            .iter()
            .map(TicketJson::from)
            .collect())
    }

    fn update(&self, id: TicketId, patch: TicketPatch) -> Result<TicketJson, CliError> {
        Ok(TicketJson::from(&ticketlog::Client::update(
            self, id, patch,
        )?))
    }

    fn delete(&self, id: TicketId) -> Result<TicketJson, CliError> {
        Ok(TicketJson::from(&ticketlog::Client::delete(self, id)?))
    }

    fn stats(&self) -> Result<StatsJson, CliError> {
        Ok(StatsJson::from(&ticketlog::Client::stats(self)?))
    }

    fn history(&self, id: TicketId) -> Result<HistoryJson, CliError> {
        Ok(HistoryJson::new(id.get(), &self.history_with_start(id)?))
    }
}

/// Runs a command that needs only a [`TicketStore`] and prints its outcome.
fn run_on(
    store: &impl TicketStore,
    command: TicketCommand,
    out: &mut Output,
) -> Result<(), CliError> {
    match command {
        TicketCommand::Add { title, description } => {
            out.ticket(&store.create(TicketDraft { title, description })?)?;
        }
        TicketCommand::Get { id } => out.ticket(&store.get(id)?)?,
        TicketCommand::List {
            status,
            after,
            limit,
        } => {
            for ticket in store.list(ListQuery {
                status,
                after,
                limit,
            })? {
                out.ticket(&ticket)?;
            }
        }
        TicketCommand::Update {
            id,
            title,
            description,
            status,
            expect_version,
        } => out.ticket(&store.update(
            id,
            TicketPatch {
                title,
                description,
                status,
                expected_version: expect_version,
            },
        )?)?,
        TicketCommand::Delete { id } => out.ticket(&store.delete(id)?)?,
        TicketCommand::Stats => out.stats(&store.stats()?)?,
        TicketCommand::History { id } => out.history(&store.history(id)?)?,
        TicketCommand::Snapshot | TicketCommand::Compact => {
            return Err(CliError::Failed(
                "snapshot and compact need the store itself".into(),
            ));
        }
    }
    Ok(())
}

/// Opens the store with default options but `durability`.
pub(crate) fn open_store(dir: &Path, durability: Durability) -> Result<Store, CliError> {
    open_store_with(dir, store_options().durability(durability))
}

/// Opens the store, telling stderr about any torn tail that recovery cut off
/// and any damaged snapshot it skipped.
pub(crate) fn open_store_with(dir: &Path, options: Options) -> Result<Store, CliError> {
    let store = Store::open(dir, options)?;
    let recovery = store.recovery();
    if let Some(torn) = &recovery.torn_tail {
        eprintln!(
            "ticketlog: recovered {}: cut {} bytes of torn tail at byte {} ({})",
            dir.display(),
            torn.bytes,
            torn.offset,
            torn.damage
        );
    }
    for rejected in &recovery.snapshots_rejected {
        eprintln!(
            "ticketlog: skipped damaged snapshot {} (at byte {}: {}); {}",
            rejected.path.display(),
            rejected.offset,
            rejected.damage,
            recovery.snapshot.as_ref().map_or_else(
                || "replayed the whole log instead".to_string(),
                |used| format!("used the snapshot at lsn {} instead", used.lsn)
            )
        );
    }
    Ok(store)
}

fn run_log(dir: &Path, command: LogCommand, out: &mut Output) -> Result<ExitCode, CliError> {
    let mut output_error: Option<io::Error> = None;
    let is_verify = matches!(command, LogCommand::Verify);
    let report = match command {
        LogCommand::Repair {
            drop_after_corruption,
        } => return repair::run(dir, drop_after_corruption, out),
        LogCommand::Verify => inspect::read_log_live(dir, 1..=u64::MAX, |_| {}),
        LogCommand::Dump { from_lsn, to_lsn } => {
            let lsns = from_lsn.unwrap_or(1)..=to_lsn.unwrap_or(u64::MAX);
            inspect::read_log_live(dir, lsns, |entry: &LogEntry| {
                if output_error.is_none()
                    && let Err(e) = out.log_entry(entry)
                {
                    output_error = Some(e);
                }
            })
        }
    };
    if let Some(e) = output_error {
        return Err(e.into());
    }
    match report {
        Ok(report) if report.live => {
            // Another process is writing: what was read is a moment of the
            // log, and its end may be a write in progress, not damage.
            if is_verify {
                out.log_report(&report)?;
            }
            eprintln!(
                "ticketlog: {} is open in another process: read it read-only, up to LSN {}{}",
                dir.display(),
                report.scan.next_lsn - 1,
                if report.scan.torn_tail.is_some() {
                    " (a write was in progress at the end)"
                } else {
                    ""
                }
            );
            let damaged_snapshot = report.snapshots.iter().any(|c| c.result.is_err());
            Ok(ExitCode::from(if damaged_snapshot {
                EXIT_CORRUPT
            } else {
                0
            }))
        }
        Ok(report) => {
            if is_verify {
                out.log_report(&report)?;
            } else if let Some(torn) = &report.scan.torn_tail {
                eprintln!(
                    "ticketlog: torn tail: {} bytes at byte {} ({})",
                    torn.bytes, torn.offset, torn.damage
                );
            }
            if report.scan.torn_tail.is_some() {
                eprintln!(
                    "ticketlog: `ticketlog log repair` cuts the torn tail (opening the store does too)"
                );
            }
            let mut damaged_snapshot = false;
            for check in &report.snapshots {
                if let Err((offset, damage)) = &check.result {
                    damaged_snapshot = true;
                    eprintln!(
                        "ticketlog: {} is corrupt at byte {offset}: {damage}",
                        check.path.display()
                    );
                }
            }
            Ok(ExitCode::from(if damaged_snapshot {
                EXIT_CORRUPT
            } else if report.scan.torn_tail.is_some() {
                EXIT_TORN_TAIL
            } else {
                0
            }))
        }
        Err(error @ OpenError::Corrupt { .. }) => {
            // One line: what is wrong, and which repair (if any) applies.
            let hint = match &error {
                OpenError::Corrupt {
                    damage: ticketlog::Damage::UnsupportedVersion { .. },
                    ..
                } => "do not repair it: a newer ticketlog can read it".to_string(),
                OpenError::Corrupt { offset, .. } => format!(
                    "`ticketlog log repair --drop-after-corruption` cuts the log at byte \
                     {offset}, dropping every record from there (saved beside the log)"
                ),
                _ => String::new(),
            };
            eprintln!("ticketlog: {error}; {hint}");
            Ok(ExitCode::from(EXIT_CORRUPT))
        }
        Err(error) => {
            eprintln!("ticketlog: {error}");
            Ok(ExitCode::from(EXIT_UNREADABLE))
        }
    }
}

/// The seed given, or one from the clock (printed by the caller, so a run
/// can be replayed).
pub(crate) fn seed_or_clock(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64)
    })
}

/// `dir` if given, else a fresh temporary directory named with `prefix`,
/// removed when the returned guard is dropped.
pub(crate) fn dir_or_temp(
    dir: Option<&Path>,
    prefix: &str,
) -> Result<(PathBuf, Option<tempfile::TempDir>), CliError> {
    match dir {
        Some(dir) => Ok((dir.to_path_buf(), None)),
        None => {
            let temp = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .map_err(|e| CliError::Failed(format!("creating a temporary directory: {e}")))?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}
