//! What a run watches besides the history: each instance's readiness and the alerts
//! Prometheus fires (chaos runs), and with `--abort-on-fail` the database's live oversold
//! audit. Each is a [`Poller`]: one loop that asks something every interval and keeps what
//! changed, stamped on the history's clock, until the attack ends.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::failover::Readiness;
use crate::history::Recorder;

/// A background poll every `interval` until [`Poller::finish`], collecting what `poll`
/// pushes into its state.
#[derive(Debug)]
pub struct Poller<T> {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<T>,
}

impl<T: Default + Send + 'static> Poller<T> {
    /// Starts polling now.
    pub fn start<F, Fut>(interval: Duration, mut poll: F) -> Self
    where
        F: FnMut(reqwest::Client, T) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send,
    {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(1000))
                .build()
                .unwrap_or_default();
            let mut state = T::default();
            loop {
                state = poll(client.clone(), state).await;
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => break,
                }
            }
            state
        });
        Poller { stop, task }
    }

    /// Stops polling and returns what was collected.
    pub async fn finish(self) -> T {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// The most descriptors (sockets included) this process held at once, sampled every
/// 250 ms: what a run costs in connections.
pub fn open_files() -> Poller<u64> {
    Poller::start(Duration::from_millis(250), |_, most: u64| async move {
        most.max(super::provision::open_files().unwrap_or(0))
    })
}

/// The most TCP connections held open to `target` at once, sampled every second from the
/// kernel's socket table (`/proc/net/tcp`: established sockets whose remote end is the
/// target, so client sides only); `None` when the target is not an IPv4 address and port
/// or the table cannot be read (not Linux).
pub fn connections(target: &str) -> Option<Poller<u64>> {
    let url = reqwest::Url::parse(target).ok()?;
    let ip: std::net::Ipv4Addr = url.host_str()?.parse().ok()?;
    let port = url.port_or_known_default()?;
    established_to(ip, port)?;
    Some(Poller::start(
        Duration::from_secs(1),
        move |_, most: u64| async move {
            let now = tokio::task::spawn_blocking(move || established_to(ip, port))
                .await
                .ok()
                .flatten()
                .unwrap_or(0);
            most.max(now)
        },
    ))
}

/// Established IPv4 TCP sockets on this host whose remote end is `ip:port`.
pub fn established_to(ip: std::net::Ipv4Addr, port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    // The kernel prints the address as the in-memory u32 (network byte order) in hex, and
    // the port in host order.
    let want = format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()));
    Some(
        table
            .lines()
            .skip(1)
            .filter(|line| {
                let mut fields = line.split_whitespace().skip(2);
                fields.next() == Some(want.as_str()) && fields.next() == Some("01")
            })
            .count() as u64,
    )
}

/// Readiness as the probes saw it: the last answer per instance, and every change.
#[derive(Debug, Default)]
pub struct ReadinessSeen {
    last: BTreeMap<String, bool>,
    /// Every answer that differed from the instance's previous one.
    pub changes: Vec<Readiness>,
}

/// Polls each instance's `/health/ready` every 250 ms and records every answer that differs
/// from the last one (a timeout or a refused connection is "not ready").
pub fn readiness(instances: Vec<(String, String)>, recorder: Recorder) -> Poller<ReadinessSeen> {
    Poller::start(
        Duration::from_millis(250),
        move |client, mut seen: ReadinessSeen| {
            let instances = instances.clone();
            let recorder = recorder.clone();
            async move {
                let checks = instances.iter().map(|(name, url)| {
                    let client = client.clone();
                    async move {
                        let ok = client
                            .get(format!("{url}/health/ready"))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        (name.clone(), ok)
                    }
                });
                for (name, ready) in futures::future::join_all(checks).await {
                    if seen.last.insert(name.clone(), ready) != Some(ready) {
                        seen.changes.push(Readiness {
                            t_ms: recorder.now_ms(),
                            instance: name,
                            ready,
                        });
                    }
                }
                seen
            }
        },
    )
}

