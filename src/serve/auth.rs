//! The bearer token check: every request must carry
//! `Authorization: Bearer <token>` when the server was given a token.
//!
//! The comparison takes the same time whatever bytes differ, so the time of
//! a refusal tells nothing about how much of a guess was right. Eight lines
//! of XOR-folding do this; a crate would add a dependency for no more.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::routes::AppState;

/// Middleware: refuses a request without the right token with 401.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if !equal_in_constant_time(given.as_bytes(), token.as_bytes()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs `Authorization: Bearer <token>` with its token",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Whether `given == expected`, looking at every byte of `expected` whatever
/// `given` holds (only the length of `given` can show in the time).
fn equal_in_constant_time(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, expected_byte) in expected.iter().enumerate() {
        let given_byte = given.get(i).copied().unwrap_or(0);
        difference |= given_byte ^ expected_byte;
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::equal_in_constant_time;

    #[test]
    fn only_the_exact_token_is_equal() {
        assert!(equal_in_constant_time(b"secret", b"secret"));
        assert!(!equal_in_constant_time(b"secreT", b"secret"));
        assert!(!equal_in_constant_time(b"secret\0", b"secret"));
        assert!(!equal_in_constant_time(b"secre", b"secret"));
        assert!(!equal_in_constant_time(b"", b"secret"));
    }
}
