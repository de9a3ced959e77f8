//! The Toxiproxy-compatible HTTP API over a registry of [`Proxy`]s.
//!
//! Routes, JSON shapes, status codes and error bodies (`{"error": "...", "status": N}`) follow
//! Toxiproxy 2.x's `api.go`, so an existing Toxiproxy client drives this server unchanged;
//! `GET /metrics` adds Prometheus text. [`ProxyServer::start`] runs it in-process on a port of
//! the caller's choosing (port 0 in tests); the `chaos proxy` command runs it standalone.
//! [`ProxyServer`] also exposes the registry directly, for stacks that create their proxies
//! without going through HTTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxyConfig, ProxyInfo, ProxyOptions, ProxyUpdate};
use crate::toxics::{ToxicSpec, ToxicWire};

/// The version reported on `GET /version`.
pub const VERSION: &str = concat!("chaos-", env!("CARGO_PKG_VERSION"));

/// The registry of proxies behind the API.
#[derive(Debug)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Proxy>>,
    metrics: Arc<Metrics>,
    seed: u64,
}

impl Registry {
    /// An empty registry whose proxies draw their randomness from `seed`.
    pub fn new(seed: u64) -> Self {
        Registry {
            proxies: Mutex::new(BTreeMap::new()),
            metrics: Arc::new(Metrics::new()),
            seed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Proxy>> {
        self.proxies.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn options(&self, name: &str) -> ProxyOptions {
        ProxyOptions {
            // Each proxy gets its own stream of draws, stable under the same server seed.
            seed: crate::toxics::toxic_seed(self.seed, u64::MAX, name),
            metrics: Some(Arc::clone(&self.metrics)),
        }
    }

    /// All proxies by name.
    pub fn proxies(&self) -> BTreeMap<String, Proxy> {
        self.lock().clone()
    }

    /// One proxy.
    pub fn get(&self, name: &str) -> Result<Proxy> {
        self.lock().get(name).cloned().ok_or(Error::ProxyNotFound)
    }

    /// Creates and starts a proxy; 409 if the name is taken.
    pub fn create(&self, config: ProxyConfig) -> Result<Proxy> {
        let mut proxies = self.lock();
        if proxies.contains_key(&config.name) {
            return Err(Error::ProxyAlreadyExists);
        }
        let name = config.name.clone();
        let proxy = Proxy::start_with(config, self.options(&name))?;
        proxies.insert(name, proxy.clone());
        Ok(proxy)
    }

    /// Stops and removes a proxy.
    pub async fn remove(&self, name: &str) -> Result<()> {
        let proxy = self.lock().remove(name).ok_or(Error::ProxyNotFound)?;
        proxy.disable().await;
        Ok(())
    }

    /// Creates or replaces each proxy (Toxiproxy's `/populate`): a proxy with the same name,
    /// listen address and upstream is kept (with its toxics and connections) and only its
    /// `enabled` is applied; otherwise the old one is stopped and a new one started. The whole
    /// list is validated before anything changes.
    pub async fn populate(&self, configs: Vec<ProxyConfig>) -> Result<Vec<Proxy>> {
        let mut seen = std::collections::HashSet::new();
        for c in &configs {
            if c.name.is_empty() {
                return Err(Error::MissingField("name"));
            }
            if c.upstream.is_empty() {
                return Err(Error::MissingField("upstream"));
            }
            if !seen.insert(c.name.clone()) {
                return Err(Error::BadRequest(format!(
                    "duplicate proxy name {:?}",
                    c.name
                )));
            }
        }
        let mut out = Vec::with_capacity(configs.len());
        for config in configs {
            let existing = self.lock().get(&config.name).cloned();
            if let Some(p) = existing {
                let info = p.info();
                let same_listen = info.listen == config.listen
                    || p.listen_addr().map(|a| a.to_string()) == Some(config.listen.clone());
                if same_listen && info.upstream == config.upstream {
                    if config.enabled {
                        p.enable()?;
                    } else {
                        p.disable().await;
                    }
                    out.push(p);
                    continue;
                }
                self.remove(&config.name).await?;
            }
            out.push(self.create(config)?);
        }
        Ok(out)
    }

    /// Enables every proxy and removes every toxic (Toxiproxy's `/reset`).
    pub fn reset(&self) -> Result<()> {
        for proxy in self.proxies().values() {
            proxy.enable()?;
            proxy.reset_toxics();
        }
        Ok(())
    }

    /// Prometheus text of all proxies.
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}

/// A running API server. Dropping it stops the HTTP listener; the proxies live as long as
/// the [`Registry`] (shared with the server task until it stops).
#[derive(Debug)]
pub struct ProxyServer {
    registry: Arc<Registry>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ProxyServer {
    /// Binds `listen` (port 0 for a free port) and serves the API in the background. Returns
    /// the server and the address it listens on.
    pub async fn start(listen: SocketAddr) -> Result<(ProxyServer, SocketAddr)> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Listen {
                addr: listen.to_string(),
                source,
            })?;
        Self::serve(listener, Arc::new(Registry::new(0)))
    }

    /// Serves the API for `registry` on an already bound listener.
    pub fn serve(
        listener: TcpListener,
        registry: Arc<Registry>,
    ) -> Result<(ProxyServer, SocketAddr)> {
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = app(Arc::clone(&registry));
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "chaos API server failed");
            }
        });
        Ok((
            ProxyServer {
                registry,
                shutdown: Some(tx),
                task: Some(task),
            },
            addr,
        ))
    }

    /// The proxies behind the API.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Stops the HTTP listener and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The API as a router, for tests that call it without a socket.
