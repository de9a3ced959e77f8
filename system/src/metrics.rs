//! Prometheus metrics of the box office, registered once in a [`Metrics`] registry that
//! `GET /metrics` renders. Labels are bounded: routes are matched patterns (`/v1/holds/{id}`),
//! never raw paths, user ids or seat ids.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the service emits.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route, method and status class (`2xx`…).
    pub http_requests: IntCounterVec,
    /// HTTP request duration by route and method, seconds.
    pub http_duration: HistogramVec,
    /// Hold attempts by result (`placed`, `unavailable`, `contention`, `rejected`) and strategy.
    pub holds: IntCounterVec,
    /// Attempts a strategy threw away and retried.
    pub strategy_retries: IntCounterVec,
    /// Coupon claims by result (`claimed`, `sold_out`, `already_claimed`, `contention`, `rejected`) and strategy.
    pub coupon_claims: IntCounterVec,
    /// Booking transitions by result (`created`, `confirmed`, `cancelled`, `expired`, `declined`).
    pub bookings: IntCounterVec,
    /// Holds expired by the reaper.
    pub holds_expired: IntCounterVec,
    /// Seats claimed twice according to the database (must stay 0 with a safe strategy).
    pub oversold_seats: IntGauge,
    /// Build information (value 1).
    pub build_info: IntGaugeVec,
    /// Cache lookups by cache (`availability`, `event`) and result (`hit`, `miss`, `error`).
    pub cache_requests: IntCounterVec,
    /// Lock operations of `redis-lock` / `fenced` by result (`acquired`, `timeout`, `released`,
    /// `lost` = the lease expired under its holder, `error`).
    pub locks: IntCounterVec,
    /// Outbox rows the relay published (acknowledged by the broker).
    pub outbox_published: prometheus::IntCounter,
    /// Events consumed by consumer (`ledger`, `notifier`) and result (`applied`, `duplicate`).
    pub events_consumed: IntCounterVec,
    /// Seconds from an event's state change (its `at`) to its effect in a consumer.
    pub event_lag: HistogramVec,
}

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// Creates and registers every metric.
    pub fn new(strategy: &str) -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "boxoffice_http_requests_total",
                "HTTP requests by route, method and status class.",
            ),
            &["route", "method", "status_class"],
        )
        .expect("metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "boxoffice_http_request_duration_seconds",
                "HTTP request duration in seconds.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("metric");
        let holds = IntCounterVec::new(
            Opts::new(
                "boxoffice_holds_total",
                "Hold attempts by result and strategy.",
            ),
            &["result", "strategy"],
        )
        .expect("metric");
        let strategy_retries = IntCounterVec::new(
            Opts::new(
                "boxoffice_strategy_retries_total",
                "Attempts thrown away and retried, by operation and strategy.",
            ),
            &["operation", "strategy"],
        )
        .expect("metric");
        let coupon_claims = IntCounterVec::new(
            Opts::new(
                "boxoffice_coupon_claims_total",
                "Coupon claims by result and strategy.",
            ),
            &["result", "strategy"],
        )
        .expect("metric");
        let bookings = IntCounterVec::new(
            Opts::new("boxoffice_bookings_total", "Booking transitions by result."),
            &["result"],
        )
        .expect("metric");
        let holds_expired = IntCounterVec::new(
            Opts::new(
                "boxoffice_reaper_expired_total",
                "Holds and bookings expired by the reaper, by kind.",
            ),
            &["kind"],
        )
        .expect("metric");
        let oversold_seats = IntGauge::new(
            "boxoffice_oversold_seats",
            "Seats claimed by more than one live hold or booking, according to the database. Must be 0.",
        )
        .expect("metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "boxoffice_build_info",
                "Build information; the value is always 1.",
            ),
            &["version", "strategy"],
        )
        .expect("metric");
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "boxoffice_cache_requests_total",
                "Cache lookups by cache and result (hit, miss, error).",
            ),
            &["cache", "result"],
        )
        .expect("metric");
        let locks = IntCounterVec::new(
            Opts::new(
                "boxoffice_locks_total",
                "Lock operations of the lock-based strategies by result.",
            ),
            &["result"],
        )
        .expect("metric");
        let outbox_published = prometheus::IntCounter::new(
            "boxoffice_outbox_published_total",
            "Outbox rows published to Kafka and acknowledged.",
        )
        .expect("metric");
        let events_consumed = IntCounterVec::new(
            Opts::new(
                "boxoffice_events_consumed_total",
                "Kafka events consumed by consumer and result (applied, duplicate).",
            ),
            &["consumer", "result"],
        )
        .expect("metric");
        let event_lag = HistogramVec::new(
            HistogramOpts::new(
                "boxoffice_event_lag_seconds",
                "Seconds from a state change to its effect in a Kafka consumer (outbox, relay, broker, consumer).",
            )
            .buckets(BUCKETS.to_vec()),
            &["consumer"],
        )
        .expect("metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), strategy])
            .set(1);
        for c in [
            &http_requests,
            &holds,
            &strategy_retries,
            &coupon_claims,
            &bookings,
            &holds_expired,
            &cache_requests,
            &locks,
            &events_consumed,
        ] {
            registry.register(Box::new(c.clone())).expect("register");
        }
        registry
            .register(Box::new(http_duration.clone()))
            .expect("register");
        registry
            .register(Box::new(event_lag.clone()))
            .expect("register");
        registry
            .register(Box::new(outbox_published.clone()))
            .expect("register");
        registry
            .register(Box::new(oversold_seats.clone()))
            .expect("register");
        registry
            .register(Box::new(build_info.clone()))
            .expect("register");
        Self {
            registry,
            http_requests,
            http_duration,
            holds,
            strategy_retries,
            coupon_claims,
            bookings,
            holds_expired,
            oversold_seats,
            build_info,
            cache_requests,
            locks,
            outbox_published,
            events_consumed,
            event_lag,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).unwrap_or_default()
    }
}
