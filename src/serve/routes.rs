//! The routes and their handlers. Each handler parses what the client sent
//! (400 for anything malformed), builds the library's validated types (422
//! for a value the domain refuses), makes one call through `calls.rs`, and
//! answers with the wire types; `error.rs` maps every failure.
//!
//! Nothing here allocates from a client's numbers without a bound: bodies
//! are read up to [`BODY_BYTES_MAX`], pages hold at most [`PAGE_LIMIT_MAX`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, watch};

use ticketlog::{
    Client, ClientError, Command, ListQuery, Status, Ticket, TicketDescription, TicketDraft,
    TicketError, TicketId, TicketPatch, TicketTitle,
};

use super::calls::StoreCalls;
use super::config::{BODY_BYTES_MAX, ServeConfig};
use super::error::ApiError;
use super::store_facts::StoreFacts;
use super::{OPENAPI_JSON, auth, console, events};
use crate::cli::json::{HealthJson, HistoryJson, PageJson, StatsJson, TicketJson, TicketsJson};

/// The page size of `GET /tickets` when no `limit` is given.
pub(crate) const PAGE_LIMIT_DEFAULT: usize = 100;
/// The largest `limit` of `GET /tickets`.
pub(crate) const PAGE_LIMIT_MAX: usize = 1000;

/// What every handler shares.
pub(crate) struct App {
    pub calls: StoreCalls,
    pub token: Option<String>,
    pub request_timeout: Duration,
    /// How the store was opened and what its recovery did.
    pub facts: Option<StoreFacts>,
    /// One permit per open `GET /events` stream.
    pub sse_permits: Arc<Semaphore>,
    /// How many permits `sse_permits` started with.
    pub sse_clients_max: usize,
    /// How long an event stream may be idle before a heartbeat comment.
    pub sse_heartbeat: Duration,
    /// Turns true when the server begins to shut down (ends SSE streams).
    pub shutting_down: watch::Receiver<bool>,
}

/// The shared state handed to handlers.
pub(crate) type AppState = Arc<App>;

impl App {
    pub fn new(
        client: Client,
        config: &ServeConfig,
        facts: Option<StoreFacts>,
        shutting_down: watch::Receiver<bool>,
    ) -> Self {
        App {
            calls: StoreCalls::new(client, config.blocking_calls_max()),
            token: config.token.clone(),
            request_timeout: config.request_timeout,
            facts,
            sse_permits: Arc::new(Semaphore::new(config.sse_clients_max)),
            sse_clients_max: config.sse_clients_max,
            sse_heartbeat: config.sse_heartbeat,
            shutting_down,
        }
    }
}

/// Every route: the API with the token check and (except for the event
/// stream) the request time limit, and the console's files.
pub(crate) fn router(app: AppState) -> Router {
    let timed = Router::new()
        .route("/tickets", post(create).get(list))
        .route("/tickets/batch", post(create_batch))
        .route(
            "/tickets/{id}",
            get(get_ticket).patch(update).delete(delete),
        )
        .route("/tickets/{id}/history", get(history))
        .route("/stats", get(stats))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route_layer(from_fn_with_state(Arc::clone(&app), time_limit));
    let streams = Router::new().route("/events", get(events::stream));
    // The console's files hold no data and must load before the page can
    // ask for a token: they are outside the token check.
    timed
        .merge(streams)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(Arc::clone(&app), auth::require_token))
        .merge(console::router())
        .with_state(app)
}

/// Middleware: a request that takes longer than the limit is answered 503.
async fn time_limit(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(app.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timeout(app.request_timeout.as_millis()).into_response(),
    }
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "there is no {method} {}: see GET /openapi.json",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not take {method}: see GET /openapi.json",
            uri.path()
        ),
    )
}

/// `POST /tickets` and each element of `POST /tickets/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    title: String,
    description: String,
}

