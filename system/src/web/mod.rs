//! The buyer's page: one HTML page, a stylesheet and a script, embedded in the binary with
//! `include_str!` (no build step, nothing from a CDN), served at `/` and `/assets/…`.
//!
//! The page is a small single-page application over the public API: events and search
//! (`#/`), an event's rounds (`#/events/{id}`), a round's seat map (`#/rounds/{id}`, live
//! through `GET /v1/rounds/{id}/seats/stream`), sign-in (`#/login`) and "my bookings"
//! (`#/bookings`). It keeps the access token in `localStorage`. The assets are written to
//! stay under 150 KB together; a test holds them to it.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its stylesheet.
pub const APP_CSS: &str = include_str!("assets/app.css");
/// Its script.
pub const APP_JS: &str = include_str!("assets/app.js");

/// Bytes of the page and its assets together.
pub fn page_weight() -> usize {
    INDEX_HTML.len() + APP_CSS.len() + APP_JS.len()
}

/// `/`, `/assets/app.css` and `/assets/app.js`. Not part of the API's OpenAPI document.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
}

/// The assets change only with the binary; `no-cache` makes browsers revalidate, so an
/// upgraded box office never runs with a stale script.
async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
}
