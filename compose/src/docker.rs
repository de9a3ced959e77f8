//! The `docker` stack: the same topology as the `local` stack ([`crate::lab`]), in containers
//! started through [testcontainers](https://docs.rs/testcontainers), for users with Docker.
//!
//! ```text
//!                      ┌─► app-1 ─┐           ┌─► postgres (postgres image)
//! host ─► nginx ───────┤          ├─ each ─► toxiproxy ─┼─► redis    (redis image)
//!  (balancer)          └─► app-2 ─┘           ├─► kafka    (apache/kafka, KRaft, one node)
//!                                             └─► payments (the box office image)
//! ```
//!
//! Every container sits on one private network named after the stack; the instances reach
//! their dependencies only through a Toxiproxy container whose proxies carry the component
//! names (`postgres`, `redis`, `kafka`, `payments`), so the `chaos` CLI and
//! [`DockerStack::targets`] can put toxics on real traffic. Process faults (`kill`, `pause`,
//! `stop`) act on the containers. Dropping the stack removes its containers and network.
//!
//! The box office runs from an image built by `compose/Dockerfile`
//! ([`DockerOptions::app_image`], default `$BOXOFFICE_IMAGE` or `boxoffice-lab:latest`;
//! [`build_app_image`] builds it). Nothing here runs without a Docker daemon:
//! [`docker_available`] says so in one sentence, which callers should print as is.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! compose::docker::docker_available().await?;
//! let stack = compose::docker::DockerStack::start(Default::default()).await?;
//! println!("box office at {}", stack.url());
//! println!("chaos API at {}", stack.chaos_api());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chaos::schedule::{ApiProxyTarget, FaultAction, FaultFuture, FaultTarget, ScheduleError};
use chaos::{ProxyConfig, ToxiproxyClient};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};

use crate::net::free_port;

/// Default image of the box office (`docker build -f compose/Dockerfile -t … .`).
pub const DEFAULT_APP_IMAGE: &str = "boxoffice-lab:latest";

/// Ports inside the containers.
const APP_PORT: u16 = 8080;
const PAYMENTS_PORT: u16 = 8090;
const POSTGRES_PORT: u16 = 5432;
const REDIS_PORT: u16 = 6379;
/// Kafka listeners: in-network, KRaft controller, host-mapped, and the one advertised
/// through Toxiproxy.
const KAFKA_PORT: u16 = 9092;
const KAFKA_CONTROLLER_PORT: u16 = 9093;
const KAFKA_HOST_LISTENER_PORT: u16 = 9094;
const KAFKA_PROXIED_PORT: u16 = 9095;
const TOXIPROXY_API_PORT: u16 = 8474;
const NGINX_PORT: u16 = 80;
/// Where the Toxiproxy proxies listen inside its container.
const PROXY_POSTGRES: u16 = 15432;
const PROXY_REDIS: u16 = 16379;
const PROXY_KAFKA: u16 = 19092;
const PROXY_PAYMENTS: u16 = 18090;

const POSTGRES_USER: &str = "boxoffice";
const POSTGRES_PASSWORD: &str = "boxoffice";
const POSTGRES_DB: &str = "boxoffice";

/// Docker cannot be reached: the message tells the user what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerUnavailable {
    /// Why (the client's error, or a ping timeout).
    pub reason: String,
}

impl fmt::Display for DockerUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Docker is not available here: {}; use --stack local",
            self.reason
        )
    }
}

impl std::error::Error for DockerUnavailable {}

/// Where the Docker client looks for the daemon (for messages).
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

/// Whether a Docker daemon answers (within 5 s). This is [`chaos::container::docker_available`]
/// (`docker info`, which honours `DOCKER_HOST` as testcontainers does), run off the async
/// runtime, with the daemon's address added to the reason.
pub async fn docker_available() -> Result<(), DockerUnavailable> {
    let reason = match tokio::task::spawn_blocking(chaos::container::docker_available).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(chaos::container::ContainerError::Unavailable(reason))) => reason,
        Ok(Err(other)) => other.to_string(),
        Err(join) => format!("the check did not finish: {join}"),
    };
    Err(DockerUnavailable {
        reason: format!("{reason} (daemon: {})", docker_host()),
    })
}

