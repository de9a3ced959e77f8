//! The simulated payment provider's HTTP router. State is in memory: a restart forgets
//! everything, as a crashed provider without persistence would.
//!
//! Routes: `POST /v1/charges {amount, reference}` → 201 captured | 402 declined;
//! `POST /v1/charges/{id}/refunds {amount}` → 201; `GET /v1/charges/{id}`; `GET /v1/stats`;
//! `PUT /v1/config {latency_ms, decline_rate}` (for drills); `GET /health`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Behaviour of the simulated provider.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// Added latency per call, milliseconds.
    pub latency_ms: u64,
    /// Random extra latency, 0..=jitter_ms milliseconds.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Share of charges declined, 0.0–1.0.
    pub decline_rate: f64,
    /// Seed of the decline and jitter draws, so that a run can be replayed.
    #[serde(default)]
    pub seed: u64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            decline_rate: 0.0,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Charge {
    id: String,
    status: &'static str,
    amount: i64,
    refunded: i64,
    reference: String,
}

#[derive(Debug, Clone)]
struct Stored {
    fingerprint: String,
    status: StatusCode,
    body: serde_json::Value,
}

#[derive(Debug, Default)]
struct Inner {
    charges: HashMap<String, Charge>,
    by_key: HashMap<String, Stored>,
    next: u64,
    captured: i64,
    refunded: i64,
    declined: u64,
}

/// Shared state of a provider instance.
#[derive(Debug, Clone)]
pub struct ProviderState {
    config: Arc<Mutex<ProviderConfig>>,
    rng: Arc<Mutex<StdRng>>,
    inner: Arc<Mutex<Inner>>,
}

impl ProviderState {
    /// A fresh provider.
    pub fn new(config: ProviderConfig) -> Self {
        Self {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(config.seed))),
            config: Arc::new(Mutex::new(config)),
            inner: Arc::default(),
        }
    }
}

/// The provider's router.
pub fn router(state: ProviderState) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/v1/charges", post(create_charge))
        .route("/v1/charges/{id}", get(get_charge))
        .route("/v1/charges/{id}/refunds", post(create_refund))
        .route("/v1/stats", get(stats))
        .route("/v1/config", put(set_config).get(get_config))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, Box<Response>> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if key.is_empty() || key.len() > 255 {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "an Idempotency-Key header of 1 to 255 characters is required",
        )));
    }
    Ok(key.to_owned())
}

async fn simulate_latency(state: &ProviderState) {
    let cfg = *state.config.lock().expect("config lock");
    let jitter = if cfg.jitter_ms > 0 {
        state
            .rng
            .lock()
            .expect("rng lock")
            .gen_range(0..=cfg.jitter_ms)
    } else {
        0
    };
    let ms = cfg.latency_ms + jitter;
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Returns the stored answer for `key` if any (422 when the request differs).
fn replay(inner: &Inner, key: &str, fingerprint: &str) -> Option<Response> {
    let stored = inner.by_key.get(key)?;
    if stored.fingerprint != fingerprint {
        return Some(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        ));
    }
    let mut res = (stored.status, Json(stored.body.clone())).into_response();
    res.headers_mut()
        .insert("idempotent-replayed", "true".parse().expect("header value"));
    Some(res)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    amount: i64,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    currency: Option<String>,
}

async fn create_charge(
    State(state): State<ProviderState>,
    headers: HeaderMap,
    body: Result<Json<ChargeRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(res) => return *res,
    };
    let Ok(Json(req)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "expected {amount, reference}",
        );
    };
    if req.amount <= 0 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
            "amount must be positive",
        );
    }
    let fingerprint = format!("charge:{}:{}:{:?}", req.amount, req.reference, req.currency);
    if let Some(res) = replay(&state.inner.lock().expect("lock"), &key, &fingerprint) {
        return res;
    }
    simulate_latency(&state).await;
    let decline_rate = state.config.lock().expect("config lock").decline_rate;
    let declined = decline_rate > 0.0
        && state
            .rng
            .lock()
            .expect("rng lock")
            .gen_bool(decline_rate.min(1.0));
    let mut inner = state.inner.lock().expect("lock");
    // A concurrent request with the same key may have finished while we slept.
    if let Some(res) = replay(&inner, &key, &fingerprint) {
        return res;
    }
    inner.next += 1;
    let charge = Charge {
        id: format!("ch_{:08}", inner.next),
        status: if declined { "declined" } else { "captured" },
        amount: req.amount,
        refunded: 0,
        reference: req.reference,
    };
    let status = if declined {
        inner.declined += 1;
        StatusCode::PAYMENT_REQUIRED
    } else {
        inner.captured += req.amount;
        StatusCode::CREATED
    };
    let body = serde_json::to_value(&charge).expect("charge serialises");
    inner.charges.insert(charge.id.clone(), charge);
    inner.by_key.insert(
        key,
        Stored {
            fingerprint,
            status,
            body: body.clone(),
        },
    );
    (status, Json(body)).into_response()
}

async fn get_charge(State(state): State<ProviderState>, Path(id): Path<String>) -> Response {
    match state.inner.lock().expect("lock").charges.get(&id) {
        Some(c) => Json(c.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "charge not found"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    amount: i64,
}

async fn create_refund(
    State(state): State<ProviderState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<RefundRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(res) => return *res,
    };
    let Ok(Json(req)) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid_body", "expected {amount}");
    };
    let fingerprint = format!("refund:{id}:{}", req.amount);
    if let Some(res) = replay(&state.inner.lock().expect("lock"), &key, &fingerprint) {
        return res;
    }
    simulate_latency(&state).await;
    let mut inner = state.inner.lock().expect("lock");
    if let Some(res) = replay(&inner, &key, &fingerprint) {
        return res;
    }
    let Some(charge) = inner.charges.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "charge not found");
    };
    if charge.status != "captured"
        || req.amount <= 0
        || charge.refunded + req.amount > charge.amount
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_refund",
            "a refund must be positive and at most the captured amount not yet refunded",
        );
    }
    charge.refunded += req.amount;
    inner.refunded += req.amount;
    inner.next += 1;
    let body = json!({"id": format!("re_{:08}", inner.next), "charge_id": id, "amount": req.amount, "status": "succeeded"});
    inner.by_key.insert(
        key,
        Stored {
            fingerprint,
            status: StatusCode::CREATED,
            body: body.clone(),
        },
    );
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn stats(State(state): State<ProviderState>) -> Response {
    let inner = state.inner.lock().expect("lock");
    Json(json!({
        "charges": inner.charges.len(),
        "captured": inner.captured,
        "refunded": inner.refunded,
        "declined": inner.declined,
    }))
    .into_response()
}

async fn get_config(State(state): State<ProviderState>) -> Response {
    Json(*state.config.lock().expect("config lock")).into_response()
}

async fn set_config(
    State(state): State<ProviderState>,
    body: Result<Json<ProviderConfig>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(cfg)) if (0.0..=1.0).contains(&cfg.decline_rate) && cfg.latency_ms <= 600_000 => {
            *state.config.lock().expect("config lock") = cfg;
            Json(cfg).into_response()
        }
        _ => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            "expected {latency_ms <= 600000, jitter_ms, decline_rate in 0..1, seed}",
        ),
    }
}

/// Serves a provider on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ProviderState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
