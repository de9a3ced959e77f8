//! Each toxic measured on the wire: a TCP upstream on port 0, the proxy in front, a real
//! client. Tolerances leave room for a loaded 2-core machine but still catch a toxic that
//! does nothing or does the wrong thing.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use crate::common::*;
use chaos::toxics::{bandwidth, latency, limit_data, reset_peer, slicer, slow_close, timeout};
use chaos::{Stream, ToxicKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLACK: Duration = Duration::from_millis(80);

#[tokio::test]
async fn latency_adds_the_configured_delay_to_each_round_trip() {
    let proxy = proxy_to(echo_server().await);
    let mut s = connect(&proxy).await;
    let baseline = median(futures_lite_rounds(&mut s, 5).await);
    proxy
        .add_toxic(toxic(
            ToxicKind::Latency(latency::Config {
                latency: 100,
                jitter: 0,
            }),
            Stream::Downstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    let rounds = futures_lite_rounds(&mut s, 5).await;
    let m = median(rounds.clone());
    eprintln!("latency=100ms: baseline median {baseline:?}, round trips {rounds:?}");
    assert!(
        rounds.iter().all(|d| *d >= Duration::from_millis(100)),
        "{rounds:?}"
    );
    assert!(m < Duration::from_millis(100) + SLACK, "median {m:?}");
}

async fn futures_lite_rounds(s: &mut TcpStream, n: usize) -> Vec<Duration> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(round_trip(s, format!("ping {i}").as_bytes()).await);
    }
    v
}

#[tokio::test]
async fn latency_jitter_stays_within_its_bounds() {
    let proxy = proxy_to(echo_server().await);
    proxy
        .add_toxic(toxic(
            ToxicKind::Latency(latency::Config {
                latency: 100,
                jitter: 40,
            }),
            Stream::Upstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    let rounds = futures_lite_rounds(&mut s, 6).await;
    eprintln!("latency=100ms~40ms: {rounds:?}");
    assert!(
        rounds.iter().all(|d| *d >= Duration::from_millis(60)),
        "{rounds:?}"
    );
    assert!(median(rounds) < Duration::from_millis(140) + SLACK);
}

#[tokio::test]
async fn a_toxic_added_to_an_open_connection_applies_to_it_and_removing_it_restores() {
    let proxy = proxy_to(echo_server().await);
    let mut s = connect(&proxy).await;
    assert!(round_trip(&mut s, b"before").await < Duration::from_millis(60));
    proxy
        .add_toxic(toxic(
            ToxicKind::Latency(latency::Config {
                latency: 150,
                jitter: 0,
            }),
            Stream::Downstream,
        ))
        .unwrap();
    assert!(round_trip(&mut s, b"during").await >= Duration::from_millis(150));
    proxy.remove_toxic("latency_downstream").unwrap();
    assert!(round_trip(&mut s, b"after").await < Duration::from_millis(60));
}

#[tokio::test]
async fn bandwidth_limits_a_download_to_the_rate() {
    let proxy = proxy_to(blast_server(200_000).await);
    proxy
        .add_toxic(toxic(
            ToxicKind::Bandwidth(bandwidth::Config { rate: 100 }),
            Stream::Downstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    let start = Instant::now();
    let (data, end) = read_to_end(&mut s).await;
    let took = start.elapsed();
    eprintln!("200 KB at 100 KB/s took {took:?}");
    end.unwrap();
    assert_eq!(data.len(), 200_000);
    assert!(
        took >= Duration::from_millis(1500) && took <= Duration::from_millis(2500),
        "{took:?}"
    );
}

#[tokio::test]
async fn reset_peer_makes_the_client_see_a_connection_reset() {
    let proxy = proxy_to(echo_server().await);
    proxy
        .add_toxic(toxic(
            ToxicKind::ResetPeer(reset_peer::Config { timeout: 100 }),
            Stream::Downstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    let start = Instant::now();
    s.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).await.expect_err("the read must fail");
    let took = start.elapsed();
    eprintln!("reset after {took:?}: {err}");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(took >= Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn timeout_sends_nothing_then_closes_after_the_timeout() {
    let proxy = proxy_to(echo_server().await);
    proxy
        .add_toxic(toxic(
            ToxicKind::Timeout(timeout::Config { timeout: 300 }),
            Stream::Downstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    let start = Instant::now();
    s.write_all(b"anyone?").await.unwrap();
    let (data, _) = read_to_end(&mut s).await;
    let took = start.elapsed();
    eprintln!("timeout=300ms closed after {took:?}");
    assert!(data.is_empty(), "no data may pass");
    assert!(took >= Duration::from_millis(280), "{took:?}");
    assert!(took < Duration::from_millis(300) + SLACK * 3, "{took:?}");
}

#[tokio::test]
async fn timeout_zero_hangs_until_the_toxic_is_removed() {
    let proxy = proxy_to(echo_server().await);
    proxy
        .add_toxic(toxic(
            ToxicKind::Timeout(timeout::Config { timeout: 0 }),
            Stream::Downstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    s.write_all(b"anyone?").await.unwrap();
    let mut buf = [0u8; 16];
    let hung = tokio::time::timeout(Duration::from_millis(600), s.read(&mut buf)).await;
    assert!(hung.is_err(), "the read must hang");
    proxy.remove_toxic("timeout_downstream").unwrap();
    // The swallowed data is gone, so the hung connection is closed (Toxiproxy does the same)…
    let closed = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("closed after removal");
    assert!(matches!(closed, Ok(0) | Err(_)));
    // …and new connections flow again.
    let mut s = connect(&proxy).await;
    assert!(round_trip(&mut s, b"back").await < Duration::from_millis(100));
}

#[tokio::test]
async fn slicer_delivers_a_response_in_more_smaller_reads() {
    let proxy = proxy_to(blast_server(2_000).await);
    let mut s = connect(&proxy).await;
    let reads_without = count_reads(&mut s).await;
    proxy
        .add_toxic(toxic(
            ToxicKind::Slicer(slicer::Config {
                average_size: 20,
                size_variation: 10,
                delay: 2_000,
            }),
            Stream::Downstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    let reads_with = count_reads(&mut s).await;
    eprintln!(
        "2000 bytes: {} reads without slicer, {} with (max read {} bytes)",
        reads_without.len(),
        reads_with.len(),
        reads_with.iter().max().unwrap()
    );
    assert_eq!(reads_with.iter().sum::<usize>(), 2_000);
    assert!(reads_with.len() >= 20, "{reads_with:?}");
    assert!(reads_with.len() > reads_without.len() * 5);
    let mut sorted = reads_with.clone();
    sorted.sort();
    assert!(
        sorted[sorted.len() / 2] <= 30,
        "median read {}",
        sorted[sorted.len() / 2]
    );
}

async fn count_reads(s: &mut TcpStream) -> Vec<usize> {
    let mut reads = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf).await.unwrap() {
            0 => return reads,
            n => reads.push(n),
        }
    }
}

#[tokio::test]
async fn limit_data_closes_the_connection_after_n_bytes() {
    let proxy = proxy_to(blast_server(10_000).await);
    proxy
        .add_toxic(toxic(
            ToxicKind::LimitData(limit_data::Config { bytes: 1_000 }),
            Stream::Downstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    let (data, _) = read_to_end(&mut s).await;
    assert_eq!(data.len(), 1_000);
    let expected: Vec<u8> = (0..1_000).map(|i| (i % 251) as u8).collect();
    assert_eq!(data, expected);
}

#[tokio::test]
async fn slow_close_holds_the_close_after_the_data() {
    let proxy = proxy_to(blast_server(100).await);
    proxy
        .add_toxic(toxic(
            ToxicKind::SlowClose(slow_close::Config { delay: 300 }),
            Stream::Downstream,
        ))
        .unwrap();
    let mut s = connect(&proxy).await;
    let mut buf = [0u8; 100];
    s.read_exact(&mut buf).await.unwrap();
    let data_at = Instant::now();
    let (rest, _) = read_to_end(&mut s).await;
    let held = data_at.elapsed();
    assert!(rest.is_empty());
    assert!(held >= Duration::from_millis(250), "{held:?}");
}

#[tokio::test]
async fn a_disabled_proxy_refuses_connections_and_re_enabling_restores_them() {
    let proxy = proxy_to(echo_server().await);
    let addr = proxy.listen_addr().unwrap();
    let mut open = connect(&proxy).await;
    round_trip(&mut open, b"up").await;

    proxy.disable().await;
    let err = TcpStream::connect(addr)
        .await
        .expect_err("refused while down");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // The open connection was dropped too.
    let mut buf = [0u8; 4];
    let dropped = tokio::time::timeout(Duration::from_secs(2), open.read(&mut buf))
        .await
        .expect("dropped, not hung");
    assert!(matches!(dropped, Ok(0) | Err(_)));

    proxy.enable().unwrap();
    assert_eq!(
        proxy.listen_addr(),
        Some(addr),
        "same port after re-enabling"
    );
    let mut s = connect(&proxy).await;
    round_trip(&mut s, b"back").await;
}

#[tokio::test]
async fn toxicity_zero_never_applies() {
    let proxy = proxy_to(echo_server().await);
    proxy
        .add_toxic(
            toxic(
                ToxicKind::Latency(latency::Config {
                    latency: 500,
                    jitter: 0,
                }),
                Stream::Downstream,
            )
            .with_toxicity(0.0),
        )
        .unwrap();
    for _ in 0..10 {
        let mut s = connect(&proxy).await;
        let d = round_trip(&mut s, b"fast").await;
        assert!(d < Duration::from_millis(200), "{d:?}");
    }
}

#[tokio::test]
async fn toxicity_one_half_hits_the_same_connections_on_a_replay() {
    async fn hits(upstream: std::net::SocketAddr) -> Vec<bool> {
        let proxy = proxy_to(upstream);
        proxy
            .add_toxic(
                toxic(
                    ToxicKind::Latency(latency::Config {
                        latency: 150,
                        jitter: 0,
                    }),
                    Stream::Downstream,
                )
                .with_toxicity(0.5),
            )
            .unwrap();
        let mut v = Vec::new();
        for _ in 0..8 {
            let mut s = connect(&proxy).await;
            v.push(round_trip(&mut s, b"x").await >= Duration::from_millis(150));
        }
        v
    }
    let upstream = echo_server().await;
    let first = hits(upstream).await;
    let replay = hits(upstream).await;
    eprintln!("toxicity 0.5 hits: {first:?}");
    assert_eq!(first, replay);
    assert!(first.contains(&true) && first.contains(&false));
}

#[tokio::test]
async fn a_new_upstream_takes_new_connections_drops_open_ones_and_keeps_the_port() {
    // The VIP pattern of the lab's failovers: the proxy is re-pointed at the promoted node.
    let proxy = proxy_to(echo_server().await);
    let port = proxy.listen_addr().unwrap();
    let mut old = connect(&proxy).await;
    assert!(round_trip(&mut old, b"to the echo").await < Duration::from_secs(1));

    proxy
        .update(chaos::ProxyUpdate {
            upstream: Some(blast_server(5).await.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        proxy.listen_addr().unwrap(),
        port,
        "same address for clients"
    );
    // The port was never given up, so nobody else can hold it now.
    assert!(std::net::TcpListener::bind(port).is_err());

    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), old.read(&mut buf))
        .await
        .expect("the old connection is closed, not left hanging")
        .unwrap_or(0);
    assert_eq!(n, 0, "the open connection to the old upstream is dropped");

    let mut new = connect(&proxy).await;
    let (data, _) = read_to_end(&mut new).await;
    assert_eq!(data.len(), 5, "a new connection reaches the new upstream");
}
