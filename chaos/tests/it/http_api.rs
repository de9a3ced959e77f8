//! The Toxiproxy-compatible HTTP API driven over a socket, by this crate's client and by raw
//! HTTP with the bodies a Toxiproxy client sends, checking shapes and status codes.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use chaos::toxics::latency;
use chaos::{Error, ProxyConfig, ProxyServer, Stream, ToxicKind, ToxicSpec, ToxiproxyClient};
use serde_json::{json, Value};

async fn server() -> (ProxyServer, ToxiproxyClient, String) {
    let (server, addr) = ProxyServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    (server, ToxiproxyClient::new(&base), base)
}

async fn raw(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_api_creates_lists_updates_and_deletes_proxies_with_toxiproxy_statuses() {
    let (_server, client, base) = server().await;
    let upstream = echo_server().await;
    let body = json!({"name": "redis", "listen": "127.0.0.1:0", "upstream": upstream.to_string()});
    let (status, created) = raw(
        reqwest::Method::POST,
        format!("{base}/proxies"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["name"], "redis");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["toxics"], json!([]));
    assert_ne!(
        created["listen"], "127.0.0.1:0",
        "the real port is reported"
    );

    let (status, err) = raw(reqwest::Method::POST, format!("{base}/proxies"), Some(body)).await;
    assert_eq!(
        (status, err),
        (409, json!({"error": "proxy already exists", "status": 409}))
    );

    let (status, err) = raw(
        reqwest::Method::POST,
        format!("{base}/proxies"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["status"], 400);

    let proxies = client.proxies().await.unwrap();
    assert_eq!(proxies.keys().collect::<Vec<_>>(), ["redis"]);
    let listen: SocketAddr = proxies["redis"].listen.parse().unwrap();

    let disabled = client.disable("redis").await.unwrap();
    assert!(!disabled.enabled);
    assert!(tokio::net::TcpStream::connect(listen).await.is_err());
    let enabled = client.enable("redis").await.unwrap();
    assert!(enabled.enabled);
    assert_eq!(enabled.listen, listen.to_string());
    let mut s = tokio::net::TcpStream::connect(listen).await.unwrap();
    round_trip(&mut s, b"hi").await;

    client.delete_proxy("redis").await.unwrap();
    assert!(matches!(
        client.proxy("redis").await,
        Err(Error::ProxyNotFound)
    ));
    let (status, err) = raw(
        reqwest::Method::DELETE,
        format!("{base}/proxies/redis"),
        None,
    )
    .await;
    assert_eq!(
        (status, err),
        (404, json!({"error": "proxy not found", "status": 404}))
    );
}

#[tokio::test]
async fn the_api_adds_shows_updates_and_removes_toxics() {
    let (_server, client, base) = server().await;
    let upstream = echo_server().await;
    client
        .create_proxy(&ProxyConfig::new("pg", "127.0.0.1:0", upstream.to_string()))
        .await
        .unwrap();
    // The body a Toxiproxy client sends: no name, no stream, no toxicity.
    let (status, toxic) = raw(
        reqwest::Method::POST,
        format!("{base}/proxies/pg/toxics"),
        Some(json!({"type": "latency", "attributes": {"latency": 120}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        toxic,
        json!({"name": "latency_downstream", "type": "latency", "stream": "downstream",
               "toxicity": 1.0, "attributes": {"latency": 120, "jitter": 0}})
    );
    let (status, err) = raw(
        reqwest::Method::POST,
        format!("{base}/proxies/pg/toxics"),
        Some(json!({"type": "latency", "attributes": {"latency": 1}})),
    )
    .await;
    assert_eq!(
        (status, err),
        (409, json!({"error": "toxic already exists", "status": 409}))
    );
    let (status, _) = raw(
        reqwest::Method::POST,
        format!("{base}/proxies/pg/toxics"),
        Some(json!({"type": "mars"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, err) = raw(
        reqwest::Method::POST,
        format!("{base}/proxies/pg/toxics"),
        Some(json!({"type": "latency", "stream": "sideways"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"],
        "stream was invalid, can be either upstream or downstream"
    );

    let up = client
        .add_toxic(
            "pg",
            &ToxicSpec::new(
                ToxicKind::Latency(latency::Config {
                    latency: 5,
                    jitter: 0,
                }),
                Stream::Upstream,
            )
            .named("slow_queries")
            .with_toxicity(0.5),
        )
        .await
        .unwrap();
    assert_eq!(up.name, "slow_queries");
    assert_eq!(client.toxics("pg").await.unwrap().len(), 2);
    assert_eq!(client.toxic("pg", "slow_queries").await.unwrap(), up);

    let updated = client
        .update_toxic(
            "pg",
            "latency_downstream",
            json!({"jitter": 30}),
            Some(0.25),
        )
        .await
        .unwrap();
    assert_eq!(
        updated.kind,
        ToxicKind::Latency(latency::Config {
            latency: 120,
            jitter: 30
        })
    );
    assert_eq!(updated.toxicity, 0.25);

    client.remove_toxic("pg", "slow_queries").await.unwrap();
    assert!(matches!(
        client.remove_toxic("pg", "slow_queries").await,
        Err(Error::ToxicNotFound)
    ));
    assert!(matches!(
        client.toxics("nope").await,
        Err(Error::ProxyNotFound)
    ));
    let (status, err) = raw(
        reqwest::Method::GET,
        format!("{base}/proxies/pg/toxics/nope"),
        None,
    )
    .await;
    assert_eq!(
        (status, err),
        (404, json!({"error": "toxic not found", "status": 404}))
    );
}

#[tokio::test]
async fn a_toxic_added_through_the_api_is_felt_on_the_wire() {
    let (_server, client, _) = server().await;
    let info = client
        .create_proxy(&ProxyConfig::new(
            "svc",
            "127.0.0.1:0",
            echo_server().await.to_string(),
        ))
        .await
        .unwrap();
    client
        .add_toxic(
            "svc",
            &ToxicSpec::new(
                ToxicKind::Latency(latency::Config {
                    latency: 100,
                    jitter: 0,
                }),
                Stream::Downstream,
            ),
        )
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(&info.listen).await.unwrap();
    assert!(round_trip(&mut s, b"slow").await >= Duration::from_millis(100));
}

#[tokio::test]
async fn reset_enables_every_proxy_and_removes_every_toxic() {
    let (_server, client, base) = server().await;
    let upstream = echo_server().await.to_string();
    for name in ["a", "b"] {
        client
            .create_proxy(&ProxyConfig::new(name, "127.0.0.1:0", upstream.clone()))
            .await
            .unwrap();
        client
            .add_toxic(
                name,
                &ToxicSpec::new(
                    ToxicKind::Latency(latency::Config::default()),
                    Stream::Upstream,
                ),
            )
            .await
            .unwrap();
    }
    client.disable("a").await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{base}/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    for p in client.proxies().await.unwrap().values() {
        assert!(p.enabled, "{} enabled", p.name);
        assert!(p.toxics.is_empty(), "{} has no toxics", p.name);
    }
}

#[tokio::test]
async fn populate_creates_keeps_or_replaces_proxies() {
    let (_server, client, base) = server().await;
    let up1 = echo_server().await.to_string();
    let up2 = echo_server().await.to_string();
    let (status, body) = raw(
        reqwest::Method::POST,
        format!("{base}/populate"),
        Some(
            json!([{"name": "redis", "listen": "127.0.0.1:0", "upstream": up1},
                    {"name": "kafka", "listen": "127.0.0.1:0", "upstream": up1, "enabled": false}]),
        ),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["proxies"].as_array().unwrap().len(), 2);
    let redis = client.proxy("redis").await.unwrap();
    assert!(!client.proxy("kafka").await.unwrap().enabled);
    client
        .add_toxic(
            "redis",
            &ToxicSpec::new(
                ToxicKind::Latency(latency::Config::default()),
                Stream::Upstream,
            ),
        )
        .await
        .unwrap();

    // Same listen and upstream: kept, toxics and all. A new upstream: replaced.
    let again = client
        .populate(&[
            ProxyConfig::new("redis", redis.listen.clone(), up1.clone()),
            ProxyConfig::new("kafka", "127.0.0.1:0", up2.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(client.toxics("redis").await.unwrap().len(), 1);
    let kafka = client.proxy("kafka").await.unwrap();
    assert_eq!(kafka.upstream, up2);
    assert!(kafka.enabled);

    let (status, err) = raw(
        reqwest::Method::POST,
        format!("{base}/populate"),
        Some(json!([{"name": "x"}])),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["status"], 400);
}

#[tokio::test]
async fn version_and_metrics_are_served() {
    let (_server, client, base) = server().await;
    assert!(client.version().await.unwrap().starts_with("chaos-"));
    let info = client
        .create_proxy(&ProxyConfig::new(
            "payments",
            "127.0.0.1:0",
            echo_server().await.to_string(),
        ))
        .await
        .unwrap();
    client
        .add_toxic(
            "payments",
            &ToxicSpec::new(
                ToxicKind::Latency(latency::Config {
                    latency: 1,
                    jitter: 0,
                }),
                Stream::Downstream,
            ),
        )
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(&info.listen).await.unwrap();
    round_trip(&mut s, b"12345").await;
    drop(s);
    let text = client.metrics().await.unwrap();
    for needle in [
        r#"chaos_proxy_connections_total{proxy="payments"} 1"#,
        r#"chaos_proxy_received_bytes_total{direction="upstream",proxy="payments"} 5"#,
        r#"chaos_proxy_sent_bytes_total{direction="downstream",proxy="payments"} 5"#,
        r#"chaos_proxy_toxics_active{direction="downstream",proxy="payments",type="latency"} 1"#,
        r#"chaos_proxy_enabled{proxy="payments"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let resp = reqwest::Client::new()
        .get(format!("{base}/version"))
        .header("User-Agent", "Mozilla/5.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        403,
        "browsers are refused, as in Toxiproxy"
    );
}