impl CreateRequest {
    fn into_draft(self) -> Result<TicketDraft, ApiError> {
        Ok(TicketDraft {
            title: TicketTitle::try_from(self.title).map_err(|e| ApiError::invalid(&e))?,
            description: TicketDescription::try_from(self.description)
                .map_err(|e| ApiError::invalid(&e))?,
        })
    }
}

/// `POST /tickets/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    tickets: Vec<CreateRequest>,
}

/// `PATCH /tickets/{id}`: each field given is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRequest {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// The query of `GET /tickets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

async fn create(State(app): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let draft = read_json::<CreateRequest>(body).await?.into_draft()?;
    let ticket = app
        .calls
        .submit(move |client| client.try_submit(Command::Create(draft)))
        .await?;
    Ok(ticket_reply(StatusCode::CREATED, &ticket, true))
}

async fn create_batch(State(app): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let request = read_json::<BatchRequest>(body).await?;
    if request.tickets.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "invalid request: a batch needs at least one ticket",
        ));
    }
    if request.tickets.len() > ticketlog::CREATE_MANY_MAX {
        return Err(ApiError::invalid(&TicketError::BatchTooLarge {
            count: request.tickets.len(),
            max: ticketlog::CREATE_MANY_MAX,
        }));
    }
    let drafts = request
        .tickets
        .into_iter()
        .map(CreateRequest::into_draft)
        .collect::<Result<Vec<_>, _>>()?;
    // `create_many` has no refusing variant: it waits for room in the queue,
    // on the blocking pool, bounded by the request time limit.
    let tickets = app
        .calls
        .command(move |client| client.create_many(drafts))
        .await?;
    let body = TicketsJson {
        tickets: tickets.iter().map(TicketJson::from).collect(),
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn get_ticket(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let ticket = app.calls.query(move |client| client.get(id)).await?;
    match ticket {
        Some(ticket) => Ok(ticket_reply(StatusCode::OK, &ticket, false)),
        None => Err(ClientError::NotFound(id).into()),
    }
}

async fn list(State(app): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let Query(params) = Query::<ListParams>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(format!("the query is not valid: {e}")))?;
    let status = params
        .status
        .map(|status| status.parse::<Status>())
        .transpose()
        .map_err(|e| ApiError::invalid(&e))?;
    let after = params.after.map(|after| parse_id(&after)).transpose()?;
    let limit = match params.limit {
        None => PAGE_LIMIT_DEFAULT,
        Some(limit) => match limit.parse::<usize>() {
            Ok(limit) if (1..=PAGE_LIMIT_MAX).contains(&limit) => limit,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit {limit:?} is not valid: use 1 to {PAGE_LIMIT_MAX}"
                )));
            }
        },
    };
    // One more than the page, to know whether there is a next one.
    let mut tickets = app
        .calls
        .query(move |client| {
            client.list(ListQuery {
                status,
                after,
                limit: Some(limit + 1),
            })
        })
        .await?;
    let next_after = if tickets.len() > limit {
        tickets.truncate(limit);
        tickets.last().map(|ticket| ticket.id.get())
    } else {
        None
    };
    let page = PageJson {
        tickets: tickets.iter().map(TicketJson::from).collect(),
        next_after,
    };
    Ok(axum::Json(page).into_response())
}

async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let expected_version = if_match(&headers)?;
    let request = read_json::<PatchRequest>(body).await?;
    let patch = TicketPatch {
        title: request
            .title
            .map(TicketTitle::try_from)
            .transpose()
            .map_err(|e| ApiError::invalid(&e))?,
        description: request
            .description
            .map(TicketDescription::try_from)
            .transpose()
            .map_err(|e| ApiError::invalid(&e))?,
        status: request
            .status
            .map(|status| status.parse::<Status>())
            .transpose()
            .map_err(|e| ApiError::invalid(&e))?,
        expected_version,
    };
    let change = app.calls.ticket_shared(id).await;
    let ticket = app
        .calls
        .submit_holding(change, move |client| {
            client.try_submit(Command::Update(id, patch))
        })
        .await?;
    Ok(ticket_reply(StatusCode::OK, &ticket, false))
}