/// `--abort-on-fail`: polls each round's audit (`/v1/admin/rounds/{id}/audit`, read from
/// the database) every 500 ms; the first time a seat is claimed twice it stops the load
/// (Goose's killswitch) and keeps why. Cheap: one indexed query per round and poll.
pub fn invariant_watch(
    base_url: String,
    admin_token: String,
    rounds: Vec<i64>,
    recorder: Recorder,
) -> Poller<Option<String>> {
    Poller::start(
        Duration::from_millis(500),
        move |client, broken: Option<String>| {
            let (base_url, token, rounds) = (base_url.clone(), admin_token.clone(), rounds.clone());
            let recorder = recorder.clone();
            async move {
                if broken.is_some() {
                    return broken;
                }
                for round in rounds {
                    let audit = client
                        .get(format!("{base_url}/v1/admin/rounds/{round}/audit"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    let Ok(resp) = audit else { continue };
                    let Ok(audit) = resp.json::<crate::checker::RoundAudit>().await else {
                        continue;
                    };
                    if audit.oversold > 0 {
                        let reason = format!(
                            "{} seat(s) of round {round} oversold at {:.1} s (live audit)",
                            audit.oversold,
                            recorder.now_ms() / 1000.0
                        );
                        goose::trigger_killswitch(&reason);
                        return Some(reason);
                    }
                }
                None
            }
        },
    )
}

/// The alerts a run saw fire.
#[derive(Debug, Default)]
pub struct AlertsSeen {
    /// Whether Prometheus has answered once.
    answered: bool,
    /// Alerts already firing at the first answer: they fired before the run (a deployed
    /// stack's Prometheus has a past) and are not the run's.
    before: std::collections::BTreeSet<String>,
    /// When each alert first reached `firing` during the run (ms on the history's clock).
    pub fired: Vec<(f64, String)>,
}

impl AlertsSeen {
    /// Takes one answer of `/api/v1/alerts` seen at `t_ms`.
    fn seen(&mut self, t_ms: f64, alerts: &[serde_json::Value]) {
        let firing = alerts
            .iter()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| a["labels"]["alertname"].as_str());
        if !self.answered {
            self.answered = true;
            self.before = firing.map(str::to_owned).collect();
            return;
        }
        for name in firing {
            if !self.before.contains(name) && !self.fired.iter().any(|(_, n)| n == name) {
                self.fired.push((t_ms, name.to_owned()));
            }
        }
    }
}

/// Polls Prometheus's `/api/v1/alerts` (the local stack's, or `--prometheus-url`) every second
/// and records when each alert first reached `firing`, leaving out those already firing
/// when the run began.
pub fn alerts(prometheus: String, recorder: Recorder) -> Poller<AlertsSeen> {
    Poller::start(
        Duration::from_secs(1),
        move |client, mut seen: AlertsSeen| {
            let url = format!("{prometheus}/api/v1/alerts");
            let recorder = recorder.clone();
            async move {
                let body = match client.get(&url).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        resp.json::<serde_json::Value>().await.ok()
                    }
                    _ => None,
                };
                if let Some(list) = body.as_ref().and_then(|v| v["data"]["alerts"].as_array()) {
                    seen.seen(recorder.now_ms(), list);
                }
                seen
            }
        },
    )
}

/// Seconds between two samples of the box office's resources.
pub const RESOURCE_INTERVAL: Duration = Duration::from_secs(5);

/// What a sample reads from an instance's `/metrics`: (measure, metric, label filter).
const RESOURCE_METRICS: [(&str, &str, &str); 5] = [
    ("rss_mib", "process_resident_memory_bytes", ""),
    ("open_fds", "process_open_fds", ""),
    (
        "db_pool_connections",
        "boxoffice_db_pool_connections",
        "state=\"in_use\"",
    ),
    (
        "db_pool_connections",
        "boxoffice_db_pool_connections",
        "state=\"idle\"",
    ),
    ("tasks", "boxoffice_runtime_alive_tasks", ""),
];

