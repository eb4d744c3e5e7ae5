//! `GET /events?from=<position>`: the committed events as a
//! `text/event-stream`, a thin adapter over the library's live
//! subscriptions — one SSE event per committed event (`id:` its position,
//! `event:` created/updated/deleted, `data:` the wire JSON of `json.rs`, the
//! same as in a ticket's history), `Last-Event-ID` winning over `from`,
//! comment heartbeats while idle, at most `--sse-clients-max` streams at
//! once, every stream ended on shutdown.
//!
//! Each stream owns one [`Subscription`], started on the blocking pool (the
//! start waits for the server thread) and then read with its
//! [`NextEvent`](ticketlog::NextEvent) future as hyper pulls the body: no
//! thread per stream, and the subscription's own bounded feed is the only
//! buffer. A client that reads slowly stops hyper pulling, its feed fills,
//! and the store closes it as lagged without waiting; the library then goes
//! back to reading the log from the last event this stream sent, so the
//! client sees no gap and no repeat, and the store never waits for it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, watch};

use ticketlog::{ClientError, Position, Subscription};

use super::error::ApiError;
use super::routes::AppState;
use crate::cli::json::EventJson;

/// The header a reconnecting `EventSource` sends with the last `id:` it saw.
const LAST_EVENT_ID: &str = "last-event-id";
/// The text of a heartbeat comment (`: heartbeat`).
const HEARTBEAT_TEXT: &str = "heartbeat";

/// The query of `GET /events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsParams {
    #[serde(default)]
    from: Option<String>,
}

/// Where a stream starts: after this position, or (`None`) at the first
/// record of the log.
fn start_after(headers: &HeaderMap, uri: &Uri) -> Result<Option<Position>, ApiError> {
    let axum::extract::Query(params) = axum::extract::Query::<EventsParams>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_request(format!("the query is not valid: {e}")))?;
    let header = match headers.get(LAST_EVENT_ID) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("Last-Event-ID is not text"))?
                .trim(),
        ),
    };
    // A browser sends the last id it saw, to the URL it first opened: the
    // header is the newer word. An empty one is no id at all.
    let given = header
        .filter(|id| !id.is_empty())
        .map(|id| ("Last-Event-ID", id.to_owned()))
        .or(params.from.map(|from| ("from", from)));
    match given {
        None => Ok(None),
        Some((name, text)) => text.parse::<Position>().map(Some).map_err(|e| {
            ApiError::bad_request(format!(
                "{name}: {e}; it is the position of the last event seen (an SSE id:)"
            ))
        }),
    }
}

/// `GET /events`.
pub(crate) async fn stream(
    State(app): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let after = start_after(&headers, &uri)?;
    let permit = Arc::clone(&app.sse_permits)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                format!(
                    "this server already serves its most event streams at once ({}); try again later",
                    app.sse_clients_max
                ),
            )
        })?;
    let mut shutting_down = app.shutting_down.clone();
    if *shutting_down.borrow_and_update() {
        return Err(ClientError::Closed.into());
    }
    let subscription = app
        .calls
        .query(move |client| match after {
            Some(after) => client.subscribe_after(after),
            None => client.subscribe(0),
        })
        .await?;
    let events = events(Open {
        subscription,
        shutting_down,
        _permit: permit,
    });
    Ok(Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(app.sse_heartbeat)
                .text(HEARTBEAT_TEXT),
        )
        .into_response())
}

/// What an open stream holds; its permit is given back when it is dropped
/// (the stream ended, or the client went away).
struct Open {
    subscription: Subscription,
    shutting_down: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

/// The SSE events of `open`'s subscription, until it ends (the store
/// closed, or failed to read its log) or the server shuts down.
fn events(open: Open) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send {
    stream::unfold(Some(open), |open| async move {
        let mut open = open?;
        loop {
            let next = tokio::select! {
                next = open.subscription.next_event() => next,
                // A dropped sender also means the server is going.
                _ = open.shutting_down.wait_for(|&stopping| stopping) => return None,
            };
            match next {
                Some(Ok(event)) => {
                    // A kind of change this build does not know is skipped,
                    // as in a history (`EventJson::from_event`).
                    let Some(json) = EventJson::from_event(&event) else {
                        continue;
                    };
                    let sse = SseEvent::default()
                        .id(event.position().to_string())
                        .event(json.kind())
                        .json_data(&json);
                    match sse {
                        Ok(sse) => return Some((Ok(sse), Some(open))),
                        Err(error) => {
                            eprintln!("ticketlog: GET /events: encoding an event: {error}");
                            return None;
                        }
                    }
                }
                // The store closed: the client reconnects (with
                // Last-Event-ID) to whatever serves next.
                Some(Err(ClientError::Closed)) | None => return None,
                Some(Err(error)) => {
                    eprintln!("ticketlog: GET /events: the subscription ended: {error}");
                    return None;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn after(query: &str, last_event_id: Option<&str>) -> Result<Option<Position>, StatusCode> {
        let uri: Uri = format!("/events{query}").parse().unwrap();
        let mut headers = HeaderMap::new();
        if let Some(id) = last_event_id {
            headers.insert(LAST_EVENT_ID, HeaderValue::from_str(id).unwrap());
        }
        start_after(&headers, &uri).map_err(|e| e.status)
    }

    #[test]
    fn the_start_is_the_header_then_from_then_the_beginning() {
        let p = |lsn, index| Some(Position { lsn, index });
        assert_eq!(after("", None), Ok(None));
        assert_eq!(after("?from=7.2", None), Ok(p(7, 2)));
        assert_eq!(after("?from=7.2", Some("9.0")), Ok(p(9, 0)));
        assert_eq!(after("?from=7.2", Some("")), Ok(p(7, 2)));
        assert_eq!(after("", Some("3.1")), Ok(p(3, 1)));
        for bad in [
            "?from=7",
            "?from=",
            "?from=x.1",
            "?from=1.2.3",
            "?since=1.0",
        ] {
            assert_eq!(after(bad, None), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
        // The header wins, so a bad one is refused even with a good `from`.
        assert_eq!(
            after("?from=1.0", Some("nope")),
            Err(StatusCode::BAD_REQUEST)
        );
    }
}
