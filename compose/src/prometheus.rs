//! A real Prometheus (and Alertmanager) started from the binaries on PATH, each in its own temp
//! dir on a free port, stopped on drop, for tests that check dashboards and alerts against
//! live data: scrape targets and rule files are given in code, the scrape and evaluation
//! interval default to 1 s, and `--web.enable-lifecycle` allows [`LocalPrometheus::reload`].
//! [`LocalPrometheus::start`] returns once every target has been scraped at least once, so
//! whatever happens from then on is sampled.
//!
//! ```text
//! /dev/shm/boxoffice-prometheus-<pid>-XXXXXX/
//! ├── prometheus.yml   generated: scrape jobs, rule_files, alerting
//! ├── rules/           copies of the rule files
//! ├── data/            TSDB
//! └── prometheus.log   stdout + stderr
//! ```
//!
//! Their HTTP APIs are spoken through `reqwest`, one connection per request.
//!
//! `prometheus.yml` is written with `format!` rather than a YAML serializer, which the library
//! would otherwise not need (`yaml_serde` is a dev-dependency only); [`url_encode`] stays hand-
//! written because the scenarios build query URLs with it too and it must encode a space as `%20`,
//! not as form encoding's `+`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use reqwest::Method;

use crate::process::{Home, Server, Supervisor};

const INSTALL_HINT: &str =
    "install them with `apt-get install -y prometheus prometheus-alertmanager` (Debian/Ubuntu)";
/// How long Prometheus and Alertmanager may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a ready Prometheus may take to scrape each of its targets once (about 5 s).
const SCRAPING_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the first of `names` on PATH, or says how to install it.
pub fn find_binary(names: &[&str]) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("none of {names:?} is on PATH: {INSTALL_HINT}")
}

/// One scrape target.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    /// Job name (`boxoffice`, `scenario`, `chaos`, `prometheus`: fixed across the project).
    pub job: String,
    /// `host:port`.
    pub address: String,
    /// Path of the metrics (usually `/metrics`).
    pub metrics_path: String,
    /// Extra target labels (`instance` overrides the address).
    pub labels: Vec<(String, String)>,
}

impl ScrapeTarget {
    /// `/metrics` of `address` under `job`.
    pub fn new(job: &str, address: impl Into<String>) -> Self {
        Self {
            job: job.to_owned(),
            address: address.into(),
            metrics_path: "/metrics".to_owned(),
            labels: Vec::new(),
        }
    }

    /// Adds a target label.
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What a [`LocalPrometheus`] scrapes and evaluates.
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    /// Targets; Prometheus also scrapes itself as job `prometheus`.
    pub targets: Vec<ScrapeTarget>,
    /// Rule files (copied into the temp dir).
    pub rule_files: Vec<PathBuf>,
    /// Alertmanager addresses (`host:port`) to send alerts to.
    pub alertmanagers: Vec<String>,
    /// Scrape interval (default 1 s).
    pub scrape_interval: Duration,
    /// Rule evaluation interval (default 1 s).
    pub evaluation_interval: Duration,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            rule_files: Vec::new(),
            alertmanagers: Vec::new(),
            scrape_interval: Duration::from_secs(1),
            evaluation_interval: Duration::from_secs(1),
        }
    }
}

