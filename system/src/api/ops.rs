//! Operations: health checks, metrics, and the admin audit views the lab's checker reads when
//! it cannot reach the database itself (a deployed stack).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::extract::AppPath;
use super::model::HealthResponse;
use crate::state::AppState;
use crate::auth::AdminUser;
use crate::domain::CouponCode;
use crate::error::{ApiError, ErrorBody, Result};
use crate::store::audit::{
    self, BookingRecord, CouponAudit, HoldRecord, PaymentsAudit, RoundAudit,
};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "ops", responses((status = 200, body = HealthResponse)))]
pub async fn live() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        checks: Default::default(),
    })
}

/// Readiness: the database and the payment provider answer, and Redis when one is configured
/// (required only by the `redis-lock` and `fenced` strategies; the cache degrades to the
/// database without it).
#[utoipa::path(get, path = "/health/ready", tag = "ops",
    responses((status = 200, body = HealthResponse), (status = 503, description = "a dependency is down", body = HealthResponse)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let mut checks = std::collections::BTreeMap::new();
    let db = tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping()).await;
    let db_ok = matches!(db, Ok(Ok(())));
    checks.insert(
        "database".to_owned(),
        match db {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "timeout".to_owned(),
        },
    );
    let pay_ok = state.payments.healthy().await;
    checks.insert(
        "payments".to_owned(),
        if pay_ok { "ok" } else { "unreachable" }.to_owned(),
    );
    let mut redis_ok = true;
    if state.config.redis_url.is_some() {
        let ping =
            tokio::time::timeout(std::time::Duration::from_secs(2), state.cache.ping()).await;
        redis_ok = matches!(ping, Ok(Ok(())));
        checks.insert(
            "redis".to_owned(),
            match ping {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "timeout".to_owned(),
            },
        );
    }
    let needs_redis = matches!(
        state.config.strategy,
        crate::Strategy::RedisLock | crate::Strategy::Fenced
    );
    let ok = db_ok && pay_ok && (redis_ok || !needs_redis);
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(HealthResponse {
            status: if ok { "ready" } else { "not_ready" }.into(),
            checks,
        }),
    )
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::refresh(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Invariants of a round's inventory, read from the database (admin).
#[utoipa::path(get, path = "/v1/admin/rounds/{id}/audit", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "round id")),
    responses((status = 200, body = RoundAudit), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn round_audit(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(id): AppPath<i64>,
) -> Result<Json<RoundAudit>> {
    if crate::store::catalog::round(&state.db, id).await?.is_none() {
        return Err(ApiError::not_found("round"));
    }
    Ok(Json(audit::round(&state.db, id).await?))
}

/// Sales totals of a round.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct SalesTotals {
    /// Confirmed bookings.
    pub confirmed_bookings: i64,
    /// Seats of confirmed bookings.
    pub seats_sold: i64,
    /// Sum of confirmed bookings' amounts, minor units.
    pub revenue: i64,
}

/// A round's sales as the database has them and as the ledger (a Kafka consumer's
/// projection of booking events) has them; equal once the ledger has caught up.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SalesResponse {
    /// The round.
    pub round_id: i64,
    /// Read from the bookings table.
    pub database: SalesTotals,
    /// Read from the ledger's projection.
    pub ledger: SalesTotals,
}

/// A round's sales: the database's totals and the ledger's side by side (admin).
#[utoipa::path(get, path = "/v1/admin/rounds/{id}/sales", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "round id")),
    responses((status = 200, body = SalesResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn round_sales(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(id): AppPath<i64>,
) -> Result<Json<SalesResponse>> {
    if crate::store::catalog::round(&state.db, id).await?.is_none() {
        return Err(ApiError::not_found("round"));
    }
    let a = audit::round(&state.db, id).await?;
    let (confirmed_bookings, seats_sold, revenue) =
        crate::store::outbox::ledger_sales(&state.db, id).await?;
    Ok(Json(SalesResponse {
        round_id: id,
        database: SalesTotals {
            confirmed_bookings: a.confirmed_bookings,
            seats_sold: a.confirmed_seats,
            revenue: a.confirmed_revenue,
        },
        ledger: SalesTotals {
            confirmed_bookings,
            seats_sold,
            revenue,
        },
    }))
}

/// Claims of a coupon against its quota, read from the database (admin).
#[utoipa::path(get, path = "/v1/admin/coupons/{code}/audit", tag = "admin", security(("bearer" = [])),
    params(("code" = String, Path, description = "coupon code")),
    responses((status = 200, body = CouponAudit), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn coupon_audit(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(code): AppPath<String>,
) -> Result<Json<CouponAudit>> {
    let code = CouponCode::parse(&code)?;
    audit::coupon(&state.db, code.as_str())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("coupon"))
}

/// Money captured and refunded against confirmed bookings (admin).
#[utoipa::path(get, path = "/v1/admin/payments/audit", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = PaymentsAudit), (status = 403, body = ErrorBody)))]
pub async fn payments_audit(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<PaymentsAudit>> {
    Ok(Json(audit::payments(&state.db).await?))
}

/// Every booking of a round (admin).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RoundBookings {
    /// By id.
    pub bookings: Vec<BookingRecord>,
}

/// Every hold of a round (admin).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RoundHolds {
    /// By id.
    pub holds: Vec<HoldRecord>,
}

/// Every booking of a round with its seats, read from the database (admin).
#[utoipa::path(get, path = "/v1/admin/rounds/{id}/bookings", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "round id")),
    responses((status = 200, body = RoundBookings), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn round_bookings(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(id): AppPath<i64>,
) -> Result<Json<RoundBookings>> {
    if crate::store::catalog::round(&state.db, id).await?.is_none() {
        return Err(ApiError::not_found("round"));
    }
    Ok(Json(RoundBookings {
        bookings: audit::round_bookings(&state.db, id).await?,
    }))
}

/// Every hold of a round with its seats, read from the database (admin).
#[utoipa::path(get, path = "/v1/admin/rounds/{id}/holds", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "round id")),
    responses((status = 200, body = RoundHolds), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn round_holds(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(id): AppPath<i64>,
) -> Result<Json<RoundHolds>> {
    if crate::store::catalog::round(&state.db, id).await?.is_none() {
        return Err(ApiError::not_found("round"));
    }
    Ok(Json(RoundHolds {
        holds: audit::round_holds(&state.db, id).await?,
    }))
}
