//! The web console: the board, a ticket's history, the live event tail and
//! the store's health, as three static files (`console/`) compiled into the
//! binary and served at `/` and `/console/…`. The page is a client of the
//! same HTTP API as any other: it holds no privileges and no data of its
//! own, so its files are served without the token check.
//!
//! Every reply carries a strict Content-Security-Policy: scripts, styles,
//! images and connections only from this origin, no inline code, no
//! framing, no forms posting anywhere. Nothing here reads the request
//! beyond its path, so nothing a browser sends can reach the store.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page: markup only, no inline script or style.
const INDEX_HTML: &str = include_str!("console/index.html");
/// The page's code (plain ES2020, no build step).
const APP_JS: &str = include_str!("console/app.js");
/// The page's styles.
const APP_CSS: &str = include_str!("console/app.css");
/// The page's icon (also keeps browsers from asking for `/favicon.ico`).
const ICON_SVG: &str = include_str!("console/icon.svg");

/// The policy every console reply carries: only this origin's files, no
/// inline code, no plugins, no framing, no form targets, no `<base>`.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes (no state of their own).
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/console/icon.svg",
            get(|| async { asset("image/svg+xml", ICON_SVG) }),
        )
}

/// One embedded file with its type and the security headers. `no-cache`:
/// the browser revalidates, so a new binary's console is never mixed with
/// an old one's cached script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        body,
    )
        .into_response()
}
