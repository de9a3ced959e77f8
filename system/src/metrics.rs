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
        ] {
            registry.register(Box::new(c.clone())).expect("register");
        }
        registry
            .register(Box::new(http_duration.clone()))
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
