//! The whole `local` stack on one machine: PostgreSQL (+ a streaming standby), Redis with a
//! replica and Sentinel, a tansu Kafka broker, each behind a fault proxy, and N box-office
//! instances behind a [`Balancer`]. Every component is a named chaos target (`postgres`,
//! `redis`, `kafka`, `payments`, `app-1`…), so a schedule can kill, pause, stop or fail it
//! over, or put a toxic on its proxy.
//!
//! ```text
//!                        ┌─► app-1 ─┐            ┌─► proxy postgres ─► primary ┄┄► standby
//! client ─► balancer ────┤          ├─ each ─────┼─► proxy redis ────► primary ┄┄► replica
//!                        └─► app-2 ─┘            ├─► proxy kafka ────► tansu      (Sentinel)
//!                                                └─► proxy payments ─► the caller's provider
//! ```
//!
//! The proxies are the stable addresses the instances know, like the virtual IP that a
//! failover moves: when Sentinel promotes the Redis replica, a watcher points the `redis`
//! proxy at the new primary (what `sentinel client-reconfig-script` does to a VIP); when
//! the `postgres` target fails over, the standby is promoted and the proxy re-pointed. Clients
//! see their connections reset and reconnect to the same address. The proxies are also
//! served over Toxiproxy's HTTP API ([`LocalLab::chaos_api`]) so the `chaos` CLI can drive a
//! running lab.
//!
//! The box office itself is not a dependency of this crate: the caller says how to start an
//! instance ([`AppCommand`]); the lab adds the addresses (`DATABASE_URL`, `REDIS_URL`,
//! `KAFKA_BROKERS`, `BOXOFFICE_PAYMENTS_URL`, `BOXOFFICE_LISTEN`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chaos::schedule::{FaultAction, FaultFuture, FaultTarget, ProxyTarget, ScheduleError};
use chaos::{Proxy, ProxyConfig, ProxyServer, ProxyUpdate, Registry};
use tempfile::TempDir;

use crate::balancer::Balancer;
use crate::kafka::{KafkaStorage, LocalKafka};
use crate::net::free_port;
use crate::postgres::LocalPostgres;
use crate::process;
use crate::process::tail;
use crate::prometheus::{LocalPrometheus, PrometheusOptions, ScrapeTarget};
use crate::redis::RedisFailover;
use chaos::process::{self as signal, Signal};

/// How long an instance may take to answer `/health/live` after it was started.
const APP_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the Sentinel watcher asks who the primary is.
const SENTINEL_POLL: Duration = Duration::from_millis(200);

/// How to start one box-office instance: a program, its arguments and environment. The lab
/// adds the addresses of the dependencies and the listen address.
#[derive(Debug, Clone)]
pub struct AppCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment (strategy, secrets, admin account…).
    pub env: Vec<(String, String)>,
}

/// What the lab starts.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Box-office instances behind the balancer (at least 1).
    pub instances: usize,
    /// How to start one.
    pub app: AppCommand,
    /// `host:port` of the payment provider the `payments` proxy fronts.
    pub payments_upstream: String,
    /// Start a streaming standby (synchronous) so the `postgres` target can fail over.
    pub postgres_standby: bool,
    /// Start Redis (primary, replica, Sentinel).
    pub redis: bool,
    /// Start a tansu broker.
    pub kafka: bool,
    /// Seed of the proxies' random draws.
    pub seed: u64,
    /// Start a Prometheus scraping the instances (job `boxoffice`), the proxies (`chaos`) and
    /// these extra targets, evaluating these rule files.
    pub prometheus: Option<LabPrometheus>,
}

/// The lab's Prometheus.
#[derive(Debug, Clone, Default)]
pub struct LabPrometheus {
    /// Rule files to load (the project's alerts/rules/*.yml).
    pub rule_files: Vec<PathBuf>,
    /// More targets, e.g. the load runner's metrics (job `scenario`).
    pub extra_targets: Vec<ScrapeTarget>,
}

