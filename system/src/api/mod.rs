//! The HTTP API: routes under `/v1`, health, metrics and `/openapi.json`.
//!
//! Routes are registered through utoipa-axum's `OpenApiRouter`, so a handler and its OpenAPI
//! entry are added by the same line and the document cannot forget a route. Every error is
//! the JSON body of [`ApiError`]; unknown paths and wrong methods too. [`contract`] adds the
//! error responses every operation shares (bad body, token, parameters, database down). Every route is wrapped
//! by [`observe`]: request metrics, the `http.request` span, access and fault logs.

pub mod admission;
pub mod bookings;
pub mod catalog;
pub mod contract;
pub mod coupons;
pub mod extract;
pub mod holds;
pub mod model;
pub mod notifications;
pub mod observe;
pub mod ops;
pub mod seat_stream;
pub mod users;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics::HttpMetrics;
use crate::state::AppState;
use observe::{ObserveLayer, UNMATCHED};

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
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
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
        .routes(routes!(ops::round_holds));
    // ---- BEGIN seat stream (issue 17): the public per-round SSE feed of the buyer's page ----
    let api = api.routes(routes!(seat_stream::seat_stream));
    let (router, mut doc) = api.split_for_parts();
    {
        use utoipa::{PartialSchema, ToSchema};
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, schema) in [
            (
                seat_stream::SeatSnapshot::name(),
                seat_stream::SeatSnapshot::schema(),
            ),
            (
                crate::notify::SeatState::name(),
                crate::notify::SeatState::schema(),
            ),
        ] {
            components.schemas.insert(name.into_owned(), schema);
        }
    }
    // ---- END seat stream (issue 17) ----
    contract::complete(&mut doc);
    (router, doc)
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
    build(state, true)
}

/// [`router`] without the observing layer (no request metrics, no request span): what the
/// observability benchmark compares the real router with, so that its ratio is the cost of
/// observing alone.
#[doc(hidden)]
pub fn router_without_observability(state: AppState) -> Router {
    build(state, false)
}

fn build(state: AppState, observe: bool) -> Router {
    let (routes, _) = routes();
    let doc = openapi();
    let max_body = state.config.max_body_bytes;
    let known = doc
        .paths
        .paths
        .keys()
        .map(String::as_str)
        .chain([UNMATCHED])
        .map(Box::<str>::from);
    let http_metrics = Arc::new(HttpMetrics::new(state.metrics.clone(), known));
    // Serialized once and shared: a handler is cloned with the router, and a router is cloned
    // for every connection; a captured document was a deep copy of hundreds of schema nodes
    // per connection (and per request of this route).
    let doc = Bytes::from(serde_json::to_vec(&doc).expect("the OpenAPI document serializes"));
    let routes = routes
        .merge(crate::web::routes())
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ([(CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        // The gate before the limit: while the database is down, refusing at once beats
        // queueing for a slot.
        .route_layer(admission::AdmissionLayer::new(&state))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        });
    let routes = if observe {
        routes.layer(ObserveLayer::new(http_metrics))
    } else {
        routes
    };
    routes
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
