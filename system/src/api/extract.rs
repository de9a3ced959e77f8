//! Extractors that turn axum's plain-text rejections into the service's JSON errors:
//! malformed JSON is a 400, unknown fields and wrong types a 422, a body over the limit a
//! 413, a missing content type a 415, a bad path or query parameter a 400.
//!
//! Each extractor is axum's own (`Json`, `Path`, `Query`) through `#[derive(FromRequest)]` /
//! `#[derive(FromRequestParts)]` with `via(…)`; what is ours is only the mapping of each
//! rejection to an [`ApiError`], the `From` impls below.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;

use crate::domain::CouponCode;
use crate::error::ApiError;

/// A JSON body whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// Path parameters whose rejection is an [`ApiError`] (400 `invalid_path`).
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// Query parameters whose rejection is an [`ApiError`] (400 `invalid_query`).
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection {
            JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("malformed_json", message),
            JsonRejection::JsonDataError(_) => ApiError::unprocessable("invalid_body", message),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the service accepts",
            ),
            other => ApiError::bad_request("invalid_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

/// The `Idempotency-Key` header, if present: 1 to 255 visible ASCII characters (400 otherwise).
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(s.to_owned()))
}

/// The pattern of a coupon code in a path, as documented (`{code}` parameters).
pub const COUPON_CODE_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// A coupon code taken from a path: exactly [`COUPON_CODE_PATTERN`] (400 `invalid_path`
/// otherwise; a body's code may be padded with spaces, a path segment may not).
pub fn path_coupon_code(raw: &str) -> Result<CouponCode, ApiError> {
    CouponCode::parse(raw)
        .ok()
        .filter(|_| raw.trim() == raw)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_path",
                "a coupon code in a path is 1 to 64 of A-Z a-z 0-9 _ -",
            )
        })
}
