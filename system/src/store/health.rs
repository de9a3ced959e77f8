//! Whether the database is reachable, as a circuit breaker the API reads on every request.
//!
//! Without it, a request during a database outage waits for a pooled connection until the
//! pool's acquire timeout (10 s, sized for load spikes, not outages) and only then gets a 503;
//! meanwhile every client retries into the same queue. With it, a watcher probes the database
//! over a connection of its own (outside the pool, so a busy pool never looks like an outage)
//! every [`PROBE_EVERY`]; one failed probe (refused, reset, or no answer within
//! [`PROBE_TIMEOUT`] while no transaction has committed and no pooled connection has come back
//! for [`RECENT_COMMIT`]: a saturated database is slow, not gone) opens the breaker, one answered probe closes it. While it is open,
//! requests that need the database are refused at once with 503 and `Retry-After`, and
//! writers already waiting for a connection give up; reads the cache can serve keep working.
//!
//! Only PostgreSQL is watched: the embedded SQLite file cannot become unreachable.

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};
use tokio::sync::watch;

/// How often the watcher probes.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long a probe (connect, or a ping on the open connection) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// What a refused request's `Retry-After` says, seconds.
pub const RETRY_AFTER_S: u64 = 1;

/// A probe that timed out does not open the breaker while transactions still commit: within
/// this long of the last commit the database is slow (a saturated machine), not gone.
pub const RECENT_COMMIT: Duration = Duration::from_millis(500);

/// The breaker: `true` while the database answers.
#[derive(Debug, Clone)]
pub struct DbHealth {
    up: Arc<watch::Sender<bool>>,
    /// Whether a watcher runs ([`DbHealth::watch`]): then it alone says whether the database
    /// is reachable.
    watched: Arc<std::sync::atomic::AtomicBool>,
    /// When a transaction last committed, ms since `epoch` (0: never).
    last_commit_ms: Arc<std::sync::atomic::AtomicU64>,
    /// When a probe last failed, ms since `epoch` (0: never).
    last_trouble_ms: Arc<std::sync::atomic::AtomicU64>,
    epoch: std::time::Instant,
}

impl Default for DbHealth {
    fn default() -> Self {
        DbHealth {
            up: Arc::new(watch::channel(true).0),
            watched: Arc::default(),
            last_commit_ms: Arc::default(),
            last_trouble_ms: Arc::default(),
            epoch: std::time::Instant::now(),
        }
    }
}

impl DbHealth {
    /// A transaction committed: the database answers.
    pub fn committed(&self) {
        self.answered();
    }

    /// A pooled connection came back from its work (or a transaction committed): the database
    /// answers. Commits alone were too rare a sign of life: a 30-minute soak (13 commits/s)
    /// and a 10,000-buyer rush on a machine at load 20–40 opened the breaker on slow probes
    /// (404 and 3,258 false 503s) while queries still completed.
    pub fn answered(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_commit_ms
            .store(now.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the database answered (a commit, a connection back) within [`RECENT_COMMIT`].
    fn committed_lately(&self) -> bool {
        let last = self
            .last_commit_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        last > 0
            && self.epoch.elapsed().as_millis() as u64 <= last + RECENT_COMMIT.as_millis() as u64
    }

    /// Whether a probe failed within `window` (never, when nothing watches the database):
    /// pooled connections opened before may be dead (see [`crate::store::Db`]'s pool).
    pub fn troubled_within(&self, window: Duration) -> bool {
        let last = self
            .last_trouble_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        last > 0 && self.epoch.elapsed().as_millis() as u64 <= last + window.as_millis() as u64
    }

    fn troubled(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_trouble_ms
            .store(now.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the database answered the last probe (always, when nothing watches it).
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Whether a watcher probes the database now.
    pub fn is_watched(&self) -> bool {
        self.watched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves when the database is found unreachable (at once if it already is).
    pub async fn down(&self) {
        let mut rx = self.up.subscribe();
        let _ = rx.wait_for(|up| !*up).await;
    }

    fn set(&self, up: bool) -> bool {
        self.up.send_if_modified(|v| std::mem::replace(v, up) != up)
    }

    /// Probes the database at `options` until `stop` turns true, flipping the breaker and
    /// logging each change (and recording it in `gauge`, 1 up / 0 down).
    pub async fn watch(
        self,
        options: AnyConnectOptions,
        gauge: prometheus::IntGauge,
        mut stop: watch::Receiver<bool>,
    ) {
        gauge.set(1);
        self.watched
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _unwatched = Unwatch(Arc::clone(&self.watched));
        let mut conn: Option<AnyConnection> = None;
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let probe = tokio::time::timeout(PROBE_TIMEOUT, async {
                match conn.as_mut() {
                    Some(c) => c.ping().await,
                    None => {
                        conn = Some(options.connect().await?);
                        Ok(())
                    }
                }
            })
            .await;
            let error = match probe {
                Ok(Ok(())) => None,
                // Refused, reset, closed: the database is gone.
                Ok(Err(e)) => Some(e.to_string()),
                // Slow while others' transactions commit: busy, not gone (keep the connection).
                Err(_) if self.committed_lately() => continue,
                Err(_) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            if error.is_some() {
                // A fresh connection next time: this one may be half-dead.
                conn = None;
                self.troubled();
            }
            let up = error.is_none();
            if self.set(up) {
                gauge.set(i64::from(up));
                match error {
                    Some(e) => tracing::error!(
                        error = %e,
                        "database unreachable: refusing requests that need it with 503 until it answers"
                    ),
                    None => tracing::info!("database reachable again"),
                }
            }
        }
    }
}

/// Clears the watched flag when the watcher ends (stopped or aborted).
struct Unwatch(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Unwatch {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn down_resolves_when_the_breaker_opens_and_not_before() {
        let h = DbHealth::default();
        assert!(h.is_up());
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.down().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        assert!(h.set(false));
        assert!(!h.set(false), "no change, no notification");
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(!h.is_up());
        assert!(h.set(true));
        assert!(h.is_up());
    }

    #[tokio::test]
    async fn a_silent_database_opens_the_breaker_only_once_commits_stop() {
        // Accepts connections and never answers: a hung (or saturated) server.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                open.push(s);
            }
        });
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = format!("postgres://x:y@127.0.0.1:{port}/z")
            .parse()
            .unwrap();
        let h = DbHealth::default();
        let gauge = prometheus::IntGauge::new("up", "up").unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(h.clone().watch(options, gauge, stop));
        // Transactions keep committing elsewhere: slow, not down.
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(1500) {
            h.committed();
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(h.is_up(), "opened while transactions committed");
        }
        // They stop: the next unanswered probe opens it.
        tokio::time::timeout(Duration::from_millis(1500), h.down())
            .await
            .expect("opened once nothing committed");
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_database_opens_the_breaker_within_a_second() {
        // A port nothing listens on: every connect is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = format!("postgres://x:y@127.0.0.1:{port}/z")
            .parse()
            .unwrap();
        let h = DbHealth::default();
        let gauge = prometheus::IntGauge::new("up", "up").unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(h.clone().watch(options, gauge.clone(), stop));
        let t0 = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(1), h.down())
            .await
            .expect("the breaker opened within a second");
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(gauge.get(), 0);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }
}
