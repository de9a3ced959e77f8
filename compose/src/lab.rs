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
//! A lab wired [`Wiring::Direct`] starts no proxy: the instances dial each server's own
//! address. That is for runs that fault nothing (a capacity ramp), where a relay process on
//! every round trip would be measured as the box office's cost; the process faults of the
//! instances still work, a network fault or a failover is refused.
//!
//! The box office itself is not a dependency of this crate: the caller says how to start an
//! instance ([`AppCommand`]); the lab adds the addresses (`DATABASE_URL`, `REDIS_URL`,
//! `KAFKA_BROKERS`, `BOXOFFICE_PAYMENTS_URL`, `BOXOFFICE_LISTEN`).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chaos::process::Signal;
use chaos::schedule::{FaultAction, FaultFuture, FaultTarget, ProxyTarget, ScheduleError};
use chaos::{Proxy, ProxyConfig, ProxyServer, ProxyUpdate, Registry};
use tempfile::TempDir;

use crate::balancer::Balancer;
use crate::homes;
use crate::kafka::{KafkaStorage, LocalKafka};
use crate::postgres::LocalPostgres;
use crate::process::{Home, Server, Supervisor};
use crate::prometheus::{LocalPrometheus, PrometheusOptions, ScrapeTarget};
use crate::redis::{LocalRedis, RedisFailover};

/// How long an instance may take to answer `/health/live` after it was started.
const APP_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the Sentinel watcher asks who the primary is.
const SENTINEL_POLL: Duration = Duration::from_millis(200);
/// How long an instance may take to stop gracefully before it is killed.
const APP_STOP_GRACE: Duration = Duration::from_secs(10);

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
    /// Whether the instances reach their dependencies through fault proxies.
    pub wiring: Wiring,
    /// Start a Prometheus scraping the instances (job `boxoffice`), the proxies (`chaos`) and
    /// these extra targets, evaluating these rule files.
    pub prometheus: Option<LabPrometheus>,
}

/// How the instances reach PostgreSQL, Redis, the broker and the payment provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wiring {
    /// Each through its fault proxy, so network faults (`down`, `partition`, toxics) and
    /// failovers (the proxy is re-pointed at the new primary) can be injected at any time,
    /// also by hand through [`LocalLab::chaos_api`].
    #[default]
    Proxied,
    /// Straight to each server, with no proxy started: one hop and one relay process fewer on
    /// every round trip, for runs that inject no fault (the proxies in the way cost a fifth of
    /// a core on a 2-core machine at ~600 requests/s). Process faults still work on the
    /// instances; a network fault or a failover is refused.
    Direct,
}

