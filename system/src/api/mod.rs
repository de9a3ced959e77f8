//! The HTTP API: routes under `/v1`, health, metrics and `/openapi.json`.
//!
//! Routes are registered through utoipa-axum's `OpenApiRouter`, so a handler and its OpenAPI
//! entry are added by the same line and the document cannot forget a route. Every error is
//! the JSON body of [`ApiError`]; unknown paths and wrong methods too.

pub mod bookings;
pub mod catalog;
pub mod coupons;
pub mod extract;
pub mod holds;
pub mod model;
pub mod notifications;
pub mod ops;
pub mod users;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use tracing::Instrument as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "Box Office API", description = "Ticket booking: venues, events, rounds, holds, bookings, payments, coupons."),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody, crate::domain::Strategy))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The routes and the OpenAPI document that describes them.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(users::register))
        .routes(routes!(users::token))
        .routes(routes!(catalog::create_venue))
        .routes(routes!(catalog::create_event, catalog::list_events))
        .routes(routes!(catalog::get_event))
        .routes(routes!(catalog::create_round))
        .routes(routes!(catalog::availability))
        .routes(routes!(catalog::seats))
        .routes(routes!(holds::create_hold))
        .routes(routes!(holds::release_hold, holds::get_hold))
        .routes(routes!(bookings::create_booking))
        .routes(routes!(bookings::pay))
        .routes(routes!(bookings::cancel))
        .routes(routes!(bookings::get_booking))
        .routes(routes!(bookings::my_bookings))
        .routes(routes!(notifications::notifications))
        .routes(routes!(coupons::create_coupon))
        .routes(routes!(coupons::claim))
        .routes(routes!(ops::live))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::round_audit))
        .routes(routes!(ops::round_sales))
        .routes(routes!(ops::coupon_audit))
        .routes(routes!(ops::payments_audit))
        .routes(routes!(ops::round_bookings))
        .routes(routes!(ops::round_holds))
        .split_for_parts()
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes();
    doc.paths.paths.insert(
        "/openapi.json".to_owned(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("ops")
                .summary(Some("This document."))
                .response(
                    "200",
                    utoipa::openapi::Response::new("OpenAPI 3.1 document"),
                ),
        ),
    );
    doc
}

/// The full application router with its state and middleware.
pub fn router(state: AppState) -> Router {
    let (routes, _) = routes();
    let doc = openapi();
    let max_body = state.config.max_body_bytes;
    routes
        .route("/openapi.json", get(move || async move { Json(doc) }))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Counts and times every request by matched route, runs it inside an `http.request` span
/// (ECS fields, the caller's W3C trace context as parent when tracing is on), and logs server
/// faults once. Every request is logged at DEBUG under `boxoffice::access`
/// (`RUST_LOG=info,boxoffice::access=debug` to see them).
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http.request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.request.method = method.as_str(),
        http.route = route.as_str(),
        url.path = req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    if crate::telemetry::tracing_enabled() {
        span.record("otel.name", format!("{method} {route}"));
        crate::telemetry::adopt_http_parent(&span, req.headers());
    }
    let start = Instant::now();
    let res = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = res.status();
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .http_requests
        .with_label_values(&[&route, method.as_str(), class])
        .inc();
    state
        .metrics
        .http_duration
        .with_label_values(&[&route, method.as_str()])
        .observe(elapsed.as_secs_f64());
    span.record("http.response.status_code", status.as_u16());
    let _entered = span.enter();
    if status.is_server_error() {
        let detail = res
            .extensions()
            .get::<ApiError>()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        tracing::error!(
            event.category = "web",
            event.outcome = "failure",
            error.message = %detail,
            "request failed"
        );
    } else {
        tracing::event!(
            target: "boxoffice::access",
            tracing::Level::DEBUG,
            event.dataset = "boxoffice.access",
            event.category = "web",
            event.duration = elapsed.as_nanos() as u64,
            "request served"
        );
    }
    res
}