/// Builds the box office image from `compose/Dockerfile` with the `docker` CLI
/// (`docker build -f compose/Dockerfile -t <tag> <repo_root>`), streaming its output.
pub fn build_app_image(repo_root: &Path, tag: &str) -> anyhow::Result<()> {
    let dockerfile = repo_root.join("compose").join("Dockerfile");
    anyhow::ensure!(
        dockerfile.is_file(),
        "no Dockerfile at {}",
        dockerfile.display()
    );
    let status = std::process::Command::new("docker")
        .arg("build")
        .arg("-f")
        .arg(&dockerfile)
        .arg("-t")
        .arg(tag)
        .arg(repo_root)
        .status()
        .context("Failed to run `docker build` (is the docker CLI installed?)")?;
    anyhow::ensure!(status.success(), "`docker build` failed: {status}");
    Ok(())
}

/// An image reference split as testcontainers wants it.
fn split_image(reference: &str) -> (String, String) {
    // The tag is after the last ':' that comes after the last '/' (a registry port is not a tag).
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (
            reference[..slash + i].to_owned(),
            reference[slash + i + 1..].to_owned(),
        ),
        None => (reference.to_owned(), "latest".to_owned()),
    }
}

/// What the docker stack starts.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// Box-office instances behind nginx (at least 1): `app-1`, `app-2`, …
    pub instances: usize,
    /// The box office image (binaries `boxoffice` and `payment-provider`).
    pub app_image: String,
    /// Extra environment of every instance (`BOXOFFICE_STRATEGY`, …); wins over the defaults.
    pub app_env: Vec<(String, String)>,
    /// Environment of the payment provider (`PAYMENTS_LATENCY_MS`, …).
    pub payments_env: Vec<(String, String)>,
    /// Shared by the instances (at least 16 characters).
    pub jwt_secret: String,
    /// The admin account the instances create at start.
    pub admin_email: String,
    /// Its password.
    pub admin_password: String,
    /// Dependency images.
    pub postgres_image: String,
    /// Redis image.
    pub redis_image: String,
    /// Kafka image (KRaft; the `apache/kafka` layout: `/opt/kafka`, `KAFKA_*` variables).
    pub kafka_image: String,
    /// Toxiproxy image.
    pub toxiproxy_image: String,
    /// nginx image.
    pub nginx_image: String,
    /// How long one container may take to be ready.
    pub startup_timeout: Duration,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            instances: 2,
            app_image: std::env::var("BOXOFFICE_IMAGE")
                .unwrap_or_else(|_| DEFAULT_APP_IMAGE.to_owned()),
            app_env: Vec::new(),
            payments_env: Vec::new(),
            jwt_secret: "docker-stack-jwt-secret-0123456789".to_owned(),
            admin_email: "admin@boxoffice.test".to_owned(),
            admin_password: "admin-password-123".to_owned(),
            postgres_image: "postgres:16.4".to_owned(),
            redis_image: "redis:7.2-alpine".to_owned(),
            kafka_image: "apache/kafka:3.9.0".to_owned(),
            toxiproxy_image: "ghcr.io/shopify/toxiproxy:2.9.0".to_owned(),
            nginx_image: "nginx:1.27.4-alpine".to_owned(),
            startup_timeout: Duration::from_secs(180),
        }
    }
}

/// One container of the stack, as [`DockerStack::components`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerComponent {
    /// Chaos target name (`postgres`, `redis`, `kafka`, `payments`, `app-1`, …, `toxiproxy`,
    /// `nginx`).
    pub name: String,
    /// What it is.
    pub kind: String,
    /// The container's name (also its host name on the stack's network).
    pub container: String,
    /// The image it runs.
    pub image: String,
    /// `host:port` on the stack's network.
    pub address: String,
    /// `127.0.0.1:port` published on the host, when there is one.
    pub host_address: Option<String>,
    /// The Toxiproxy proxy the instances use instead of `address` (`toxiproxy:port`).
    pub proxy: Option<String>,
}

