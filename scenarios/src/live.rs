//! The runner's own live metrics, served at `/metrics` while a run goes on, so that Grafana
//! shows load, system and faults on one timeline (Goose exports nothing live). Job name
//! `scenario` in every Prometheus configuration of the project.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `lab_transaction_duration_seconds` | histogram | `transaction` | client-side latency of each operation |
//! | `lab_transactions_total` | counter | `transaction`, `result` (`ok`, `rejected`, `error`, `unknown`) | operations by outcome |
//! | `lab_active_users` | gauge | | virtual users inside a journey right now |
//! | `lab_arrivals_total` | counter | | journeys begun (arrivals of the open model) |
//! | `lab_fault_active` | gauge | `target`, `action` | 1 while a scheduled fault is in force |

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chaos::schedule::{FaultAction, FaultFuture, FaultTarget};
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::history::{Counters, OpKind, Outcome};

const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The runner's metrics.
#[derive(Debug, Clone)]
pub struct LiveMetrics {
    registry: Registry,
    duration: HistogramVec,
    transactions: IntCounterVec,
    active_users: IntGauge,
    arrivals: IntCounter,
    faults: IntGaugeVec,
    /// The run's counters, attached once the history starts.
    counters: Arc<std::sync::OnceLock<Arc<Counters>>>,
}

