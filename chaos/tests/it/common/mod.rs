//! Test infrastructure owned by each test: upstream servers on port 0 and a proxy in front.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaos::{Proxy, ProxyConfig, ToxicKind, ToxicSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP echo server; runs until the test's runtime stops.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A server that sends `n` bytes to each client, then closes.
pub async fn blast_server(n: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                let _ = s.write_all(&data).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// A proxy named `test` in front of `upstream`, on a free port.
pub fn proxy_to(upstream: SocketAddr) -> Proxy {
    Proxy::start(ProxyConfig::new(
        "test",
        "127.0.0.1:0",
        upstream.to_string(),
    ))
    .unwrap()
}

pub async fn connect(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(proxy.listen_addr().unwrap())
        .await
        .unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Writes `msg` and reads the same number of bytes back; returns the elapsed time.
pub async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, msg);
    start.elapsed()
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn toxic(kind: ToxicKind, stream: chaos::Stream) -> ToxicSpec {
    ToxicSpec::new(kind, stream)
}

/// Reads until EOF (or error); returns the bytes and the result that ended it.
pub async fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(e)),
        }
    }
}
