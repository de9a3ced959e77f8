//! Benchmark: the cost of observability on the hot path, `GET /v1/rounds/{id}/availability`
//! (a cache hit: the cheapest real request, so the overhead shows most), with metrics and
//! JSON logging on vs off, in one run. Target (issue 6): `on` within 10 % of `off`.
//!
//! The variants:
//!
//! - `off`: the same router (admission, fallbacks, body limit) without the observing layer
//!   (no metrics, no request span) and no subscriber. Until December 2026 it was the bare
//!   routes, so the ratio also charged observability with admission's cost;
//! - `metrics` (in-process only): the real router (metrics, spans) with no subscriber, which
//!   splits the middleware's cost from the log layer's;
//! - `on`: the real router (metrics, `http.request` span) with the ECS JSON layer at `info`
//!   writing to `/dev/null` (what production runs: requests log nothing at `info`);
//! - `access`: as `on`, plus one JSON access line per request (`boxoffice::access=debug`).
//!
//! Each variant runs in a process of its own (this binary again, `BENCH_CHILD=<variant>`):
//! its subscriber installed as the global default, as `telemetry::init` does, so that
//! callsites nobody listens to are disabled once for good, as in production (several
//! subscribers in one process would make every callsite ask on every call). Each process
//! builds a fresh application with one round, then is measured two ways:
//!
//! 1. **In-process**: the router called without a socket (`oneshot`) on a current-thread
//!    runtime, `BENCH_REQUESTS` requests per run (8 in flight), `BENCH_RUNS` runs alternating
//!    between the variants. This isolates the observability code, so it is the harshest
//!    ratio: the request itself costs about 1 µs.
//! 2. **Over a socket**: the variant's router served by `axum::serve` on a loopback port
//!    (`BENCH_SERVER_THREADS` workers, default 1: wrk takes the other core of a 2-core
//!    machine), loaded by `wrk -t1 -c32 -d4s` (`BENCH_CONNECTIONS`, `BENCH_SECS`), legs
//!    alternating `off`, `on`, `access`, `BENCH_SOCKET_RUNS` (9) runs. This is the issue's
//!    question: what a client sees when the service turns observability on. With one server
//!    thread on a machine of two or more cores, the variants' processes are pinned to CPU 0
//!    and wrk to the others (`BENCH_PIN=0` to leave them to the scheduler), and each leg also
//!    reports the server's CPU time per request (`getrusage` around the leg over wrk's
//!    request count). While the server's core is saturated that is about the inverse of its
//!    throughput (it was, within 1–2 %, on the lab's 2-core VM); when it is not, it still says
//!    what observing costs the server, where the throughput would only show what wrk managed.
//!
//! Each figure is the median of its runs; ratios are printed both as the ratio of medians and
//! as the median of the runs' own ratios (the verdict). Run:
//! `cargo bench -p boxoffice --bench observability` (`BENCH_MODE=in-process|socket|both`,
//! default `both`; `BENCH_VARIANTS=off,on` to pick; `BENCH_ON_FILTER` to give `on` another
//! `RUST_LOG`; the socket part needs `wrk`:
//! `apt-get install -y wrk`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
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

/// The allocator the `boxoffice` binary runs with (`system/src/bin/boxoffice.rs`), so that the
/// benchmark measures what production runs: glibc's malloc made the observing layer's few
/// allocations look dearer than they are.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bound: `on` at most 10 % below `off`.
const TARGET: f64 = 0.90;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(ratio: f64) -> &'static str {
    if ratio >= TARGET {
        "met"
    } else {
        "NOT met"
    }
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

/// The ECS JSON layer behind the filter of `RUST_LOG=filter`, writing to `/dev/null`: the
/// production subscriber ([`boxoffice::telemetry::init`]) without a terminal.
fn install_json_subscriber(filter: &str) {
    let devnull = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let devnull = std::sync::Mutex::new(devnull);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(boxoffice::telemetry::log_filter(filter))
            .with(EcsLayer::new(devnull)),
    )
    .expect("the first subscriber of this process");
}

