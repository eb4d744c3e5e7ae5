//! Every error reply: `{"error": {"code", "message"}}` with its status, and
//! the one place where a library error becomes a status code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ticketlog::{ClientError, StorageError};

use crate::cli::json::{ErrorBodyJson, ErrorJson};

/// Seconds a client is told to wait after a 503 for a full queue.
const RETRY_AFTER_S: &str = "1";

/// An error reply.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For a version conflict: the ticket's current version.
    pub current_version: Option<u64>,
    /// For `compacted`: the position of the oldest event the log still holds.
    pub oldest_position: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            current_version: None,
            oldest_position: None,
        }
    }

    /// 400: the request is not well formed (JSON, types, unknown fields,
    /// query, headers, path).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422: well formed, but a value the domain refuses.
    pub fn invalid(error: &ticketlog::TicketError) -> Self {
        ApiError::from(ClientError::Invalid(error.clone()))
    }

    /// 503: the request took longer than the server allows.
    pub fn timeout(limit_ms: u128) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {limit_ms} ms; a command may or may not have been \
                 applied: read the ticket before retrying"
            ),
        )
    }

    /// Whether this error means the store refuses writes from now on.
    pub fn is_storage_failure(&self) -> bool {
        self.code == "storage_failure"
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        let message = error.to_string();
        let (status, code) = match &error {
            ClientError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ClientError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "closed"),
            ClientError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ClientError::Conflict { actual, .. } => {
                return ApiError {
                    status: StatusCode::PRECONDITION_FAILED,
                    code: "version_conflict",
                    message,
                    current_version: Some(*actual),
                    oldest_position: None,
                };
            }
            ClientError::Compacted { oldest_lsn } => {
                let oldest_lsn = *oldest_lsn;
                // `from` is exclusive: the position just before every event
                // of the oldest record kept.
                let start = format!("{}.{}", oldest_lsn.saturating_sub(1), u32::MAX);
                let mut api = ApiError::new(
                    StatusCode::GONE,
                    "compacted",
                    format!(
                        "{message}; follow from the oldest event kept with from={start}, \
                         or reload the tickets and follow from GET /stats' last_lsn"
                    ),
                );
                api.oldest_position = Some(
                    ticketlog::Position {
                        lsn: oldest_lsn,
                        index: 0,
                    }
                    .to_string(),
                );
                return api;
            }
            ClientError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            // A damaged segment met while reading history is not a failed
            // write: the store still takes writes.
            ClientError::Storage(StorageError::Corrupt { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "corrupt")
            }
            ClientError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_failure"),
            // A kind of error this build does not know yet.
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBodyJson {
            error: ErrorJson {
                code: self.code.to_owned(),
                message: self.message,
                current_version: self.current_version,
                oldest_position: self.oldest_position,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlog::TicketId;

    #[test]
    fn each_client_error_has_its_status() {
        let cases = [
            (ClientError::Overloaded, 503, "overloaded"),
            (ClientError::Closed, 503, "closed"),
            (ClientError::NotFound(TicketId::from(1)), 404, "not_found"),
            (
                ClientError::Invalid(ticketlog::TicketError::TitleEmpty),
                422,
                "invalid",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
        }
        let conflict = ApiError::from(ClientError::Conflict {
            id: TicketId::from(1),
            expected: 1,
            actual: 3,
        });
        assert_eq!(conflict.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(conflict.current_version, Some(3));
        let compacted = ApiError::from(ClientError::Compacted { oldest_lsn: 8 });
        assert_eq!(
            (compacted.status, compacted.code),
            (StatusCode::GONE, "compacted")
        );
        assert_eq!(compacted.oldest_position.as_deref(), Some("8.0"));
        assert!(
            compacted.message.contains("from=7.4294967295"),
            "{}",
            compacted.message
        );
    }
}
