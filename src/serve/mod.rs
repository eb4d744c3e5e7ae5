//! `ticketlog serve`: one store over HTTP/1.1 with JSON bodies, on tokio and
//! axum. A thin edge over the library's public [`ticketlog::Client`]: it
//! parses and validates a request, makes one call, and maps the typed
//! outcome to a status code in one place (`error.rs`).
//!
//! Layout: `config.rs` turns the command line into a checked [`ServeConfig`];
//! `http.rs` accepts connections (bounded by a semaphore, mini-redis style)
//! and drains them on shutdown; `routes.rs` holds the handlers; `calls.rs`
//! runs the blocking client calls off the async workers; `auth.rs` checks
//! the bearer token; `events.rs` is the SSE adapter; `error.rs` the error
//! replies. The wire types are `cli/json.rs`, shared with `--json` and
//! `--server`; `docs/openapi.json` is their contract.
//!
//! This module never touches the store's files and never blocks an async
//! worker on a channel: every `Client` call goes through `calls.rs`.

mod auth;
mod calls;
mod config;
mod console;
mod error;
mod events;
mod http;
mod routes;
mod store_facts;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use ticketlog::Options;

use crate::cli::args::ServeArgs;
use crate::cli::{CliError, Output, open_store_with};

pub(crate) use config::ServeConfig;
pub(crate) use store_facts::StoreFacts;

/// The OpenAPI 3.1 document of the HTTP interface, served at `GET /openapi.json`.
pub(crate) const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// Runs `ticketlog serve` until SIGINT or SIGTERM, then closes the store.
pub(crate) fn run(
    dir: &Path,
    options: Options,
    args: &ServeArgs,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let config = ServeConfig::from_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Blocking client calls are bounded by `calls.rs`; this is only a cap.
        .max_blocking_threads(config.blocking_calls_max() + 8)
        .thread_name("ticketlog-http")
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("starting the async runtime: {e}")))?;
    // Catch the stop signals before the address is printed: whoever reads
    // it may signal at once.
    let stop = {
        let _runtime = runtime.enter();
        http::StopSignals::install()
            .map_err(|e| CliError::Failed(format!("installing signal handlers: {e}")))?
    };
    // Bind before opening the store, so a taken port changes nothing on disk.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.listen))
        .map_err(|e| CliError::Failed(format!("listening on {}: {e}", config.listen)))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("reading the bound address: {e}")))?;
    let (durability, retention) = (options.get_durability(), options.get_retention());
    let store = open_store_with(dir, options)?;
    let facts = Some(StoreFacts::new(store.recovery(), durability, retention));
    let url = format!("http://{local_addr}");
    if out.is_json() {
        out.json_line(&serde_json::json!({ "listening": url }))?;
    } else {
        out.text(&format!("listening on {url}"))?;
    }
    std::io::stdout().flush()?;
    eprintln!(
        "ticketlog: serving {} on {url}{}; SIGINT or SIGTERM stops",
        dir.display(),
        if config.token.is_some() {
            " (bearer token required)"
        } else {
            ""
        }
    );
    let served = runtime.block_on(http::serve_until(
        listener,
        store.client(),
        config,
        facts,
        stop.recv(),
    ));
    // Every connection is drained and every handler's client is dropped:
    // nothing waits for the store any more.
    runtime.shutdown_background();
    let closed = store.close();
    served.map_err(|e| CliError::Failed(format!("serving: {e}")))?;
    closed?;
    eprintln!("ticketlog: stopped; the store is closed");
    Ok(ExitCode::SUCCESS)
}

/// [`Background::start`] on 127.0.0.1 with room for `connections`, as
/// `cli::Services::background` wants it.
pub(crate) fn background(
    client: ticketlog::Client,
    connections: usize,
) -> Result<crate::cli::Running, CliError> {
    let server = Background::start(
        client,
        ServeConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            connections_max: connections,
            request_timeout: std::time::Duration::from_secs(60),
            sse_clients_max: 1,
            sse_heartbeat: std::time::Duration::from_secs(15),
        },
        None,
    )?;
    Ok((server.addr, Box::new(server)))
}

/// A server run on its own runtime thread, in this process, on a real
/// socket: for `bench --workload http-insert` and the in-process tests.
/// Stopped (drained) and joined on drop.
pub(crate) struct Background {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Serves `client` on `config.listen`; returns once the socket is bound.
    /// `facts` (how the store was opened) are reported by `GET /health`.
    pub fn start(
        client: ticketlog::Client,
        config: ServeConfig,
        facts: Option<StoreFacts>,
    ) -> Result<Background, CliError> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ticketlog-http-main".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("ticketlog-http")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = bound_tx.send(Err(format!("starting the async runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind(config.listen)
                        .await
                        .and_then(|l| Ok((l.local_addr()?, l)))
                    {
                        Ok((addr, listener)) => {
                            let _ = bound_tx.send(Ok(addr));
                            listener
                        }
                        Err(e) => {
                            let _ =
                                bound_tx.send(Err(format!("listening on {}: {e}", config.listen)));
                            return;
                        }
                    };
                    let stop = async {
                        let _ = stopped.await;
                    };
                    if let Err(e) = http::serve_until(listener, client, config, facts, stop).await {
                        eprintln!("ticketlog: serving: {e}");
                    }
                });
            })
            .map_err(|e| CliError::Failed(format!("starting the server thread: {e}")))?;
        let addr = bound
            .recv()
            .map_err(|_| CliError::Failed("the server thread stopped before binding".into()))?
            .map_err(CliError::Failed)?;
        Ok(Background {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
