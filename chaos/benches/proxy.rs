//! The fault proxy's cost with no toxic: `redis-benchmark` straight at a Redis server vs through
//! a [`chaos::Proxy`], in one run, alternating direct and proxied legs so that neither gets the
//! warm-up or a quieter moment. Target (issue #5): proxied throughput at least 0.6 of direct,
//! added p50 at most 100 µs.
//!
//! ```text
//! cargo bench -p chaos --bench proxy            # BENCH_RUNS=5 BENCH_REQUESTS=200000 BENCH_CLIENTS=50
//! ```
//!
//! Needs `redis-server` and `redis-benchmark` (`apt-get install -y redis-server`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chaos::{Proxy, ProxyConfig};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(port: u16) -> Redis {
    let dir = std::env::temp_dir();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs (apt-get install -y redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Redis(child)
}

/// One leg: (requests/s, p50 ms) of GET, from redis-benchmark's CSV.
fn leg(port: u16, requests: u64, clients: u64) -> (f64, f64) {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "get", "-n", &requests.to_string()])
        .args(["-c", &clients.to_string(), "-P", "1", "--csv"])
        .output()
        .expect("redis-benchmark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
    let row = text
        .lines()
        .find(|l| l.starts_with("\"GET\""))
        .unwrap_or_else(|| panic!("no GET row in redis-benchmark output:\n{text}"));
    let cells: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    (cells[0], cells[3])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs = env_or("BENCH_RUNS", 5).max(1);
    let requests = env_or("BENCH_REQUESTS", 200_000);
    let clients = env_or("BENCH_CLIENTS", 50);
    let redis_port = free_port();
    let _redis = start_redis(redis_port);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let proxy = rt.block_on(async {
        Proxy::start(ProxyConfig::new(
            "redis",
            "127.0.0.1:0",
            format!("127.0.0.1:{redis_port}"),
        ))
        .expect("proxy")
    });
    let proxy_port = proxy.listen_addr().expect("bound").port();
    // Warm both paths.
    leg(redis_port, requests / 10, clients);
    leg(proxy_port, requests / 10, clients);

    let latency_requests = (requests / 10).max(1000);
    println!(
        "redis-benchmark GET -P 1, {runs} run(s), direct and proxied alternating: throughput with \
         -c {clients} -n {requests}; added latency with one client (-c 1 -n {latency_requests}), \
         where queueing does not hide the hop"
    );
    println!(
        "{:>4}  {:>12} {:>12} {:>7}  {:>10} {:>10} {:>9}  {:>10}",
        "run",
        "direct rps",
        "proxied rps",
        "ratio",
        "p50 dir ms",
        "p50 prx ms",
        "added µs",
        "c50 added"
    );
    let (mut ratios, mut added, mut added_c50) = (Vec::new(), Vec::new(), Vec::new());
    let pair = |run: u64, c: u64, n: u64| {
        // Alternate which leg goes first.
        if run % 2 == 1 {
            let d = leg(redis_port, n, c);
            (d, leg(proxy_port, n, c))
        } else {
            let p = leg(proxy_port, n, c);
            (leg(redis_port, n, c), p)
        }
    };
    for run in 1..=runs {
        let (d, p) = pair(run, clients, requests);
        let (d1, p1) = pair(run, 1, latency_requests);
        let ratio = p.0 / d.0;
        let add_us = (p1.1 - d1.1) * 1000.0;
        let add_c50 = (p.1 - d.1) * 1000.0;
        println!(
            "{run:>4}  {:>12.0} {:>12.0} {ratio:>7.2}  {:>10.3} {:>10.3} {add_us:>9.0}  {add_c50:>8.0}µs",
            d.0, p.0, d1.1, p1.1
        );
        ratios.push(ratio);
        added.push(add_us);
        added_c50.push(add_c50);
    }
    let (ratio, add) = (median(ratios), median(added));
    println!(
        "median: proxied/direct throughput {ratio:.2} (target >= 0.60: {}), added p50 {add:.0} µs \
         with one client (target <= 100 µs: {}); with {clients} clients the p50 grows by {:.0} µs, \
         mostly queueing behind the lower throughput",
        if ratio >= 0.6 { "met" } else { "NOT met" },
        if add <= 100.0 { "met" } else { "NOT met" },
        median(added_c50)
    );
    drop(proxy);
}
