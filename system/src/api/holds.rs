//! Holds: a buyer takes seats of a round for a while.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{AppJson, AppPath};
use super::model::{HoldRequestBody, HoldResponse};
use crate::auth::AuthUser;
use crate::domain::{Quantity, SeatIds};
use crate::error::{ApiError, ErrorBody, Result};
use crate::notify::SeatState;
use crate::state::AppState;
use crate::store::holds::{self, HoldRequest, StrategyOptions};

/// Hold chosen seats (`seat_ids`) or a number of seats, best available (`quantity`).
#[utoipa::path(post, path = "/v1/rounds/{id}/holds", tag = "holds", request_body = HoldRequestBody, security(("bearer" = [])),
    params(("id" = i64, Path, description = "round id")),
    responses((status = 201, body = HoldResponse), (status = 401, body = ErrorBody), (status = 404, description = "round not found", body = ErrorBody),
              (status = 409, description = "seats_unavailable or contention", body = ErrorBody),
              (status = 422, description = "invalid or duplicate seat ids, seats of another round, bad quantity", body = ErrorBody),
              (status = 503, description = "`lock_unavailable`: the lock service (Redis, `redis-lock` and `fenced` strategies) failed", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(round_id, user_id = user.id))]
pub async fn create_hold(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(round_id): AppPath<i64>,
    AppJson(req): AppJson<HoldRequestBody>,
) -> Result<(StatusCode, Json<HoldResponse>)> {
    tracing::Span::current().record("round_id", round_id);
    let strategy = state.config.strategy;
    let max = state.config.max_seats_per_hold;
    let request = match (req.seat_ids, req.quantity) {
        (Some(ids), None) => SeatIds::parse(&ids, max).map(HoldRequest::Seats),
        (None, Some(n)) => Quantity::parse(n, max).map(HoldRequest::Quantity),
        _ => {
            state
                .metrics
                .holds
                .with_label_values(&["rejected", strategy.as_str()])
                .inc();
            return Err(ApiError::unprocessable(
                "invalid_hold",
                "send exactly one of seat_ids and quantity",
            ));
        }
    }
    .inspect_err(|_| {
        state
            .metrics
            .holds
            .with_label_values(&["rejected", strategy.as_str()])
            .inc();
    })?;
    let now = state.clock.now_ms();
    let expires_at = now + state.config.hold_ttl_secs as i64 * 1000;
    let opts = StrategyOptions {
        strategy,
        max_attempts: state.config.optimistic_retries,
    };
    let result = holds::place(
        &state.db,
        opts,
        &state.locks,
        round_id,
        user.id,
        &request,
        now,
        expires_at,
    )
    .await;
    let label = match &result {
        Ok(_) => "placed",
        Err(e) if e.code == "seats_unavailable" => "unavailable",
        Err(e) if e.code == "contention" => "contention",
        Err(e) if e.status.is_client_error() => "rejected",
        Err(_) => "error",
    };
    state
        .metrics
        .holds
        .with_label_values(&[label, strategy.as_str()])
        .inc();
    let placed = result?;
    state.cache.seats_changed(round_id).await;
    state.publish_seats(round_id, SeatState::Held, placed.hold.seat_ids.clone());
    state
        .metrics
        .seats_held
        .with_label_values(&[strategy.as_str()])
        .inc_by(placed.hold.seat_ids.len() as u64);
    if placed.retries > 0 {
        state
            .metrics
            .strategy_retries
            .with_label_values(&["hold", strategy.as_str()])
            .inc_by(u64::from(placed.retries));
    }
    tracing::info!(
        event.dataset = "boxoffice.booking",
        event.action = "hold-placed",
        hold_id = placed.hold.id,
        seats = placed.hold.seat_ids.len(),
        retries = placed.retries,
        "hold placed"
    );
    Ok((StatusCode::CREATED, Json(placed.hold.into())))
}

/// Give a hold back before it expires.
#[utoipa::path(delete, path = "/v1/holds/{id}", tag = "holds", security(("bearer" = [])),
    params(("id" = i64, Path, description = "hold id")),
    responses((status = 204, description = "released"), (status = 404, description = "not found or not yours", body = ErrorBody),
              (status = 409, description = "hold_not_active", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(hold_id, user_id = user.id))]
pub async fn release_hold(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(hold_id): AppPath<i64>,
) -> Result<StatusCode> {
    tracing::Span::current().record("hold_id", hold_id);
    let h = holds::release(&state.db, hold_id, user.id).await?;
    state.cache.seats_changed(h.round_id).await;
    state.publish_seats(h.round_id, SeatState::Released, h.seat_ids);
    Ok(StatusCode::NO_CONTENT)
}

/// One of the caller's holds.
#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds", security(("bearer" = [])),
    params(("id" = i64, Path, description = "hold id")),
    responses((status = 200, body = HoldResponse), (status = 404, description = "not found or not yours", body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get_hold(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(hold_id): AppPath<i64>,
) -> Result<Json<HoldResponse>> {
    match holds::get(&state.db, hold_id).await? {
        Some(h) if h.user_id == user.id => Ok(Json(h.into())),
        _ => Err(ApiError::not_found("hold")),
    }
}