/// A component as the lab describes it (for `stack.json` and the `chaos` CLI).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentInfo {
    /// Chaos target name.
    pub name: String,
    /// What it is.
    pub kind: String,
    /// Its process, while it runs.
    pub pid: Option<u32>,
    /// Where it listens itself.
    pub address: String,
    /// Its fault proxy's address, which is what clients use.
    pub proxy: Option<String>,
}

/// The running stack. Dropping it stops everything.
#[derive(Debug)]
pub struct LocalLab {
    dir: TempDir,
    api: ProxyServer,
    api_addr: SocketAddr,
    postgres: Arc<PgCluster>,
    redis: Option<Arc<RedisCluster>>,
    kafka: Option<Arc<KafkaNode>>,
    payments: Proxy,
    apps: Vec<Arc<AppInstance>>,
    balancer: Balancer,
    watcher: Option<tokio::task::JoinHandle<()>>,
    database: String,
    prometheus: Option<LocalPrometheus>,
}

impl LocalLab {
    /// Starts every component, creates the database, then the instances one after the other
    /// (the first runs the migrations), and waits until each answers.
    pub async fn start(options: LabOptions) -> anyhow::Result<LocalLab> {
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-lab-")
            .tempdir()
            .context("Failed to create the lab's temp dir")?;
        let registry = Arc::new(Registry::new(options.seed));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let (api, api_addr) = ProxyServer::serve(listener, Arc::clone(&registry))?;
        let proxy = |name: &str, upstream: String| {
            registry
                .create(ProxyConfig::new(name, "127.0.0.1:0", upstream))
                .with_context(|| format!("Failed to start the {name} proxy"))
        };

        // PostgreSQL, then the database, then the standby (so it has the database too).
        let primary = LocalPostgres::start().await?;
        let database = "boxoffice".to_owned();
        {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(&primary.url("postgres")).await?;
            sqlx::raw_sql(&format!(r#"CREATE DATABASE "{database}""#))
                .execute(&mut c)
                .await?;
            c.close().await.ok();
        }
        let standby = if options.postgres_standby {
            let standby = primary.start_standby().await?;
            primary.require_synchronous_standby().await?;
            Some(Arc::new(standby))
        } else {
            None
        };
        let pg_proxy = proxy("postgres", format!("127.0.0.1:{}", primary.port()))?;
        let postgres = Arc::new(PgCluster {
            primary: Mutex::new(Arc::new(primary)),
            standby: Mutex::new(standby),
            retired: Mutex::new(Vec::new()),
            proxy: pg_proxy,
        });

        let (redis, watcher) = if options.redis {
            let set = RedisFailover::start().await?;
            let p = proxy("redis", format!("127.0.0.1:{}", set.primary.port()))?;
            let cluster = Arc::new(RedisCluster { set, proxy: p });
            let watcher = tokio::spawn(watch_sentinel(Arc::clone(&cluster)));
            (Some(cluster), Some(watcher))
        } else {
            (None, None)
        };

        let kafka = if options.kafka {
            // The proxy first: the broker must advertise the proxy's address.
            let p = proxy("kafka", "127.0.0.1:9".to_owned())?;
            let advertised = p.listen_addr().context("kafka proxy has no address")?;
            let broker =
                LocalKafka::start_advertising(KafkaStorage::Memory, Some(advertised.to_string()))
                    .await?;
            p.update(ProxyUpdate {
                upstream: Some(broker.bootstrap()),
                ..ProxyUpdate::default()
            })
            .await?;
            Some(Arc::new(KafkaNode { broker, proxy: p }))
        } else {
            None
        };

        let payments = proxy("payments", options.payments_upstream.clone())?;

        let mut env = options.app.env.clone();
        let addr_of = |p: &Proxy| p.listen_addr().map(|a| a.to_string()).unwrap_or_default();
        env.push((
            "DATABASE_URL".into(),
            format!(
                "postgres://postgres@{}/{database}",
                addr_of(&postgres.proxy)
            ),
        ));
        if let Some(r) = &redis {
            env.push((
                "REDIS_URL".into(),
                format!("redis://{}/", addr_of(&r.proxy)),
            ));
        }
        if let Some(k) = &kafka {
            env.push(("KAFKA_BROKERS".into(), addr_of(&k.proxy)));
        }
        env.push((
            "BOXOFFICE_PAYMENTS_URL".into(),
            format!("http://{}", addr_of(&payments)),
        ));
        let mut apps = Vec::new();
        for i in 1..=options.instances.max(1) {
            let app = AppInstance::start(
                format!("app-{i}"),
                dir.path(),
                AppCommand {
                    env: env.clone(),
                    ..options.app.clone()
                },
            )
            .await?;
            apps.push(Arc::new(app));
        }
        let balancer = Balancer::start(apps.iter().map(|a| a.addr()).collect()).await?;
        let prometheus = match &options.prometheus {
            Some(p) => {
                let mut targets: Vec<ScrapeTarget> = apps
                    .iter()
                    .map(|a| {
                        ScrapeTarget::new("boxoffice", a.addr().to_string())
                            .label("instance", &a.name)
                    })
                    .collect();
                targets.push(ScrapeTarget::new("chaos", api_addr.to_string()));
                targets.extend(p.extra_targets.iter().cloned());
                let prom = LocalPrometheus::start(&PrometheusOptions {
                    targets,
                    rule_files: p.rule_files.clone(),
                    ..PrometheusOptions::default()
                })
                .await
                .context("Failed to start the lab's Prometheus")?;
                Some(prom)
            }
            None => None,
        };
        tracing::info!(
            instances = apps.len(),
            ms = began.elapsed().as_millis() as u64,
            url = %balancer.url(),
            "local lab started"
        );
        Ok(LocalLab {
            dir,
            api,
            api_addr,
            postgres,
            redis,
            kafka,
            payments,
            apps,
            balancer,
            watcher,
            database,
            prometheus,
        })
    }

    /// The lab's Prometheus, when it runs one.
    pub fn prometheus(&self) -> Option<&LocalPrometheus> {
        self.prometheus.as_ref()
    }

    /// The box office, through the balancer.
    pub fn url(&self) -> String {
        self.balancer.url()
    }

    /// Each instance's own base URL, in order (`app-1` first), for readiness probes.
    pub fn instance_urls(&self) -> Vec<(String, String)> {
        self.apps
            .iter()
            .map(|a| (a.name.clone(), format!("http://{}", a.addr())))
            .collect()
    }

    /// Toxiproxy-compatible API over the lab's proxies (`chaos --api URL list`).
    pub fn chaos_api(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// The balancer (to ask which instances it considers healthy).
    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// The database name the instances use.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The lab's temp dir (instance logs live here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every chaos target by name.
    pub fn targets(&self) -> HashMap<String, Arc<dyn FaultTarget>> {
        let mut t: HashMap<String, Arc<dyn FaultTarget>> = HashMap::new();
        t.insert("postgres".into(), Arc::clone(&self.postgres) as _);
        if let Some(r) = &self.redis {
            t.insert("redis".into(), Arc::clone(r) as _);
        }
        if let Some(k) = &self.kafka {
            t.insert("kafka".into(), Arc::clone(k) as _);
        }
        t.insert(
            "payments".into(),
            Arc::new(ProxyTarget::new(self.payments.clone())) as _,
        );
        for a in &self.apps {
            t.insert(a.name.clone(), Arc::clone(a) as _);
        }
        t
    }

    /// What runs where.
    pub fn components(&self) -> Vec<ComponentInfo> {
        let addr = |p: &Proxy| p.listen_addr().map(|a| a.to_string());
        let mut out = Vec::new();
        let primary = self.postgres.primary();
        out.push(ComponentInfo {
            name: "postgres".into(),
            kind: "postgresql primary".into(),
            pid: Some(primary.pid()),
            address: format!("127.0.0.1:{}", primary.port()),
            proxy: addr(&self.postgres.proxy),
        });
        if let Some(s) = self.postgres.standby() {
            out.push(ComponentInfo {
                name: "postgres-standby".into(),
                kind: "postgresql standby".into(),
                pid: Some(s.pid()),
                address: format!("127.0.0.1:{}", s.port()),
                proxy: None,
            });
        }
        if let Some(r) = &self.redis {
            for (name, node) in [("redis-a", &r.set.primary), ("redis-b", &r.set.replica)] {
                out.push(ComponentInfo {
                    name: name.into(),
                    kind: "redis".into(),
                    pid: node.pid(),
                    address: format!("127.0.0.1:{}", node.port()),
                    proxy: addr(&r.proxy),
                });
            }
        }
        if let Some(k) = &self.kafka {
            out.push(ComponentInfo {
                name: "kafka".into(),
                kind: "tansu".into(),
                pid: k.broker.pid(),
                address: k.broker.bootstrap(),
                proxy: addr(&k.proxy),
            });
        }
        out.push(ComponentInfo {
            name: "payments".into(),
            kind: "payment provider".into(),
            pid: None,
            address: self.payments.upstream(),
            proxy: addr(&self.payments),
        });
        for a in &self.apps {
            out.push(ComponentInfo {
                name: a.name.clone(),
                kind: "box office".into(),
                pid: a.pid(),
                address: a.addr().to_string(),
                proxy: None,
            });
        }
        out
    }

    /// Copies the instances' logs into `dest` (for a run's artifacts).
    pub fn keep_logs(&self, dest: &Path) -> Vec<PathBuf> {
        let mut kept = Vec::new();
        for a in &self.apps {
            let to = dest.join(format!("{}.log", a.name));
            if std::fs::copy(&a.log, &to).is_ok() {
                kept.push(to);
            }
        }
        kept
    }

    /// Stops the instances (SIGTERM, then SIGKILL), then everything else.
    pub async fn stop(mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        for a in &self.apps {
            a.terminate().await;
        }
    }
}

impl Drop for LocalLab {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let _ = &self.api;
    }
}

fn unsupported(target: &str, action: &FaultAction) -> ScheduleError {
    ScheduleError::Unsupported {
        target: target.to_owned(),
        action: action.to_string(),
    }
}

fn failed(target: &str, action: &FaultAction, e: impl std::fmt::Display) -> ScheduleError {
    ScheduleError::Failed {
        target: target.to_owned(),
        action: action.to_string(),
        reason: e.to_string(),
    }
}

fn is_network(action: &FaultAction) -> bool {
    matches!(
        action,
        FaultAction::Down | FaultAction::Partition | FaultAction::Toxic { .. }
    )
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: primary (+ standby) behind the `postgres` proxy.

#[derive(Debug)]
struct PgCluster {
    primary: Mutex<Arc<LocalPostgres>>,
    standby: Mutex<Option<Arc<LocalPostgres>>>,
    /// Old primaries after a failover, kept until the lab stops (their logs, their dirs).
    retired: Mutex<Vec<Arc<LocalPostgres>>>,
    proxy: Proxy,
}

impl PgCluster {
    fn primary(&self) -> Arc<LocalPostgres> {
        Arc::clone(&self.primary.lock().unwrap_or_else(PoisonError::into_inner))
    }
    fn standby(&self) -> Option<Arc<LocalPostgres>> {
        self.standby
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn failover(&self) -> anyhow::Result<()> {
        let standby = self
            .standby()
            .context("no standby to promote (start the lab with a PostgreSQL standby)")?;
        let old = self.primary();
        old.shutdown().await?;
        standby.promote().await?;
        self.proxy
            .update(ProxyUpdate {
                upstream: Some(format!("127.0.0.1:{}", standby.port())),
                ..ProxyUpdate::default()
            })
            .await?;
        *self.primary.lock().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&standby);
        *self.standby.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(old);
        tracing::info!(primary = standby.port(), "PostgreSQL failed over");
        Ok(())
    }

    /// After a failover: a new standby cloned from the new primary (the old primary's data is
    /// not rewound; it is retired, as an operator would rebuild it).
    async fn rebuild_standby(&self) -> anyhow::Result<()> {
        let primary = self.primary();
        let standby = primary.start_standby().await?;
        primary.require_synchronous_standby().await?;
        *self.standby.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(standby));
        Ok(())
    }
}

impl FaultTarget for PgCluster {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            if is_network(action) {
                return ProxyTarget::new(self.proxy.clone()).apply(action).await;
            }
            let primary = self.primary();
            let r = match action {
                FaultAction::Kill => primary.kill().await,
                FaultAction::Stop => primary.shutdown().await,
                FaultAction::Pause => primary.pause(),
                FaultAction::Failover => self.failover().await,
                _ => return Err(unsupported("postgres", action)),
            };
            r.map_err(|e| failed("postgres", action, format!("{e:#}")))
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            if is_network(action) {
                return ProxyTarget::new(self.proxy.clone()).revert(action).await;
            }
            let primary = self.primary();
            let r = match action {
                FaultAction::Kill | FaultAction::Stop => primary.start_again().await,
                FaultAction::Pause => primary.resume(),
                FaultAction::Failover => self.rebuild_standby().await,
                _ => return Err(unsupported("postgres", action)),
            };
            r.map_err(|e| failed("postgres", action, format!("{e:#}")))
        })
    }
}

