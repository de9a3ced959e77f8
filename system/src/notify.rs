//! Notification fan-out: a change to a user's booking (published by the `notifier` Kafka
//! consumer, see [`crate::kafka`]) reaches that user's open
//! `GET /v1/me/notifications` streams, and a change of a round's seats (held, released, sold)
//! reaches every open `GET /v1/rounds/{id}/seats/stream`, whichever instance serves them.
//!
//! ```text
//!  instance A                            Redis                             instance B
//!  publish(n) ──────── PUBLISH prefix:notify:<user> ──► PSUBSCRIBE prefix:notify:* ─► broadcast ─► SSE of <user>
//!  publish_seats(c) ── PUBLISH prefix:seats:<round> ──► PSUBSCRIBE prefix:seats:*  ─► broadcast ─► SSE of <round>
//! ```
//!
//! Seat changes come from two places: holds placed, released or expired are published by the
//! instance that made the change, right after its commit (holds are not outbox events: they
//! are the hot path of a flash sale); bookings confirmed (`sold`), cancelled or expired
//! (`released`) by the `notifier` consumer of `booking.events`, like the owners' notifications.
//!
//! With `--redis-url`, [`Notifier::publish`] goes through Redis pub/sub and every instance runs
//! one listener task that forwards what it hears into a local broadcast channel; each SSE
//! stream filters that channel by its user. Without Redis, publish feeds the local channel
//! directly (one instance). Pub/sub is fire-and-forget: a stream that is not connected (or an
//! instance whose listener is reconnecting after a Redis restart) misses what is published
//! meanwhile; clients re-read `GET /v1/me/bookings` when they reconnect.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

/// One change of a booking, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    /// `booking.confirmed`, `booking.cancelled` or `booking.expired`.
    pub kind: String,
    /// The owner.
    pub user_id: i64,
    /// The booking.
    pub booking_id: i64,
    /// Its round.
    pub round_id: i64,
    /// When it happened, epoch ms.
    pub at: i64,
}

/// What happened to some seats of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeatState {
    /// Taken by a hold (or an unpaid booking).
    Held,
    /// Free again: a hold released or expired, a booking cancelled or expired.
    Released,
    /// Paid for.
    Sold,
}

impl SeatState {
    /// The event name on the seat stream and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatState::Held => "held",
            SeatState::Released => "released",
            SeatState::Sold => "sold",
        }
    }

    /// Every state, for metric labels.
    pub const ALL: [SeatState; 3] = [SeatState::Held, SeatState::Released, SeatState::Sold];
}

/// A change of some seats of one round, as every viewer of its seat map sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeatChange {
    /// The round.
    pub round_id: i64,
    /// What happened to the seats.
    pub state: SeatState,
    /// The seats, ascending.
    pub seat_ids: Vec<i64>,
    /// When it happened, epoch ms.
    pub at: i64,
}

/// Publishes notifications and hands out subscriptions to them.
#[derive(Clone)]
pub struct Notifier {
    local: broadcast::Sender<Notification>,
    seats: broadcast::Sender<SeatChange>,
    redis: Option<(ConnectionManager, String)>,
    /// `true` once the Redis listener is subscribed (always `true` without Redis).
    listening: watch::Receiver<bool>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("redis", &self.redis.as_ref().map(|(_, p)| p))
            .finish()
    }
}

const LOCAL_CAPACITY: usize = 4096;

