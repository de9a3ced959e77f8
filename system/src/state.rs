//! [`AppState`]: what every handler shares (database, auth, payments client, metrics, cache,
//! locks, notifier, configuration), and [`AppState::build`], which connects each of them from
//! a [`Config`]. Handlers depend on this module, never on [`crate::app`], which builds the
//! router and serves it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::auth::Auth;
use crate::cache::{Cache, CatalogCache, LocalCache, RedisCache};
use crate::clock::Clock;
use crate::config::Config;
use crate::kafka::KafkaSettings;
use crate::locks::{LocalLocks, LockService, Locks, RedisLocks};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::payments::{provider, PaymentsClient, ProviderConfig, ProviderState};
use crate::store::{embedded_url, Db};

/// What every handler shares, behind one `Arc` (fields are reached through `Deref`,
/// [`Shared`]): axum clones the state for every request, and once more for every layer
/// around a route, so a clone must be one atomic increment rather than a copy of the JWT keys,
/// the payment client's URL and a dozen reference counts.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The database.
    pub db: Db,
    /// Token and password handling.
    pub auth: Auth,
    /// "Now".
    pub clock: Arc<dyn Clock>,
    /// The payment provider's client.
    pub payments: PaymentsClient,
    /// Metrics registry.
    pub metrics: Metrics,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Catalog and availability cache-aside (Redis or in-process).
    pub cache: CatalogCache,
    /// Locks of the `redis-lock` and `fenced` strategies (Redis or in-process).
    pub locks: Locks,
    /// Notification fan-out to `GET /v1/me/notifications` streams (Redis pub/sub or in-process).
    pub notifier: Notifier,
    /// Where Kafka is (resolved, and the mock cluster started, on first use).
    pub kafka: KafkaSettings,
    /// The admission limit past capacity (`None`: `--admission-wait-ms 0`, unlimited).
    pub admission: Option<Arc<crate::api::admission::Limiter>>,
}

/// The three services that live on Redis when `--redis-url` is set, in-process otherwise.
type Coordination = (Arc<dyn Cache>, Arc<dyn LockService>, Notifier);

impl AppState {
    /// Connects to everything `config` names, with `clock` as the time source. When no
    /// payments URL is configured, a simulated provider is started on a loopback port and
    /// its address is returned too.
    pub async fn build(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<(AppState, Option<SocketAddr>)> {
        let db = Db::connect(&database_url(&config)?, config.db_max_connections).await?;
        let auth = Auth::new(
            &jwt_secret(&config)?,
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.token_ttl_secs,
        )?;
        let (payments_url, provider_addr) = payments_url(&config).await?;
        bootstrap_admin(&config, &auth, &db, clock.as_ref()).await?;
        let metrics = Metrics::new(config.strategy.as_str());
        db.observe_acquire(metrics.db_acquire.clone());
        db.observe_hold_batches(metrics.hold_batch.clone());
        let payments = PaymentsClient::new(
            &payments_url,
            Duration::from_millis(config.payments_timeout_ms),
        )
        .with_metrics(metrics.clone());
        let (cache, locks, notifier) = coordination(&config).await?;
        let cache = CatalogCache::new(
            cache,
            Duration::from_millis(config.cache_ttl_ms),
            metrics.clone(),
        )
        .with_jitter(Duration::from_millis(config.cache_ttl_jitter_ms))
        .with_mode(config.cache);
        let locks = Locks::new(
            locks,
            Duration::from_millis(config.lock_ttl_ms),
            Duration::from_millis(config.lock_wait_ms),
            Duration::from_millis(config.fault_lock_pause_ms),
            metrics.clone(),
        );
        let admission = (config.admission_wait_ms > 0).then(|| {
            let slots = match config.max_in_flight {
                0 => config.db_max_connections as usize,
                n => n,
            };
            Arc::new(crate::api::admission::Limiter::new(
                slots,
                Duration::from_millis(config.admission_wait_ms),
                config.admission_queue,
                metrics.admission.clone(),
            ))
        });
        let shared = Shared {
            admission,
            db,
            auth,
            clock,
            payments,
            metrics,
            config: Arc::new(config),
            cache,
            locks,
            notifier,
            kafka: KafkaSettings::default(),
        };
        Ok((AppState(Arc::new(shared)), provider_addr))
    }

    /// Tells every viewer of `round`'s seat map (on every instance) that `seat_ids` are now
    /// `to`, and counts it. Called after the change committed; the publication runs in its
    /// own task, so a slow Redis never slows the request that changed the seats.
    pub fn publish_seats(&self, round: i64, to: crate::notify::SeatState, mut seat_ids: Vec<i64>) {
        if seat_ids.is_empty() {
            return;
        }
        seat_ids.sort_unstable();
        self.metrics
            .seat_changes
            .with_label_values(&[to.as_str()])
            .inc();
        let change = crate::notify::SeatChange {
            round_id: round,
            state: to,
            seat_ids,
            at: self.clock.now_ms(),
        };
        let notifier = self.notifier.clone();
        tokio::spawn(async move { notifier.publish_seats(change).await });
    }

    /// Where the data lives, for humans: the SQLite file or the PostgreSQL server.
    pub fn database_description(&self) -> String {
        match &self.config.database_url {
            Some(url) => redact(url),
            None => embedded_url(&self.config.data_dir),
        }
    }
}

/// The configured database URL, or the embedded SQLite file in the data dir (created).
fn database_url(config: &Config) -> anyhow::Result<String> {
    match &config.database_url {
        Some(url) => Ok(url.clone()),
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("Failed to create data dir {}", config.data_dir.display())
            })?;
            Ok(embedded_url(&config.data_dir))
        }
    }
}

