//! Stacks: where the box office under load runs. `embedded` builds it in-process on a fresh
//! SQLite file; `local` is compose's [`compose::LocalLab`]: PostgreSQL (+ standby), Redis
//! (+ replica, Sentinel) and tansu as child processes, each behind a fault proxy, the payment
//! provider in this process behind a proxy, and N box-office instances — child processes of
//! this same binary (`scenario serve-app`) — behind a balancer; `url` is an already deployed
//! box office. Everything a stack starts lives in a temp dir and stops when the [`Stack`] is
//! dropped or [`Stack::stop`]ped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use chaos::schedule::FaultTarget;

use boxoffice::Strategy;

use crate::error::{Error, Result};

/// Which stack to use, as `--stack` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackSpec {
    /// In-process box office on SQLite.
    Embedded,
    /// The full local stack: child processes behind fault proxies, N instances.
    Local,
    /// The same topology in containers (testcontainers; needs a Docker daemon).
    Docker,
    /// An already running box office at this base URL.
    Url(String),
}

impl StackSpec {
    /// The name in reports: `embedded`, `local` or `url`.
    pub fn name(&self) -> &'static str {
        match self {
            StackSpec::Embedded => "embedded",
            StackSpec::Local => "local",
            StackSpec::Docker => "docker",
            StackSpec::Url(_) => "url",
        }
    }
}

impl FromStr for StackSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" => Ok(StackSpec::Embedded),
            "local" => Ok(StackSpec::Local),
            "docker" => Ok(StackSpec::Docker),
            _ => match s.strip_prefix("url=").or_else(|| s.strip_prefix("url:")) {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    Ok(StackSpec::Url(url.trim_end_matches('/').to_owned()))
                }
                _ => Err(format!(
                    "unknown stack {s:?}: use embedded, local, docker or url=http://HOST:PORT"
                )),
            },
        }
    }
}

/// The admin account a run uses to seed and audit.
#[derive(Debug, Clone)]
pub struct AdminCredentials {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// How to build an in-process stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Concurrency strategy of the box office (ignored by `url`: it runs what it runs).
    pub strategy: Strategy,
    /// Admin account for in-process stacks, or the deployed stack's admin for `url`.
    pub admin: AdminCredentials,
    /// Database pool size of in-process stacks.
    pub db_max_connections: Option<u32>,
    /// Hold TTL of in-process stacks, seconds.
    pub hold_ttl_secs: Option<u64>,
    /// Share of payments the in-process provider declines.
    pub payments_decline_rate: f64,
    /// Latency the in-process payment provider adds to every charge, ms (an injected
    /// slowdown of `pay`).
    pub payments_latency_ms: u64,
    /// `local`: box-office instances behind the balancer.
    pub instances: usize,
    /// `local`: the executable that serves an instance with `serve-app` (this `scenario`
    /// binary); `None` = `$BOXOFFICE_LAB_APP`, else the running executable if it is `scenario`.
    pub app_bin: Option<PathBuf>,
    /// `local`: start a synchronous PostgreSQL standby (needed by `postgres:failover`).
    pub postgres_standby: bool,
    /// Seed of the fault proxies' random draws.
    pub seed: u64,
    /// `local`: run a Prometheus with these rules and extra targets.
    pub prometheus: Option<compose::LabPrometheus>,
    /// `url`: the deployed stack's Toxiproxy API, whose proxies become chaos targets.
    pub chaos_api: Option<String>,
    /// `local`: through fault proxies, or straight to each server.
    pub wiring: compose::Wiring,
    /// The catalog cache on or off (`None`: the box office's default, on).
    pub cache: Option<boxoffice::config::CacheMode>,
    /// `local`: extra environment of every instance.
    pub app_env: Vec<(String, String)>,
    /// `local`: `app-N:pause` and `redis:failover` wait for a lock holder (see
    /// [`crate::lock_drill`]).
    pub while_locked: bool,
}

