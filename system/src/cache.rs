//! Cache-aside for the hot public reads: an event's catalog entry (`GET /v1/events/{id}`) and a
//! round's availability (`GET /v1/rounds/{id}/availability`).
//!
//! A read looks in the cache, and on a miss reads the database and stores the JSON answer with
//! a TTL. Every seat change (hold, release, booking, payment, cancellation, expiry) deletes the
//! round's availability entry after its transaction commits, and a new round deletes its
//! event's entry. A reader that read the database just before a write and stores its value just
//! after the write's invalidation leaves a stale entry behind: the entry's lifetime bounds how
//! long. Each entry lives the TTL (`--cache-ttl-ms`, 2 s by default) plus a random jitter
//! (`--cache-ttl-jitter-ms`, up to 0.4 s), so that entries filled together do not expire
//! together and stampede the database; the stale-read window is therefore TTL + jitter. The
//! backend is Redis when `--redis-url` is set (shared by every instance; with server-assisted
//! client-side caching, each instance keeps the entries it read in memory until Redis tells it
//! they changed, see [`RedisCache`]) and a moka cache in this process otherwise. A cache that fails is skipped: the database answers, and the
//! failure is counted as `result="error"`. `--cache off` ([`CacheMode::Off`]) sends every read
//! to the database, uncounted: the baseline of the cache-compare experiment.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument as _;

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
    /// Whether a call may leave the process (a server such as Redis), so that a trace should
    /// show it as a client span (see [`CatalogCache::get_or_load`]).
    fn remote(&self) -> bool {
        false
    }
}

/// Longest a cache command may take before the request goes on without the cache.
pub const REDIS_OP_TIMEOUT: Duration = Duration::from_millis(250);
/// How long the cache is skipped after Redis failed or was slow: a failover, a pause or a
/// partition costs each request at most one [`REDIS_OP_TIMEOUT`] per second, not the
/// connection's response timeout every time.
pub const REDIS_SKIP_FOR: Duration = Duration::from_secs(1);

/// Whether Redis is being skipped after a failure. The lock service's is shared with the cache
/// on the same connection: a hung, paused or failing-over Redis the lock service finds is
/// skipped by the cache too for [`REDIS_SKIP_FOR`], so a request that uses both (a `fenced`
/// hold takes a lock, then invalidates the cache) waits at most one [`REDIS_OP_TIMEOUT`], not
/// one each (the `fenced` × `redis` fault-matrix cells' window p99
/// was 507–511 ms, two timeouts in a row).
#[derive(Debug, Clone)]
pub struct RedisSkip {
    /// Until when (ms since `epoch`) Redis is skipped.
    until_ms: Arc<std::sync::atomic::AtomicU64>,
    epoch: std::time::Instant,
}

impl Default for RedisSkip {
    fn default() -> Self {
        RedisSkip {
            until_ms: Arc::default(),
            epoch: std::time::Instant::now(),
        }
    }
}

impl RedisSkip {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether Redis failed less than [`REDIS_SKIP_FOR`] ago.
    pub fn skipping(&self) -> bool {
        self.now_ms() < self.until_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records a failure of a command begun at `began` (from [`RedisSkip::began`]): Redis is
    /// skipped from now on for [`REDIS_SKIP_FOR`]. True when it was not skipped when the
    /// command began (the first to notice logs it).
    pub fn failed(&self, began: u64) -> bool {
        let until = self.now_ms() + REDIS_SKIP_FOR.as_millis() as u64;
        self.until_ms
            .swap(until, std::sync::atomic::Ordering::Relaxed)
            <= began
    }

    /// The time a command begins, for [`RedisSkip::failed`].
    pub fn began(&self) -> u64 {
        self.now_ms()
    }
}

/// Redis: `GET`, `SET … PX`, `DEL` under a key prefix, each bounded by [`REDIS_OP_TIMEOUT`];
/// after a failure the cache is skipped for [`REDIS_SKIP_FOR`] (reads go to the database,
/// invalidations are dropped: a stale entry lives at most its TTL, the cache's contract).
///
/// Its connection uses Redis's server-assisted client-side caching (see
/// `state::connect_redis_tracked`): a `GET` of a key this instance read before, and that
/// nobody changed since, is answered from this process's memory without a round trip. Redis
/// tells every instance that read a key when any client changes or deletes it.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
    /// Skipped after its own failure.
    skip: RedisSkip,
    /// The lock service's skip on the same Redis: a Redis the lock service found hung is
    /// skipped here too. (Not the other way round: a cache command has a plain timeout, which
    /// a busy Redis can miss, and the lock service tells busy from hung itself.)
    locks: RedisSkip,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisCache {
    /// A cache on `conn` whose keys start with `prefix:cache:`, skipping Redis while `skip`
    /// says so.
    pub fn new(conn: ConnectionManager, prefix: &str, locks: RedisSkip) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}:cache:"),
            skip: RedisSkip::default(),
            locks,
        }
    }

    /// Runs one command within [`REDIS_OP_TIMEOUT`], unless Redis failed moments ago.
    async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> anyhow::Result<T> {
        if self.skip.skipping() || self.locks.skipping() {
            anyhow::bail!("Redis failed less than {REDIS_SKIP_FOR:?} ago; cache skipped");
        }
        let began = self.skip.began();
        let failed = match tokio::time::timeout(REDIS_OP_TIMEOUT, command).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => anyhow::Error::from(e),
            Err(_) => anyhow::anyhow!("Redis did not answer within {REDIS_OP_TIMEOUT:?}"),
        };
        if self.skip.failed(began) {
            tracing::warn!(error = %failed, "Redis cache failing: skipped for {REDIS_SKIP_FOR:?}");
        }
        Err(failed)
    }
}