// ---------------------------------------------------------------------------------------
// Redis: primary + replica + Sentinel behind the `redis` proxy, which follows Sentinel.

#[derive(Debug)]
struct RedisCluster {
    set: RedisFailover,
    proxy: Proxy,
}

impl RedisCluster {
    /// The node Sentinel names as primary (the first one if Sentinel cannot tell).
    fn current_primary(&self) -> &crate::redis::LocalRedis {
        match self.set.current_primary_port() {
            Ok(p) if p == self.set.replica.port() => &self.set.replica,
            _ => &self.set.primary,
        }
    }
}

/// Points the `redis` proxy at whatever Sentinel names as primary.
async fn watch_sentinel(cluster: Arc<RedisCluster>) {
    loop {
        tokio::time::sleep(SENTINEL_POLL).await;
        let c = Arc::clone(&cluster);
        let Ok(Ok(port)) = tokio::task::spawn_blocking(move || c.set.current_primary_port()).await
        else {
            continue;
        };
        let want = format!("127.0.0.1:{port}");
        if cluster.proxy.upstream() != want {
            tracing::info!(upstream = %want, "Sentinel named a new Redis primary; re-pointing the proxy");
            let _ = cluster
                .proxy
                .update(ProxyUpdate {
                    upstream: Some(want),
                    ..ProxyUpdate::default()
                })
                .await;
        }
    }
}