/// Environment variable naming the executable that serves a box-office instance.
pub const APP_BIN_ENV: &str = "BOXOFFICE_LAB_APP";

/// The hidden subcommand of `scenario` that serves one box-office instance (configured
/// through the box office's own environment variables).
pub const SERVE_APP: &str = "serve-app";

fn app_bin(options: &StackOptions) -> Result<PathBuf> {
    if let Some(p) = &options.app_bin {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os(APP_BIN_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("finding this executable", e))?;
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "scenario" || name.starts_with("scenario.") {
        Ok(exe)
    } else {
        Err(Error::Stack(format!(
            "the local stack runs its box-office instances with `scenario {SERVE_APP}`, but this \
             executable is {name:?}: pass --app-bin PATH/TO/scenario or set {APP_BIN_ENV}"
        )))
    }
}

/// Serves one box-office instance until SIGINT or SIGTERM, configured from the environment
/// like the `boxoffice` binary (`scenario serve-app`, run by the local stack).
pub async fn serve_app() -> anyhow::Result<()> {
    use clap::Parser as _;
    let config = boxoffice::Config::parse_from(["boxoffice"]);
    boxoffice::telemetry::init(config.log_format);
    let app = boxoffice::Application::build(config).await?;
    tracing::info!(address = %app.address(), "box-office instance started");
    app.run_until_stopped(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    })
    .await?;
    // Sends the spans still queued when tracing is on.
    boxoffice::telemetry::shutdown();
    Ok(())
}

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    /// Which one.
    pub spec: StackSpec,
    /// Base URL of the box office.
    pub base_url: String,
    /// The strategy in force, when the lab chose it.
    pub strategy: Option<Strategy>,
    /// Admin account.
    pub admin: AdminCredentials,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    lab: Option<compose::LocalLab>,
    docker: Option<compose::docker::DockerStack>,
    /// `url` with a Toxiproxy API: its proxies by name.
    remote_targets: HashMap<String, Arc<dyn FaultTarget>>,
    /// The payment provider the local stack's `payments` proxy fronts.
    provider: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    /// `--while-locked`: pauses and failovers wait for a lock holder.
    while_locked: bool,
}

impl Stack {
    /// Provisions the stack and waits until it is ready.
    pub async fn start(spec: &StackSpec, options: &StackOptions) -> Result<Stack> {
        let stack = match spec {
            StackSpec::Url(url) => {
                let remote_targets = match &options.chaos_api {
                    Some(api) => {
                        let client = chaos::ToxiproxyClient::new(api.trim_end_matches('/'));
                        chaos::schedule::ApiProxyTarget::all(&client)
                            .await
                            .map_err(|e| {
                                Error::Stack(format!("reading the proxies of {api}: {e}"))
                            })?
                    }
                    None => HashMap::new(),
                };
                Stack {
                    spec: spec.clone(),
                    base_url: url.clone(),
                    strategy: None,
                    admin: options.admin.clone(),
                    shutdown: None,
                    server: None,
                    _dir: None,
                    lab: None,
                    docker: None,
                    remote_targets,
                    provider: None,
                    while_locked: false,
                }
            }
            StackSpec::Docker => Self::docker(spec, options).await?,
            StackSpec::Embedded => {
                let dir = tempfile::Builder::new()
                    .prefix("boxoffice-lab-")
                    .tempdir()
                    .map_err(|e| Error::io("creating the embedded stack's temp dir", e))?;
                let url = format!("sqlite://{}/boxoffice.db", dir.path().display());
                Self::in_process(spec, options, url, Some(dir)).await?
            }
            StackSpec::Local => Self::local(spec, options).await?,
        };
        crate::api::Api::new(&stack.base_url)?
            .wait_ready(std::time::Duration::from_secs(30))
            .await?;
        Ok(stack)
    }

