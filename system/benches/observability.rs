//! Benchmark: the cost of observability on the hot path. `GET /v1/rounds/{id}/availability`
//! (a cache hit: the cheapest real request, so the overhead shows most) through the real
//! router without a socket, in three variants, alternating in one process:
//!
//! - `off`: the routes without the observing middleware (no metrics, no request span) and no
//!   subscriber;
//! - `metrics`: the real router (metrics, spans) with no subscriber (splits the cost);
//! - `on`: the real router (metrics, `http.request` span) with the ECS JSON layer at `info`
//!   writing to `/dev/null` (what production runs: requests log nothing at `info`);
//! - `access`: as `on`, plus one JSON access line per request (`boxoffice::access=debug`).
//!
//! Each variant runs on a current-thread runtime with its subscriber as the thread's default,
//! `BENCH_REQUESTS` requests per run (8 in flight), `BENCH_RUNS` runs; the figure is the median
//! of the runs' requests per second. Target: `on` within 10 % of `off`.
//!
//! Run: `cargo bench -p boxoffice --bench observability` (env `BENCH_REQUESTS`, `BENCH_RUNS`).

use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use boxoffice::telemetry::EcsLayer;
use boxoffice::{Application, Config};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::EnvFilter;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

/// `n` GETs of `path`, 8 in flight; requests per second.
async fn drive(router: &Router, path: &str, n: u64) -> f64 {
    let began = Instant::now();
    let per = n / 8;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let router = router.clone();
            let path = path.to_owned();
            async move {
                for _ in 0..per {
                    let res = router
                        .clone()
                        .oneshot(Request::get(&path).body(Body::empty()).unwrap())
                        .await
                        .unwrap();
                    assert!(res.status().is_success());
                    let _ = res.into_body().collect().await.unwrap();
                }
            }
        })
        .collect();
    futures::future::join_all(tasks).await;
    (per * 8) as f64 / began.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn run_variant(dispatch: Option<tracing::Dispatch>, router: &Router, path: &str, n: u64) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let go = || rt.block_on(drive(router, path, n));
    match dispatch {
        Some(d) => tracing::dispatcher::with_default(&d, go),
        None => tracing::dispatcher::with_default(&tracing::Dispatch::none(), go),
    }
}

fn json_subscriber(filter: &str) -> tracing::Dispatch {
    let devnull = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let devnull = std::sync::Mutex::new(devnull);
    tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(EnvFilter::new(filter))
            .with(EcsLayer::new(devnull)),
    )
}

fn main() -> anyhow::Result<()> {
    let n = env_or("BENCH_REQUESTS", 40_000);
    let runs = env_or("BENCH_RUNS", 5);
    let dir = tempfile::tempdir()?;
    let setup = tokio::runtime::Runtime::new()?;
    let (state, path) = setup.block_on(async {
        let mut config =
            Config::for_tests(format!("sqlite://{}/bench.db", dir.path().display()));
        config.cache_ttl_ms = 600_000;
        config.admin_email = Some("admin@example.com".into());
        config.admin_password = Some("admin-password".into());
        let app = Application::build(config).await?;
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
        let path = format!("/v1/rounds/{}/availability", round["id"]);
        anyhow::Ok((app.state().clone(), path))
    })?;
    let observed = boxoffice::api::router(state.clone());
    let bare: Router = boxoffice::api::routes().0.with_state(state.clone());
    // Warm the cache and both routers.
    run_variant(None, &bare, &path, 2_000);
    run_variant(None, &observed, &path, 2_000);

    let (mut off, mut on, mut access) = (Vec::new(), Vec::new(), Vec::new());
    let mut metrics_only = Vec::new();
    for _ in 0..runs {
        off.push(run_variant(None, &bare, &path, n));
        metrics_only.push(run_variant(None, &observed, &path, n));
        on.push(run_variant(
            Some(json_subscriber("info")),
            &observed,
            &path,
            n,
        ));
        access.push(run_variant(
            Some(json_subscriber("info,boxoffice::access=debug")),
            &observed,
            &path,
            n,
        ));
    }
    let (off_m, on_m, access_m) = (
        median(off.clone()),
        median(on.clone()),
        median(access.clone()),
    );
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("GET availability (cache hit), {n} requests per run, {runs} runs, medians:");
    println!(
        "  off    (no metrics, no subscriber):        {off_m:>9.0} req/s  [{}]",
        fmt(&off)
    );
    println!(
        "  on     (metrics + span + ECS JSON, info): {on_m:>9.0} req/s  [{}]",
        fmt(&on)
    );
    println!(
        "  access (on + one JSON line per request):  {access_m:>9.0} req/s  [{}]",
        fmt(&access)
    );
    println!(
        "  metrics (router with metrics + spans, no subscriber): {:.0} req/s  [{}]",
        median(metrics_only.clone()),
        fmt(&metrics_only)
    );
    println!(
        "  on/off = {:.3} ({:+.1} %), access/off = {:.3} ({:+.1} %); target: on within 10 %",
        on_m / off_m,
        (on_m / off_m - 1.0) * 100.0,
        access_m / off_m,
        (access_m / off_m - 1.0) * 100.0
    );
    Ok(())
}
