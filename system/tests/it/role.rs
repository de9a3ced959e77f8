//! `BOXOFFICE_ROLE`: an `api` process serves the API only, a `worker` serves health and
//! metrics only (and runs the relay, the consumers and the reaper), `all` does both.

use std::time::Duration;

use boxoffice::config::Role;
use boxoffice::store::embedded_url;
use boxoffice::{Application, Config};

/// Starts an instance with `role` on an embedded database; returns its base URL and a stop.
async fn start(role: Role, dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut config = Config::for_tests(embedded_url(dir));
    config.role = role;
    let app = Application::build(config).await.expect("builds");
    let base = format!("http://{}", app.address());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    (base, tx)
}

async fn status(url: &str) -> u16 {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_worker_serves_health_and_metrics_but_not_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (base, stop) = start(Role::Worker, dir.path()).await;
    assert_eq!(status(&format!("{base}/health/live")).await, 200);
    assert_eq!(status(&format!("{base}/health/ready")).await, 200);
    assert_eq!(status(&format!("{base}/metrics")).await, 200);
    assert_eq!(status(&format!("{base}/v1/events")).await, 404);
    assert_eq!(status(&format!("{base}/openapi.json")).await, 404);
    let _ = stop.send(());
}

#[tokio::test]
async fn api_and_all_serve_the_api() {
    for role in [Role::Api, Role::All] {
        let dir = tempfile::tempdir().unwrap();
        let (base, stop) = start(role, dir.path()).await;
        assert_eq!(status(&format!("{base}/v1/events")).await, 200, "{role:?}");
        assert_eq!(status(&format!("{base}/metrics")).await, 200, "{role:?}");
        let _ = stop.send(());
    }
}

#[test]
fn the_role_defaults_to_all_and_reads_boxoffice_role() {
    assert_eq!(Config::default().role, Role::All);
    let parsed =
        <Config as clap::Parser>::try_parse_from(["boxoffice", "--role", "worker"]).unwrap();
    assert_eq!(parsed.role, Role::Worker);
    assert!(Role::Api.serves_api() && !Role::Api.runs_workers());
    assert!(!Role::Worker.serves_api() && Role::Worker.runs_workers());
    assert!(Role::All.serves_api() && Role::All.runs_workers());
}
