//! Admission while the database is unreachable: requests that need it are refused at once
//! with 503 `database_unavailable` and `Retry-After` (see [`crate::store::health`]) instead of
//! queueing for a connection until the pool's acquire timeout. Health, metrics, the OpenAPI
//! document and the reads the catalog cache serves (event details and availability) are let
//! through: they keep working from Redis during the outage.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Routes that work without the database (or answer from the cache first).
const WITHOUT_DATABASE: [&str; 6] = [
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/v1/events/{id}",
    "/v1/rounds/{id}/availability",
];

/// The middleware: refuse fast while the breaker is open.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.db.health().is_up() || !needs_database(&request) {
        return next.run(request).await;
    }
    ApiError::unavailable(
        "database_unavailable",
        "the database is unreachable; retry after the Retry-After delay",
    )
    .into_response()
}

fn needs_database(request: &Request) -> bool {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    !(request.method() == Method::GET && WITHOUT_DATABASE.contains(&path))
}
