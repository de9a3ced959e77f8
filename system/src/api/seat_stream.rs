//! `GET /v1/rounds/{id}/seats/stream`: a public Server-Sent Events stream of a round's seat
//! changes, for the buyer's page and for spectators of a flash sale.
//!
//! Every connection starts with a `snapshot` event (the seats held and sold now, read from the
//! database after subscribing, so nothing published meanwhile is lost), then one event per
//! change (`held`, `released`, `sold`), fed by [`crate::notify`] so that a seat taken through
//! any instance shows on every instance. Pub/sub is fire-and-forget, so the stream does not
//! replay: a client that reconnects (an `EventSource` does so by itself, sending
//! `Last-Event-ID`) gets a fresh snapshot, which supersedes whatever it missed; a stream that
//! falls behind its instance's channel gets one too.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::extract::AppPath;
use crate::error::{ApiError, ErrorBody, Result};
use crate::metrics::SseGuard;
use crate::notify::SeatChange;
use crate::state::AppState;
use crate::store::catalog;

/// The first event of every seat stream: the round's seats that are not free now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatSnapshot {
    /// The round.
    pub round_id: i64,
    /// Seats held (by a hold or an unpaid booking), ascending.
    pub held: Vec<i64>,
    /// Seats sold, ascending.
    pub sold: Vec<i64>,
    /// When the snapshot was read, epoch ms.
    pub at: i64,
}

// ---- BEGIN seat stream (issue 17): documented here, registered in `api::routes` ----
/// A round's seat changes as they happen (Server-Sent Events, public). The first event is a
/// `snapshot` (data: `SeatSnapshot`); then each change is an event named `held`, `released`
/// or `sold` (data: `SeatChange`) with an `id`. On reconnection (with or without
/// `Last-Event-ID`) the stream starts again with a fresh snapshot, which supersedes anything
/// missed; the same happens when a slow client falls behind.
#[utoipa::path(get, path = "/v1/rounds/{id}/seats/stream", tag = "catalog",
    params(("id" = i64, Path, description = "round id"),
           ("Last-Event-ID" = Option<String>, Header, description = "sent by a reconnecting EventSource; answered with a fresh snapshot")),
    responses((status = 200, description = "text/event-stream: one `snapshot` event (`SeatSnapshot`), then `held`, `released` and `sold` events (`SeatChange`)", content_type = "text/event-stream", body = SeatChange),
              (status = 404, description = "round not found", body = ErrorBody),
              (status = 400, description = "invalid_path: the id is not an integer", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(round_id))]
pub async fn seat_stream(
    State(state): State<AppState>,
    AppPath(round_id): AppPath<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    tracing::Span::current().record("round_id", round_id);
    // Subscribe before reading the snapshot: a change committed meanwhile is then both in the
    // snapshot and in the channel, and applying it twice is harmless.
    let rx = state.notifier.subscribe_seats();
    let first = snapshot(&state, round_id)
        .await?
        .ok_or_else(|| ApiError::not_found("round"))?;
    let open = SseGuard::seats(&state.metrics);
    let stream = futures::stream::unfold(
        (rx, Some(first), open, state, 0u64),
        move |(mut rx, pending, open, state, mut seq)| async move {
            if let Some(event) = pending {
                return Some((Ok(event), (rx, None, open, state, seq)));
            }
            loop {
                match rx.recv().await {
                    Ok(c) if c.round_id == round_id => {
                        seq += 1;
                        state
                            .metrics
                            .seat_stream_events
                            .with_label_values(&["change"])
                            .inc();
                        let event = Event::default()
                            .event(c.state.as_str())
                            .id(format!("{}-{seq}", c.at))
                            .json_data(&c)
                            .unwrap_or_default();
                        return Some((Ok(event), (rx, None, open, state, seq)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            round_id,
                            "a seat stream fell behind; sending a snapshot"
                        );
                        rx = rx.resubscribe();
                        match snapshot(&state, round_id).await {
                            Ok(Some(event)) => {
                                return Some((Ok(event), (rx, None, open, state, seq)))
                            }
                            Ok(None) => return None,
                            Err(e) => {
                                tracing::warn!(error = %e, round_id, "seat snapshot failed; closing the stream");
                                return None;
                            }
                        }
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
// ---- END seat stream (issue 17) ----

/// The `snapshot` event of `round_id`; `None` when the round does not exist.
async fn snapshot(state: &AppState, round_id: i64) -> Result<Option<Event>> {
    if catalog::round(&state.db, round_id).await?.is_none() {
        return Ok(None);
    }
    let at = state.clock.now_ms();
    let (mut held, mut sold) = (Vec::new(), Vec::new());
    for seat in catalog::seats(&state.db, round_id).await? {
        match seat.status.as_str() {
            "held" => held.push(seat.id),
            "sold" => sold.push(seat.id),
            _ => {}
        }
    }
    state
        .metrics
        .seat_stream_events
        .with_label_values(&["snapshot"])
        .inc();
    let body = SeatSnapshot {
        round_id,
        held,
        sold,
        at,
    };
    Ok(Some(
        Event::default()
            .event("snapshot")
            .id(format!("{at}-0"))
            .json_data(&body)
            .unwrap_or_default(),
    ))
}