impl FaultTarget for RedisCluster {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            if is_network(action) {
                return ProxyTarget::new(self.proxy.clone()).apply(action).await;
            }
            let node = self.current_primary();
            let r = match action {
                // With Sentinel watching, a primary down for longer than its down-after
                // (1 s) is failed over either way.
                FaultAction::Kill | FaultAction::Failover | FaultAction::Stop => node.kill().await,
                FaultAction::Pause => node
                    .pid()
                    .context("redis is not running")
                    .and_then(|p| Ok(signal::send(p, Signal::SIGSTOP)?)),
                _ => return Err(unsupported("redis", action)),
            };
            r.map_err(|e| failed("redis", action, format!("{e:#}")))
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            if is_network(action) {
                return ProxyTarget::new(self.proxy.clone()).revert(action).await;
            }
            let r = match action {
                // The dead node comes back; Sentinel turns it into a replica of the new primary.
                FaultAction::Kill | FaultAction::Failover | FaultAction::Stop => {
                    let dead = [&self.set.primary, &self.set.replica]
                        .into_iter()
                        .find(|n| n.pid().is_none());
                    match dead {
                        Some(n) => n.restart().await,
                        None => Ok(()),
                    }
                }
                FaultAction::Pause => {
                    for n in [&self.set.primary, &self.set.replica] {
                        if let Some(p) = n.pid() {
                            let _ = signal::send(p, Signal::SIGCONT);
                        }
                    }
                    Ok(())
                }
                _ => return Err(unsupported("redis", action)),
            };
            r.map_err(|e| failed("redis", action, format!("{e:#}")))
        })
    }
}

