//! Operations: health checks, metrics (with the gauges read from the store and the
//! dependencies at scrape time), and the admin audit views the lab's checker reads when it
//! cannot reach the database itself (a deployed stack).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::extract::AppPath;
use super::model::HealthResponse;
use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody, Result};
use crate::state::AppState;
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
    refresh_scraped_gauges(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// How long each scrape-time read may take before its gauge keeps its last value.
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_millis(800);

/// Refreshes the gauges read at scrape time: the pool (free), and, at most once a second,
/// seats by state, the outbox backlog and its oldest row, and the dependencies' up gauges.
/// Each read is bounded by [`SCRAPE_READ_TIMEOUT`]; a failed database read leaves the last
/// value and marks the database down.
async fn refresh_scraped_gauges(state: &AppState) {
    let m = &state.metrics;
    let pool = &state.db.pool;
    let size = i64::from(pool.size());
    let idle = pool.num_idle() as i64;
    m.db_pool_connections
        .with_label_values(&["in_use"])
        .set((size - idle).max(0));
    m.db_pool_connections.with_label_values(&["idle"]).set(idle);
    m.db_pool_connections
        .with_label_values(&["max"])
        .set(i64::from(state.config.db_max_connections));
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        m.runtime_tasks.set(rt.metrics().num_alive_tasks() as i64);
    }
    if !m.refresh_due() {
        return;
    }
    let payments = tokio::time::timeout(SCRAPE_READ_TIMEOUT, state.payments.healthy());
    let redis = async {
        match state.config.redis_url {
            Some(_) => Some(matches!(
                tokio::time::timeout(SCRAPE_READ_TIMEOUT, state.cache.ping()).await,
                Ok(Ok(()))
            )),
            None => None,
        }
    };
    let (db_ok, pay_ok, redis_ok) = tokio::join!(refresh_store_gauges(state), payments, redis);
    // On PostgreSQL the health watcher owns `database` (a probe every 200 ms that tells a slow
    // database from a gone one): a scrape whose reads only waited behind a busy pool must not
    // call it unreachable (a 300 ms PostgreSQL latency drill fired BoxOfficeDependencyDown so).
    if !state.db.health().is_watched() {
        m.dependency("database", db_ok);
    }
    m.dependency("payments", matches!(pay_ok, Ok(true)));
    if let Some(up) = redis_ok {
        m.dependency("redis", up);
    }
}

/// Sets seats by state and the outbox backlog from the database; false when a read failed.
async fn refresh_store_gauges(state: &AppState) -> bool {
    let m = &state.metrics;
    let seats = async {
        if !m.seat_count.due() {
            return None;
        }
        let started = std::time::Instant::now();
        let read =
            tokio::time::timeout(SCRAPE_READ_TIMEOUT, audit::seats_by_state(&state.db)).await;
        m.seat_count.done(started, matches!(read, Ok(Ok(_))));
        Some(read)
    };
    let outbox = tokio::time::timeout(
        SCRAPE_READ_TIMEOUT,
        crate::store::outbox::backlog_and_oldest(&state.db),
    );
    let (seats, outbox) = tokio::join!(seats, outbox);
    let mut ok = true;
    match seats {
        None => {}
        Some(Ok(Ok(by_state))) => {
            for s in ["available", "held", "sold"] {
                let n = by_state.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
                m.seats.with_label_values(&[s]).set(n);
            }
        }
        _ => ok = false,
    }
    match outbox {
        Ok(Ok((backlog, oldest))) => {
            m.outbox_backlog.set(backlog);
            let age = oldest.map_or(0.0, |at| (state.clock.now_ms() - at).max(0) as f64 / 1000.0);
            m.outbox_oldest_age.set(age);
        }
        _ => ok = false,
    }
    ok
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
    params(("code" = String, Path, description = "coupon code", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = CouponAudit), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn coupon_audit(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(code): AppPath<String>,
) -> Result<Json<CouponAudit>> {
    let code = super::extract::path_coupon_code(&code)?;
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
