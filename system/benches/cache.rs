//! Benchmark: cached `GET /v1/rounds/{id}/availability` requests per second under wrk, beside
//! wrk against a trivial axum handler (`GET /` → "ok") served by the same process in the same
//! run. Each figure is the median of several alternating runs. Target: availability ≥ 0.5 ×
//! the trivial handler.
//!
//! Run: `cargo bench -p boxoffice --bench cache` (needs `wrk`, and `redis-server` unless
//! `BENCH_REDIS=0`, which measures the in-process moka cache instead; env `BENCH_SECS`,
//! `BENCH_RUNS`, `BENCH_CONNECTIONS`).

use std::process::Command;

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use boxoffice::{Application, Config};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The allocator the `boxoffice` binary runs with (`system/src/bin/boxoffice.rs`), so that the
/// benchmark measures what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Requests/s that `wrk` reports for `url`.
fn wrk(url: &str, secs: u64, connections: u64) -> anyhow::Result<f64> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            url,
        ])
        .output()
        .map_err(|e| anyhow::anyhow!("wrk not runnable ({e}): apt-get install -y wrk"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        anyhow::bail!("{url} answered errors:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk's output:\n{text}"))
}

async fn call(router: &Router, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_or("BENCH_SECS", 5);
    let runs = env_or("BENCH_RUNS", 3);
    let connections = env_or("BENCH_CONNECTIONS", 64);
    let dir = tempfile::tempdir()?;
    let redis = if std::env::var("BENCH_REDIS").as_deref() == Ok("0") {
        None
    } else {
        Some(compose::LocalRedis::start().await?)
    };
    let mut config = Config::for_tests(format!("sqlite://{}/bench.db", dir.path().display()));
    config.redis_url = redis.as_ref().map(|r| r.url());
    config.cache_ttl_ms = 600_000;
    config.admin_email = Some("admin@example.com".into());
    config.admin_password = Some("admin-password".into());
    let app = Application::build(config).await?;
    let addr = app.address();
    let router = app.router();
    let tok = call(
        &router,
        "/v1/auth/token",
        None,
        json!({"email": "admin@example.com", "password": "admin-password"}),
    )
    .await;
    let admin = tok["access_token"].as_str().unwrap().to_owned();
    let venue = call(&router, "/v1/venues", Some(&admin), json!({"name": "Hall", "sections": [{"name": "A", "rows": [{"label": "R1", "seats": 100, "tier": "std"}]}]})).await;
    let event = call(
        &router,
        "/v1/events",
        Some(&admin),
        json!({"title": "Bench", "venue_id": venue["id"]}),
    )
    .await;
    let round = call(
        &router,
        &format!("/v1/events/{}/rounds", event["id"]),
        Some(&admin),
        json!({"starts_at": "2030-01-01T00:00:00Z", "prices": {"std": 1000}}),
    )
    .await;
    let round = round["id"].as_i64().unwrap();
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let trivial = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(listener, Router::new().route("/", get(|| async { "ok" }))).await
    });

    let availability = format!("http://{addr}/v1/rounds/{round}/availability");
    let trivial = format!("http://{trivial}/");
    let (mut t, mut a) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (u, s, c) = (trivial.clone(), secs, connections);
        t.push(tokio::task::spawn_blocking(move || wrk(&u, s, c)).await??);
        let (u, s, c) = (availability.clone(), secs, connections);
        a.push(tokio::task::spawn_blocking(move || wrk(&u, s, c)).await??);
    }
    let (t, a) = (median(t), median(a));
    let hits = state
        .metrics
        .cache_requests
        .with_label_values(&["availability", "hit"])
        .get();
    let misses = state
        .metrics
        .cache_requests
        .with_label_values(&["availability", "miss"])
        .get();
    println!(
        "cache backend: {}; wrk -t1 -c{connections} -d{secs}s, median of {runs}",
        if redis.is_some() {
            "redis"
        } else {
            "moka (in-process)"
        }
    );
    println!("trivial axum handler:       {t:>10.0} req/s");
    println!("cached availability:        {a:>10.0} req/s  (hits {hits}, misses {misses})");
    println!("ratio: {:.2} (target ≥ 0.50)", a / t);
    Ok(())
}