// ---------------------------------------------------------------------------------------
// Kafka: one tansu broker behind the `kafka` proxy.

#[derive(Debug)]
struct KafkaNode {
    broker: LocalKafka,
    proxy: Proxy,
}

impl FaultTarget for KafkaNode {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            if is_network(action) {
                return ProxyTarget::new(self.proxy.clone()).apply(action).await;
            }
            let r = match action {
                FaultAction::Kill | FaultAction::Stop => self.broker.kill().await,
                FaultAction::Pause => self
                    .broker
                    .pid()
                    .context("kafka is not running")
                    .and_then(|p| Ok(signal::send(p, Signal::SIGSTOP)?)),
                _ => return Err(unsupported("kafka", action)),
            };
            r.map_err(|e| failed("kafka", action, format!("{e:#}")))
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            if is_network(action) {
                return ProxyTarget::new(self.proxy.clone()).revert(action).await;
            }
            let r = match action {
                FaultAction::Kill | FaultAction::Stop => self.broker.restart().await,
                FaultAction::Pause => self
                    .broker
                    .pid()
                    .context("kafka is not running")
                    .and_then(|p| Ok(signal::send(p, Signal::SIGCONT)?)),
                _ => return Err(unsupported("kafka", action)),
            };
            r.map_err(|e| failed("kafka", action, format!("{e:#}")))
        })
    }
}