/// Appends a `PING` to a write's pipeline, so that the write returns only once this
/// connection has dropped its own kept copy of the key. Redis sends a client the invalidation
/// of a key it changed itself right after the command's reply, not before: without the
/// `PING`, a read straight after this instance's own write could still be served the copy
/// kept in memory (client-side caching). The invalidation comes before the `PING`'s reply on
/// the connection, and replies are read in order.
fn then_ping(mut pipe: redis::Pipeline) -> redis::Pipeline {
    pipe.cmd("PING").ignore();
    pipe
}

#[async_trait]
impl Cache for RedisCache {
    fn remote(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn.clone();
        let key = format!("{}{key}", self.prefix);
        let mut get = redis::cmd("GET");
        get.arg(key)
            .set_cache_config(redis::CommandCacheConfig::new().set_enable_cache(true));
        self.bounded(get.query_async(&mut conn)).await
    }

    async fn set(&self, key: &str, value: String, ttl: Duration) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let key = format!("{}{key}", self.prefix);
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut set = redis::pipe();
        set.cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        self.bounded(then_ping(set).query_async::<()>(&mut conn))
            .await
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let key = format!("{}{key}", self.prefix);
        let mut del = redis::pipe();
        del.cmd("DEL").arg(key).ignore();
        self.bounded(then_ping(del).query_async::<()>(&mut conn))
            .await
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

/// Whether the box office caches its catalog reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    /// Cache-aside (the default).
    On,
    /// No cache: every read from the database.
    Off,
}

/// In-process: a moka cache; each entry keeps its own deadline (the TTL passed to `set`), and
/// moka evicts every entry after `max_ttl` at the latest.
#[derive(Debug, Clone)]
pub struct LocalCache {
    inner: moka::future::Cache<String, (String, std::time::Instant)>,
}

