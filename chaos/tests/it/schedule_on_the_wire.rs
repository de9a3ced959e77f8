//! A schedule run against a real proxy: the faults are felt by a client inside their window
//! and gone after it.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use chaos::schedule::{self, FaultTarget, ProxyTarget, Schedule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_scheduled_down_and_latency_are_felt_inside_their_window_only() {
    let proxy = proxy_to(echo_server().await);
    let addr = proxy.listen_addr().unwrap();
    let mut targets: HashMap<String, Arc<dyn FaultTarget>> = HashMap::new();
    targets.insert("redis".into(), Arc::new(ProxyTarget::new(proxy.clone())));
    let sched =
        Schedule::parse("redis:down@50ms+300ms,redis:latency=150ms@500ms+300ms", 1).unwrap();
    let run = tokio::spawn(async move { schedule::run(&sched, &targets).await });

    tokio::time::sleep(Duration::from_millis(200)).await; // inside the down window
    let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);

    tokio::time::sleep(Duration::from_millis(400)).await; // t≈600ms: latency window
    let mut s = connect(&proxy).await;
    assert!(round_trip(&mut s, b"slow").await >= Duration::from_millis(150));

    let records = run.await.unwrap().unwrap();
    assert!(
        records
            .iter()
            .all(|r| r.error.is_none() && r.reverted_at.is_some()),
        "{records:?}"
    );
    let mut s = connect(&proxy).await;
    assert!(round_trip(&mut s, b"fast").await < Duration::from_millis(100));
}

#[tokio::test]
async fn a_partition_blackholes_both_directions_until_reverted() {
    let proxy = proxy_to(echo_server().await);
    let target = ProxyTarget::new(proxy.clone());
    let partition = schedule::parse_action("partition").unwrap();
    target.apply(&partition).await.unwrap();
    let mut s = connect(&proxy).await;
    s.write_all(b"anyone?").await.unwrap();
    let mut buf = [0u8; 8];
    assert!(
        tokio::time::timeout(Duration::from_millis(400), s.read(&mut buf))
            .await
            .is_err()
    );
    target.revert(&partition).await.unwrap();
    let mut s = connect(&proxy).await;
    round_trip(&mut s, b"healed").await;
}

#[tokio::test]
async fn a_remote_api_s_numbered_proxies_are_one_target_too() {
    let (server, api) = chaos::ProxyServer::start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let upstream = echo_server().await.to_string();
    for name in ["kafka-1", "kafka-2", "redis"] {
        server
            .registry()
            .create(chaos::ProxyConfig::new(
                name,
                "127.0.0.1:0",
                upstream.clone(),
            ))
            .unwrap();
    }
    let client = chaos::ToxiproxyClient::new(format!("http://{api}"));
    let targets = schedule::ApiProxyTarget::all(&client).await.unwrap();
    let mut names: Vec<&str> = targets.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["kafka", "kafka-1", "kafka-2", "redis"]);

    let down = schedule::parse_action("down").unwrap();
    targets["kafka"].apply(&down).await.unwrap();
    let proxies = client.proxies().await.unwrap();
    assert!(!proxies["kafka-1"].enabled && !proxies["kafka-2"].enabled);
    assert!(proxies["redis"].enabled);
    targets["kafka"].revert(&down).await.unwrap();
    let proxies = client.proxies().await.unwrap();
    assert!(proxies["kafka-1"].enabled && proxies["kafka-2"].enabled);

    let latency = schedule::parse_action("latency=100ms").unwrap();
    targets["redis"].apply(&latency).await.unwrap();
    assert_eq!(client.toxics("redis").await.unwrap().len(), 1);
    targets["redis"].revert(&latency).await.unwrap();
    assert!(client.toxics("redis").await.unwrap().is_empty());
}
