//! The crate's one error type, [`ApiError`], mapped once to HTTP with a stable JSON body:
//! `{"error": {"code": "…", "message": "…"}}`. Client mistakes are 4xx with a meaningful code;
//! a database constraint violation becomes a 409, never a 500; only the service's own faults
//! (a dependency down, a bug) are 5xx, and those are logged by the response layer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::DomainError;

/// An error with its HTTP status, stable code and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// A stable, machine-readable code (`seats_unavailable`, `sold_out`, …).
    pub code: &'static str,
    /// A human-readable message.
    pub message: String,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// Any status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400: the request could not be read.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403: valid credentials, not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404: `what` does not exist (or is not the caller's to see).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// 409: the request conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 422: well-formed but invalid.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// 503: a dependency is unavailable; the client may retry.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
    /// 500: a fault of the service itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // A dependency is down: when to try again (the health watcher probes faster).
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(crate::store::health::RETRY_AFTER_S),
            );
        }
        // The logging layer reads this to log server faults once, outside into_response.
        res.extensions_mut().insert(self);
        res
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::unprocessable(e.code, e.message)
    }
}

/// Whether a database error is worth retrying the whole transaction for (deadlock,
/// serialization failure, SQLite busy).
pub fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "55P03" | "5" | "6" | "261" | "517" | "262")
        ),
        _ => false,
    }
}

/// Whether a database error is a unique-constraint violation.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || matches!(db.code().as_deref(), Some("23505" | "2067" | "1555"))
        }
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if is_unique_violation(&e) {
            return Self::conflict("conflict", "the request conflicts with existing data");
        }
        if is_retryable(&e) {
            return Self::conflict("contention", "too much contention, retry the request");
        }
        match e {
            // It may have taken effect (a connection lost mid-transaction, a commit whose
            // answer never came): not the definite `database_unavailable`.
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::unavailable(
                    DATABASE_INTERRUPTED,
                    format!("the database failed while the request ran: {e}"),
                )
            }
            other => Self::internal(format!("database error: {other}")),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation) => {
                Self::conflict("conflict", "the request conflicts with existing data")
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Self::conflict("contention", "too much contention, retry the request")
            }
            _ => Self::internal(format!("database error: {e}")),
        }
    }
}

/// A write that found the database unreachable and was refused before it started: nothing
/// changed, and it is safe to send again after `Retry-After`.
pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";

/// The database failed while the request ran (a lost connection, a pool timeout): whether a
/// write took effect is unknown; read before sending it again.
pub const DATABASE_INTERRUPTED: &str = "database_interrupted";

impl ApiError {
    /// 503 `database_unavailable`: refused before starting, because the database is
    /// unreachable.
    pub fn database_unavailable() -> Self {
        Self::unavailable(
            DATABASE_UNAVAILABLE,
            "the database is unreachable; nothing was changed; retry after the Retry-After delay",
        )
    }
}

impl From<crate::store::BeginError> for ApiError {
    fn from(e: crate::store::BeginError) -> Self {
        match e {
            crate::store::BeginError::Down => Self::database_unavailable(),
            crate::store::BeginError::Sql(e) => e.into(),
        }
    }
}

/// Results of the crate.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
