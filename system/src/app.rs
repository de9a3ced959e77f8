//! Wiring: [`AppState`] holds what handlers share; [`Application::build`] connects the
//! database (running migrations), bootstraps the admin, starts the in-process payment
//! provider when no URL is configured, binds the listener (port 0 picks a free port) and
//! starts the reaper and the Kafka pipeline. [`Application::run_until_stopped`] serves until the shutdown future
//! resolves, so tests and the lab run the real service on a free port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;

use crate::auth::Auth;
use crate::cache::{Cache, CatalogCache, LocalCache, RedisCache};
use crate::clock::{Clock, SystemClock};
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
}

impl AppState {
    /// Connects to everything `config` names, with `clock` as the time source. When no
    /// payments URL is configured, a simulated provider is started on a loopback port and
    /// its address is returned too.
    pub async fn build(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<(AppState, Option<SocketAddr>)> {
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(&config.data_dir).with_context(|| {
                    format!("Failed to create data dir {}", config.data_dir.display())
                })?;
                embedded_url(&config.data_dir)
            }
        };
        let db = Db::connect(&url, config.db_max_connections).await?;
        let secret = match &config.jwt_secret {
            Some(s) if s.len() >= 16 => s.as_bytes().to_vec(),
            Some(_) => anyhow::bail!("BOXOFFICE_JWT_SECRET must have at least 16 characters"),
            None => {
                tracing::warn!(
                    "no BOXOFFICE_JWT_SECRET: using a random secret, tokens die with this process"
                );
                uuid::Uuid::new_v4().as_bytes().repeat(2)
            }
        };
        let auth = Auth::new(
            &secret,
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.token_ttl_secs,
        )?;
        let (payments_url, provider_addr) = match &config.payments_url {
            Some(url) => (url.clone(), None),
            None => {
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
                (format!("http://{addr}"), Some(addr))
            }
        };
        let payments = PaymentsClient::new(
            &payments_url,
            Duration::from_millis(config.payments_timeout_ms),
        );
        if let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) {
            let email = crate::domain::Email::parse(email)
                .context("BOXOFFICE_ADMIN_EMAIL is not an e-mail")?;
            let password = crate::domain::Password::parse(password)
                .context("BOXOFFICE_ADMIN_PASSWORD is too short or long")?;
            let hash = auth
                .hash_password(password.expose().to_owned())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::store::users::upsert_admin(&db, email.as_str(), &hash, clock.now_ms())
                .await
                .map_err(|e| anyhow::anyhow!("Failed to create the admin account: {e}"))?;
        }
        let metrics = Metrics::new(config.strategy.as_str());
        db.observe_acquire(metrics.db_acquire.clone());
        let payments = payments.with_metrics(metrics.clone());
        let (cache, locks, notifier): (Arc<dyn Cache>, Arc<dyn LockService>, Notifier) =
            match &config.redis_url {
                Some(url) => {
                    let client = redis::Client::open(url.as_str())
                        .with_context(|| format!("Failed to parse REDIS_URL {}", redact(url)))?;
                    let conn = connect_redis(client.clone()).await.with_context(|| {
                        format!("Failed to connect to Redis at {}", redact(url))
                    })?;
                    let prefix = &config.redis_prefix;
                    let notifier = Notifier::redis(client, conn.clone(), prefix);
                    if !notifier.wait_listening(Duration::from_secs(5)).await {
                        tracing::warn!("the notification listener is not subscribed yet");
                    }
                    (
                        Arc::new(RedisCache::new(conn.clone(), prefix)),
                        Arc::new(RedisLocks::new(conn, prefix)),
                        notifier,
                    )
                }
                None => (
                    Arc::new(LocalCache::new(
                        100_000,
                        Duration::from_millis(config.cache_ttl_ms),
                    )),
                    Arc::new(LocalLocks::new()),
                    Notifier::local(),
                ),
            };
        let cache = CatalogCache::new(
            cache,
            Duration::from_millis(config.cache_ttl_ms),
            metrics.clone(),
        );
        let locks = Locks::new(
            locks,
            Duration::from_millis(config.lock_ttl_ms),
            Duration::from_millis(config.lock_wait_ms),
            Duration::from_millis(config.fault_lock_pause_ms),
            metrics.clone(),
        );
        Ok((
            AppState(Arc::new(Shared {
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
            })),
            provider_addr,
        ))
    }

    /// Where the data lives, for humans: the SQLite file or the PostgreSQL server.
    pub fn database_description(&self) -> String {
        match &self.config.database_url {
            Some(url) => redact(url),
            None => embedded_url(&self.config.data_dir),
        }
    }
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