async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let ticket = match if_match(&headers)? {
        None => {
            let change = app.calls.ticket_shared(id).await;
            app.calls
                .submit_holding(change, move |client| client.try_submit(Command::Delete(id)))
                .await?
        }
        Some(expected) => {
            // The library's delete takes no expected version: check it and
            // delete in one call while no other change of this ticket can
            // run (this server is the store's only writer: it holds the
            // store's lock).
            let exclusive = app.calls.ticket_exclusive(id).await;
            app.calls
                .command_holding(exclusive, move |client| {
                    let current = client.get(id)?.ok_or(ClientError::NotFound(id))?;
                    if current.version != expected {
                        return Err(ClientError::Conflict {
                            id,
                            expected,
                            actual: current.version,
                        });
                    }
                    client.try_delete(id)
                })
                .await?
        }
    };
    Ok(ticket_reply(StatusCode::OK, &ticket, false))
}

async fn history(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let history = app
        .calls
        .query(move |client| client.history_with_start(id))
        .await?;
    Ok(axum::Json(HistoryJson::new(id.get(), &history)).into_response())
}

async fn stats(State(app): State<AppState>) -> Result<Response, ApiError> {
    let stats = app.calls.query(|client| client.stats()).await?;
    Ok(axum::Json(StatsJson::from(&stats)).into_response())
}

async fn health(State(app): State<AppState>) -> Response {
    let refusing = app.calls.refusing_writes();
    let status = if refusing.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = HealthJson {
        status: if refusing.is_some() {
            "refusing-writes"
        } else {
            "ok"
        }
        .to_owned(),
        reason: refusing,
        durability: app.facts.as_ref().map(|facts| facts.durability.clone()),
        retention: app.facts.as_ref().map(|facts| facts.retention.clone()),
        recovery: app.facts.as_ref().map(|facts| facts.recovery.clone()),
    };
    (status, axum::Json(body)).into_response()
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

/// A ticket reply with its `ETag` (and, for a creation, its `Location`).
fn ticket_reply(status: StatusCode, ticket: &Ticket, location: bool) -> Response {
    let mut response = (status, axum::Json(TicketJson::from(ticket))).into_response();
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", ticket.version)) {
        headers.insert(header::ETAG, etag);
    }
    if location && let Ok(path) = HeaderValue::from_str(&format!("/tickets/{}", ticket.id)) {
        headers.insert(header::LOCATION, path);
    }
    response
}

/// A ticket id in a path or query: a positive whole number (else 400).
fn parse_id(input: &str) -> Result<TicketId, ApiError> {
    input
        .parse::<TicketId>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The version `If-Match: "<version>"` asks for; `None` without the header
/// or with `*` (any version).
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let refused = || {
        ApiError::bad_request(
            "If-Match must be one version in quotes, as the ETag gives it (e.g. \"3\"), or *",
        )
    };
    let value = value.to_str().map_err(|_| refused())?.trim();
    if value == "*" {
        return Ok(None);
    }
    value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(refused)
}

/// Reads a JSON object body of at most [`BODY_BYTES_MAX`] bytes (413 past
/// it) and decodes it as `T` (400 for anything malformed, of the wrong type,
/// or with unknown fields).
async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if bytes.len() + chunk.len() > BODY_BYTES_MAX {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is over the limit of {BODY_BYTES_MAX} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_one_quoted_version_or_a_star() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
            if_match(&headers).map_err(|e| e.status)
        };
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(with("\"3\"").unwrap(), Some(3));
        assert_eq!(with("*").unwrap(), None);
        for bad in [
            "3",
            "W/\"3\"",
            "\"\"",
            "\"-1\"",
            "\"1\", \"2\"",
            "\"99999999999999999999\"",
        ] {
            assert_eq!(with(bad), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
    }
}