// ---------------------------------------------------------------------------------------
// Box-office instances.

#[derive(Debug)]
struct AppInstance {
    name: String,
    port: u16,
    command: AppCommand,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

impl AppInstance {
    async fn start(name: String, dir: &Path, command: AppCommand) -> anyhow::Result<AppInstance> {
        let port = free_port()?;
        let app = AppInstance {
            log: dir.join(format!("{name}.log")),
            name,
            port,
            command,
            child: Mutex::new(None),
        };
        app.spawn().await?;
        Ok(app)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(Child::id)
    }

    async fn spawn(&self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.command.program);
        cmd.args(&self.command.args)
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .env("BOXOFFICE_LISTEN", self.addr().to_string())
            .env("BOXOFFICE_INSTANCE", &self.name)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = process::spawn_tied(cmd).await.with_context(|| {
            format!(
                "Failed to start {} ({})",
                self.name,
                self.command.program.display()
            )
        })?;
        let deadline = Instant::now() + APP_READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited with {status} before it was ready; log tail:\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
            }
            if crate::balancer::probe_live(self.addr()).await {
                break;
            }
            if Instant::now() > deadline {
                let _ = process::terminate_async(&mut child, Signal::SIGKILL, Duration::ZERO).await;
                bail!(
                    "{} did not answer /health/live within {APP_READY_TIMEOUT:?}; log tail:\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        *self.child.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        Ok(())
    }

    async fn signal_stop(&self, signal: Signal, grace: Duration) -> anyhow::Result<()> {
        Ok(process::stop_slot(&self.child, signal, grace).await?)
    }

    async fn terminate(&self) {
        let _ = self
            .signal_stop(Signal::SIGINT, Duration::from_secs(10))
            .await;
    }
}

impl FaultTarget for AppInstance {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let r = match action {
                FaultAction::Kill => self.signal_stop(Signal::SIGKILL, Duration::ZERO).await,
                FaultAction::Stop => {
                    self.signal_stop(Signal::SIGINT, Duration::from_secs(10))
                        .await
                }
                FaultAction::Pause => self
                    .pid()
                    .context("the instance is not running")
                    .and_then(|p| Ok(signal::send(p, Signal::SIGSTOP)?)),
                _ => return Err(unsupported(&self.name, action)),
            };
            r.map_err(|e| failed(&self.name, action, format!("{e:#}")))
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let r = match action {
                FaultAction::Kill | FaultAction::Stop => self.spawn().await,
                FaultAction::Pause => self
                    .pid()
                    .context("the instance is not running")
                    .and_then(|p| Ok(signal::send(p, Signal::SIGCONT)?)),
                _ => return Err(unsupported(&self.name, action)),
            };
            r.map_err(|e| failed(&self.name, action, format!("{e:#}")))
        })
    }
}

impl Drop for AppInstance {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = signal::send(child.id(), Signal::SIGCONT);
            let _ = process::terminate_blocking(&mut child, Signal::SIGINT, Duration::from_secs(5));
        }
    }
}