/// The variants: name, what it is, whether the router observes, the log filter (none: no
/// subscriber at all).
const VARIANTS: [(&str, &str, bool, Option<&str>); 4] = [
    ("off", "no metrics, no span, no subscriber", false, None),
    ("metrics", "metrics + spans, no subscriber", true, None),
    (
        "on",
        "metrics + span + ECS JSON at info",
        true,
        Some("info"),
    ),
    (
        "access",
        "on + one JSON access line per request",
        true,
        Some("info,boxoffice::access=debug"),
    ),
];

// --- a variant's process -------------------------------------------------------------------

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

/// A variant's process (`BENCH_CHILD=<name>`): its subscriber installed globally as
/// `telemetry::init` does (so callsites nobody listens to are disabled once, as in
/// production), a fresh application with one round, the variant's router served on a
/// loopback port; it prints `ready <address> <path>`, then answers each `oneshot <n>` line
/// on stdin with `rps <requests per second>` of `n` in-process requests.
fn child(name: &str) -> anyhow::Result<()> {
    if let Some(cpu) = std::env::var("BENCH_CPU").ok().and_then(|c| c.parse().ok()) {
        pin(&[cpu])?;
    }
    let (_, _, observed, filter) = VARIANTS
        .into_iter()
        .find(|v| v.0 == name)
        .ok_or_else(|| anyhow::anyhow!("no variant {name}"))?;
    if let Some(filter) = filter {
        // `BENCH_ON_FILTER` replaces `on`'s filter, to see what a span or target costs.
        let custom = std::env::var("BENCH_ON_FILTER")
            .ok()
            .filter(|_| name == "on");
        install_json_subscriber(custom.as_deref().unwrap_or(filter));
    }
    let dir = tempfile::tempdir()?;
    let setup = tokio::runtime::Runtime::new()?;
    let (state, path) = setup.block_on(seed(&dir))?;
    let router: Router = if observed {
        boxoffice::api::router(state)
    } else {
        boxoffice::api::router_without_observability(state)
    };
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env_or("BENCH_SERVER_THREADS", 1) as usize)
        .enable_all()
        .build()?;
    let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let served = router.clone();
    server.spawn(async move { axum::serve(listener, served).await });
    let oneshot = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    oneshot.block_on(drive(&router, &path, 2_000));
    println!("ready {addr} {path}");
    for line in std::io::stdin().lines() {
        let line = line?;
        if let Some(n) = line.strip_prefix("oneshot ") {
            let rps = oneshot.block_on(drive(&router, &path, n.trim().parse()?));
            println!("rps {rps}");
        } else if line == "cpu" {
            println!("cpu {}", cpu_seconds());
        }
    }
    Ok(())
}

/// This process's CPU time (user + system) so far, in seconds.
fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage of this process");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(usage.user_time()) + secs(usage.system_time())
}

/// Pins the calling thread, and the threads and processes it starts from now on, to `cpus`
/// (called before any other thread of the process exists).
fn pin(cpus: &[usize]) -> anyhow::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// An application on a fresh SQLite file with an admin, a venue of 100 seats, an event and
/// a round; the state and the round's availability path.
async fn seed(dir: &tempfile::TempDir) -> anyhow::Result<(boxoffice::AppState, String)> {
    let mut config = Config::for_tests(format!("sqlite://{}/bench.db", dir.path().display()));
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
    Ok((app.state().clone(), path))
}

// --- the parent ----------------------------------------------------------------------------

/// A running variant process.
struct Variant {
    name: &'static str,
    what: &'static str,
    process: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// `http://127.0.0.1:<port>/v1/rounds/<id>/availability`.
    url: String,
}

