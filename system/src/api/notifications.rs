//! `GET /v1/me/notifications`: a Server-Sent Events stream of the caller's booking changes
//! (`booking.confirmed`, `booking.cancelled`, `booking.expired`), fed by [`crate::notify`] so
//! that any instance serves any user's stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::AuthUser;
use crate::error::ErrorBody;
use crate::notify::Notification;
use crate::state::AppState;

/// The caller's booking changes as they happen (Server-Sent Events; the event name is the
/// kind, the data a JSON `Notification`). Only changes after the connection are sent.
#[utoipa::path(get, path = "/v1/me/notifications", tag = "bookings", security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of `Notification` events", content_type = "text/event-stream", body = Notification),
              (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user_id = user.id))]
pub async fn notifications(
    State(state): State<AppState>,
    user: AuthUser,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.notifier.subscribe();
    let me = user.id;
    // Lives as long as the stream: the gauge drops when the client goes away.
    let open = crate::metrics::SseGuard::new(&state.metrics);
    let stream = futures::stream::unfold((rx, open), move |(mut rx, open)| async move {
        loop {
            match rx.recv().await {
                Ok(n) if n.user_id == me => {
                    let event = Event::default()
                        .event(n.kind.clone())
                        .json_data(&n)
                        .unwrap_or_default();
                    return Some((Ok(event), (rx, open)));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a notification stream fell behind");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
