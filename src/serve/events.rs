//! `GET /events?from=<position>`: the committed events as a
//! `text/event-stream`, a thin adapter over the library's live
//! subscriptions — one SSE event per committed event (`id:` its position,
//! `event:` created/updated/deleted, `data:` the wire JSON of `json.rs`),
//! `Last-Event-ID` winning over `from`, comment heartbeats while idle, at
//! most `--sse-clients-max` streams at once, every stream ended on shutdown.
//!
//! Not served yet: the library has no `Client::subscribe` in this build, so
//! the route answers 501 with an error that says so. What it will do is the
//! adapter described above: a subscription per stream read on the blocking
//! pool into a bounded channel, so a slow HTTP client lags its own
//! subscription and never the store.

use axum::http::StatusCode;

use super::error::ApiError;

/// Answers 501 until the library has live subscriptions.
pub(crate) async fn stream() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "GET /events is not available in this build: it needs live subscriptions \
         (Client::subscribe), which this build's library does not have",
    )
}
