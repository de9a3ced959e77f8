//! What a chaos run watches besides the history: each instance's readiness and the alerts
//! Prometheus fires. Both are a [`Poller`]: one loop that asks something every interval and
//! keeps what changed, stamped on the history's clock, until the attack ends.

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

/// Polls Prometheus's `/api/v1/alerts` every second and records when each alert first
/// reached `firing` (ms on the history's clock).
pub fn alerts(prometheus: String, recorder: Recorder) -> Poller<Vec<(f64, String)>> {
    Poller::start(
        Duration::from_secs(1),
        move |client, mut fired: Vec<(f64, String)>| {
            let url = format!("{prometheus}/api/v1/alerts");
            let recorder = recorder.clone();
            async move {
                let body = match client.get(&url).send().await {
                    Ok(resp) => resp.json::<serde_json::Value>().await.ok(),
                    Err(_) => None,
                };
                let list = body
                    .as_ref()
                    .and_then(|v| v["data"]["alerts"].as_array())
                    .cloned()
                    .unwrap_or_default();
                for a in list {
                    let name = a["labels"]["alertname"].as_str().unwrap_or_default();
                    if a["state"] == "firing" && !fired.iter().any(|(_, n)| n == name) {
                        fired.push((recorder.now_ms(), name.to_owned()));
                    }
                }
                fired
            }
        },
    )
}
