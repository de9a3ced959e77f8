//! Coupons: admins create them, buyers claim them first come, first served.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{AppJson, AppPath};
use super::model::{ClaimResponse, CouponRequest, CouponResponse};
use crate::auth::{AdminUser, AuthUser};
use crate::domain::{CouponCode, DiscountPercent, Quota};
use crate::error::{ErrorBody, Result};
use crate::state::AppState;
use crate::store::coupons;

/// Create a coupon with a quota and a discount (admin).
#[utoipa::path(post, path = "/v1/coupons", tag = "coupons", request_body = CouponRequest, security(("bearer" = [])),
    responses((status = 201, body = CouponResponse), (status = 403, body = ErrorBody), (status = 409, description = "coupon_exists", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_coupon(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppJson(req): AppJson<CouponRequest>,
) -> Result<(StatusCode, Json<CouponResponse>)> {
    let code = CouponCode::parse(&req.code)?;
    let quota = Quota::parse(req.quota)?;
    let discount = DiscountPercent::parse(req.discount_percent)?;
    let c = coupons::create(
        &state.db,
        code.as_str(),
        quota.get(),
        i64::from(discount.get()),
        state.clock.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// Claim a coupon: first come, first served, one per user.
#[utoipa::path(post, path = "/v1/coupons/{code}/claims", tag = "coupons", security(("bearer" = [])),
    params(("code" = String, Path, description = "coupon code", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 201, body = ClaimResponse), (status = 404, body = ErrorBody),
              (status = 409, description = "sold_out, already_claimed or contention", body = ErrorBody),
              (status = 503, description = "`lock_unavailable`: the lock service (Redis, `redis-lock` and `fenced` strategies) failed", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user_id = user.id))]
pub async fn claim(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(code): AppPath<String>,
) -> Result<(StatusCode, Json<ClaimResponse>)> {
    let strategy = state.config.strategy;
    let code = super::extract::path_coupon_code(&code)?;
    let result = coupons::claim(
        &state.db,
        &state.locks,
        strategy,
        state.config.optimistic_retries,
        code.as_str(),
        user.id,
        state.clock.now_ms(),
    )
    .await;
    let label = match &result {
        Ok(_) => "claimed",
        Err(e) if matches!(e.code, "sold_out" | "already_claimed" | "contention") => e.code,
        Err(e) if e.status.is_client_error() => "rejected",
        Err(_) => "error",
    };
    state
        .metrics
        .coupon_claims
        .with_label_values(&[label, strategy.as_str()])
        .inc();
    let c = result?;
    if c.retries > 0 {
        state
            .metrics
            .strategy_retries
            .with_label_values(&["coupon_claim", strategy.as_str()])
            .inc_by(u64::from(c.retries));
    }
    tracing::info!(
        event.dataset = "boxoffice.coupon",
        event.action = "coupon-claimed",
        claim_id = c.id,
        code = %c.coupon.code,
        "coupon claimed"
    );
    Ok((
        StatusCode::CREATED,
        Json(ClaimResponse {
            id: c.id,
            code: c.coupon.code,
            discount_percent: c.coupon.discount_percent,
        }),
    ))
}
