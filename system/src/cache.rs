//! Cache-aside for the hot public reads: an event's catalog entry (`GET /v1/events/{id}`) and a
//! round's availability (`GET /v1/rounds/{id}/availability`).
//!
//! A read looks in the cache, and on a miss reads the database and stores the JSON answer with
//! a TTL. Every seat change (hold, release, booking, payment, cancellation, expiry) deletes the
//! round's availability entry after its transaction commits, and a new round deletes its
//! event's entry. A reader that read the database just before a write and stores its value just
//! after the write's invalidation leaves a stale entry behind: the TTL (`--cache-ttl-ms`,
//! 2 s by default) bounds how long. The backend is Redis when `--redis-url` is set (shared by
//! every instance) and a moka cache in this process otherwise. A cache that fails is skipped:
//! the database answers, and the failure is counted as `result="error"`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::metrics::Metrics;

/// A string key-value store with expiry: what cache-aside needs from a backend.
#[async_trait]
pub trait Cache: Send + Sync + std::fmt::Debug {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>>;
    /// Stores `value` under `key` for `ttl`.
    async fn set(&self, key: &str, value: String, ttl: Duration) -> anyhow::Result<()>;
    /// Deletes `key` (absent is fine).
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Whether the backend answers (always for in-process backends).
    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Redis: `GET`, `SET … PX`, `DEL` under a key prefix.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisCache {
    /// A cache on `conn` whose keys start with `prefix:cache:`.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}:cache:"),
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GET")
            .arg(format!("{}{key}", self.prefix))
            .query_async(&mut conn)
            .await?)
    }

    async fn set(&self, key: &str, value: String, ttl: Duration) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(format!("{}{key}", self.prefix))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

/// In-process: a moka cache whose entries all live `ttl` (the TTL passed to `set` is ignored:
/// one TTL per cache is what moka's builder offers, and the box office uses one).
#[derive(Debug, Clone)]
pub struct LocalCache {
    inner: moka::future::Cache<String, String>,
}

impl LocalCache {
    /// At most `capacity` entries, each living `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }
}

#[async_trait]
impl Cache for LocalCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self.inner.get(key).await)
    }

    async fn set(&self, key: &str, value: String, _ttl: Duration) -> anyhow::Result<()> {
        self.inner.insert(key.to_owned(), value).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.inner.invalidate(key).await;
        Ok(())
    }
}

/// The box office's cached reads and their invalidations, with hit/miss metrics.
#[derive(Debug, Clone)]
pub struct CatalogCache {
    backend: Arc<dyn Cache>,
    ttl: Duration,
    metrics: Metrics,
    /// `boxoffice_cache_requests_total` children by cache and result, resolved once: a hit
    /// is cheaper than the label lookup that would count it.
    counts: Arc<[(&'static str, &'static str, prometheus::IntCounter)]>,
}

/// The `result` label values of `boxoffice_cache_requests_total`.
pub const RESULTS: [&str; 3] = ["hit", "miss", "error"];

/// The `cache` label of availability entries.
pub const AVAILABILITY: &str = "availability";
/// The `cache` label of event entries.
pub const EVENT: &str = "event";

impl CatalogCache {
    /// Cache-aside over `backend` with entries living `ttl`.
    pub fn new(backend: Arc<dyn Cache>, ttl: Duration, metrics: Metrics) -> Self {
        let counts = [AVAILABILITY, EVENT]
            .into_iter()
            .flat_map(|c| RESULTS.map(|r| (c, r)))
            .map(|(c, r)| (c, r, metrics.cache_requests.with_label_values(&[c, r])))
            .collect();
        Self {
            backend,
            ttl,
            metrics,
            counts,
        }
    }

    fn count(&self, cache: &str, result: &str) {
        match self
            .counts
            .iter()
            .find(|(c, r, _)| *c == cache && *r == result)
        {
            Some((_, _, counter)) => counter.inc(),
            None => self
                .metrics
                .cache_requests
                .with_label_values(&[cache, result])
                .inc(),
        }
    }

    /// The value of `cache`/`id` from the cache, else from `load` (stored when `Some`).
    #[tracing::instrument(name = "cache.get_or_load", skip_all, fields(otel.kind = "client", cache = cache))]
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        cache: &'static str,
        id: i64,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let key = format!("{cache}:{id}");
        match self.backend.get(&key).await {
            Ok(Some(json)) => match serde_json::from_str(&json) {
                Ok(v) => {
                    self.count(cache, "hit");
                    return Ok(Some(v));
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "unreadable cache entry");
                    self.count(cache, "error");
                }
            },
            Ok(None) => self.count(cache, "miss"),
            Err(e) => {
                tracing::warn!(key, error = %e, "cache read failed; reading the database");
                self.count(cache, "error");
            }
        }
        let value = load().await?;
        if let Some(v) = &value {
            if let Ok(json) = serde_json::to_string(v) {
                if let Err(e) = self.backend.set(&key, json, self.ttl).await {
                    tracing::warn!(key, error = %e, "cache write failed");
                }
            }
        }
        Ok(value)
    }

    /// Like [`CatalogCache::get_or_load`], but returns the JSON text itself: a hit is served
    /// without parsing and re-serialising it (the hot path of availability reads).
    #[tracing::instrument(name = "cache.get_or_load", skip_all, fields(otel.kind = "client", cache = cache))]
    pub async fn get_or_load_json<T, E, F, Fut>(
        &self,
        cache: &'static str,
        id: i64,
        load: F,
    ) -> Result<Option<String>, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let key = format!("{cache}:{id}");
        match self.backend.get(&key).await {
            Ok(Some(json)) => {
                self.count(cache, "hit");
                return Ok(Some(json));
            }
            Ok(None) => self.count(cache, "miss"),
            Err(e) => {
                tracing::warn!(key, error = %e, "cache read failed; reading the database");
                self.count(cache, "error");
            }
        }
        let Some(value) = load().await? else {
            return Ok(None);
        };
        let json = serde_json::to_string(&value).unwrap_or_default();
        if let Err(e) = self.backend.set(&key, json.clone(), self.ttl).await {
            tracing::warn!(key, error = %e, "cache write failed");
        }
        Ok(Some(json))
    }

    async fn invalidate(&self, cache: &str, id: i64) {
        let key = format!("{cache}:{id}");
        if let Err(e) = self.backend.delete(&key).await {
            // The TTL still bounds the staleness.
            tracing::warn!(key, error = %e, "cache invalidation failed");
        }
    }

    /// Whether the cache's backend answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.backend.ping().await
    }

    /// Seats of `round_id` changed: forget its availability.
    #[tracing::instrument(name = "cache.invalidate", skip_all, fields(otel.kind = "client"))]
    pub async fn seats_changed(&self, round_id: i64) {
        self.invalidate(AVAILABILITY, round_id).await;
    }

    /// The event's rounds changed: forget its catalog entry.
    pub async fn event_changed(&self, event_id: i64) {
        self.invalidate(EVENT, event_id).await;
    }
}