impl Notifier {
    /// In-process fan-out only.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let (seats, _) = broadcast::channel(LOCAL_CAPACITY);
        let (_, listening) = watch::channel(true);
        Self {
            local,
            seats,
            redis: None,
            listening,
        }
    }

    /// Fan-out through Redis pub/sub on channels `prefix:notify:<user id>` and
    /// `prefix:seats:<round id>`; starts the listener task (which resubscribes after a Redis
    /// restart).
    pub fn redis(client: redis::Client, conn: ConnectionManager, prefix: &str) -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let (seats, _) = broadcast::channel(LOCAL_CAPACITY);
        let (ready_tx, listening) = watch::channel(false);
        let fanout = Fanout {
            prefix: prefix.to_owned(),
            notifications: local.clone(),
            seats: seats.clone(),
        };
        tokio::spawn(listen(client, fanout, ready_tx));
        Self {
            local,
            seats,
            redis: Some((conn, prefix.to_owned())),
            listening,
        }
    }

    /// Waits up to `timeout` for the Redis listener to be subscribed; `false` on timeout.
    pub async fn wait_listening(&self, timeout: Duration) -> bool {
        let mut rx = self.listening.clone();
        tokio::time::timeout(timeout, rx.wait_for(|v| *v))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sends `n` to every stream of its user on every instance. Failures are logged: a lost
    /// notification does not undo the change it reports.
    pub async fn publish(&self, n: Notification) {
        match &self.redis {
            None => {
                let _ = self.local.send(n);
            }
            Some((conn, prefix)) => {
                let mut conn = conn.clone();
                let payload = serde_json::to_string(&n).unwrap_or_default();
                let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(format!("{prefix}:notify:{}", n.user_id))
                    .arg(payload)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, kind = n.kind, booking_id = n.booking_id, "notification not published");
                }
            }
        }
    }

    /// Everything published from now on (every user's: filter by `user_id`).
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.local.subscribe()
    }

    /// Sends `change` to every seat stream of its round on every instance. Failures are
    /// logged: viewers catch up with a fresh snapshot when they reconnect.
    pub async fn publish_seats(&self, change: SeatChange) {
        if change.seat_ids.is_empty() {
            return;
        }
        match &self.redis {
            None => {
                let _ = self.seats.send(change);
            }
            Some((conn, prefix)) => {
                let mut conn = conn.clone();
                let payload = serde_json::to_string(&change).unwrap_or_default();
                let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(format!("{prefix}:seats:{}", change.round_id))
                    .arg(payload)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, round_id = change.round_id, state = change.state.as_str(), "seat change not published");
                }
            }
        }
    }

    /// Every seat change published from now on (every round's: filter by `round_id`).
    pub fn subscribe_seats(&self) -> broadcast::Receiver<SeatChange> {
        self.seats.subscribe()
    }
}

/// Where the Redis listener forwards what it hears.
struct Fanout {
    prefix: String,
    notifications: broadcast::Sender<Notification>,
    seats: broadcast::Sender<SeatChange>,
}

impl Fanout {
    fn forward(&self, channel: &str, payload: &str) {
        if channel.starts_with(&format!("{}:seats:", self.prefix)) {
            match serde_json::from_str::<SeatChange>(payload) {
                Ok(c) => {
                    let _ = self.seats.send(c);
                }
                Err(e) => tracing::warn!(error = %e, "unreadable seat change"),
            }
        } else {
            match serde_json::from_str::<Notification>(payload) {
                Ok(n) => {
                    let _ = self.notifications.send(n);
                }
                Err(e) => tracing::warn!(error = %e, "unreadable notification"),
            }
        }
    }

    fn idle(&self) -> bool {
        self.notifications.receiver_count() == 0
            && self.notifications.is_empty()
            && self.seats.receiver_count() == 0
    }
}

async fn listen(client: redis::Client, fanout: Fanout, ready: watch::Sender<bool>) {
    let patterns = [
        format!("{}:notify:*", fanout.prefix),
        format!("{}:seats:*", fanout.prefix),
    ];
    loop {
        let result = async {
            let mut pubsub = client.get_async_pubsub().await?;
            for p in &patterns {
                pubsub.psubscribe(p).await?;
            }
            let _ = ready.send(true);
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let payload: String = msg.get_payload()?;
                fanout.forward(msg.get_channel_name(), &payload);
            }
            redis::RedisResult::Ok(())
        }
        .await;
        let _ = ready.send(false);
        if fanout.idle() && ready.is_closed() {
            return;
        }
        match result {
            Ok(()) => tracing::warn!("notification subscription ended; resubscribing"),
            Err(e) => tracing::warn!(error = %e, "notification subscription failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