impl Wiring {
    /// `proxied` or `direct`.
    pub fn as_str(self) -> &'static str {
        match self {
            Wiring::Proxied => "proxied",
            Wiring::Direct => "direct",
        }
    }
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
    /// Its fault proxy's address, which is what clients use; `None` when the clients reach
    /// it directly (it has no proxy, or the lab is wired [`Wiring::Direct`]).
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
    /// The payment provider's proxy (`None` when wired direct), and its own address.
    payments: Option<Proxy>,
    payments_upstream: String,
    wiring: Wiring,
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
        // The instances' logs: diagnostics, kept on a disk (the temp dir), not in RAM.
        let mut dir = homes::make_in(&std::env::temp_dir(), "boxoffice-lab-")
            .context("Failed to create the lab's temp dir")?;
        if std::env::var_os("BOXOFFICE_KEEP_STACK").is_some_and(|v| v == "1") {
            // The instances' logs live here: kept with the servers' dirs for a post-mortem.
            dir.disable_cleanup(true);
            homes::mark_kept(dir.path()).context("Failed to mark the lab's dir as kept")?;
            eprintln!(
                "compose: BOXOFFICE_KEEP_STACK=1, kept the instances' dir {}",
                dir.path().display()
            );
        }
        let registry = Arc::new(Registry::new(options.seed));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let (api, api_addr) = ProxyServer::serve(listener, Arc::clone(&registry))?;
        let direct = options.wiring == Wiring::Direct;
        // No proxy at all when wired direct: its API then lists none, so a fault injected by
        // hand fails loudly instead of acting on a proxy nobody uses.
        let proxy = |name: &str, upstream: String| -> anyhow::Result<Option<Proxy>> {
            if direct {
                return Ok(None);
            }
            registry
                .create(ProxyConfig::new(name, "127.0.0.1:0", upstream))
                .map(Some)
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
            // Direct clients stay on the first primary: nothing to re-point.
            let watcher = (!direct).then(|| tokio::spawn(watch_sentinel(Arc::clone(&cluster))));
            (Some(cluster), watcher)
        } else {
            (None, None)
        };

        let kafka = if options.kafka {
            // The proxy first: the broker must advertise the proxy's address.
            let p = proxy("kafka", "127.0.0.1:9".to_owned())?;
            let advertised = match &p {
                Some(p) => Some(
                    p.listen_addr()
                        .context("kafka proxy has no address")?
                        .to_string(),
                ),
                None => None,
            };
            let broker = LocalKafka::start_advertising(KafkaStorage::Memory, advertised).await?;
            if let Some(p) = &p {
                p.update(ProxyUpdate {
                    upstream: Some(broker.bootstrap()),
                    ..ProxyUpdate::default()
                })
                .await?;
            }
            Some(Arc::new(KafkaNode { broker, proxy: p }))
        } else {
            None
        };

        let payments = proxy("payments", options.payments_upstream.clone())?;

        let mut env = options.app.env.clone();
        // What clients dial: the proxy's address, else the server's own.
        let dial = |p: &Option<Proxy>, own: String| match p {
            Some(p) => p.listen_addr().map(|a| a.to_string()).unwrap_or_default(),
            None => own,
        };
        let pg_own = format!("127.0.0.1:{}", postgres.primary().port());
        env.push((
            "DATABASE_URL".into(),
            format!(
                "postgres://postgres@{}/{database}",
                dial(&postgres.proxy, pg_own)
            ),
        ));
        if let Some(r) = &redis {
            let own = format!("127.0.0.1:{}", r.set.primary.port());
            env.push((
                "REDIS_URL".into(),
                format!("redis://{}/", dial(&r.proxy, own)),
            ));
        }
        if let Some(k) = &kafka {
            env.push(("KAFKA_BROKERS".into(), dial(&k.proxy, k.broker.bootstrap())));
        }
        env.push((
            "BOXOFFICE_PAYMENTS_URL".into(),
            format!(
                "http://{}",
                dial(&payments, options.payments_upstream.clone())
            ),
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
                            .label("instance", a.name())
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
            wiring = options.wiring.as_str(),
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
            payments_upstream: options.payments_upstream.clone(),
            wiring: options.wiring,
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
            .map(|a| (a.name().to_owned(), format!("http://{}", a.addr())))
            .collect()
    }

    /// How the instances reach their dependencies.
    pub fn wiring(&self) -> Wiring {
        self.wiring
    }

    /// Toxiproxy-compatible API over the lab's proxies (`chaos --api URL list`); it lists
    /// none when the lab is wired [`Wiring::Direct`].
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
        let pg = &self.postgres;
        t.insert(
            "postgres".into(),
            Target::shared("postgres", pg.proxy.as_ref(), pg),
        );
        if let Some(r) = &self.redis {
            t.insert("redis".into(), Target::shared("redis", r.proxy.as_ref(), r));
        }
        if let Some(k) = &self.kafka {
            t.insert("kafka".into(), Target::shared("kafka", k.proxy.as_ref(), k));
        }
        // The payment provider has no process of the lab's: without its proxy, no fault.
        if let Some(p) = &self.payments {
            t.insert(
                "payments".into(),
                Arc::new(ProxyTarget::new(p.clone())) as _,
            );
        }
        for a in &self.apps {
            t.insert(a.name().to_owned(), Target::shared(a.name(), None, a));
        }
        t
    }

    /// What runs where.
    pub fn components(&self) -> Vec<ComponentInfo> {
        let addr = |p: &Option<Proxy>| {
            p.as_ref()
                .and_then(Proxy::listen_addr)
                .map(|a| a.to_string())
        };
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
            address: self.payments_upstream.clone(),
            proxy: addr(&self.payments),
        });
        for a in &self.apps {
            out.push(ComponentInfo {
                name: a.name().to_owned(),
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
            let to = dest.join(format!("{}.log", a.name()));
            if std::fs::copy(a.log(), &to).is_ok() {
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
            let _ = a.terminate().await;
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

// ---------------------------------------------------------------------------------------
// Chaos targets: every component is one `Target`, its process faults behind its proxy.

/// The process faults of one component of the lab: what `kill`, `stop`, `pause` and
/// `failover` do to it, and how each is undone. Network faults are its proxy's business.
trait ProcessFaults: Send + Sync + 'static {
    /// Starts the fault; `None` when the component has no such fault.
    fn apply(
        &self,
        action: &FaultAction,
    ) -> impl Future<Output = Option<anyhow::Result<()>>> + Send;
    /// Ends it; `None` when the component has no such fault.
    fn revert(
        &self,
        action: &FaultAction,
    ) -> impl Future<Output = Option<anyhow::Result<()>>> + Send;
}

/// A named chaos target: a component, behind a fault proxy when it has one. Network actions
/// (`down`, `partition`, toxics) go to the proxy, the others to the component.
struct Target<C> {
    name: String,
    proxy: Option<ProxyTarget>,
    component: Arc<C>,
}

impl<C: ProcessFaults> Target<C> {
    /// `component` as target `name`, its network faults on `proxy`.
    fn shared(name: &str, proxy: Option<&Proxy>, component: &Arc<C>) -> Arc<dyn FaultTarget> {
        Arc::new(Target {
            name: name.to_owned(),
            proxy: proxy.map(|p| ProxyTarget::new(p.clone())),
            component: Arc::clone(component),
        })
    }

    async fn fault(&self, action: &FaultAction, phase: Phase) -> Result<(), ScheduleError> {
        if let Some(proxy) = self.proxy.as_ref().filter(|_| is_network(action)) {
            return match phase {
                Phase::Apply => proxy.apply(action).await,
                Phase::Revert => proxy.revert(action).await,
            };
        }
        let outcome = match phase {
            Phase::Apply => self.component.apply(action).await,
            Phase::Revert => self.component.revert(action).await,
        };
        match outcome {
            Some(done) => done.map_err(|e| ScheduleError::Failed {
                target: self.name.clone(),
                action: action.to_string(),
                reason: format!("{e:#}"),
            }),
            None => Err(ScheduleError::Unsupported {
                target: self.name.clone(),
                action: action.to_string(),
            }),
        }
    }
}

impl<C: ProcessFaults> FaultTarget for Target<C> {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(self.fault(action, Phase::Apply))
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(self.fault(action, Phase::Revert))
    }
}

/// Whether a fault starts or ends.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Apply,
    Revert,
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
    /// `None` when wired direct.
    proxy: Option<Proxy>,
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
        // The clients follow a failover through the proxy; direct ones would stay on the old
        // primary's address.
        let proxy = self
            .proxy
            .as_ref()
            .context("the lab is wired direct: a failover needs the postgres proxy")?;
        let standby = self
            .standby()
            .context("no standby to promote (start the lab with a PostgreSQL standby)")?;
        let old = self.primary();
        old.shutdown().await?;
        standby.promote().await?;
        proxy
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

impl ProcessFaults for PgCluster {
    async fn apply(&self, action: &FaultAction) -> Option<anyhow::Result<()>> {
        let primary = self.primary();
        Some(match action {
            FaultAction::Kill => primary.kill().await,
            FaultAction::Stop => primary.shutdown().await,
            FaultAction::Pause => primary.pause(),
            FaultAction::Failover => self.failover().await,
            _ => return None,
        })
    }

    async fn revert(&self, action: &FaultAction) -> Option<anyhow::Result<()>> {
        let primary = self.primary();
        Some(match action {
            FaultAction::Kill | FaultAction::Stop => primary.start_again().await,
            FaultAction::Pause => primary.resume(),
            FaultAction::Failover => self.rebuild_standby().await,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Redis: primary + replica + Sentinel behind the `redis` proxy, which follows Sentinel.

#[derive(Debug)]
struct RedisCluster {
    set: RedisFailover,
    /// `None` when wired direct.
    proxy: Option<Proxy>,
}

impl RedisCluster {
    /// The node Sentinel names as primary (the first one if Sentinel cannot tell).
    fn current_primary(&self) -> &LocalRedis {
        match self.set.current_primary_port() {
            Ok(p) if p == self.set.replica.port() => &self.set.replica,
            _ => &self.set.primary,
        }
    }

    fn nodes(&self) -> [&LocalRedis; 2] {
        [&self.set.primary, &self.set.replica]
    }
}

/// Points the `redis` proxy at whatever Sentinel names as primary.
async fn watch_sentinel(cluster: Arc<RedisCluster>) {
    let Some(proxy) = cluster.proxy.clone() else {
        return;
    };
    loop {
        tokio::time::sleep(SENTINEL_POLL).await;
        let c = Arc::clone(&cluster);
        let Ok(Ok(port)) = tokio::task::spawn_blocking(move || c.set.current_primary_port()).await
        else {
            continue;
        };
        let want = format!("127.0.0.1:{port}");
        if proxy.upstream() != want {
            tracing::info!(upstream = %want, "Sentinel named a new Redis primary; re-pointing the proxy");
            let _ = proxy
                .update(ProxyUpdate {
                    upstream: Some(want),
                    ..ProxyUpdate::default()
                })
                .await;
        }
    }
}

impl ProcessFaults for RedisCluster {
    async fn apply(&self, action: &FaultAction) -> Option<anyhow::Result<()>> {
        let node = self.current_primary();
        Some(match action {
            // With Sentinel watching, a primary down for longer than its down-after
            // (1 s) is failed over either way.
            FaultAction::Kill | FaultAction::Failover | FaultAction::Stop => node.kill().await,
            FaultAction::Pause => node.pause(),
            _ => return None,
        })
    }

    async fn revert(&self, action: &FaultAction) -> Option<anyhow::Result<()>> {
        Some(match action {
            // The dead node comes back; Sentinel turns it into a replica of the new primary.
            FaultAction::Kill | FaultAction::Failover | FaultAction::Stop => {
                match self.nodes().into_iter().find(|n| n.pid().is_none()) {
                    Some(dead) => dead.restart().await,
                    None => Ok(()),
                }
            }
            FaultAction::Pause => {
                for node in self.nodes() {
                    let _ = node.resume();
                }
                Ok(())
            }
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Kafka: one tansu broker behind the `kafka` proxy.

#[derive(Debug)]
struct KafkaNode {
    broker: LocalKafka,
    /// `None` when wired direct.
    proxy: Option<Proxy>,
}

impl ProcessFaults for KafkaNode {
    async fn apply(&self, action: &FaultAction) -> Option<anyhow::Result<()>> {
        Some(match action {
            FaultAction::Kill | FaultAction::Stop => self.broker.kill().await,
            FaultAction::Pause => self.broker.pause(),
            _ => return None,
        })
    }

    async fn revert(&self, action: &FaultAction) -> Option<anyhow::Result<()>> {
        Some(match action {
            FaultAction::Kill | FaultAction::Stop => self.broker.restart().await,
            FaultAction::Pause => self.broker.resume(),
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Box-office instances.

/// One box-office instance, logging to `<name>.log` in the lab's dir; restarted on its port.
#[derive(Debug)]
struct AppInstance {
    server: Supervisor<App>,
}

/// How an instance is run: the caller's command, plus where to listen and its name.
#[derive(Debug)]
struct App {
    name: String,
    command: AppCommand,
}

impl Server for App {
    const READY_TIMEOUT: Duration = APP_READY_TIMEOUT;

    fn name(&self) -> &str {
        &self.name
    }

    fn command(&self, _home: &Path, port: u16) -> anyhow::Result<Command> {
        let mut cmd = Command::new(&self.command.program);
        cmd.args(&self.command.args)
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .env("BOXOFFICE_LISTEN", format!("127.0.0.1:{port}"))
            .env("BOXOFFICE_INSTANCE", &self.name);
        Ok(cmd)
    }

    async fn probe(&self, port: u16) -> Result<(), String> {
        match crate::balancer::probe_live(SocketAddr::from(([127, 0, 0, 1], port))).await {
            true => Ok(()),
            false => Err("no 200 from GET /health/live".to_owned()),
        }
    }
}

impl AppInstance {
    async fn start(name: String, dir: &Path, command: AppCommand) -> anyhow::Result<AppInstance> {
        let log = format!("{name}.log");
        let server = Supervisor::start(App { name, command }, Home::shared(dir), &log).await?;
        Ok(AppInstance { server })
    }

    fn name(&self) -> &str {
        &self.server.server().name
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.server.port()))
    }

    fn log(&self) -> &Path {
        self.server.log_path()
    }

    fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// A graceful stop: SIGINT, SIGKILL after 10 s.
    async fn terminate(&self) -> anyhow::Result<()> {
        self.server.stop(Signal::SIGINT, APP_STOP_GRACE).await?;
        Ok(())
    }
}

impl ProcessFaults for AppInstance {
    async fn apply(&self, action: &FaultAction) -> Option<anyhow::Result<()>> {
        Some(match action {
            FaultAction::Kill => self.server.kill().await,
            FaultAction::Stop => self.terminate().await,
            FaultAction::Pause => self.server.signal(Signal::SIGSTOP),
            _ => return None,
        })
    }

    async fn revert(&self, action: &FaultAction) -> Option<anyhow::Result<()>> {
        Some(match action {
            FaultAction::Kill | FaultAction::Stop => self.server.start_again().await,
            FaultAction::Pause => self.server.signal(Signal::SIGCONT),
            _ => return None,
        })
    }
}
