//! Serving: [`Application::build`] builds the shared state ([`AppState::build`]: database and
//! migrations, admin bootstrap, the in-process payment provider when no URL is configured)
//! and binds the listener (port 0 picks a free port); [`Application::run_until_stopped`]
//! serves the router and runs the reaper and the Kafka pipeline until the shutdown future
//! resolves, so tests and the lab run the real service on a free port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::state::AppState;

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
    demo: Option<crate::demo::Demo>,
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
        let demo = if state.config.demo && state.config.role.serves_api() {
            let demo = crate::demo::seed(&state.db, state.clock.now_ms())
                .await
                .map_err(|e| anyhow::anyhow!("Failed to seed the demo catalog: {e}"))?;
            Some(demo)
        } else {
            None
        };
        let listener =
            listen_on(listen).with_context(|| format!("Failed to listen on {listen}"))?;
        let addr = listener.local_addr()?;
        Ok(Self {
            state,
            listener,
            addr,
            provider,
            demo,
        })
    }

    /// The demo catalog, when `--demo` seeded (or found) it.
    pub fn demo(&self) -> Option<&crate::demo::Demo> {
        self.demo.as_ref()
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
        let db_watch = self.state.db.watch_health(
            self.state
                .metrics
                .dependency_up
                .with_label_values(&["database"]),
            stop_rx.clone(),
        );
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
        if let Some(w) = db_watch {
            let _ = w.await;
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
