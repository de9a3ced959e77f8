//! The reaper: expires active holds whose TTL has passed and unpaid bookings past their
//! payment deadline, releasing their seats, invalidating the cached availability of their
//! rounds and publishing the seats of expired holds to the rounds' seat streams (owners, and
//! seat streams, hear of expired bookings through the outbox and the `notifier` consumer). [`run_once`] does one sweep (tests call it with a
//! manual clock); [`spawn`] sweeps every interval until the shutdown signal.

use std::time::Duration;

use crate::error::Result;
use crate::notify::SeatState;
use crate::state::AppState;

/// One sweep; returns (holds expired, bookings expired).
pub async fn run_once(state: &AppState) -> Result<(u64, u64)> {
    let now = state.clock.now_ms();
    let expired = crate::store::bookings::expire_due_detailed(&state.db, now).await?;
    for round in expired.rounds() {
        state.cache.seats_changed(round).await;
    }
    // Expired bookings reach the seat streams through their `booking.expired` events; holds
    // have no event, so their seats are published from here.
    for (hold_id, round) in &expired.holds {
        match crate::store::holds::get(&state.db, *hold_id).await {
            Ok(Some(h)) => state.publish_seats(*round, SeatState::Released, h.seat_ids),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, hold_id, "seats of an expired hold not published"),
        }
    }
    let (holds, bookings) = (expired.holds.len() as u64, expired.bookings.len() as u64);
    state
        .metrics
        .holds_expired
        .with_label_values(&["hold"])
        .inc_by(holds);
    state
        .metrics
        .holds_expired
        .with_label_values(&["booking"])
        .inc_by(bookings);
    state
        .metrics
        .bookings
        .with_label_values(&["expired"])
        .inc_by(bookings);
    if holds + bookings > 0 {
        tracing::info!(holds, bookings, "reaper expired holds and bookings");
    }
    Ok((holds, bookings))
}

/// Sweeps every `interval` until `shutdown` fires, and refreshes the oversold gauge with it
/// as often as [`crate::metrics::OVERSOLD_AUDIT_BUDGET`] allows.
pub fn spawn(
    state: AppState,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if let Err(e) = run_once(&state).await {
                tracing::warn!(error = %e, "reaper sweep failed");
            }
            let audit = &state.metrics.oversold_audit;
            if audit.due() {
                let started = std::time::Instant::now();
                let total = crate::store::audit::oversold_total(&state.db).await;
                audit.done(started, total.is_ok());
                match total {
                    Ok(n) => state.metrics.oversold_seats.set(n),
                    Err(e) => tracing::warn!(error = %e, "oversold audit failed"),
                }
            }
        }
    })
}
