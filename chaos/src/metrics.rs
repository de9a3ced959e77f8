//! Prometheus metrics of the fault proxy, named once here (`chaos_proxy_*`, units and `_total`
//! per Prometheus conventions) and served as text on `GET /metrics`.
//!
//! Each server owns its own [`Registry`] rather than the global one, so several servers (one
//! per test) never collide. A [`ProxyMetrics`] is the per-proxy handle the connection code
//! calls; each call emits the metric and its trace event together.

use std::sync::Arc;

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::toxics::{Stream, ToxicSpec, TOXIC_TYPES};

/// The metric families of one server.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    connections_total: IntCounterVec,
    connections_active: IntGaugeVec,
    received_bytes: IntCounterVec,
    sent_bytes: IntCounterVec,
    toxics_active: IntGaugeVec,
    enabled: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metric families in a fresh registry.
    pub fn new() -> Self {
        fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        }
        fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        }
        let m = Metrics {
            registry: Registry::new(),
            connections_total: counter(
                "chaos_proxy_connections_total",
                "Client connections accepted by the proxy.",
                &["proxy"],
            ),
            connections_active: gauge(
                "chaos_proxy_connections_active",
                "Client connections currently open through the proxy.",
                &["proxy"],
            ),
            received_bytes: counter(
                "chaos_proxy_received_bytes_total",
                "Bytes read from the source of a direction (client for upstream, server for downstream).",
                &["proxy", "direction"],
            ),
            sent_bytes: counter(
                "chaos_proxy_sent_bytes_total",
                "Bytes written to the destination of a direction, after toxics.",
                &["proxy", "direction"],
            ),
            toxics_active: gauge(
                "chaos_proxy_toxics_active",
                "Toxics configured on the proxy, by type and direction.",
                &["proxy", "type", "direction"],
            ),
            enabled: gauge(
                "chaos_proxy_enabled",
                "1 when the proxy accepts connections, 0 when it is down.",
                &["proxy"],
            ),
        };
        for c in [&m.connections_total, &m.received_bytes, &m.sent_bytes] {
            m.registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        for g in [&m.connections_active, &m.toxics_active, &m.enabled] {
            m.registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
        }
        m
    }

    /// The handle for one proxy.
    pub fn for_proxy(self: &Arc<Self>, proxy: &str) -> ProxyMetrics {
        ProxyMetrics {
            metrics: Arc::clone(self),
            proxy: proxy.to_string(),
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The metrics of one proxy, emitted with their trace events.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    metrics: Arc<Metrics>,
    proxy: String,
}

impl ProxyMetrics {
    /// A client connected.
    pub fn connection_opened(&self, connection: u64) {
        tracing::debug!(proxy = %self.proxy, connection, "connection opened");
        self.metrics
            .connections_total
            .with_label_values(&[&self.proxy])
            .inc();
        self.metrics
            .connections_active
            .with_label_values(&[&self.proxy])
            .inc();
    }

    /// A client connection ended.
    pub fn connection_closed(&self, connection: u64) {
        tracing::debug!(proxy = %self.proxy, connection, "connection closed");
        self.metrics
            .connections_active
            .with_label_values(&[&self.proxy])
            .dec();
    }

    /// `n` bytes read from the source of `direction`.
    pub fn bytes_received(&self, direction: Stream, n: usize) {
        self.metrics
            .received_bytes
            .with_label_values(&[&self.proxy, direction.as_str()])
            .inc_by(n as u64);
    }

    /// The (received, sent) byte counters of `direction`, resolved once so that a
    /// connection's data path does not look its labels up on every read.
    pub fn byte_counters(
        &self,
        direction: Stream,
    ) -> (prometheus::IntCounter, prometheus::IntCounter) {
        let labels = [self.proxy.as_str(), direction.as_str()];
        (
            self.metrics.received_bytes.with_label_values(&labels),
            self.metrics.sent_bytes.with_label_values(&labels),
        )
    }

    /// `n` bytes written to the destination of `direction`.
    pub fn bytes_sent(&self, direction: Stream, n: usize) {
        self.metrics
            .sent_bytes
            .with_label_values(&[&self.proxy, direction.as_str()])
            .inc_by(n as u64);
    }

    /// The proxy went up or down.
    pub fn set_enabled(&self, enabled: bool) {
        tracing::info!(proxy = %self.proxy, enabled, "proxy state");
        self.metrics
            .enabled
            .with_label_values(&[&self.proxy])
            .set(i64::from(enabled));
    }

    /// The toxics changed; records the count per type and direction.
    pub fn set_toxics(&self, toxics: &[ToxicSpec]) {
        tracing::info!(proxy = %self.proxy, toxics = ?toxics.iter().map(|t| &t.name).collect::<Vec<_>>(), "toxics changed");
        for ty in TOXIC_TYPES {
            for dir in [Stream::Upstream, Stream::Downstream] {
                let n = toxics
                    .iter()
                    .filter(|t| t.kind.type_name() == ty && t.stream == dir)
                    .count();
                self.metrics
                    .toxics_active
                    .with_label_values(&[&self.proxy, ty, dir.as_str()])
                    .set(n as i64);
            }
        }
    }

    /// The proxy was deleted: its gauges go to 0 so a scrape does not report a ghost.
    pub fn forget(&self) {
        self.set_toxics(&[]);
        self.metrics
            .enabled
            .with_label_values(&[&self.proxy])
            .set(0);
    }
}
