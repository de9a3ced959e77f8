//! Bookings: made from a hold, paid, cancelled, listed.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::extract::{idempotency_key, AppJson, AppPath};
use super::model::{BookingList, BookingRequest, BookingResponse, PayRequest};
use crate::auth::AuthUser;
use crate::domain::CouponCode;
use crate::error::{ErrorBody, Result};
use crate::state::AppState;
use crate::store::bookings;

/// Turn an active hold into a booking awaiting payment, optionally with a claimed coupon.
#[utoipa::path(post, path = "/v1/bookings", tag = "bookings", request_body = BookingRequest, security(("bearer" = [])),
    responses((status = 201, body = BookingResponse), (status = 404, description = "hold not found or not yours", body = ErrorBody),
              (status = 409, description = "hold_not_active, coupon_not_claimed", body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user_id = user.id))]
pub async fn create_booking(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<BookingRequest>,
) -> Result<(StatusCode, Json<BookingResponse>)> {
    let coupon = req
        .coupon_code
        .as_deref()
        .map(CouponCode::parse)
        .transpose()?;
    let now = state.clock.now_ms();
    let pay_by = now + state.config.payment_ttl_secs as i64 * 1000;
    let b = bookings::create(
        &state.db,
        user.id,
        req.hold_id,
        coupon.as_ref().map(CouponCode::as_str),
        now,
        pay_by,
    )
    .await?;
    state.cache.seats_changed(b.round_id).await;
    state.metrics.bookings.with_label_values(&["created"]).inc();
    tracing::info!(
        event.dataset = "boxoffice.booking",
        event.action = "booking-created",
        booking_id = b.id,
        amount = b.amount,
        "booking created"
    );
    Ok((StatusCode::CREATED, Json(b.into())))
}

/// Pay a booking. The amount must equal the booking's; an `Idempotency-Key` makes retries safe.
#[utoipa::path(post, path = "/v1/bookings/{id}/pay", tag = "bookings", request_body = PayRequest, security(("bearer" = [])),
    params(("id" = i64, Path, description = "booking id"), ("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    responses((status = 200, body = BookingResponse), (status = 400, description = "`invalid_idempotency_key`: not 1 to 255 visible ASCII characters", body = ErrorBody),
              (status = 402, description = "payment_declined", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "already_paid, invalid_state, booking_expired", body = ErrorBody),
              (status = 422, description = "amount_mismatch", body = ErrorBody), (status = 503, description = "payment_unavailable", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(booking_id, user_id = user.id))]
pub async fn pay(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<i64>,
    headers: HeaderMap,
    AppJson(req): AppJson<PayRequest>,
) -> Result<Json<BookingResponse>> {
    tracing::Span::current().record("booking_id", id);
    let key = idempotency_key(&headers)?;
    let result = bookings::pay(
        &state.db,
        &state.payments,
        user.id,
        id,
        req.amount,
        key.as_deref(),
        state.clock.now_ms(),
    )
    .await;
    match &result {
        Ok(_) => state
            .metrics
            .bookings
            .with_label_values(&["confirmed"])
            .inc(),
        Err(e) if e.code == "payment_declined" => state
            .metrics
            .bookings
            .with_label_values(&["declined"])
            .inc(),
        Err(_) => {}
    }
    let b = result.inspect_err(|e| {
        tracing::info!(
            event.dataset = "boxoffice.payment",
            event.action = "payment-failed",
            event.outcome = "failure",
            booking_id = id,
            error.code = e.code,
            error.message = %e.message,
            "payment failed"
        );
    })?;
    state.cache.seats_changed(b.round_id).await;
    state
        .metrics
        .seats_sold
        .with_label_values(&[state.config.strategy.as_str()])
        .inc_by(b.seat_ids.len() as u64);
    tracing::info!(
        event.dataset = "boxoffice.payment",
        event.action = "payment-captured",
        event.outcome = "success",
        booking_id = b.id,
        amount = b.amount,
        "booking confirmed"
    );
    Ok(Json(b.into()))
}

/// Cancel a booking; a paid one is refunded.
#[utoipa::path(post, path = "/v1/bookings/{id}/cancel", tag = "bookings", security(("bearer" = [])),
    params(("id" = i64, Path, description = "booking id")),
    responses((status = 200, body = BookingResponse), (status = 404, body = ErrorBody),
              (status = 409, description = "invalid_state (already cancelled or expired)", body = ErrorBody),
              (status = 503, description = "payment_unavailable", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(booking_id, user_id = user.id))]
pub async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<i64>,
) -> Result<Json<BookingResponse>> {
    tracing::Span::current().record("booking_id", id);
    let b = bookings::cancel(
        &state.db,
        &state.payments,
        user.id,
        id,
        state.clock.now_ms(),
    )
    .await?;
    state.cache.seats_changed(b.round_id).await;
    state
        .metrics
        .bookings
        .with_label_values(&["cancelled"])
        .inc();
    tracing::info!(
        event.dataset = "boxoffice.booking",
        event.action = "booking-cancelled",
        booking_id = b.id,
        "booking cancelled"
    );
    Ok(Json(b.into()))
}

/// One of the caller's bookings.
#[utoipa::path(get, path = "/v1/bookings/{id}", tag = "bookings", security(("bearer" = [])),
    params(("id" = i64, Path, description = "booking id")),
    responses((status = 200, body = BookingResponse), (status = 404, description = "not found or not yours", body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get_booking(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<i64>,
) -> Result<Json<BookingResponse>> {
    Ok(Json(
        bookings::get_owned(&state.db, id, user.id).await?.into(),
    ))
}

/// The caller's bookings, newest first.
#[utoipa::path(get, path = "/v1/me/bookings", tag = "bookings", security(("bearer" = [])),
    responses((status = 200, body = BookingList), (status = 401, body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn my_bookings(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<BookingList>> {
    let list = bookings::of_user(&state.db, user.id, 100).await?;
    Ok(Json(BookingList {
        bookings: list.into_iter().map(Into::into).collect(),
    }))
}