pub fn app(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/proxies", get(list_proxies).post(create_proxy))
        .route(
            "/proxies/{proxy}",
            get(show_proxy)
                .post(update_proxy)
                .patch(update_proxy)
                .delete(delete_proxy),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(list_toxics).post(create_toxic),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(delete_toxic),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not found".into()) })
        .layer(middleware::from_fn(stop_browsers))
        .with_state(registry)
}

/// Toxiproxy refuses browsers so a web page cannot drive the proxy (CSRF).
async fn stop_browsers(req: Request, next: Next) -> Response {
    let browser = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if browser {
        return (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response();
    }
    next.run(req).await
}

/// An error in Toxiproxy's JSON shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> Self {
        ApiError { status, message }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message, "status": self.status.as_u16()});
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;
type Reg = State<Arc<Registry>>;

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(e.to_string()))
}

async fn version() -> Response {
    let mut r = Json(serde_json::json!({ "version": VERSION })).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}

async fn metrics(State(reg): Reg) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        reg.metrics_text(),
    )
        .into_response()
}

async fn list_proxies(State(reg): Reg) -> Json<BTreeMap<String, ProxyInfo>> {
    Json(
        reg.proxies()
            .into_iter()
            .map(|(name, p)| (name, p.info()))
            .collect(),
    )
}

async fn create_proxy(State(reg): Reg, body: Bytes) -> ApiResult<(StatusCode, Json<ProxyInfo>)> {
    let config: ProxyConfig = parse(&body)?;
    if config.name.is_empty() {
        return Err(Error::MissingField("name").into());
    }
    let proxy = reg.create(config)?;
    Ok((StatusCode::CREATED, Json(proxy.info())))
}

#[derive(Deserialize)]
struct PopulateItem {
    #[serde(default)]
    name: String,
    #[serde(default)]
    listen: String,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn populate(State(reg): Reg, body: Bytes) -> Response {
    let result = match parse::<Vec<PopulateItem>>(&body) {
        Err(e) => Err(e),
        Ok(items) => {
            reg.populate(
                items
                    .into_iter()
                    .map(|i| ProxyConfig {
                        name: i.name,
                        listen: if i.listen.is_empty() {
                            "127.0.0.1:0".into()
                        } else {
                            i.listen
                        },
                        upstream: i.upstream,
                        enabled: i.enabled.unwrap_or(true),
                    })
                    .collect(),
            )
            .await
        }
    };
    match result {
        Ok(proxies) => {
            let infos: Vec<ProxyInfo> = proxies.iter().map(Proxy::info).collect();
            (
                StatusCode::CREATED,
                Json(serde_json::json!({ "proxies": infos })),
            )
                .into_response()
        }
        Err(e) => {
            let status = e.status();
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(
                    serde_json::json!({"error": e.to_string(), "status": status, "proxies": null}),
                ),
            )
                .into_response()
        }
    }
}

async fn show_proxy(State(reg): Reg, Path(name): Path<String>) -> ApiResult<Json<ProxyInfo>> {
    Ok(Json(reg.get(&name)?.info()))
}

async fn update_proxy(
    State(reg): Reg,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ProxyInfo>> {
    let proxy = reg.get(&name)?;
    let update: ProxyUpdate = parse(&body)?;
    proxy.update(update).await?;
    Ok(Json(proxy.info()))
}

async fn delete_proxy(State(reg): Reg, Path(name): Path<String>) -> ApiResult<StatusCode> {
    reg.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(State(reg): Reg) -> ApiResult<StatusCode> {
    reg.reset()?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_toxics(State(reg): Reg, Path(name): Path<String>) -> ApiResult<Json<Vec<ToxicSpec>>> {
    Ok(Json(reg.get(&name)?.toxics()))
}

async fn create_toxic(
    State(reg): Reg,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ToxicSpec>> {
    let proxy = reg.get(&name)?;
    let wire: ToxicWire = parse(&body)?;
    let spec = ToxicSpec::try_from(wire)?;
    Ok(Json(proxy.add_toxic(spec)?))
}

async fn show_toxic(
    State(reg): Reg,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult<Json<ToxicSpec>> {
    Ok(Json(reg.get(&name)?.toxic(&toxic)?))
}

#[derive(Deserialize)]
struct ToxicPatch {
    #[serde(default)]
    attributes: serde_json::Value,
    #[serde(default)]
    toxicity: Option<f32>,
}

async fn update_toxic(
    State(reg): Reg,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<ToxicSpec>> {
    let proxy = reg.get(&name)?;
    let patch: ToxicPatch = parse(&body)?;
    Ok(Json(proxy.update_toxic(
        &toxic,
        &patch.attributes,
        patch.toxicity,
    )?))
}

async fn delete_toxic(
    State(reg): Reg,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    reg.get(&name)?.remove_toxic(&toxic)?;
    Ok(StatusCode::NO_CONTENT)
}
