//! A small TCP load balancer for the `local` stack: round-robin over N box-office instances,
//! with active health checks, so that killing or pausing one instance is survivable — what
//! nginx's upstream block does in the docker-compose stack.
//!
//! ```text
//! client ──► balancer :P ──► app-1 :P1   (healthy)
//!                       ╰──► app-2 :P2   (health check failed: skipped until it passes)
//! ```
//!
//! A new connection goes to the next healthy backend; if connecting fails, the backend is
//! marked down and the next one is tried (a connect failure sent nothing, so retrying is
//! safe). Established connections are spliced byte for byte and are not moved: a client whose
//! instance dies mid-request sees its connection reset, as it would behind a real balancer.
//! Every 250 ms each backend's `GET /health/live` is probed with a 500 ms deadline; a frozen
//! (SIGSTOP-ed) instance still accepts TCP connections into its backlog, so only the probe's
//! timeout reveals it.
//!
//! Hand-written rather than built on a proxy crate (pingora, or tower's `balance`, which is for
//! HTTP services): the lab needs only round-robin over a few local TCP backends, byte splicing, and
//! a liveness probe whose timeout catches a frozen instance, which fits in this file with no new
//! dependency.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// One backend and what the health checks last saw.
#[derive(Debug)]
struct Backend {
    addr: SocketAddr,
    healthy: AtomicBool,
}

/// A running balancer; dropping it stops accepting and probing (spliced connections end when
/// either side closes).
/// Pending connections the kernel may queue (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 8192;

#[derive(Debug)]
pub struct Balancer {
    addr: SocketAddr,
    backends: Arc<Vec<Backend>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Balancer {
    /// Listens on a free 127.0.0.1 port in front of `backends` (all assumed healthy at start)
    /// and starts the health checks.
    pub async fn start(backends: Vec<SocketAddr>) -> std::io::Result<Balancer> {
        // A crowd connects at once when a sale opens: with tokio's default backlog (1,024) the
        // kernel drops handshakes and each dropped client waits out a SYN retransmission
        // (1 s, 3 s, …), which reads as latency the box office never caused.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((std::net::Ipv4Addr::LOCALHOST, 0).into())?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let addr = listener.local_addr()?;
        let backends: Arc<Vec<Backend>> = Arc::new(
            backends
                .into_iter()
                .map(|addr| Backend {
                    addr,
                    healthy: AtomicBool::new(true),
                })
                .collect(),
        );
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&backends)));
        let probe = tokio::spawn(probe_loop(Arc::clone(&backends)));
        tracing::info!(%addr, backends = backends.len(), "balancer started");
        Ok(Balancer {
            addr,
            backends,
            tasks: vec![accept, probe],
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether the health checks currently consider backend `i` (0-based) healthy.
    pub fn is_healthy(&self, i: usize) -> bool {
        self.backends
            .get(i)
            .is_some_and(|b| b.healthy.load(Ordering::Relaxed))
    }

    /// How many backends are currently healthy.
    pub fn healthy_count(&self) -> usize {
        self.backends
            .iter()
            .filter(|b| b.healthy.load(Ordering::Relaxed))
            .count()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, backends: Arc<Vec<Backend>>) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection aborted before it was
                // accepted: retrying at once would spin on the same error while the
                // connection waits in the backlog; a moment later some socket has closed.
                if out_of_descriptors(&e) {
                    tracing::warn!(error = %e, "balancer: out of descriptors, accept paused");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let backends = Arc::clone(&backends);
        let next = Arc::clone(&next);
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            if let Some(upstream) = connect_next(&backends, &next).await {
                splice(client, upstream).await;
            }
            // No backend: dropping the client's socket closes it; the client sees the reset.
        });
    }
}

/// Connects to the next healthy backend, trying each at most once; when none is marked
/// healthy, tries them all anyway (the checks may lag behind a recovery).
async fn connect_next(backends: &[Backend], next: &AtomicUsize) -> Option<TcpStream> {
    let n = backends.len();
    if n == 0 {
        return None;
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    for only_healthy in [true, false] {
        for k in 0..n {
            let b = &backends[(start + k) % n];
            if only_healthy != b.healthy.load(Ordering::Relaxed) {
                continue;
            }
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(b.addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Some(s);
                }
                // This process ran out of descriptors: the backend is not to blame, and no
                // other would do better.
                Ok(Err(e)) if out_of_descriptors(&e) => return None,
                _ => b.healthy.store(false, Ordering::Relaxed),
            }
        }
    }
    None
}

/// Whether `e` says this process (EMFILE) or the system (ENFILE) has no descriptor left.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == libc::EMFILE || code == libc::ENFILE
    )
}

async fn splice(mut client: TcpStream, mut upstream: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

async fn probe_loop(backends: Arc<Vec<Backend>>) {
    loop {
        for b in backends.iter() {
            let ok = tokio::time::timeout(PROBE_TIMEOUT, probe_live(b.addr))
                .await
                .unwrap_or(false);
            let was = b.healthy.swap(ok, Ordering::Relaxed);
            if was != ok {
                tracing::info!(backend = %b.addr, healthy = ok, "balancer backend changed");
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// `GET /health/live` over a fresh connection; true on a 200.
pub(crate) async fn probe_live(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET /health/live HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    buf[..got].starts_with(b"HTTP/1.1 200") || buf[..got].starts_with(b"HTTP/1.0 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_out_of_descriptors_is_told_from_a_backends_failure() {
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let enfile = std::io::Error::from_raw_os_error(libc::ENFILE);
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert!(out_of_descriptors(&emfile));
        assert!(out_of_descriptors(&enfile));
        assert!(!out_of_descriptors(&refused));
        assert!(!out_of_descriptors(&std::io::Error::other("timeout")));
    }
}