impl Variant {
    fn start(name: &'static str, what: &'static str, cpu: Option<usize>) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        if let Some(cpu) = cpu {
            command.env("BENCH_CPU", cpu.to_string());
        }
        let mut process = command
            .env("BENCH_CHILD", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = process.stdin.take().expect("piped");
        let mut stdout = BufReader::new(process.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let (Some("ready"), Some(addr), Some(path)) = (words.next(), words.next(), words.next())
        else {
            anyhow::bail!("variant {name} did not start: {line:?}");
        };
        let url = format!("http://{addr}{path}");
        Ok(Self {
            name,
            what,
            process,
            stdin,
            stdout,
            url,
        })
    }

    /// Requests per second of `n` in-process requests.
    fn oneshot(&mut self, n: u64) -> anyhow::Result<f64> {
        self.ask(&format!("oneshot {n}"), "rps ")
    }

    /// The variant process's CPU time so far, in seconds.
    fn cpu(&mut self) -> anyhow::Result<f64> {
        self.ask("cpu", "cpu ")
    }

    /// Sends `command` to the variant process and reads the number after `reply` in its answer.
    fn ask(&mut self, command: &str, reply: &str) -> anyhow::Result<f64> {
        writeln!(self.stdin, "{command}")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.strip_prefix(reply)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("variant {}: {line:?}", self.name))
    }
}

