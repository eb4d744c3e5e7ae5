//! Calls into the store from async handlers, two ways:
//! - a single command is submitted without blocking (`Client::try_submit`:
//!   a full request queue is answered at once with 503 and `Retry-After`,
//!   as the `try_*` calls always were) and its [`PendingReply`] — a
//!   `Future` the server thread wakes — is awaited on the async worker: no
//!   thread is parked per request ([`StoreCalls::submit`]);
//! - everything else (queries, create-many, a delete with `If-Match`) is a
//!   blocking `Client` call, run on tokio's blocking pool, never on an async
//!   worker; a semaphore bounds how many run at once.
//!
//! Also kept here: whether the store still takes writes (`GET /health`),
//! and the per-ticket locks that make a `DELETE` with `If-Match` atomic.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, Semaphore};

use ticketlog::{Client, ClientError, PendingReply, TicketId};

use super::error::ApiError;

/// How many stripes the ticket locks have: ids are spread over them, so
/// unrelated tickets rarely share one.
const TICKET_LOCK_STRIPES: usize = 64;

/// The store as the handlers see it.
pub(crate) struct StoreCalls {
    client: Client,
    permits: Arc<Semaphore>,
    /// Why the store refuses writes, once a command failed in storage.
    refusing_writes: Mutex<Option<String>>,
    ticket_locks: Vec<Arc<RwLock<()>>>,
}

impl StoreCalls {
    pub fn new(client: Client, calls_max: usize) -> Self {
        StoreCalls {
            client,
            permits: Arc::new(Semaphore::new(calls_max.max(1))),
            refusing_writes: Mutex::new(None),
            ticket_locks: (0..TICKET_LOCK_STRIPES)
                .map(|_| Arc::new(RwLock::new(())))
                .collect(),
        }
    }

    /// Runs a query (it changes nothing) on the blocking pool.
    pub async fn query<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Client) -> Result<T, ClientError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.call(call).await
    }

    /// Runs a command on the blocking pool; a storage failure is remembered,
    /// since the store refuses every write after one (`GET /health`).
    pub async fn command<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Client) -> Result<T, ClientError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.command_holding((), call).await
    }

    /// Like [`Self::command`], holding `guard` (a ticket lock) until the
    /// call has returned — also when the request times out first, since the
    /// call then still runs to its end.
    pub async fn command_holding<T: Send + 'static, G: Send + 'static>(
        &self,
        guard: G,
        call: impl FnOnce(&Client) -> Result<T, ClientError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let outcome = self
            .call(move |client| {
                let outcome = call(client);
                drop(guard);
                outcome
            })
            .await;
        self.remember_failure(&outcome);
        outcome
    }

    /// Submits one command with `submit`, which must not block (a
    /// `Client::try_submit`), and awaits its reply on this task. A storage
    /// failure is remembered, as for [`Self::command`].
    pub async fn submit<T: Send + 'static>(
        &self,
        submit: impl FnOnce(&Client) -> Result<PendingReply<T>, ClientError>,
    ) -> Result<T, ApiError> {
        self.submit_holding((), submit).await
    }

    /// Like [`Self::submit`], holding `guard` (a ticket lock) until the
    /// reply has come — also when the request times out first: the wait
    /// runs in a task of its own, which a dropped request does not cancel.
    pub async fn submit_holding<T: Send + 'static, G: Send + 'static>(
        &self,
        guard: G,
        submit: impl FnOnce(&Client) -> Result<PendingReply<T>, ClientError>,
    ) -> Result<T, ApiError> {
        let outcome = match submit(&self.client) {
            Err(error) => Err(ApiError::from(error)),
            Ok(pending) => {
                let waited = tokio::spawn(async move {
                    let outcome = pending.await;
                    drop(guard);
                    outcome
                })
                .await;
                match waited {
                    Ok(outcome) => outcome.map_err(ApiError::from),
                    Err(join_error) => Err(ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("the store call failed: {join_error}"),
                    )),
                }
            }
        };
        self.remember_failure(&outcome);
        outcome
    }

    fn remember_failure<T>(&self, outcome: &Result<T, ApiError>) {
        if let Err(error) = outcome
            && error.is_storage_failure()
        {
            let mut refusing = self
                .refusing_writes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            refusing.get_or_insert_with(|| error.message.clone());
        }
    }

    /// `None` while the store takes writes, else why it does not.
    pub fn refusing_writes(&self) -> Option<String> {
        self.refusing_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Held by every change of ticket `id` (many at once).
    pub async fn ticket_shared(&self, id: TicketId) -> OwnedRwLockReadGuard<()> {
        Arc::clone(self.stripe(id)).read_owned().await
    }

    /// Held by a read-then-delete of ticket `id`, so that no other change of
    /// it lands between the version check and the delete.
    pub async fn ticket_exclusive(&self, id: TicketId) -> OwnedRwLockWriteGuard<()> {
        Arc::clone(self.stripe(id)).write_owned().await
    }

    fn stripe(&self, id: TicketId) -> &Arc<RwLock<()>> {
        // `id % len` is always an index into the non-empty stripes.
        &self.ticket_locks[(id.get() % self.ticket_locks.len() as u64) as usize]
    }

    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Client) -> Result<T, ClientError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::from(ClientError::Closed))?;
        let client = self.client.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            call(&client)
        })
        .await;
        match joined {
            Ok(outcome) => outcome.map_err(ApiError::from),
            Err(join_error) => Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the store call failed: {join_error}"),
            )),
        }
    }
}