impl Default for LiveMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveMetrics {
    /// Registers every metric. Users and arrivals are read at each scrape from the counters
    /// given to [`LiveMetrics::attach`].
    pub fn new() -> Self {
        let registry = Registry::new();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "lab_transaction_duration_seconds",
                "Client-side latency of the load runner's operations, seconds.",
            )
            .buckets(BUCKETS.to_vec()),
            &["transaction"],
        )
        .expect("metric");
        let transactions = IntCounterVec::new(
            Opts::new(
                "lab_transactions_total",
                "The load runner's operations by transaction and result (ok, fail, unknown).",
            ),
            &["transaction", "result"],
        )
        .expect("metric");
        let active_users = IntGauge::new(
            "lab_active_users",
            "Virtual users inside a journey right now.",
        )
        .expect("metric");
        let arrivals = IntCounter::new("lab_arrivals_total", "Journeys begun by virtual users.")
            .expect("metric");
        let faults = IntGaugeVec::new(
            Opts::new(
                "lab_fault_active",
                "1 while a scheduled fault is in force on a target.",
            ),
            &["target", "action"],
        )
        .expect("metric");
        for c in [
            Box::new(duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(transactions.clone()),
            Box::new(active_users.clone()),
            Box::new(arrivals.clone()),
            Box::new(faults.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        LiveMetrics {
            registry,
            duration,
            transactions,
            active_users,
            arrivals,
            faults,
            counters: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// The run's user counters (once; later calls are ignored).
    pub fn attach(&self, counters: Arc<Counters>) {
        let _ = self.counters.set(counters);
    }

    /// Records one finished operation.
    pub fn observe(&self, op: OpKind, latency_s: f64, outcome: Outcome) {
        self.observe_named(op.as_str(), latency_s, outcome);
    }

    /// Records one finished operation of a transaction named `tx` (keep the set of names
    /// small: it is a label).
    pub fn observe_named(&self, tx: &str, latency_s: f64, outcome: Outcome) {
        self.duration.with_label_values(&[tx]).observe(latency_s);
        let result = match outcome {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
            Outcome::Unknown => "unknown",
        };
        self.transactions.with_label_values(&[tx, result]).inc();
    }

    /// Declares the faults of a schedule (at 0) so that their series exist from the start.
    pub fn declare_fault(&self, target: &str, action: &FaultAction) {
        self.faults
            .with_label_values(&[target, &action_name(action)])
            .set(0);
    }

    fn set_fault(&self, target: &str, action: &FaultAction, on: bool) {
        self.faults
            .with_label_values(&[target, &action_name(action)])
            .set(i64::from(on));
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let (started, done) = self.counters.get().map_or((0, 0), |c| {
            (
                c.users_started.load(Ordering::Relaxed),
                c.users_done.load(Ordering::Relaxed),
            )
        });
        self.active_users
            .set(i64::try_from(started.saturating_sub(done)).unwrap_or(i64::MAX));
        let arrivals = self.arrivals.get();
        if started > arrivals {
            self.arrivals.inc_by(started - arrivals);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Pushes the metrics as they are now to a Prometheus Pushgateway at `pushgateway` (its
    /// base URL), replacing the group `job="scenario"`, `instance=<instance>` (an HTTP PUT of
    /// the text exposition): what a short run leaves for a Prometheus that scrapes the
    /// gateway (`honor_labels: true`). Fails with the gateway's answer when it refuses.
    pub async fn push(&self, pushgateway: &str, instance: &str) -> Result<(), String> {
        let mut url = reqwest::Url::parse(pushgateway)
            .map_err(|e| format!("pushgateway URL {pushgateway}: {e}"))?;
        url.path_segments_mut()
            .map_err(|()| format!("pushgateway URL {pushgateway} cannot have a path"))?
            .pop_if_empty()
            .extend(["metrics", "job", "scenario", "instance", instance]);
        let response = reqwest::Client::new()
            .put(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(self.render())
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("PUT {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!("PUT {url}: {status} {}", body.trim()));
        }
        Ok(())
    }

    /// Serves `/metrics` on `listen` (port 0 picks one) until the returned task is aborted:
    /// a one-route axum router.
    pub async fn serve(
        self: &Arc<Self>,
        listen: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let me = Arc::clone(self);
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let me = Arc::clone(&me);
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        me.render(),
                    )
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((addr, task))
    }
}

impl crate::history::Observer for LiveMetrics {
    fn observe(&self, op: OpKind, latency_s: f64, outcome: Outcome) {
        LiveMetrics::observe(self, op, latency_s, outcome);
    }
}

/// The action's name without its arguments (`latency`, `kill`…): a bounded label.
fn action_name(action: &FaultAction) -> String {
    let full = action.to_string();
    full.split('=').next().unwrap_or_default().to_owned()
}

/// A fault target that also raises `lab_fault_active` while its fault is in force.
pub struct Gauged {
    name: String,
    inner: Arc<dyn FaultTarget>,
    live: Arc<LiveMetrics>,
}

impl std::fmt::Debug for Gauged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauged").field("name", &self.name).finish()
    }
}

impl Gauged {
    /// Wraps `inner`, known to the schedule as `name`.
    pub fn new(name: &str, inner: Arc<dyn FaultTarget>, live: Arc<LiveMetrics>) -> Self {
        Gauged {
            name: name.to_owned(),
            inner,
            live,
        }
    }
}

impl FaultTarget for Gauged {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            self.live.set_fault(&self.name, action, true);
            self.inner.apply(action).await
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let r = self.inner.revert(action).await;
            self.live.set_fault(&self.name, action, false);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_users_and_faults_show_in_the_exposition() {
        let counters = Arc::new(Counters::default());
        let live = LiveMetrics::new();
        live.attach(Arc::clone(&counters));
        live.observe(OpKind::Hold, 0.004, Outcome::Ok);
        live.observe(OpKind::Hold, 0.2, Outcome::Unknown);
        counters.users_started.store(5, Ordering::Relaxed);
        counters.users_done.store(2, Ordering::Relaxed);
        live.declare_fault(
            "redis",
            &FaultAction::Toxic {
                toxic: chaos::schedule::parse_action("latency=200ms")
                    .ok()
                    .and_then(|a| match a {
                        FaultAction::Toxic { toxic } => Some(toxic),
                        _ => None,
                    })
                    .expect("a toxic"),
            },
        );
        live.set_fault("app-1", &FaultAction::Kill, true);
        let text = live.render();
        assert!(text.contains(r#"lab_transactions_total{result="ok",transaction="hold"} 1"#));
        assert!(text.contains(r#"lab_transactions_total{result="unknown",transaction="hold"} 1"#));
        assert!(text.contains(r#"lab_transaction_duration_seconds_count{transaction="hold"} 2"#));
        assert!(text.contains("lab_active_users 3"));
        assert!(text.contains("lab_arrivals_total 5"));
        assert!(text.contains(r#"lab_fault_active{action="latency",target="redis"} 0"#));
        assert!(text.contains(r#"lab_fault_active{action="kill",target="app-1"} 1"#));
    }
}