/// Scrapes each instance's `/metrics` every [`RESOURCE_INTERVAL`] (and once at the start):
/// resident memory, open descriptors, the database pool's size and the async tasks alive,
/// one series per (instance, measure), on the history's clock in seconds.
pub fn resources(
    instances: Vec<(String, String)>,
    recorder: Recorder,
) -> Poller<Vec<reports::ResourceSeries>> {
    Poller::start(
        RESOURCE_INTERVAL,
        move |client, mut series: Vec<reports::ResourceSeries>| {
            let instances = instances.clone();
            let recorder = recorder.clone();
            async move {
                for (name, url) in &instances {
                    let text = match client.get(format!("{url}/metrics")).send().await {
                        Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
                        // A sample missed (the instance paused or restarting): a gap.
                        _ => continue,
                    };
                    let t_s = recorder.now_ms() / 1000.0;
                    let mut values: BTreeMap<&str, f64> = BTreeMap::new();
                    for (measure, metric, labels) in RESOURCE_METRICS {
                        if let Some(v) = sample_value(&text, metric, labels) {
                            let v = if measure == "rss_mib" {
                                v / 1_048_576.0
                            } else {
                                v
                            };
                            *values.entry(measure).or_default() += v;
                        }
                    }
                    for (measure, v) in values {
                        let i = match series
                            .iter()
                            .position(|s| s.instance == *name && s.measure == measure)
                        {
                            Some(i) => i,
                            None => {
                                series.push(reports::ResourceSeries {
                                    instance: name.clone(),
                                    measure: measure.to_owned(),
                                    points: Vec::new(),
                                });
                                series.len() - 1
                            }
                        };
                        series[i].points.push((t_s, v));
                    }
                }
                series
            }
        },
    )
}

/// The value of `metric` in a Prometheus text exposition, on the line whose labels contain
/// `labels` (any line when empty).
fn sample_value(text: &str, metric: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(metric))
        .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        .find(|rest| {
            labels.is_empty() || rest.split('}').next().is_some_and(|l| l.contains(labels))
        })
        .and_then(|rest| rest.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_to_a_target_are_counted_from_the_kernels_table() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            unreachable!()
        };
        assert_eq!(established_to(ip, addr.port()), Some(0));
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..3 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
            servers.push(listener.accept().await.unwrap());
        }
        // Client sides only: the accepted (server) sides have the target as local address.
        assert_eq!(established_to(ip, addr.port()), Some(3));
        let poller = connections(&format!("http://{addr}")).expect("an IPv4 target");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(poller.finish().await, 3);
        assert!(
            connections("http://localhost:1").is_none(),
            "a host name is not read"
        );
    }
    use serde_json::json;

    #[test]
    fn a_sample_is_read_by_name_and_labels_and_not_by_prefix() {
        let text = "# HELP process_open_fds x\nprocess_open_fds 61\nprocess_open_fds_extra 9\n\
                    boxoffice_db_pool_connections{state=\"idle\"} 3\n\
                    boxoffice_db_pool_connections{state=\"in_use\"} 5\n\
                    process_resident_memory_bytes 5.24288e7\n";
        assert_eq!(sample_value(text, "process_open_fds", ""), Some(61.0));
        assert_eq!(
            sample_value(text, "boxoffice_db_pool_connections", "state=\"in_use\""),
            Some(5.0)
        );
        assert_eq!(
            sample_value(text, "process_resident_memory_bytes", ""),
            Some(52_428_800.0)
        );
        assert_eq!(
            sample_value(text, "boxoffice_runtime_alive_tasks", ""),
            None
        );
    }

    fn alert(name: &str, state: &str) -> serde_json::Value {
        json!({"labels": {"alertname": name}, "state": state})
    }

    #[test]
    fn alerts_firing_before_the_run_are_not_the_runs() {
        let mut seen = AlertsSeen::default();
        seen.seen(0.0, &[alert("Old", "firing"), alert("Soon", "pending")]);
        seen.seen(1000.0, &[alert("Old", "firing"), alert("Soon", "firing")]);
        seen.seen(2000.0, &[alert("Soon", "firing"), alert("New", "firing")]);
        assert_eq!(
            seen.fired,
            vec![(1000.0, "Soon".to_owned()), (2000.0, "New".to_owned())]
        );
    }
}