    async fn in_process(
        spec: &StackSpec,
        options: &StackOptions,
        database_url: String,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Stack> {
        let mut cfg = boxoffice::Config::for_tests(database_url);
        cfg.strategy = options.strategy;
        cfg.reaper_interval_ms = 1000;
        cfg.admin_email = Some(options.admin.email.clone());
        cfg.admin_password = Some(options.admin.password.clone());
        cfg.payments_decline_rate = options.payments_decline_rate;
        cfg.payments_latency_ms = options.payments_latency_ms;
        if let Some(n) = options.db_max_connections {
            cfg.db_max_connections = n;
        }
        if let Some(ttl) = options.hold_ttl_secs {
            cfg.hold_ttl_secs = ttl;
        }
        if let Some(mode) = options.cache {
            cfg.cache = mode;
        }
        let app = boxoffice::Application::build(cfg)
            .await
            .map_err(|e| Error::Stack(format!("building the box office: {e:#}")))?;
        let base_url = format!("http://{}", app.address());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Ok(Stack {
            spec: spec.clone(),
            base_url,
            strategy: Some(options.strategy),
            admin: options.admin.clone(),
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
            lab: None,
            docker: None,
            remote_targets: HashMap::new(),
            provider: None,
            while_locked: false,
        })
    }

    async fn docker(spec: &StackSpec, options: &StackOptions) -> Result<Stack> {
        compose::docker::docker_available()
            .await
            .map_err(|e| Error::Stack(e.to_string()))?;
        let defaults = compose::docker::DockerOptions::default();
        let stack = compose::docker::DockerStack::start(compose::docker::DockerOptions {
            instances: options.instances.max(1),
            app_env: vec![(
                "BOXOFFICE_STRATEGY".into(),
                options.strategy.as_str().into(),
            )],
            admin_email: options.admin.email.clone(),
            admin_password: options.admin.password.clone(),
            ..defaults
        })
        .await
        .map_err(|e| Error::Stack(format!("starting the docker stack: {e:#}")))?;
        Ok(Stack {
            spec: spec.clone(),
            base_url: stack.url().to_owned(),
            strategy: Some(options.strategy),
            admin: options.admin.clone(),
            shutdown: None,
            server: None,
            _dir: None,
            lab: None,
            docker: Some(stack),
            remote_targets: HashMap::new(),
            provider: None,
            while_locked: false,
        })
    }

    async fn local(spec: &StackSpec, options: &StackOptions) -> Result<Stack> {
        let program = app_bin(options)?;
        // The payment provider runs here, behind the lab's `payments` proxy.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::io("binding the payment provider", e))?;
        let provider_addr = listener
            .local_addr()
            .map_err(|e| Error::io("binding the payment provider", e))?;
        let state = boxoffice::payments::ProviderState::new(boxoffice::payments::ProviderConfig {
            latency_ms: options.payments_latency_ms,
            jitter_ms: 0,
            decline_rate: options.payments_decline_rate,
            seed: options.seed,
        });
        let (ptx, prx) = tokio::sync::oneshot::channel::<()>();
        let provider = tokio::spawn(boxoffice::payments::provider::serve(
            listener,
            state,
            async move {
                let _ = prx.await;
            },
        ));
        let secret: String = {
            use rand::Rng as _;
            let mut rng = rand::thread_rng();
            (0..48)
                .map(|_| char::from(rng.sample(rand::distributions::Alphanumeric)))
                .collect()
        };
        let mut env: Vec<(String, String)> = vec![
            (
                "BOXOFFICE_STRATEGY".into(),
                options.strategy.as_str().into(),
            ),
            ("BOXOFFICE_JWT_SECRET".into(), secret),
            ("BOXOFFICE_ADMIN_EMAIL".into(), options.admin.email.clone()),
            (
                "BOXOFFICE_ADMIN_PASSWORD".into(),
                options.admin.password.clone(),
            ),
            // Load labs spend the CPU on bookings, not on password hashing.
            ("BOXOFFICE_ARGON2_MEMORY_KIB".into(), "64".into()),
            ("BOXOFFICE_ARGON2_ITERATIONS".into(), "1".into()),
            ("BOXOFFICE_REAPER_INTERVAL_MS".into(), "1000".into()),
            ("BOXOFFICE_LOG_FORMAT".into(), "json".into()),
            ("BOXOFFICE_PAYMENTS_TIMEOUT_MS".into(), "2000".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        if let Some(n) = options.db_max_connections {
            env.push(("BOXOFFICE_DB_MAX_CONNECTIONS".into(), n.to_string()));
        }
        if let Some(ttl) = options.hold_ttl_secs {
            env.push(("BOXOFFICE_HOLD_TTL_SECS".into(), ttl.to_string()));
        }
        if let Some(mode) = options.cache {
            let mode = match mode {
                boxoffice::config::CacheMode::On => "on",
                boxoffice::config::CacheMode::Off => "off",
            };
            env.push(("BOXOFFICE_CACHE".into(), mode.into()));
        }
        env.extend(options.app_env.iter().cloned());
        let lab = compose::LocalLab::start(compose::LabOptions {
            instances: options.instances.max(1),
            app: compose::AppCommand {
                program,
                args: vec![SERVE_APP.to_owned()],
                env,
            },
            payments_upstream: provider_addr.to_string(),
            postgres_standby: options.postgres_standby,
            redis: true,
            kafka: true,
            seed: options.seed,
            wiring: options.wiring,
            prometheus: options.prometheus.clone(),
        })
        .await
        .map_err(|e| Error::Stack(format!("starting the local stack: {e:#}")))?;
        Ok(Stack {
            spec: spec.clone(),
            base_url: lab.url(),
            strategy: Some(options.strategy),
            admin: options.admin.clone(),
            shutdown: None,
            server: None,
            _dir: None,
            lab: Some(lab),
            docker: None,
            remote_targets: HashMap::new(),
            provider: Some((ptx, provider)),
            while_locked: options.while_locked,
        })
    }

    /// The stack's chaos targets by name (`postgres`, `redis`, `kafka`, `payments`,
    /// `app-1`…); empty for stacks the lab does not control.
    pub fn targets(&self) -> HashMap<String, Arc<dyn FaultTarget>> {
        if let Some(lab) = &self.lab {
            let mut targets = lab.targets();
            if self.while_locked {
                crate::lock_drill::wrap(&mut targets, lab, self.strategy);
            }
            return targets;
        }
        if let Some(d) = &self.docker {
            return d.targets();
        }
        self.remote_targets.clone()
    }

    /// Each box-office instance's own base URL (for readiness probes): the instances of
    /// the local stack, else the one base URL.
    pub fn instance_urls(&self) -> Vec<(String, String)> {
        if let Some(lab) = &self.lab {
            return lab.instance_urls();
        }
        if let Some(d) = &self.docker {
            return d.instance_urls();
        }
        vec![("app".to_owned(), self.base_url.clone())]
    }

    /// The local stack, when this is one.
    pub fn lab(&self) -> Option<&compose::LocalLab> {
        self.lab.as_ref()
    }

    /// Stops what the stack started (nothing for `url`).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        }
        if let Some(lab) = self.lab.take() {
            lab.stop().await;
        }
        if let Some(d) = self.docker.take() {
            d.stop().await;
        }
        if let Some((tx, task)) = self.provider.take() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_parse_from_their_command_line_names() {
        assert_eq!("embedded".parse(), Ok(StackSpec::Embedded));
        assert_eq!("local".parse(), Ok(StackSpec::Local));
        assert_eq!(
            "url=http://h:1/".parse(),
            Ok(StackSpec::Url("http://h:1".into()))
        );
        assert!("url=ftp://x".parse::<StackSpec>().is_err());
        assert_eq!("docker".parse(), Ok(StackSpec::Docker));
        assert!("kubernetes".parse::<StackSpec>().is_err());
    }
}
