//! Venues, events, rounds and seat inventory: admin writes, public reads.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{AppJson, AppPath, AppQuery};
use super::model::*;
use crate::auth::AdminUser;
use crate::domain::{limits, Money, Text, Tier};
use crate::error::{ApiError, ErrorBody, Result};
use crate::state::AppState;
use crate::store::catalog::{self, RowSpec, SectionSpec};

/// Create a venue with its seat map (admin).
#[utoipa::path(post, path = "/v1/venues", tag = "catalog", request_body = VenueRequest, security(("bearer" = [])),
    responses((status = 201, body = VenueResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_venue(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppJson(req): AppJson<VenueRequest>,
) -> Result<(StatusCode, Json<VenueResponse>)> {
    let name = Text::parse(&req.name, "name", 200)?;
    if req.sections.is_empty() || req.sections.len() > limits::MAX_SECTIONS {
        return Err(ApiError::unprocessable(
            "invalid_seat_map",
            format!("a venue has 1 to {} sections", limits::MAX_SECTIONS),
        ));
    }
    let mut sections = Vec::with_capacity(req.sections.len());
    let mut capacity = 0i64;
    for s in req.sections {
        let section = Text::parse(&s.name, "section name", 50)?;
        if s.rows.is_empty() || s.rows.len() > limits::MAX_ROWS_PER_SECTION {
            return Err(ApiError::unprocessable(
                "invalid_seat_map",
                format!("a section has 1 to {} rows", limits::MAX_ROWS_PER_SECTION),
            ));
        }
        let mut rows = Vec::with_capacity(s.rows.len());
        for r in s.rows {
            let label = Text::parse(&r.label, "row label", 20)?;
            let tier = Tier::parse(&r.tier)?;
            if !(1..=limits::MAX_SEATS_PER_ROW).contains(&r.seats) {
                return Err(ApiError::unprocessable(
                    "invalid_seat_map",
                    format!("a row has 1 to {} seats", limits::MAX_SEATS_PER_ROW),
                ));
            }
            capacity += r.seats;
            rows.push(RowSpec {
                label: label.into_string(),
                seats: r.seats,
                tier: tier.as_str().to_owned(),
            });
        }
        sections.push(SectionSpec {
            name: section.into_string(),
            rows,
        });
    }
    if capacity > limits::MAX_CAPACITY {
        return Err(ApiError::unprocessable(
            "invalid_seat_map",
            format!("a venue has at most {} seats", limits::MAX_CAPACITY),
        ));
    }
    let v =
        catalog::create_venue(&state.db, name.as_str(), &sections, state.clock.now_ms()).await?;
    Ok((
        StatusCode::CREATED,
        Json(VenueResponse {
            id: v.id,
            name: v.name,
            capacity: v.capacity,
            tiers: v.tiers,
        }),
    ))
}

/// Create an event at a venue (admin).
#[utoipa::path(post, path = "/v1/events", tag = "catalog", request_body = EventRequest, security(("bearer" = [])),
    responses((status = 201, body = EventResponse), (status = 403, body = ErrorBody), (status = 404, description = "venue not found", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_event(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppJson(req): AppJson<EventRequest>,
) -> Result<(StatusCode, Json<EventResponse>)> {
    let title = Text::parse(&req.title, "title", 200)?;
    let category = req
        .category
        .as_deref()
        .map(|c| Text::parse(c, "category", 50))
        .transpose()?;
    let description = req
        .description
        .as_deref()
        .map(|d| Text::parse(d, "description", 5000))
        .transpose()?;
    let e = catalog::create_event(
        &state.db,
        title.as_str(),
        req.venue_id,
        category.as_ref().map(Text::as_str),
        description.as_ref().map(Text::as_str),
        state.clock.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(e.into())))
}

/// Search events by title or category.
#[utoipa::path(get, path = "/v1/events", tag = "catalog", params(EventQuery),
    responses((status = 200, body = EventPage),
              (status = 400, description = "`invalid_page`, `invalid_per_page` or `invalid_query`: a parameter out of its documented range", body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list_events(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<EventQuery>,
) -> Result<Json<EventPage>> {
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(20);
    if !(1..=limits::MAX_PAGE).contains(&page) {
        return Err(ApiError::bad_request(
            "invalid_page",
            format!("page must be between 1 and {}", limits::MAX_PAGE),
        ));
    }
    if !(1..=limits::MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::bad_request(
            "invalid_per_page",
            format!("per_page must be between 1 and {}", limits::MAX_PER_PAGE),
        ));
    }
    let q = query.q.unwrap_or_default();
    if q.chars().count() > limits::MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("q has at most {} characters", limits::MAX_QUERY_CHARS),
        ));
    }
    let (events, total) = catalog::search_events(&state.db, &q, page, per_page).await?;
    Ok(Json(EventPage {
        items: events.into_iter().map(Into::into).collect(),
        page,
        per_page,
        total,
    }))
}

/// One event with its rounds.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "catalog", params(("id" = i64, Path, description = "event id")),
    responses((status = 200, body = EventResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get_event(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
) -> Result<Json<EventResponse>> {
    let db = &state.db;
    let res = state
        .cache
        .get_or_load(crate::cache::EVENT, id, || async move {
            let Some(e) = catalog::event(db, id).await? else {
                return Ok::<_, ApiError>(None);
            };
            let rounds = catalog::rounds_of_event(db, id).await?;
            let mut res = EventResponse::from(e);
            res.rounds = Some(rounds.into_iter().map(Into::into).collect());
            Ok(Some(res))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    Ok(Json(res))
}

/// Create a round (showtime) of an event, with a price per tier (admin).
#[utoipa::path(post, path = "/v1/events/{id}/rounds", tag = "catalog", request_body = RoundRequest, security(("bearer" = [])),
    params(("id" = i64, Path, description = "event id")),
    responses((status = 201, body = RoundResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_round(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(event_id): AppPath<i64>,
    AppJson(req): AppJson<RoundRequest>,
) -> Result<(StatusCode, Json<RoundResponse>)> {
    let starts_at = chrono::DateTime::parse_from_rfc3339(&req.starts_at)
        .map_err(|_| {
            ApiError::unprocessable("invalid_starts_at", "starts_at must be an RFC 3339 time")
        })?
        .timestamp_millis();
    if req.prices.is_empty() || req.prices.len() > 100 {
        return Err(ApiError::unprocessable(
            "invalid_prices",
            "prices names 1 to 100 tiers",
        ));
    }
    let mut prices = BTreeMap::new();
    for (tier, amount) in &req.prices {
        prices.insert(
            Tier::parse(tier)?.as_str().to_owned(),
            Money::parse(*amount)?.minor(),
        );
    }
    let r = catalog::create_round(
        &state.db,
        event_id,
        starts_at,
        &prices,
        state.clock.now_ms(),
    )
    .await?;
    state.cache.event_changed(event_id).await;
    Ok((StatusCode::CREATED, Json(r.into())))
}

/// Seat counts of a round.
#[utoipa::path(get, path = "/v1/rounds/{id}/availability", tag = "catalog", params(("id" = i64, Path, description = "round id")),
    responses((status = 200, body = AvailabilityResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn availability(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let db = &state.db;
    // The cached JSON is served as is: this is the hottest read of a sale.
    let json =
        state
            .cache
            .get_or_load_json(crate::cache::AVAILABILITY, id, || async move {
                Ok::<_, ApiError>(catalog::availability(db, id).await?.map(|a| {
                    AvailabilityResponse {
                        round_id: id,
                        capacity: a.capacity,
                        available: a.available,
                        held: a.held,
                        sold: a.sold,
                    }
                }))
            })
            .await?
            .ok_or_else(|| ApiError::not_found("round"))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
}

/// Every seat of a round with its status.
#[utoipa::path(get, path = "/v1/rounds/{id}/seats", tag = "catalog", params(("id" = i64, Path, description = "round id")),
    responses((status = 200, body = SeatsResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn seats(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
) -> Result<Json<SeatsResponse>> {
    if catalog::round(&state.db, id).await?.is_none() {
        return Err(ApiError::not_found("round"));
    }
    let seats = catalog::seats(&state.db, id).await?;
    Ok(Json(SeatsResponse {
        seats: seats
            .into_iter()
            .map(|s| SeatResponse {
                id: s.id,
                label: s.label,
                section: s.section,
                row: s.row,
                tier: s.tier,
                price: s.price,
                status: s.status,
            })
            .collect(),
    }))
}