/// The JWT signing secret: the configured one (16 characters at least), or a random one that
/// dies with the process.
fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    match &config.jwt_secret {
        Some(s) if s.len() >= 16 => Ok(s.as_bytes().to_vec()),
        Some(_) => anyhow::bail!("BOXOFFICE_JWT_SECRET must have at least 16 characters"),
        None => {
            tracing::warn!(
                "no BOXOFFICE_JWT_SECRET: using a random secret, tokens die with this process"
            );
            Ok(uuid::Uuid::new_v4().as_bytes().repeat(2))
        }
    }
}

/// The payment provider's URL: the configured one, or that of a simulated provider started
/// here on a loopback port (whose address is returned too).
async fn payments_url(config: &Config) -> anyhow::Result<(String, Option<SocketAddr>)> {
    if let Some(url) = &config.payments_url {
        return Ok((url.clone(), None));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("Failed to bind the in-process payment provider")?;
    let addr = listener.local_addr()?;
    let state = ProviderState::new(ProviderConfig {
        latency_ms: config.payments_latency_ms,
        decline_rate: config.payments_decline_rate.clamp(0.0, 1.0),
        ..ProviderConfig::default()
    });
    tokio::spawn(provider::serve(listener, state, std::future::pending()));
    Ok((format!("http://{addr}"), Some(addr)))
}

/// Creates (or updates) the admin account when `BOXOFFICE_ADMIN_EMAIL` and
/// `BOXOFFICE_ADMIN_PASSWORD` are both set.
async fn bootstrap_admin(
    config: &Config,
    auth: &Auth,
    db: &Db,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) else {
        return Ok(());
    };
    let email =
        crate::domain::Email::parse(email).context("BOXOFFICE_ADMIN_EMAIL is not an e-mail")?;
    let password = crate::domain::Password::parse(password)
        .context("BOXOFFICE_ADMIN_PASSWORD is too short or long")?;
    let hash = auth
        .hash_password(password.expose().to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::store::users::upsert_admin(db, email.as_str(), &hash, clock.now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("Failed to create the admin account: {e}"))?;
    Ok(())
}

/// The cache, the lock service and the notifier: on Redis when `--redis-url` is set (waiting
/// up to 5 s for the notification listener to subscribe), in-process otherwise.
async fn coordination(config: &Config) -> anyhow::Result<Coordination> {
    let Some(url) = &config.redis_url else {
        return Ok((
            Arc::new(LocalCache::new(
                100_000,
                Duration::from_millis(config.cache_ttl_ms + config.cache_ttl_jitter_ms),
            )),
            Arc::new(LocalLocks::new()),
            Notifier::local(),
        ));
    };
    let client = redis::Client::open(url.as_str())
        .with_context(|| format!("Failed to parse REDIS_URL {}", redact(url)))?;
    let conn = connect_redis(client.clone())
        .await
        .with_context(|| format!("Failed to connect to Redis at {}", redact(url)))?;
    // The cache's own connection speaks RESP3 with server-assisted client-side caching.
    let max_ttl = Duration::from_millis(config.cache_ttl_ms + config.cache_ttl_jitter_ms);
    let cache_conn = connect_redis_tracked(&client, max_ttl)
        .await
        .with_context(|| format!("Failed to connect to Redis at {}", redact(url)))?;
    let prefix = &config.redis_prefix;
    let skip = crate::cache::RedisSkip::default();
    let notifier = Notifier::redis(client, conn.clone(), prefix);
    if !notifier.wait_listening(Duration::from_secs(5)).await {
        tracing::warn!("the notification listener is not subscribed yet");
    }
    Ok((
        // Redis the lock service found hung is skipped by the cache too.
        Arc::new(RedisCache::new(cache_conn, prefix, skip.clone())),
        Arc::new(RedisLocks::new(conn, prefix, skip)),
        notifier,
    ))
}

/// A connection manager: one multiplexed connection that reconnects (with backoff) after
/// Redis restarts; commands sent while it is down fail fast instead of hanging.
async fn connect_redis(client: redis::Client) -> anyhow::Result<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(3)
        .set_max_delay(500)
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2));
    Ok(redis::aio::ConnectionManager::new_with_config(client, config).await?)
}

/// The cache's connection: like [`connect_redis`], but over RESP3 with Redis's server-assisted
/// client-side caching (`CLIENT TRACKING`) for the reads that opt in (the cache's `GET`). A
/// value read once is kept in this process and served from memory until Redis says another
/// client changed or deleted its key, its key's TTL runs out, or `max_ttl` passes; a new
/// connection (after Redis restarts or fails over) starts with an empty cache. So the cache's
/// contract holds unchanged: every invalidation reaches every instance, and an entry whose
/// invalidation was lost lives at most its TTL.
async fn connect_redis_tracked(
    client: &redis::Client,
    max_ttl: Duration,
) -> anyhow::Result<redis::aio::ConnectionManager> {
    let mut info = client.get_connection_info().clone();
    info.redis.protocol = redis::ProtocolVersion::RESP3;
    let client = redis::Client::open(info)?;
    let tracking = redis::caching::CacheConfig::new()
        .set_mode(redis::caching::CacheMode::OptIn)
        .set_default_client_ttl(max_ttl.max(Duration::from_millis(1)));
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(3)
        .set_max_delay(500)
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_cache_config(tracking);
    Ok(redis::aio::ConnectionManager::new_with_config(client, config).await?)
}

/// Hides the password of a URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
