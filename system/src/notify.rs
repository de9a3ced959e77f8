//! Notification fan-out: a change to a user's booking (published by the `notifier` Kafka
//! consumer, see [`crate::kafka`]) reaches that user's open
//! `GET /v1/me/notifications` streams, whichever instance serves them.
//!
//! ```text
//!  instance A                      Redis                       instance B
//!  publish(n) ── PUBLISH prefix:notify:<user> ──► PSUBSCRIBE prefix:notify:* ── broadcast ──► SSE of <user>
//! ```
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

/// Publishes notifications and hands out subscriptions to them.
#[derive(Clone)]
pub struct Notifier {
    local: broadcast::Sender<Notification>,
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
        let (_, listening) = watch::channel(true);
        Self {
            local,
            redis: None,
            listening,
        }
    }

    /// Fan-out through Redis pub/sub on channels `prefix:notify:<user id>`; starts the
    /// listener task (which resubscribes after a Redis restart).
    pub fn redis(client: redis::Client, conn: ConnectionManager, prefix: &str) -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let (ready_tx, listening) = watch::channel(false);
        let pattern = format!("{prefix}:notify:*");
        tokio::spawn(listen(client, pattern, local.clone(), ready_tx));
        Self {
            local,
            redis: Some((conn, format!("{prefix}:notify:"))),
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
            Some((conn, channel)) => {
                let mut conn = conn.clone();
                let payload = serde_json::to_string(&n).unwrap_or_default();
                let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(format!("{channel}{}", n.user_id))
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
}

async fn listen(
    client: redis::Client,
    pattern: String,
    local: broadcast::Sender<Notification>,
    ready: watch::Sender<bool>,
) {
    loop {
        let result = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            let _ = ready.send(true);
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let payload: String = msg.get_payload()?;
                match serde_json::from_str::<Notification>(&payload) {
                    Ok(n) => {
                        let _ = local.send(n);
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable notification"),
                }
            }
            redis::RedisResult::Ok(())
        }
        .await;
        let _ = ready.send(false);
        if local.receiver_count() == 0 && local.is_empty() && ready.is_closed() {
            return;
        }
        match result {
            Ok(()) => tracing::warn!("notification subscription ended; resubscribing"),
            Err(e) => tracing::warn!(error = %e, "notification subscription failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