impl PrometheusOptions {
    /// The `prometheus.yml` these options describe, with rule files under `rules_dir`.
    pub fn config_yaml(&self, rules_dir: &Path, self_address: &str) -> String {
        let secs = |d: Duration| format!("{}ms", d.as_millis().max(1));
        let mut y = format!(
            "global:\n  scrape_interval: {}\n  scrape_timeout: {}\n  evaluation_interval: {}\n",
            secs(self.scrape_interval),
            secs(self.scrape_interval),
            secs(self.evaluation_interval)
        );
        y.push_str("rule_files:\n");
        for f in &self.rule_files {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
            y.push_str(&format!(
                "  - {:?}\n",
                rules_dir
                    .join(name.unwrap_or_default())
                    .display()
                    .to_string()
            ));
        }
        if !self.alertmanagers.is_empty() {
            y.push_str("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets:\n");
            for a in &self.alertmanagers {
                y.push_str(&format!("            - {a:?}\n"));
            }
        }
        y.push_str("scrape_configs:\n");
        let mut jobs: Vec<&str> = self.targets.iter().map(|t| t.job.as_str()).collect();
        jobs.dedup();
        let mut seen = std::collections::BTreeSet::new();
        let mut targets = self.targets.clone();
        targets.push(ScrapeTarget::new("prometheus", self_address));
        for t in &targets {
            // One scrape config per (job, path); targets listed with their labels.
            if !seen.insert((t.job.clone(), t.metrics_path.clone())) {
                continue;
            }
            y.push_str(&format!(
                "  - job_name: {:?}\n    metrics_path: {:?}\n    static_configs:\n",
                t.job, t.metrics_path
            ));
            for u in targets
                .iter()
                .filter(|u| u.job == t.job && u.metrics_path == t.metrics_path)
            {
                y.push_str(&format!("      - targets: [{:?}]\n", u.address));
                if !u.labels.is_empty() {
                    y.push_str("        labels:\n");
                    for (k, v) in &u.labels {
                        y.push_str(&format!("          {k}: {v:?}\n"));
                    }
                }
            }
        }
        y
    }
}

/// A `prometheus` child process on 127.0.0.1.
#[derive(Debug)]
pub struct LocalPrometheus {
    /// The server, its temp dir (removed on drop unless `BOXOFFICE_KEEP_STACK=1`) and port.
    server: Supervisor<Prometheus>,
}

/// How Prometheus is run: its configuration is written for the port it gets.
#[derive(Debug)]
struct Prometheus {
    bin: PathBuf,
    options: PrometheusOptions,
    api: HttpApi,
}

impl Server for Prometheus {
    const READY_TIMEOUT: Duration = READY_TIMEOUT;

    fn name(&self) -> &str {
        "Prometheus"
    }

    fn command(&self, home: &Path, port: u16) -> anyhow::Result<Command> {
        let address = format!("127.0.0.1:{port}");
        let config = home.join("prometheus.yml");
        std::fs::write(
            &config,
            self.options.config_yaml(&home.join("rules"), &address),
        )
        .context("Failed to write prometheus.yml")?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                home.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--web.enable-lifecycle");
        Ok(cmd)
    }

    async fn probe(&self, port: u16) -> Result<(), String> {
        self.api.ready(port).await
    }
}

impl LocalPrometheus {
    /// Writes the configuration, starts Prometheus on a free port and waits until it is ready.
    pub async fn start(options: &PrometheusOptions) -> anyhow::Result<LocalPrometheus> {
        let bin = find_binary(&["prometheus"])?;
        let home = Home::temp("boxoffice-prometheus-", None)?;
        let rules = home.path().join("rules");
        std::fs::create_dir_all(&rules)?;
        for f in &options.rule_files {
            let name = f
                .file_name()
                .with_context(|| format!("rule file without a name: {}", f.display()))?;
            std::fs::copy(f, rules.join(name))
                .with_context(|| format!("Failed to copy rule file {}", f.display()))?;
        }
        let prometheus = Prometheus {
            bin,
            options: options.clone(),
            api: HttpApi::new()?,
        };
        let server = Supervisor::start(prometheus, home, "prometheus.log").await?;
        let local = LocalPrometheus { server };
        let jobs = options
            .targets
            .iter()
            .map(|t| t.job.clone())
            .chain(["prometheus".to_owned()])
            .collect();
        local.wait_scraping(&jobs, SCRAPING_TIMEOUT).await?;
        Ok(local)
    }