impl LocalCache {
    /// At most `capacity` entries, none living longer than `max_ttl`.
    pub fn new(capacity: u64, max_ttl: Duration) -> Self {
        Self {
            inner: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }
}

#[async_trait]
impl Cache for LocalCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .inner
            .get(key)
            .await
            .filter(|(_, deadline)| std::time::Instant::now() < *deadline)
            .map(|(value, _)| value))
    }

    async fn set(&self, key: &str, value: String, ttl: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + ttl;
        self.inner.insert(key.to_owned(), (value, deadline)).await;
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
    /// Most extra lifetime drawn for an entry (see the module's doc).
    jitter: Duration,
    /// Off: reads go to the database and nothing is counted or stored.
    mode: CacheMode,
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
            jitter: Duration::ZERO,
            mode: CacheMode::On,
            metrics,
            counts,
        }
    }

    /// Each entry lives `ttl` plus a uniform draw in 0..=`jitter`.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// On or off.
    pub fn with_mode(mut self, mode: CacheMode) -> Self {
        self.mode = mode;
        self
    }

    /// The longest a stale entry can be served: the TTL plus the most jitter.
    pub fn stale_window(&self) -> Duration {
        self.ttl + self.jitter
    }

    /// This entry's lifetime: the TTL plus its jitter.
    fn entry_ttl(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.ttl;
        }
        let extra =
            rand::Rng::gen_range(&mut rand::thread_rng(), 0..=self.jitter.as_millis() as u64);
        self.ttl + Duration::from_millis(extra)
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
    ///
    /// Its client span, `cache.get_or_load`, is at `info` when the backend is a server
    /// (Redis: a round trip a trace should show, 250 ms when Redis hangs) and at `debug` for
    /// the in-process table, where it would time a hash lookup and cost a cached read more
    /// than the lookup (`cargo bench -p boxoffice --bench observability`).
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
        let work = self.get_or_load_inner(cache, id, load);
        work.instrument(self.client_span(cache)).await
    }

    async fn get_or_load_inner<T, E, F, Fut>(
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
        if self.mode == CacheMode::Off {
            return load().await;
        }
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
                if let Err(e) = self.backend.set(&key, json, self.entry_ttl()).await {
                    tracing::warn!(key, error = %e, "cache write failed");
                }
            }
        }
        Ok(value)
    }

    /// Like [`CatalogCache::get_or_load`], but returns the JSON text itself: a hit is served
    /// without parsing and re-serialising it (the hot path of availability reads).
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
        let work = self.get_or_load_json_inner(cache, id, load);
        work.instrument(self.client_span(cache)).await
    }

    async fn get_or_load_json_inner<T, E, F, Fut>(
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
        if self.mode == CacheMode::Off {
            return Ok(load()
                .await?
                .map(|v| serde_json::to_string(&v).unwrap_or_default()));
        }
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
        if let Err(e) = self.backend.set(&key, json.clone(), self.entry_ttl()).await {
            tracing::warn!(key, error = %e, "cache write failed");
        }
        Ok(Some(json))
    }

    /// The client span of a read of `cache` (see [`CatalogCache::get_or_load`]).
    fn client_span(&self, cache: &'static str) -> tracing::Span {
        if self.backend.remote() {
            tracing::info_span!("cache.get_or_load", otel.kind = "client", cache = cache)
        } else {
            tracing::debug_span!("cache.get_or_load", otel.kind = "client", cache = cache)
        }
    }

    async fn invalidate(&self, cache: &str, id: i64) {
        if self.mode == CacheMode::Off {
            return;
        }
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

    /// Seats of `round_id` changed: forget its availability. Its client span,
    /// `cache.invalidate`, follows the rule of [`CatalogCache::get_or_load`]'s.
    pub async fn seats_changed(&self, round_id: i64) {
        let span = if self.backend.remote() {
            tracing::info_span!("cache.invalidate", otel.kind = "client")
        } else {
            tracing::debug_span!("cache.invalidate", otel.kind = "client")
        };
        self.invalidate(AVAILABILITY, round_id)
            .instrument(span)
            .await;
    }

    /// The event's rounds changed: forget its catalog entry.
    pub async fn event_changed(&self, event_id: i64) {
        self.invalidate(EVENT, event_id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-process table behind a backend that says it is a server.
    #[derive(Debug)]
    struct Remote(LocalCache);

    #[async_trait]
    impl Cache for Remote {
        async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
            self.0.get(key).await
        }
        async fn set(&self, key: &str, value: String, ttl: Duration) -> anyhow::Result<()> {
            self.0.set(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> anyhow::Result<()> {
            self.0.delete(key).await
        }
        fn remote(&self) -> bool {
            true
        }
    }

    /// Names the spans created, with their level.
    #[derive(Clone, Default)]
    struct Spans(Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let meta = attrs.metadata();
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", meta.level(), meta.name()));
        }
    }

    /// The spans a cached read, a hit and an invalidation of `backend` create with the
    /// subscriber at `level`.
    async fn spans_of(backend: Arc<dyn Cache>, level: tracing::Level) -> Vec<String> {
        use tracing_subscriber::layer::SubscriberExt as _;
        let spans = Spans::default();
        let subscriber = tracing_subscriber::registry()
            .with(spans.clone())
            .with(tracing_subscriber::filter::LevelFilter::from_level(level));
        let _default = tracing::subscriber::set_default(subscriber);
        let cache = CatalogCache::new(backend, Duration::from_secs(60), Metrics::new("atomic"));
        for _ in 0..2 {
            let read = cache
                .get_or_load_json(AVAILABILITY, 7, || async { Ok::<_, ()>(Some(1)) })
                .await;
            assert_eq!(read, Ok(Some("1".to_owned())));
        }
        cache.seats_changed(7).await;
        let names = spans.0.lock().unwrap().clone();
        names
    }

    /// A call to a server shows in traces as a client span at `info`; a lookup in the
    /// in-process table creates none at `info` (it would cost a cached read more than the
    /// lookup), and shows at `debug`.
    #[tokio::test(flavor = "current_thread")]
    async fn only_calls_that_may_leave_the_process_have_client_spans_at_info() {
        let local = || Arc::new(LocalCache::new(100, Duration::from_secs(60)));
        let reads = [
            "INFO cache.get_or_load",
            "INFO cache.get_or_load",
            "INFO cache.invalidate",
        ];
        assert_eq!(
            spans_of(
                Arc::new(Remote(LocalCache::new(100, Duration::from_secs(60)))),
                tracing::Level::INFO
            )
            .await,
            reads
        );
        assert!(spans_of(local(), tracing::Level::INFO).await.is_empty());
        assert_eq!(
            spans_of(local(), tracing::Level::DEBUG).await,
            reads.map(|r| r.replace("INFO", "DEBUG"))
        );
    }

    #[test]
    fn a_failure_one_user_of_redis_sees_makes_every_user_skip_it() {
        let cache_side = RedisSkip::default();
        let lock_side = cache_side.clone();
        assert!(!cache_side.skipping() && !lock_side.skipping());
        let began = lock_side.began();
        assert!(
            lock_side.failed(began),
            "the first failure is news (logged)"
        );
        assert!(
            cache_side.skipping(),
            "the cache skips the Redis the lock service found hung"
        );
        assert!(
            !cache_side.failed(began),
            "a failure of a command begun before the skip is not news"
        );
        assert!(
            !RedisSkip::default().skipping(),
            "another Redis is not skipped"
        );
    }

    fn catalog(ttl_ms: u64, jitter_ms: u64, mode: CacheMode) -> (CatalogCache, Metrics) {
        let metrics = Metrics::new("atomic");
        let backend = Arc::new(LocalCache::new(100, Duration::from_secs(60)));
        let cache = CatalogCache::new(backend, Duration::from_millis(ttl_ms), metrics.clone())
            .with_jitter(Duration::from_millis(jitter_ms))
            .with_mode(mode);
        (cache, metrics)
    }

    async fn read(cache: &CatalogCache, value: i64) -> i64 {
        cache
            .get_or_load(AVAILABILITY, 1, || async { Ok::<_, ()>(Some(value)) })
            .await
            .unwrap()
            .unwrap()
    }

    fn hits(metrics: &Metrics, result: &str) -> u64 {
        metrics
            .cache_requests
            .with_label_values(&[AVAILABILITY, result])
            .get()
    }

    #[tokio::test]
    async fn with_the_cache_off_every_read_goes_to_the_database_uncounted() {
        let (cache, metrics) = catalog(60_000, 0, CacheMode::Off);
        assert_eq!(read(&cache, 1).await, 1);
        assert_eq!(read(&cache, 2).await, 2, "nothing was stored");
        assert_eq!(hits(&metrics, "hit") + hits(&metrics, "miss"), 0);
        let (cache, metrics) = catalog(60_000, 0, CacheMode::On);
        assert_eq!(read(&cache, 1).await, 1);
        assert_eq!(read(&cache, 2).await, 1, "served from the cache");
        assert_eq!((hits(&metrics, "miss"), hits(&metrics, "hit")), (1, 1));
    }

    #[tokio::test]
    async fn an_entry_lives_its_ttl_plus_at_most_the_jitter() {
        let (cache, _) = catalog(100, 100, CacheMode::On);
        assert_eq!(cache.stale_window(), Duration::from_millis(200));
        for _ in 0..50 {
            let ttl = cache.entry_ttl();
            assert!(ttl >= Duration::from_millis(100) && ttl <= Duration::from_millis(200));
        }
        assert_eq!(read(&cache, 1).await, 1);
        assert_eq!(read(&cache, 2).await, 1, "fresh for at least the TTL");
        tokio::time::sleep(Duration::from_millis(230)).await;
        assert_eq!(read(&cache, 3).await, 3, "gone after TTL + jitter");
    }
}
