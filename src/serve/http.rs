//! Accepting and draining connections (mini-redis `server.rs`): a semaphore
//! bounds the open connections — past the bound, new ones wait in the
//! kernel's backlog — and hyper bounds each connection's request head and the
//! time to send it (which also ends idle keep-alive connections). On SIGINT
//! or SIGTERM the listener closes, open event streams are told to end, and
//! every connection finishes the request it is serving before it closes,
//! within the request time limit and a second.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Semaphore, watch};

use ticketlog::Client;

use super::config::{HEADER_BYTES_MAX, HEADER_READ_TIMEOUT, ServeConfig};
use super::routes::{self, App};
use super::store_facts::StoreFacts;

/// How long the accept loop waits after a failed `accept` (e.g. out of file
/// descriptors) before trying again, so it does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// SIGINT and SIGTERM, caught from the moment this is made (so a signal that
/// arrives before the server runs is not lost, nor does it kill the process).
pub(crate) struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Installs the handlers; must run inside the tokio runtime.
    pub fn install() -> io::Result<Self> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the first of the two.
    pub async fn recv(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Serves `client` on `listener` until `stop` completes, then drains.
pub(crate) async fn serve_until(
    listener: TcpListener,
    client: Client,
    config: ServeConfig,
    facts: Option<StoreFacts>,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let (shutting_down_tx, shutting_down) = watch::channel(false);
    let app = Arc::new(App::new(client, &config, facts, shutting_down));
    let router = routes::router(Arc::clone(&app));
    let connections = Arc::new(Semaphore::new(config.connections_max.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(HEADER_BYTES_MAX.max(8192))
        .keep_alive(true);
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed.
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    eprintln!("ticketlog: accepting a connection: {error}");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection that ends badly (reset, slow headers) concerns
            // only its client.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = shutting_down_tx.send(true);
    let drain_limit = config.request_timeout + Duration::from_secs(1);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain_limit) => {
            eprintln!(
                "ticketlog: some connections were still open {} ms after shutdown began; closing them",
                drain_limit.as_millis()
            );
        }
    }
    drop(router);
    drop(app);
    Ok(())
}