/// Pending connections the kernel may queue for the listener (capped by
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 1,024: when a crowd connects at
/// once (a flash sale opening), the queue overflows, the kernel drops the handshakes, and each
/// dropped client retries only after its SYN retransmission timeout (1 s, then 3 s, 7 s…),
/// which showed as hold latencies stepping at 1 s and 3 s with the process half idle.
const LISTEN_BACKLOG: u32 = 8192;

/// Binds `addr` (with `SO_REUSEADDR` on Unix, as `TcpListener::bind` does) and listens with
/// [`LISTEN_BACKLOG`].
fn listen_on(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The running service: its state, router and bound listener.
#[derive(Debug)]
pub struct Application {
    state: AppState,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    provider: Option<SocketAddr>,
}

impl Application {
    /// Builds with the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds with the given clock.
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listen = config.listen;
        let (state, provider) = AppState::build(config, clock).await?;
        let listener =
            listen_on(listen).with_context(|| format!("Failed to listen on {listen}"))?;
        let addr = listener.local_addr()?;
        Ok(Self {
            state,
            listener,
            addr,
            provider,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The in-process payment provider's address, when one was started.
    pub fn payment_provider(&self) -> Option<SocketAddr> {
        self.provider
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The router, for tests that call it without a socket.
    pub fn router(&self) -> Router {
        crate::api::router(self.state.clone())
    }

    /// Serves (and, unless the role is `api`, runs the reaper and the Kafka pipeline; with
    /// role `worker` only health and metrics are served) until `shutdown` resolves. The
    /// pipeline starts in the background and retries every 5 s while the broker is
    /// unreachable: the API serves meanwhile, and the outbox keeps what is not relayed yet.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let role = self.state.config.role;
        let kafka = role
            .runs_workers()
            .then(|| tokio::spawn(run_kafka(self.state.clone(), stop_rx.clone())));
        let reaper = (role.runs_workers() && self.state.config.reaper_interval_ms > 0).then(|| {
            crate::reaper::spawn(
                self.state.clone(),
                Duration::from_millis(self.state.config.reaper_interval_ms),
                stop_rx,
            )
        });
        let router = if role.serves_api() {
            crate::api::router(self.state.clone())
        } else {
            worker_router(self.state.clone())
        };
        // `into_make_service`: each connection gets a clone of the router's `Arc`; serving the
        // `Router` itself re-applies its (unit) state per connection, a deep copy of every
        // route.
        let result = axum::serve(self.listener, router.into_make_service())
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop_tx.send(true);
        if let Some(r) = reaper {
            let _ = r.await;
        }
        if let Some(k) = kafka {
            let _ = k.await;
        }
        self.state.db.close().await;
        result
    }
}

/// What a `worker` serves: liveness, readiness and metrics (the outbox backlog and consumer
/// lag live in this process); everything else is 404.
fn worker_router(state: AppState) -> Router {
    use axum::routing::get;
    Router::new()
        .route("/health/live", get(crate::api::ops::live))
        .route("/health/ready", get(crate::api::ops::ready))
        .route("/metrics", get(crate::api::ops::metrics))
        .fallback(|| async { crate::ApiError::not_found("route") })
        .with_state(state)
}

/// Starts the Kafka pipeline (retrying) and stops it when `stop` turns true.
async fn run_kafka(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match crate::kafka::Pipeline::start(&state).await {
            Ok(pipeline) => {
                let _ = stop.wait_for(|v| *v).await;
                pipeline.stop().await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "Kafka pipeline not started; retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.wait_for(|v| *v) => return,
                }
            }
        }
    }
}