/// A started container and what we know about it.
struct Node {
    component: DockerComponent,
    container: ContainerAsync<GenericImage>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("component", &self.component)
            .field("container_id", &self.container.id())
            .finish()
    }
}

/// The running docker stack. Dropping it removes the containers (and the network with the
/// last of them); [`DockerStack::stop`] does it in order and waits.
#[derive(Debug)]
pub struct DockerStack {
    name: String,
    /// In start order: dependencies, Toxiproxy, payments, the instances, nginx.
    nodes: Vec<Arc<Node>>,
    url: String,
    chaos_api: String,
    database_url: String,
    redis_url: String,
    kafka_brokers: String,
    payments_url: String,
}

impl DockerStack {
    /// Checks that Docker answers, then starts PostgreSQL, Redis, Kafka, Toxiproxy (with the
    /// `postgres`, `redis`, `kafka` and `payments` proxies), the payment provider, the
    /// instances one after the other (the first runs the migrations) and nginx in front of
    /// them, each waited for. The error names the component that did not start.
    pub async fn start(options: DockerOptions) -> anyhow::Result<DockerStack> {
        docker_available().await?;
        anyhow::ensure!(
            options.instances >= 1,
            "the stack needs at least 1 instance"
        );
        anyhow::ensure!(
            options.jwt_secret.len() >= 16,
            "the JWT secret needs at least 16 characters"
        );
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("boxoffice-lab-{}", &id[..8]);
        let container = |component: &str| format!("{name}-{component}");
        let toxiproxy_host = container("toxiproxy");
        let timeout = options.startup_timeout;
        let mut nodes = Vec::new();

        // PostgreSQL: ready when it accepts TCP connections (the init server only listens on
        // its socket).
        let pg_host_port = free_port()?;
        let (image, tag) = split_image(&options.postgres_image);
        let request = GenericImage::new(image, tag)
            .with_exposed_port(POSTGRES_PORT.tcp())
            .with_wait_for(WaitFor::healthcheck())
            .with_network(&name)
            .with_container_name(container("postgres"))
            .with_env_var("POSTGRES_USER", POSTGRES_USER)
            .with_env_var("POSTGRES_PASSWORD", POSTGRES_PASSWORD)
            .with_env_var("POSTGRES_DB", POSTGRES_DB)
            .with_mapped_port(pg_host_port, POSTGRES_PORT.tcp())
            .with_health_check(
                testcontainers::core::Healthcheck::cmd_shell(format!(
                    "pg_isready -h 127.0.0.1 -p {POSTGRES_PORT} -U {POSTGRES_USER}"
                ))
                .with_interval(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(3))
                .with_retries(120),
            )
            .with_startup_timeout(timeout);
        nodes.push(
            start_node(
                request,
                DockerComponent {
                    name: "postgres".into(),
                    kind: "postgresql".into(),
                    container: container("postgres"),
                    image: options.postgres_image.clone(),
                    address: format!("{}:{POSTGRES_PORT}", container("postgres")),
                    host_address: Some(format!("127.0.0.1:{pg_host_port}")),
                    proxy: Some(format!("{toxiproxy_host}:{PROXY_POSTGRES}")),
                },
            )
            .await?,
        );

        // Redis.
        let redis_host_port = free_port()?;
        let (image, tag) = split_image(&options.redis_image);
        let request = GenericImage::new(image, tag)
            .with_exposed_port(REDIS_PORT.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .with_network(&name)
            .with_container_name(container("redis"))
            .with_mapped_port(redis_host_port, REDIS_PORT.tcp())
            .with_cmd(["redis-server", "--save", "", "--appendonly", "no"])
            .with_startup_timeout(timeout);
        nodes.push(
            start_node(
                request,
                DockerComponent {
                    name: "redis".into(),
                    kind: "redis".into(),
                    container: container("redis"),
                    image: options.redis_image.clone(),
                    address: format!("{}:{REDIS_PORT}", container("redis")),
                    host_address: Some(format!("127.0.0.1:{redis_host_port}")),
                    proxy: Some(format!("{toxiproxy_host}:{PROXY_REDIS}")),
                },
            )
            .await?,
        );

        // Kafka: one KRaft node. It advertises a listener per way in: the network name, the
        // host's published port, and Toxiproxy's `kafka` proxy (what the instances use, so
        // that metadata sends them back through the proxy).
        let kafka_host_port = free_port()?;
        let kafka_name = container("kafka");
        let (image, tag) = split_image(&options.kafka_image);
        let request = GenericImage::new(image, tag)
            .with_exposed_port(KAFKA_HOST_LISTENER_PORT.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
            .with_network(&name)
            .with_container_name(&kafka_name)
            .with_mapped_port(kafka_host_port, KAFKA_HOST_LISTENER_PORT.tcp())
            .with_env_var("CLUSTER_ID", "4L6g3nShT-eMCtK--X86sw")
            .with_env_var("KAFKA_NODE_ID", "1")
            .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
            .with_env_var(
                "KAFKA_CONTROLLER_QUORUM_VOTERS",
                format!("1@localhost:{KAFKA_CONTROLLER_PORT}"),
            )
            .with_env_var(
                "KAFKA_LISTENERS",
                format!(
                    "PLAINTEXT://:{KAFKA_PORT},CONTROLLER://:{KAFKA_CONTROLLER_PORT},\
                     HOST://:{KAFKA_HOST_LISTENER_PORT},PROXIED://:{KAFKA_PROXIED_PORT}"
                ),
            )
            .with_env_var(
                "KAFKA_ADVERTISED_LISTENERS",
                format!(
                    "PLAINTEXT://{kafka_name}:{KAFKA_PORT},HOST://localhost:{kafka_host_port},\
                     PROXIED://{toxiproxy_host}:{PROXY_KAFKA}"
                ),
            )
            .with_env_var(
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,HOST:PLAINTEXT,PROXIED:PLAINTEXT",
            )
            .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
            .with_env_var("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
            .with_env_var("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
            .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
            .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
            .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
            .with_startup_timeout(timeout);
        nodes.push(
            start_node(
                request,
                DockerComponent {
                    name: "kafka".into(),
                    kind: "kafka (KRaft, one node)".into(),
                    container: kafka_name.clone(),
                    image: options.kafka_image.clone(),
                    address: format!("{kafka_name}:{KAFKA_PORT}"),
                    host_address: Some(format!("127.0.0.1:{kafka_host_port}")),
                    proxy: Some(format!("{toxiproxy_host}:{PROXY_KAFKA}")),
                },
            )
            .await?,
        );

        // Toxiproxy, then its proxies through its API.
        let api_host_port = free_port()?;
        let (image, tag) = split_image(&options.toxiproxy_image);
        let request = GenericImage::new(image, tag)
            .with_exposed_port(TOXIPROXY_API_PORT.tcp())
            .with_network(&name)
            .with_container_name(&toxiproxy_host)
            .with_mapped_port(api_host_port, TOXIPROXY_API_PORT.tcp())
            .with_cmd(["-host=0.0.0.0"])
            .with_startup_timeout(timeout);
        nodes.push(
            start_node(
                request,
                DockerComponent {
                    name: "toxiproxy".into(),
                    kind: "fault proxy (Toxiproxy API)".into(),
                    container: toxiproxy_host.clone(),
                    image: options.toxiproxy_image.clone(),
                    address: format!("{toxiproxy_host}:{TOXIPROXY_API_PORT}"),
                    host_address: Some(format!("127.0.0.1:{api_host_port}")),
                    proxy: None,
                },
            )
            .await?,
        );
        let chaos_api = format!("http://127.0.0.1:{api_host_port}");
        let client = ToxiproxyClient::new(&chaos_api);
        wait_until(timeout, "toxiproxy API", || async {
            client
                .version()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await?;
        let proxies = [
            (
                "postgres",
                PROXY_POSTGRES,
                format!("{}:{POSTGRES_PORT}", container("postgres")),
            ),
            (
                "redis",
                PROXY_REDIS,
                format!("{}:{REDIS_PORT}", container("redis")),
            ),
            (
                "kafka",
                PROXY_KAFKA,
                format!("{kafka_name}:{KAFKA_PROXIED_PORT}"),
            ),
            (
                "payments",
                PROXY_PAYMENTS,
                format!("{}:{PAYMENTS_PORT}", container("payments")),
            ),
        ]
        .map(|(proxy, port, upstream)| ProxyConfig {
            name: proxy.to_owned(),
            listen: format!("0.0.0.0:{port}"),
            upstream,
            enabled: true,
        });
        client
            .populate(&proxies)
            .await
            .context("Failed to create the Toxiproxy proxies")?;

        // The payment provider.
        let payments_host_port = free_port()?;
        let (image, tag) = split_image(&options.app_image);
        let mut request = GenericImage::new(image, tag)
            .with_exposed_port(PAYMENTS_PORT.tcp())
            .with_wait_for(WaitFor::message_on_stdout("payment-provider listening"))
            .with_network(&name)
            .with_container_name(container("payments"))
            .with_mapped_port(payments_host_port, PAYMENTS_PORT.tcp())
            .with_cmd(["payment-provider"])
            .with_env_var("PAYMENTS_LISTEN", format!("0.0.0.0:{PAYMENTS_PORT}"))
            .with_startup_timeout(timeout);
        for (k, v) in &options.payments_env {
            request = request.with_env_var(k, v);
        }
        nodes.push(
            start_node(
                request,
                DockerComponent {
                    name: "payments".into(),
                    kind: "payment provider".into(),
                    container: container("payments"),
                    image: options.app_image.clone(),
                    address: format!("{}:{PAYMENTS_PORT}", container("payments")),
                    host_address: Some(format!("127.0.0.1:{payments_host_port}")),
                    proxy: Some(format!("{toxiproxy_host}:{PROXY_PAYMENTS}")),
                },
            )
            .await?,
        );

        // The instances, one after the other (the first runs the migrations).
        let app_env = app_environment(&options, &toxiproxy_host);
        let mut app_names = Vec::new();
        for i in 1..=options.instances {
            let app = format!("app-{i}");
            let host_port = free_port()?;
            let (image, tag) = split_image(&options.app_image);
            let mut request = GenericImage::new(image, tag)
                .with_exposed_port(APP_PORT.tcp())
                .with_wait_for(WaitFor::message_on_stdout("boxoffice listening on"))
                .with_network(&name)
                .with_container_name(container(&app))
                .with_mapped_port(host_port, APP_PORT.tcp())
                .with_cmd(["boxoffice"])
                .with_startup_timeout(timeout);
            for (k, v) in &app_env {
                request = request.with_env_var(k, v);
            }
            request = request.with_env_var(
                "OTEL_RESOURCE_ATTRIBUTES",
                format!("service.instance.id={app}"),
            );
            nodes.push(
                start_node(
                    request,
                    DockerComponent {
                        name: app.clone(),
                        kind: "box office".into(),
                        container: container(&app),
                        image: options.app_image.clone(),
                        address: format!("{}:{APP_PORT}", container(&app)),
                        host_address: Some(format!("127.0.0.1:{host_port}")),
                        proxy: None,
                    },
                )
                .await?,
            );
            app_names.push(container(&app));
        }

        // nginx in front of the instances, as in compose/nginx/nginx.conf.
        let nginx_host_port = free_port()?;
        let (image, tag) = split_image(&options.nginx_image);
        let request = GenericImage::new(image, tag)
            .with_exposed_port(NGINX_PORT.tcp())
            .with_wait_for(WaitFor::message_on_stdout(
                "Configuration complete; ready for start up",
            ))
            .with_network(&name)
            .with_container_name(container("nginx"))
            .with_mapped_port(nginx_host_port, NGINX_PORT.tcp())
            .with_copy_to(
                "/etc/nginx/nginx.conf",
                nginx_config(&app_names).into_bytes(),
            )
            .with_startup_timeout(timeout);
        nodes.push(
            start_node(
                request,
                DockerComponent {
                    name: "nginx".into(),
                    kind: "balancer".into(),
                    container: container("nginx"),
                    image: options.nginx_image.clone(),
                    address: format!("{}:{NGINX_PORT}", container("nginx")),
                    host_address: Some(format!("127.0.0.1:{nginx_host_port}")),
                    proxy: None,
                },
            )
            .await?,
        );

        Ok(DockerStack {
            name,
            nodes,
            url: format!("http://127.0.0.1:{nginx_host_port}"),
            chaos_api,
            database_url: format!(
                "postgres://{POSTGRES_USER}:{POSTGRES_PASSWORD}@127.0.0.1:{pg_host_port}/{POSTGRES_DB}"
            ),
            redis_url: format!("redis://127.0.0.1:{redis_host_port}"),
            kafka_brokers: format!("localhost:{kafka_host_port}"),
            payments_url: format!("http://127.0.0.1:{payments_host_port}"),
        })
    }

    /// The stack's name: prefix of its containers, and its network.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The box office through nginx (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Each instance's own base URL, in order (`app-1` first).
    pub fn instance_urls(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .map(|n| &n.component)
            .filter(|c| c.name.starts_with("app-"))
            .filter_map(|c| {
                let host = c.host_address.as_ref()?;
                Some((c.name.clone(), format!("http://{host}")))
            })
            .collect()
    }

    /// Toxiproxy's API (`chaos --api URL list`).
    pub fn chaos_api(&self) -> &str {
        &self.chaos_api
    }

    /// PostgreSQL from the host, directly (not through the proxy).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Redis from the host, directly.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// Kafka bootstrap servers from the host, directly.
    pub fn kafka_brokers(&self) -> &str {
        &self.kafka_brokers
    }

    /// The payment provider from the host, directly.
    pub fn payments_url(&self) -> &str {
        &self.payments_url
    }

    /// What runs where, in start order.
    pub fn components(&self) -> Vec<DockerComponent> {
        self.nodes.iter().map(|n| n.component.clone()).collect()
    }

    /// Every chaos target by name: `postgres`, `redis`, `kafka`, `payments` (container faults
    /// and, through Toxiproxy, `down`, `partition` and toxics) and `app-N` (container faults).
    pub fn targets(&self) -> HashMap<String, Arc<dyn FaultTarget>> {
        let client = ToxiproxyClient::new(&self.chaos_api);
        self.nodes
            .iter()
            .filter(|n| !matches!(n.component.name.as_str(), "toxiproxy" | "nginx"))
            .map(|n| {
                let proxy = n
                    .component
                    .proxy
                    .is_some()
                    .then(|| n.component.name.clone());
                let target = ContainerTarget {
                    node: Arc::clone(n),
                    toxiproxy: client.clone(),
                    proxy,
                };
                (
                    n.component.name.clone(),
                    Arc::new(target) as Arc<dyn FaultTarget>,
                )
            })
            .collect()
    }

    /// A component's output so far (stdout, then stderr).
    pub async fn logs(&self, component: &str) -> anyhow::Result<String> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.component.name == component)
            .with_context(|| format!("no component {component} in the docker stack"))?;
        let mut out = node.container.stdout_to_vec().await?;
        out.extend(node.container.stderr_to_vec().await?);
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Writes every component's output to `dest/<name>.log` (for a failed run's report) and
    /// returns the files written.
    pub async fn keep_logs(&self, dest: &Path) -> Vec<PathBuf> {
        let mut written = Vec::new();
        if std::fs::create_dir_all(dest).is_err() {
            return written;
        }
        for node in &self.nodes {
            let name = &node.component.name;
            if let Ok(text) = self.logs(name).await {
                let path = dest.join(format!("{name}.log"));
                if std::fs::write(&path, text).is_ok() {
                    written.push(path);
                }
            }
        }
        written
    }

    /// Removes the containers, last started first, and waits for it.
    pub async fn stop(mut self) {
        while let Some(node) = self.nodes.pop() {
            if let Ok(node) = Arc::try_unwrap(node) {
                if let Err(e) = node.container.rm().await {
                    tracing::warn!(component = %node.component.name, error = %e, "could not remove the container");
                }
            }
            // A target still holds it: its drop removes it.
        }
    }
}

/// The environment of every instance: the dependencies through Toxiproxy, then the options.
fn app_environment(options: &DockerOptions, toxiproxy: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        (
            "DATABASE_URL",
            format!(
                "postgres://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{toxiproxy}:{PROXY_POSTGRES}/{POSTGRES_DB}"
            ),
        ),
        ("REDIS_URL", format!("redis://{toxiproxy}:{PROXY_REDIS}")),
        ("KAFKA_BROKERS", format!("{toxiproxy}:{PROXY_KAFKA}")),
        (
            "BOXOFFICE_PAYMENTS_URL",
            format!("http://{toxiproxy}:{PROXY_PAYMENTS}"),
        ),
        ("BOXOFFICE_LISTEN", format!("0.0.0.0:{APP_PORT}")),
        ("BOXOFFICE_LOG_FORMAT", "json".to_owned()),
        ("BOXOFFICE_KAFKA_PARTITIONS", "6".to_owned()),
        ("BOXOFFICE_JWT_SECRET", options.jwt_secret.clone()),
        ("BOXOFFICE_ADMIN_EMAIL", options.admin_email.clone()),
        ("BOXOFFICE_ADMIN_PASSWORD", options.admin_password.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in &options.app_env {
        env.retain(|(key, _)| key != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// nginx's configuration for the instances (passive health as in compose/nginx/nginx.conf).
fn nginx_config(apps: &[String]) -> String {
    let servers: String = apps
        .iter()
        .map(|a| format!("        server {a}:{APP_PORT} max_fails=3 fail_timeout=10s;\n"))
        .collect();
    format!(
        "events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   upstream boxoffice {{\n\
         \x20       least_conn;\n\
         {servers}\
         \x20       keepalive 64;\n\
         \x20   }}\n\
         \x20   server {{\n\
         \x20       listen {NGINX_PORT};\n\
         \x20       client_max_body_size 128k;\n\
         \x20       location = /nginx-health {{ return 200 'ok'; }}\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://boxoffice;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20           proxy_buffering off;\n\
         \x20           proxy_read_timeout 1h;\n\
         \x20           proxy_next_upstream error timeout;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    )
}

/// Starts one container; the error names the component and the image.
async fn start_node(
    request: ContainerRequest<GenericImage>,
    component: DockerComponent,
) -> anyhow::Result<Arc<Node>> {
    let started = Instant::now();
    let container = request.start().await.with_context(|| {
        format!(
            "Failed to start {} ({}) from image {}{}",
            component.name,
            component.kind,
            component.image,
            if component.image.starts_with("boxoffice-lab") {
                " (build it: docker build -f compose/Dockerfile -t boxoffice-lab:latest .)"
            } else {
                ""
            }
        )
    })?;
    tracing::info!(
        component = %component.name,
        container = %component.container,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "container ready"
    );
    Ok(Arc::new(Node {
        component,
        container,
    }))
}

/// Polls `check` until it succeeds or `timeout` passes.
async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("{what} not ready after {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A container as a chaos target: process faults on the container, network faults on its
/// Toxiproxy proxy (when it has one).
struct ContainerTarget {
    node: Arc<Node>,
    toxiproxy: ToxiproxyClient,
    proxy: Option<String>,
}

impl ContainerTarget {
    fn name(&self) -> &str {
        &self.node.component.name
    }

    fn failed(&self, action: &FaultAction, reason: impl fmt::Display) -> ScheduleError {
        ScheduleError::Failed {
            target: self.name().to_owned(),
            action: action.to_string(),
            reason: reason.to_string(),
        }
    }

    fn unsupported(&self, action: &FaultAction) -> ScheduleError {
        ScheduleError::Unsupported {
            target: self.name().to_owned(),
            action: action.to_string(),
        }
    }

    fn proxy(&self, action: &FaultAction) -> Result<&str, ScheduleError> {
        self.proxy
            .as_deref()
            .ok_or_else(|| self.unsupported(action))
    }
}

impl FaultTarget for ContainerTarget {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let c = &self.node.container;
            match action {
                FaultAction::Kill => c
                    .stop_with_timeout(Some(0))
                    .await
                    .map_err(|e| self.failed(action, e)),
                FaultAction::Pause => c.pause().await.map_err(|e| self.failed(action, e)),
                FaultAction::Stop => c.stop().await.map_err(|e| self.failed(action, e)),
                FaultAction::Down | FaultAction::Partition | FaultAction::Toxic { .. } => {
                    let proxy = self.proxy(action)?;
                    ApiProxyTarget::new(self.toxiproxy.clone(), proxy)
                        .apply(action)
                        .await
                }
                FaultAction::Failover => Err(self.unsupported(action)),
            }
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let c = &self.node.container;
            match action {
                FaultAction::Kill | FaultAction::Stop => {
                    c.start().await.map_err(|e| self.failed(action, e))
                }
                FaultAction::Pause => c.unpause().await.map_err(|e| self.failed(action, e)),
                FaultAction::Down | FaultAction::Partition | FaultAction::Toxic { .. } => {
                    let proxy = self.proxy(action)?;
                    ApiProxyTarget::new(self.toxiproxy.clone(), proxy)
                        .revert(action)
                        .await
                }
                FaultAction::Failover => Err(self.unsupported(action)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_at_the_tag_not_the_registry_port() {
        assert_eq!(
            split_image("postgres:16.4"),
            ("postgres".into(), "16.4".into())
        );
        assert_eq!(
            split_image("ghcr.io/shopify/toxiproxy:2.9.0"),
            ("ghcr.io/shopify/toxiproxy".into(), "2.9.0".into())
        );
        assert_eq!(
            split_image("localhost:5000/boxoffice-lab"),
            ("localhost:5000/boxoffice-lab".into(), "latest".into())
        );
        assert_eq!(
            split_image("boxoffice-lab"),
            ("boxoffice-lab".into(), "latest".into())
        );
    }

    #[test]
    fn instances_reach_every_dependency_through_toxiproxy_and_options_win() {
        let options = DockerOptions {
            app_env: vec![("BOXOFFICE_STRATEGY".into(), "fenced".into())],
            ..DockerOptions::default()
        };
        let env: HashMap<_, _> = app_environment(&options, "lab-toxiproxy")
            .into_iter()
            .collect();
        assert_eq!(
            env["DATABASE_URL"],
            "postgres://boxoffice:boxoffice@lab-toxiproxy:15432/boxoffice"
        );
        assert_eq!(env["REDIS_URL"], "redis://lab-toxiproxy:16379");
        assert_eq!(env["KAFKA_BROKERS"], "lab-toxiproxy:19092");
        assert_eq!(env["BOXOFFICE_PAYMENTS_URL"], "http://lab-toxiproxy:18090");
        assert_eq!(env["BOXOFFICE_STRATEGY"], "fenced");
        assert_eq!(env["BOXOFFICE_JWT_SECRET"], options.jwt_secret);

        let overridden = DockerOptions {
            app_env: vec![("BOXOFFICE_LOG_FORMAT".into(), "pretty".into())],
            ..DockerOptions::default()
        };
        let env = app_environment(&overridden, "t");
        let formats: Vec<_> = env
            .iter()
            .filter(|(k, _)| k == "BOXOFFICE_LOG_FORMAT")
            .collect();
        assert_eq!(formats.len(), 1, "an option replaces the default: {env:?}");
        assert_eq!(formats[0].1, "pretty");
    }

    #[test]
    fn nginx_balances_over_every_instance() {
        let conf = nginx_config(&["s-app-1".into(), "s-app-2".into(), "s-app-3".into()]);
        for app in ["s-app-1", "s-app-2", "s-app-3"] {
            assert!(
                conf.contains(&format!("server {app}:8080 max_fails=3")),
                "{conf}"
            );
        }
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }
}