impl Drop for Variant {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Alternating runs of every variant; each variant's runs, in `variants` order.
fn in_process(variants: &mut [Variant]) -> anyhow::Result<Vec<Vec<f64>>> {
    let n = env_or("BENCH_REQUESTS", 40_000);
    let runs = env_or("BENCH_RUNS", 5);
    let mut figures = vec![Vec::new(); variants.len()];
    for _ in 0..runs {
        for (v, f) in variants.iter_mut().zip(&mut figures) {
            f.push(v.oneshot(n)?);
        }
    }
    println!(
        "In-process (router.oneshot, no socket): GET availability (cache hit), {n} requests per run, 8 in flight, {runs} alternating runs, medians:"
    );
    for (v, f) in variants.iter().zip(&figures) {
        let m = median(f);
        println!(
            "  {:<8} {:>9.0} req/s  {:>6.2} µs/req  ({})  [{}]",
            v.name,
            m,
            1e6 / m,
            v.what,
            list(f)
        );
    }
    Ok(figures)
}

/// One `wrk` leg: the requests per second it reports and the requests it completed.
fn wrk(url: &str, connections: u64, secs: u64) -> anyhow::Result<(f64, f64)> {
    let args = [
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-d{secs}s"),
        url.to_owned(),
    ];
    let out = Command::new("wrk")
        .args(&args)
        .output()
        .map_err(|e| anyhow::anyhow!("wrk not runnable ({e}): apt-get install -y wrk"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        anyhow::bail!("wrk {}: errors:\n{text}", args.join(" "));
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok());
    // "  412345 requests in 4.00s, 61.23MB read"
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    rps.zip(requests)
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec or request count in wrk's output:\n{text}"))
}

/// Each socket variant's runs: requests per second, and the server's CPU microseconds per
/// request.
struct SocketFigures {
    rps: Vec<(&'static str, Vec<f64>)>,
    cpu: Vec<(&'static str, Vec<f64>)>,
}

/// Alternating `wrk` legs against every variant but `metrics`.
fn socket(variants: &mut [Variant], pinned: bool) -> anyhow::Result<SocketFigures> {
    let runs = env_or("BENCH_SOCKET_RUNS", 9);
    let secs = env_or("BENCH_SECS", 4);
    let connections = env_or("BENCH_CONNECTIONS", 32);
    let threads = env_or("BENCH_SERVER_THREADS", 1);
    let mut legs: Vec<&mut Variant> = variants
        .iter_mut()
        .filter(|v| v.name != "metrics")
        .collect();
    for v in &legs {
        wrk(&v.url, connections, 1)?;
    }
    let mut rps = vec![Vec::new(); legs.len()];
    let mut cpu = vec![Vec::new(); legs.len()];
    for _ in 0..runs {
        for ((v, r), c) in legs.iter_mut().zip(&mut rps).zip(&mut cpu) {
            let before = v.cpu()?;
            let (leg_rps, requests) = wrk(&v.url, connections, secs)?;
            let spent = v.cpu()? - before;
            r.push(leg_rps);
            c.push(spent * 1e6 / requests);
        }
    }
    println!(
        "Over a socket: `wrk -t1 -c{connections} -d{secs}s <url>`, each variant in its own process ({threads} server worker thread{}{}), {runs} alternating runs, medians:",
        if threads == 1 { "" } else { "s" },
        if pinned { ", pinned to CPU 0, wrk on the others" } else { "" }
    );
    let mut figures = SocketFigures {
        rps: Vec::new(),
        cpu: Vec::new(),
    };
    for ((v, r), c) in legs.iter().zip(rps).zip(cpu) {
        let m = median(&r);
        println!(
            "  {:<8} {:>9.0} req/s  {:>6.2} µs/req  server CPU {:>5.2} µs/req  ({}; {})  [{}]",
            v.name,
            m,
            1e6 / m,
            median(&c),
            v.what,
            v.url,
            list(&r)
        );
        figures.rps.push((v.name, r));
        figures.cpu.push((v.name, c));
    }
    Ok(figures)
}

/// Each variant against `off`: the ratio of the medians, and the median of the runs' own
/// ratios (run i of a variant over run i of `off`, measured next to each other, so that load
/// from elsewhere on the machine cancels out); the verdict is on the latter. `per_request`
/// figures are costs (µs per request), so their ratio is `off` over the variant: the
/// throughput the variant's cost allows, as a share of `off`'s.
fn ratios(label: &str, by_name: &[(&'static str, Vec<f64>)], per_request: bool, verdict_on: bool) {
    let get = |n: &str| by_name.iter().find(|(k, _)| *k == n).map(|(_, v)| v);
    let Some(off) = get("off") else {
        return;
    };
    let ratio = |x: f64, o: f64| if per_request { o / x } else { x / o };
    for name in ["metrics", "on", "access"] {
        let Some(x) = get(name) else {
            continue;
        };
        let (mo, mx) = (median(off), median(x));
        let paired: Vec<f64> = x.iter().zip(off).map(|(x, o)| ratio(*x, *o)).collect();
        let paired = median(&paired);
        let added = if per_request {
            mx - mo
        } else {
            1e6 / mx - 1e6 / mo
        };
        println!(
            "  {label:<17} {name:>7}/off: medians {:.3} ({:+.1} %, {added:+.2} µs/req), paired {paired:.3}{}",
            ratio(mx, mo),
            (ratio(mx, mo) - 1.0) * 100.0,
            if name == "on" && verdict_on {
                format!("; target ≥ {TARGET:.2}: {}", verdict(paired))
            } else {
                String::new()
            }
        );
    }
}

fn main() -> anyhow::Result<()> {
    if let Ok(name) = std::env::var("BENCH_CHILD") {
        return child(&name);
    }
    let mode = std::env::var("BENCH_MODE").unwrap_or_else(|_| "both".into());
    let only = std::env::var("BENCH_VARIANTS").ok();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let pinned = cpus >= 2
        && env_or("BENCH_SERVER_THREADS", 1) == 1
        && std::env::var("BENCH_PIN").as_deref() != Ok("0");
    let server_cpu = pinned.then_some(0);
    let mut variants = VARIANTS
        .into_iter()
        .filter(|(name, ..)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|x| x == *name))
        })
        .map(|(name, what, ..)| Variant::start(name, what, server_cpu))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // wrk (started by this process) on the CPUs the variants do not use.
    if pinned {
        pin(&(1..cpus).collect::<Vec<_>>())?;
    }

    let mut summary = Vec::new();
    if mode != "socket" {
        let figures = in_process(&mut variants)?;
        let by_name: Vec<_> = variants.iter().map(|v| v.name).zip(figures).collect();
        summary.push(("in-process", by_name, false, true));
    }
    if mode != "in-process" {
        match socket(&mut variants, pinned) {
            Ok(figures) => {
                summary.push(("socket", figures.rps, false, true));
                summary.push(("socket server CPU", figures.cpu, true, false));
            }
            Err(e) => println!("Over a socket: skipped: {e:#}"),
        }
    }
    println!("Ratios (target: on within 10 % of off; the server CPU ratio is off's CPU per request over the variant's):");
    for (label, by_name, per_request, verdict_on) in &summary {
        ratios(label, by_name, *per_request, *verdict_on);
    }
    Ok(())
}