    /// Waits until every job in `jobs` has targets and each active target has been scraped
    /// at least once (successfully or not). `/-/ready` answers within 0.2 s, but Prometheus
    /// applies its scrape configuration only at the scrape manager's first reload tick, 5 s
    /// after the start (`scrape.Manager.reloader` in Prometheus 2.x): until then it scrapes
    /// nothing, and a fault of a few seconds injected right after the start leaves no sample
    /// (measured: the first `up` sample 5.1 s after the start).
    async fn wait_scraping(
        &self,
        jobs: &std::collections::BTreeSet<String>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let began = Instant::now();
        loop {
            let targets = self.targets().await?;
            let scraped: std::collections::BTreeSet<String> = targets
                .iter()
                .filter_map(|t| t["labels"]["job"].as_str().map(str::to_owned))
                .collect();
            let never = targets
                .iter()
                .filter(|t| {
                    t["lastScrape"]
                        .as_str()
                        .is_none_or(|s| s.starts_with("0001-"))
                })
                .count();
            if scraped.is_superset(jobs) && never == 0 {
                return Ok(());
            }
            if began.elapsed() > timeout {
                bail!(
                    "Prometheus did not scrape every job within {timeout:?} (jobs {jobs:?}, \
                     targets seen {scraped:?}, {never} never scraped)\n{}",
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// One request to its HTTP API: (status, body).
    async fn call(&self, method: Method, path_and_query: &str) -> anyhow::Result<(u16, String)> {
        let api = &self.server.server().api;
        api.call(method, self.port(), path_and_query).await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.server.root().join("prometheus.yml")
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        self.server.log_tail(n)
    }

    /// Asks Prometheus to reload its configuration and rules (`POST /-/reload`).
    pub async fn reload(&self) -> anyhow::Result<()> {
        match self.call(Method::POST, "/-/reload").await? {
            (200, _) => Ok(()),
            (status, body) => bail!("reload answered {status}: {body}"),
        }
    }

    /// `GET path` on its API; the parsed JSON body. Fails unless the status is 200 and the
    /// API says `"status": "success"`.
    pub async fn api(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.call(Method::GET, path_and_query).await?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("{path_and_query} answered {status}: {body}"))?;
        if status != 200 || json["status"] != "success" {
            bail!("{path_and_query} answered {status}: {body}");
        }
        Ok(json["data"].clone())
    }

    /// Evaluates an instant query now: the `data` object (`resultType`, `result`).
    pub async fn query(&self, expr: &str) -> anyhow::Result<serde_json::Value> {
        self.api(&format!("/api/v1/query?query={}", url_encode(expr)))
            .await
    }

    /// The targets' health (`/api/v1/targets` active targets).
    pub async fn targets(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(self.api("/api/v1/targets").await?["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Waits until every active target has been scraped successfully.
    pub async fn wait_targets_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let began = Instant::now();
        loop {
            let targets = self.targets().await?;
            let down: Vec<String> = targets
                .iter()
                .filter(|t| t["health"] != "up")
                .map(|t| {
                    format!(
                        "{} {} {}",
                        t["labels"]["job"], t["scrapeUrl"], t["lastError"]
                    )
                })
                .collect();
            if !targets.is_empty() && down.is_empty() {
                return Ok(());
            }
            if began.elapsed() > timeout {
                bail!("targets not up within {timeout:?}: {down:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The alerts Prometheus holds now (`/api/v1/alerts`), pending and firing.
    pub async fn alerts(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(self.api("/api/v1/alerts").await?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Polls `/api/v1/alerts` until alert `name` is in `state` (`pending` or `firing`);
    /// returns it (labels, annotations, activeAt, value), or fails after `timeout` with the
    /// alerts seen last.
    pub async fn wait_for_alert(
        &self,
        name: &str,
        state: &str,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        let began = Instant::now();
        loop {
            let alerts = self.alerts().await?;
            if let Some(a) = alerts
                .iter()
                .find(|a| a["labels"]["alertname"] == name && a["state"] == state)
            {
                return Ok(a.clone());
            }
            if began.elapsed() > timeout {
                bail!("alert {name} not {state} within {timeout:?}; alerts: {alerts:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A `prometheus-alertmanager` (or `alertmanager`) child process on 127.0.0.1, clustering off.
#[derive(Debug)]
pub struct LocalAlertmanager {
    /// The server, its temp dir and port.
    server: Supervisor<Alertmanager>,
}

/// How Alertmanager is run.
#[derive(Debug)]
struct Alertmanager {
    bin: PathBuf,
    /// The configuration file, used where it is.
    config: PathBuf,
    api: HttpApi,
}

impl Server for Alertmanager {
    const READY_TIMEOUT: Duration = READY_TIMEOUT;

    fn name(&self) -> &str {
        "Alertmanager"
    }

    fn command(&self, home: &Path, port: u16) -> anyhow::Result<Command> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("--config.file={}", self.config.display()))
            .arg(format!("--storage.path={}", home.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        Ok(cmd)
    }

    async fn probe(&self, port: u16) -> Result<(), String> {
        self.api.ready(port).await
    }
}

impl LocalAlertmanager {
    /// Starts Alertmanager with the configuration file `config` and waits until it is ready.
    pub async fn start(config: &Path) -> anyhow::Result<LocalAlertmanager> {
        let alertmanager = Alertmanager {
            bin: find_binary(&["prometheus-alertmanager", "alertmanager"])?,
            config: config.to_path_buf(),
            api: HttpApi::new()?,
        };
        let home = Home::temp("boxoffice-alertmanager-", None)?;
        let server = Supervisor::start(alertmanager, home, "alertmanager.log").await?;
        Ok(LocalAlertmanager { server })
    }

    /// `127.0.0.1:PORT`, for [`PrometheusOptions::alertmanagers`].
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        self.server.log_tail(n)
    }

    /// The alerts it holds (`/api/v2/alerts`).
    pub async fn alerts(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let am = self.server.server();
        let (status, body) = (am.api)
            .call(Method::GET, self.server.port(), "/api/v2/alerts")
            .await?;
        if status != 200 {
            bail!("/api/v2/alerts answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The HTTP API of a local Prometheus or Alertmanager: 2 s to connect, 30 s per request, and
/// no idle connection kept, so that a client never holds a connection of a tokio runtime that
/// has ended (each test has its own).
#[derive(Debug, Clone)]
struct HttpApi {
    client: reqwest::Client,
}

impl HttpApi {
    fn new() -> anyhow::Result<HttpApi> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()
            .context("Failed to build an HTTP client")?;
        Ok(HttpApi { client })
    }

    /// `method path_and_query` on 127.0.0.1:`port`: (status, body).
    async fn call(
        &self,
        method: Method,
        port: u16,
        path_and_query: &str,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("http://127.0.0.1:{port}{path_and_query}");
        let response = self
            .client
            .request(method, &url)
            .send()
            .await
            .with_context(|| format!("{url} did not answer"))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .with_context(|| format!("{url} sent no readable body"))?;
        Ok((status, body))
    }

    /// Whether the server on `port` answers `GET /-/ready` with 200.
    async fn ready(&self, port: u16) -> Result<(), String> {
        match self.call(Method::GET, port, "/-/ready").await {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("/-/ready answered {status}: {body}")),
            Err(error) => Err(format!("{error:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_lists_jobs_targets_labels_and_rules() {
        let options = PrometheusOptions {
            targets: vec![
                ScrapeTarget::new("boxoffice", "127.0.0.1:1").label("instance", "app-1"),
                ScrapeTarget::new("boxoffice", "127.0.0.1:2"),
                ScrapeTarget::new("chaos", "127.0.0.1:3"),
            ],
            rule_files: vec![PathBuf::from("/x/alerts/rules/slo.yml")],
            alertmanagers: vec!["127.0.0.1:9".into()],
            ..Default::default()
        };
        let y = options.config_yaml(Path::new("/tmp/r"), "127.0.0.1:4");
        assert!(y.contains("scrape_interval: 1000ms"), "{y}");
        assert!(y.contains("\"/tmp/r/slo.yml\""), "{y}");
        assert_eq!(y.matches("job_name: \"boxoffice\"").count(), 1, "{y}");
        assert!(y.contains("instance: \"app-1\""), "{y}");
        assert!(y.contains("job_name: \"prometheus\""), "{y}");
        assert!(y.contains("- \"127.0.0.1:9\""), "{y}");
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            url_encode("up{job=\"a\"} > 0"),
            "up%7Bjob%3D%22a%22%7D%20%3E%200"
        );
    }
}
