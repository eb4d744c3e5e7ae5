//! `--server URL`: the ticket commands against a running `ticketlog serve`,
//! over blocking HTTP/1.1 (ureq, plain `http://`). Requests and replies are
//! the wire types of `json.rs`; an error reply becomes the server's message,
//! which for a command the library refused is the library's own sentence, so
//! stderr reads as it does for a local store.
//!
//! A bearer token, when the server needs one, comes from `$TICKETLOG_TOKEN`
//! (an environment variable, not a flag, so it stays out of process lists).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::json;
use ticketlog::{ListQuery, TicketDraft, TicketId, TicketPatch};

use super::CliError;
use super::TicketStore;
use super::json::{ErrorBodyJson, HistoryJson, PageJson, StatsJson, TicketJson};

/// The environment variable holding the server's bearer token.
const TOKEN_ENV: &str = "TICKETLOG_TOKEN";
/// The largest reply read: a page of 1,000 tickets of the largest size is
/// well under this.
const REPLY_BYTES_MAX: u64 = 16 << 20;
/// The server's largest page.
const PAGE_LIMIT_MAX: usize = 1000;
/// The longest a request may take, reply included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A running server, as the CLI talks to it.
pub(crate) struct RemoteStore {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl RemoteStore {
    /// A store at `url` (`http://host:port`, a trailing `/` allowed).
    pub fn new(url: &str) -> Result<Self, CliError> {
        let base = url.trim_end_matches('/');
        if !base.starts_with("http://") || base.len() == "http://".len() {
            return Err(CliError::Failed(format!(
                "--server {url:?} is not valid: use http://HOST:PORT"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(RemoteStore {
            agent,
            base: base.to_owned(),
            token: std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
        })
    }

    /// Sends one request and decodes a 2xx reply as `T`; any other status
    /// becomes the error message the server sent.
    fn request<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        if_match: Option<u64>,
    ) -> Result<T, CliError> {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(version) = if_match {
            builder = builder.header("If-Match", format!("\"{version}\""));
        }
        let sent = match body {
            Some(body) => {
                let request = builder
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .map_err(|e| CliError::Failed(format!("building a request to {url}: {e}")))?;
                self.agent.run(request)
            }
            None => {
                let request = builder
                    .body(())
                    .map_err(|e| CliError::Failed(format!("building a request to {url}: {e}")))?;
                self.agent.run(request)
            }
        };
        let mut response = sent.map_err(|e| {
            CliError::Failed(format!("cannot reach the server at {}: {e}", self.base))
        })?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(REPLY_BYTES_MAX)
            .read_to_string()
            .map_err(|e| CliError::Failed(format!("reading the reply from {url}: {e}")))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                CliError::Failed(format!(
                    "the server's reply to {method} {path} is not understood: {e}"
                ))
            });
        }
        Err(CliError::Failed(
            match serde_json::from_str::<ErrorBodyJson>(&text) {
                Ok(body) => body.error.message,
                Err(_) => format!("the server answered {method} {path} with {status}"),
            },
        ))
    }
}

impl TicketStore for RemoteStore {
    fn create(&self, draft: TicketDraft) -> Result<TicketJson, CliError> {
        let body = json!({
            "title": draft.title.as_str(),
            "description": draft.description.as_str(),
        });
        self.request("POST", "/tickets", Some(body), None)
    }

    fn get(&self, id: TicketId) -> Result<TicketJson, CliError> {
        self.request("GET", &format!("/tickets/{id}"), None, None)
    }

    fn list(&self, query: ListQuery) -> Result<Vec<TicketJson>, CliError> {
        // Page through until the limit (if any) is reached or the server has
        // no next page.
        let mut tickets = Vec::new();
        let mut after = query.after.map(TicketId::get);
        loop {
            let wanted = query
                .limit
                .map_or(PAGE_LIMIT_MAX, |limit| limit - tickets.len())
                .min(PAGE_LIMIT_MAX);
            if wanted == 0 {
                return Ok(tickets);
            }
            let mut path = format!("/tickets?limit={wanted}");
            if let Some(status) = query.status {
                path += &format!("&status={status}");
            }
            if let Some(after) = after {
                path += &format!("&after={after}");
            }
            let page: PageJson = self.request("GET", &path, None, None)?;
            tickets.extend(page.tickets);
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(tickets),
            }
        }
    }

    fn update(&self, id: TicketId, patch: TicketPatch) -> Result<TicketJson, CliError> {
        let mut body = serde_json::Map::new();
        if let Some(title) = &patch.title {
            body.insert("title".into(), title.as_str().into());
        }
        if let Some(description) = &patch.description {
            body.insert("description".into(), description.as_str().into());
        }
        if let Some(status) = patch.status {
            body.insert("status".into(), status.as_str().into());
        }
        self.request(
            "PATCH",
            &format!("/tickets/{id}"),
            Some(body.into()),
            patch.expected_version,
        )
    }

    fn delete(&self, id: TicketId) -> Result<TicketJson, CliError> {
        self.request("DELETE", &format!("/tickets/{id}"), None, None)
    }

    fn stats(&self) -> Result<StatsJson, CliError> {
        self.request("GET", "/stats", None, None)
    }

    fn history(&self, id: TicketId) -> Result<HistoryJson, CliError> {
        self.request("GET", &format!("/tickets/{id}/history"), None, None)
    }
}
