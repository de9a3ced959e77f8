//! Prometheus metrics of the box office, written down once in `system/METRICS.md` and
//! registered here in one [`Metrics`] registry that `GET /metrics` renders (a test holds the
//! two equal). Labels are bounded: routes are matched patterns (`/v1/holds/{id}`), results and
//! strategies are small enums; never raw paths, user, round or seat ids.
//!
//! Counters and histograms with known label values are created at zero when the registry is
//! built, so that `rate()` and dashboards see a series before the first event. Gauges that
//! describe shared state (seats by state, the outbox backlog, the pool, dependencies) are
//! set by the `/metrics` handler ([`crate::api::ops::metrics`]) when it is scraped, at most
//! once per second ([`MetricSet::refresh_due`]); this module reads no store.
//!
//! [`HttpMetrics`] (in `http.rs`) keeps the request series of each served route resolved, off
//! the per-request path. The tests hold `system/METRICS.md` and the registry equal with a
//! parser that lives in test support (`system/tests/it/support/metrics_spec.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The share of one database backend's time the seats-by-state count may take
/// ([`Metrics::seat_count`]): 2 %.
pub const SEAT_COUNT_BUDGET: f64 = 0.02;

/// The share of one database backend's time the oversold audit may take
/// ([`Metrics::oversold_audit`]): 5 %. It groups every live held seat, so its cost grows with
/// the seats held and sold (25 ms a run with ~12,000 live at 400 buyers/s); on a sold-out
/// venue of 100,000 seats, once a second per instance would be most of a core.
pub const OVERSOLD_AUDIT_BUDGET: f64 = 0.05;

/// A periodic database read whose cost grows with a table, held to a share of one backend's
/// time: after a run that took `d`, the next is due `d ÷ share` later (on a small table that
/// is sooner than its caller's own period, so it runs every time). A run that failed does
/// not push the next one back: a timeout says nothing about the read's cost.
#[derive(Debug, Clone)]
pub struct Budget {
    share: f64,
    next: Arc<Mutex<Option<Instant>>>,
}

impl Budget {
    /// A read allowed `share` (0–1) of one backend.
    pub fn new(share: f64) -> Budget {
        Budget {
            share,
            next: Arc::new(Mutex::new(None)),
        }
    }

    /// True when the read may run now.
    pub fn due(&self) -> bool {
        let next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        next.is_none_or(|at| Instant::now() >= at)
    }

    /// Records that a run started at `started` has ended.
    pub fn done(&self, started: Instant, succeeded: bool) {
        let next = succeeded.then(|| started + started.elapsed().div_f64(self.share));
        *self.next.lock().unwrap_or_else(|p| p.into_inner()) = next;
    }
}

/// Every metric the service emits (see `system/METRICS.md` for the table), behind one `Arc`:
/// handlers clone the application state on every request, and a clone of this is one atomic
/// increment rather than one per metric. Fields are reached through `Deref` ([`MetricSet`]).
#[derive(Debug, Clone)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;
    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

/// The metric families of [`Metrics`].
#[derive(Debug)]
pub struct MetricSet {
    registry: Registry,
    /// HTTP requests by route, method and status class (`2xx`…).
    pub http_requests: IntCounterVec,
    /// HTTP request duration by route and method, seconds.
    pub http_duration: HistogramVec,
    /// Hold attempts by result (`placed`, `unavailable`, `contention`, `rejected`, `error`) and strategy.
    pub holds: IntCounterVec,
    /// Seats taken by placed holds, by strategy.
    pub seats_held: IntCounterVec,
    /// Seats of bookings confirmed (paid), by strategy.
    pub seats_sold: IntCounterVec,
    /// Seats of all rounds by state (`available`, `held`, `sold`), read from the database.
    pub seats: IntGaugeVec,
    /// Attempts a strategy threw away and retried.
    pub strategy_retries: IntCounterVec,
    /// Coupon claims by result (`claimed`, `sold_out`, `already_claimed`, `contention`, `rejected`, `error`) and strategy.
    pub coupon_claims: IntCounterVec,
    /// Booking transitions by result (`created`, `confirmed`, `cancelled`, `expired`, `declined`).
    pub bookings: IntCounterVec,
    /// Holds and bookings expired by the reaper, by kind.
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
    /// Time spent waiting for a lock, by result (`acquired`, `timeout`, `error`), seconds.
    pub lock_wait: HistogramVec,
    /// Time a lock was held, from acquisition to release, seconds.
    pub lock_hold: Histogram,
    /// Pool connections by state (`in_use`, `idle`, `max`).
    pub db_pool_connections: IntGaugeVec,
    /// Time a write transaction waits for its connection, seconds: the pool on PostgreSQL, the
    /// turn at the write lock (in front of the only write connection) on SQLite.
    pub db_acquire: Histogram,
    /// Holds decided together by one group commit of `atomic` holds (a batch: one transaction
    /// on SQLite, one statement per round and kind of request on PostgreSQL).
    pub hold_batch: Histogram,
    /// Outbox rows the relay published (acknowledged by the broker).
    pub outbox_published: IntCounter,
    /// Outbox rows whose publication failed (retried later).
    pub outbox_publish_failures: IntCounter,
    /// Outbox rows not yet published.
    pub outbox_backlog: IntGauge,
    /// Age of the oldest unpublished outbox row, seconds (0 when none).
    pub outbox_oldest_age: Gauge,
    /// Seconds from an outbox row's creation to the broker's acknowledgement.
    pub outbox_relay_lag: Histogram,
    /// Duration of one produce (send until acknowledged), by logical topic, seconds.
    pub kafka_produce: HistogramVec,
    /// Messages behind the partitions' high watermarks, by consumer.
    pub consumer_lag: IntGaugeVec,
    /// Events consumed by consumer (`ledger`, `notifier`) and result (`applied`, `duplicate`;
    /// `reconciled`: applied by the ledger from the outbox, not received from the broker in time).
    pub events_consumed: IntCounterVec,
    /// Seconds from an event's state change (its `at`) to its effect in a consumer.
    pub event_lag: HistogramVec,
    /// Open `GET /v1/me/notifications` streams.
    pub sse_connections: IntGauge,
    /// Open `GET /v1/rounds/{id}/seats/stream` streams.
    pub seat_streams: IntGauge,
    /// Seat changes published to the rounds' seat streams, by state (`held`, `released`,
    /// `sold`).
    pub seat_changes: IntCounterVec,
    /// Events written to seat streams, by kind (`snapshot`, `change`).
    pub seat_stream_events: IntCounterVec,
    /// Calls to the payment provider by operation (`charge`, `refund`) and outcome.
    pub payments: IntCounterVec,
    /// Duration of calls to the payment provider by operation, seconds.
    pub payment_duration: HistogramVec,
    /// 1 when a dependency answered its last check, 0 when not.
    pub dependency_up: IntGaugeVec,
    /// Tasks alive in the process's async runtime, read at scrape.
    pub runtime_tasks: IntGauge,
    /// Admission past capacity: refusals, slots in use, the queue and its wait
    /// (see [`crate::api::admission`]).
    pub admission: crate::api::admission::AdmissionMetrics,
    /// When the scrape-time gauges were last refreshed.
    refreshed: Arc<Mutex<Option<Instant>>>,
    /// The seats-by-state count reads every seat, so its cost grows with the inventory (59 ms
    /// a run at 100,000 seats under a sale): held to [`SEAT_COUNT_BUDGET`], checked on a
    /// refresh (see [`Metrics::refresh_due`]).
    pub seat_count: Budget,
    /// The oversold audit (the reaper's), held to [`OVERSOLD_AUDIT_BUDGET`].
    pub oversold_audit: Budget,
}

/// Latency buckets, seconds (0.5 ms to 10 s; 0.25 s is the latency SLO's threshold).
/// Holds per group commit: one alone up to the writers' largest batch (64).
const HOLD_BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Hold results, as counted by `boxoffice_holds_total`.
pub const HOLD_RESULTS: &[&str] = &["placed", "unavailable", "contention", "rejected", "error"];
/// Coupon claim results.
pub const COUPON_RESULTS: &[&str] = &[
    "claimed",
    "sold_out",
    "already_claimed",
    "contention",
    "rejected",
    "error",
];
/// Booking transitions.
pub const BOOKING_RESULTS: &[&str] = &["created", "confirmed", "cancelled", "expired", "declined"];
/// Lock operation results.
pub const LOCK_RESULTS: &[&str] = &[
    "acquired", "timeout", "released", "lost", "error", "database",
];
/// Payment outcomes by operation.
pub const PAYMENT_OUTCOMES: &[(&str, &[&str])] = &[
    (
        "charge",
        &["captured", "declined", "unavailable", "rejected"],
    ),
    ("refund", &["refunded", "unavailable", "rejected"]),
];
/// Kafka consumers.
pub const CONSUMERS: &[&str] = &["ledger", "notifier"];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let m = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(m.clone())).expect("unique");
    m
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let m = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(m.clone())).expect("unique");
    m
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let m = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    registry.register(Box::new(m.clone())).expect("unique");
    m
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    registry.register(Box::new(m.clone())).expect("unique");
    m
}

/// A counter without labels (one series).
fn single_counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("valid metric"))
}

/// A gauge without labels (one series).
fn single_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric"))
}

/// A floating-point gauge without labels (one series).
fn single_float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    register(registry, Gauge::new(name, help).expect("valid metric"))
}

/// A histogram without labels (one series), with the latency [`BUCKETS`].
fn single_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(BUCKETS.to_vec());
    register(registry, Histogram::with_opts(opts).expect("valid metric"))
}

impl Metrics {
    /// Creates and registers every metric, with `strategy` as the strategy label of the
    /// series created at zero.
    pub fn new(strategy: &str) -> Self {
        let r = Registry::new();
        let m = MetricSet {
            http_requests: counter(
                &r,
                "boxoffice_http_requests_total",
                "HTTP requests by route, method and status class.",
                &["route", "method", "status_class"],
            ),
            http_duration: histogram(
                &r,
                "boxoffice_http_request_duration_seconds",
                "HTTP request duration in seconds.",
                &["route", "method"],
            ),
            holds: counter(
                &r,
                "boxoffice_holds_total",
                "Hold attempts by result and strategy.",
                &["result", "strategy"],
            ),
            seats_held: counter(
                &r,
                "boxoffice_seats_held_total",
                "Seats taken by placed holds, by strategy.",
                &["strategy"],
            ),
            seats_sold: counter(
                &r,
                "boxoffice_seats_sold_total",
                "Seats of bookings confirmed by a captured payment, by strategy.",
                &["strategy"],
            ),
            seats: gauge(
                &r,
                "boxoffice_seats",
                "Seats of all rounds by state (available, held, sold), read from the database at scrape (at most once a second; less often on a large inventory, within 2 % of a backend).",
                &["state"],
            ),
            strategy_retries: counter(
                &r,
                "boxoffice_strategy_retries_total",
                "Attempts thrown away and retried, by operation and strategy.",
                &["operation", "strategy"],
            ),
            coupon_claims: counter(
                &r,
                "boxoffice_coupon_claims_total",
                "Coupon claims by result and strategy.",
                &["result", "strategy"],
            ),
            bookings: counter(
                &r,
                "boxoffice_bookings_total",
                "Booking transitions by result.",
                &["result"],
            ),
            holds_expired: counter(
                &r,
                "boxoffice_reaper_expired_total",
                "Holds and bookings expired by the reaper, by kind.",
                &["kind"],
            ),
            oversold_seats: single_gauge(&r, "boxoffice_oversold_seats", "Seats claimed by more than one live hold or booking, according to the database. Must be 0."),
            build_info: gauge(
                &r,
                "boxoffice_build_info",
                "Build information; the value is always 1.",
                &["version", "strategy"],
            ),
            cache_requests: counter(
                &r,
                "boxoffice_cache_requests_total",
                "Cache lookups by cache and result (hit, miss, error).",
                &["cache", "result"],
            ),
            locks: counter(
                &r,
                "boxoffice_locks_total",
                "Lock operations of the lock-based strategies by result.",
                &["result"],
            ),
            lock_wait: histogram(
                &r,
                "boxoffice_lock_wait_seconds",
                "Time spent waiting for a lock, by result (acquired, timeout, error, database).",
                &["result"],
            ),
            lock_hold: single_histogram(&r, "boxoffice_lock_hold_seconds", "Time a lock was held, from acquisition to release."),
            db_pool_connections: gauge(
                &r,
                "boxoffice_db_pool_connections",
                "Database pool connections by state (in_use, idle, max), read at scrape.",
                &["state"],
            ),
            db_acquire: single_histogram(&r, "boxoffice_db_acquire_seconds", "Time a write transaction waits for its connection: the pool on PostgreSQL, the turn at the write lock on SQLite."),
            hold_batch: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("boxoffice_hold_batch_holds", "Holds decided together by one group commit of atomic holds.")
                        .buckets(HOLD_BATCH_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            outbox_published: single_counter(&r, "boxoffice_outbox_published_total", "Outbox rows published to Kafka and acknowledged."),
            outbox_publish_failures: single_counter(&r, "boxoffice_outbox_publish_failures_total", "Outbox rows whose publication failed; they are retried."),
            outbox_backlog: single_gauge(&r, "boxoffice_outbox_backlog", "Outbox rows not yet published, read at scrape."),
            outbox_oldest_age: single_float_gauge(&r, "boxoffice_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox row (0 when none), read at scrape."),
            outbox_relay_lag: single_histogram(&r, "boxoffice_outbox_relay_lag_seconds", "Seconds from an outbox row's creation to the broker's acknowledgement."),
            kafka_produce: histogram(
                &r,
                "boxoffice_kafka_produce_duration_seconds",
                "Duration of one produce, from send to the broker's acknowledgement, by logical topic.",
                &["topic"],
            ),
            consumer_lag: gauge(
                &r,
                "boxoffice_kafka_consumer_lag_messages",
                "Messages between a consumer's position and the high watermark, summed over its partitions.",
                &["consumer"],
            ),
            events_consumed: counter(
                &r,
                "boxoffice_events_consumed_total",
                "Kafka events consumed by consumer and result (applied, duplicate; reconciled: applied from the outbox, not received from the broker in time).",
                &["consumer", "result"],
            ),
            event_lag: histogram(
                &r,
                "boxoffice_event_lag_seconds",
                "Seconds from a state change to its effect in a Kafka consumer (outbox, relay, broker, consumer).",
                &["consumer"],
            ),
            sse_connections: single_gauge(&r, "boxoffice_sse_connections", "Open notification streams (Server-Sent Events)."),
            seat_streams: single_gauge(&r, "boxoffice_seat_stream_connections", "Open seat streams of rounds (Server-Sent Events)."),
            seat_changes: counter(
                &r,
                "boxoffice_seat_changes_published_total",
                "Seat changes published to the rounds' seat streams, by state (held, released, sold).",
                &["state"],
            ),
            seat_stream_events: counter(
                &r,
                "boxoffice_seat_stream_events_total",
                "Events written to seat streams, by kind (snapshot, change).",
                &["kind"],
            ),
            payments: counter(
                &r,
                "boxoffice_payments_total",
                "Calls to the payment provider by operation (charge, refund) and outcome.",
                &["operation", "outcome"],
            ),
            payment_duration: histogram(
                &r,
                "boxoffice_payment_duration_seconds",
                "Duration of calls to the payment provider by operation.",
                &["operation"],
            ),
            dependency_up: gauge(
                &r,
                "boxoffice_dependency_up",
                "1 when a dependency (database, payments, redis, kafka) answered its last check, else 0.",
                &["dependency"],
            ),
            runtime_tasks: single_gauge(
                &r,
                "boxoffice_runtime_alive_tasks",
                "Tasks alive in the process's async runtime, read at scrape.",
            ),
            admission: crate::api::admission::AdmissionMetrics {
                refused: counter(
                    &r,
                    "boxoffice_admission_refused_total",
                    "Requests refused with 503 overloaded past capacity, by reason (queue_full: refused on arrival; timeout: waited the whole budget).",
                    &["reason"],
                ),
                in_flight: single_gauge(&r, "boxoffice_admission_in_flight", "Limited requests running (holding an admission slot)."),
                queued: single_gauge(&r, "boxoffice_admission_queued", "Limited requests waiting for an admission slot."),
                wait: single_histogram(&r, "boxoffice_admission_wait_seconds", "How long a request that had to queue waited for an admission slot (admitted or timed out)."),
            },
            refreshed: Arc::new(Mutex::new(None)),
            seat_count: Budget::new(SEAT_COUNT_BUDGET),
            oversold_audit: Budget::new(OVERSOLD_AUDIT_BUDGET),
            registry: r,
        };
        // The process's own resources (resident memory, open descriptors, threads, CPU):
        // what a soak watches for leaks.
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector registers once");
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), strategy])
            .set(1);
        m.preinitialise(strategy);
        Metrics(Arc::new(m))
    }
}

impl MetricSet {
    /// Creates the series whose label values are known in advance, at zero.
    fn preinitialise(&self, strategy: &str) {
        for r in HOLD_RESULTS {
            self.holds.with_label_values(&[r, strategy]);
        }
        for r in COUPON_RESULTS {
            self.coupon_claims.with_label_values(&[r, strategy]);
        }
        for op in ["hold", "coupon_claim"] {
            self.strategy_retries.with_label_values(&[op, strategy]);
        }
        self.seats_held.with_label_values(&[strategy]);
        self.seats_sold.with_label_values(&[strategy]);
        for r in BOOKING_RESULTS {
            self.bookings.with_label_values(&[r]);
        }
        for k in ["hold", "booking"] {
            self.holds_expired.with_label_values(&[k]);
        }
        for c in [crate::cache::AVAILABILITY, crate::cache::EVENT] {
            for r in crate::cache::RESULTS {
                self.cache_requests.with_label_values(&[c, r]);
            }
        }
        for r in LOCK_RESULTS {
            self.locks.with_label_values(&[r]);
        }
        for r in crate::api::admission::Refusal::ALL {
            self.admission.refused.with_label_values(&[r.as_str()]);
        }
        for r in ["acquired", "timeout", "error", "database"] {
            self.lock_wait.with_label_values(&[r]);
        }
        for t in [
            crate::store::outbox::BOOKING_TOPIC,
            crate::store::outbox::COUPON_TOPIC,
        ] {
            self.kafka_produce.with_label_values(&[t]);
        }
        for c in CONSUMERS {
            self.consumer_lag.with_label_values(&[c]);
            self.event_lag.with_label_values(&[c]);
            for r in ["applied", "duplicate"] {
                self.events_consumed.with_label_values(&[c, r]);
            }
        }
        self.events_consumed
            .with_label_values(&["ledger", "reconciled"]);
        for state in crate::notify::SeatState::ALL {
            self.seat_changes.with_label_values(&[state.as_str()]);
        }
        for kind in ["snapshot", "change"] {
            self.seat_stream_events.with_label_values(&[kind]);
        }
        for (op, outcomes) in PAYMENT_OUTCOMES {
            self.payment_duration.with_label_values(&[op]);
            for o in *outcomes {
                self.payments.with_label_values(&[op, o]);
            }
        }
    }

    /// Counts one call to the payment provider.
    pub fn payment(&self, operation: &str, outcome: &str, elapsed: Duration) {
        self.payments.with_label_values(&[operation, outcome]).inc();
        self.payment_duration
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }

    /// Sets a dependency's up gauge.
    pub fn dependency(&self, name: &str, up: bool) {
        self.dependency_up
            .with_label_values(&[name])
            .set(i64::from(up));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The registry's metric families (for tests and other exporters).
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// True (and the clock reset) when the scrape-time gauges are due: at most once a second,
    /// so that several scrapers do not multiply the database reads.
    pub fn refresh_due(&self) -> bool {
        let mut last = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(t) if t.elapsed() < Duration::from_secs(1) => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }
}

/// An open notification stream: counted while it lives.
#[derive(Debug)]
pub struct SseGuard(IntGauge);

impl SseGuard {
    /// Counts a new notification stream until the guard drops.
    pub fn new(metrics: &Metrics) -> Self {
        metrics.sse_connections.inc();
        SseGuard(metrics.sse_connections.clone())
    }

    /// Counts a new seat stream until the guard drops.
    pub fn seats(metrics: &Metrics) -> Self {
        metrics.seat_streams.inc();
        SseGuard(metrics.seat_streams.clone())
    }
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

mod http;

pub use http::HttpMetrics;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budgeted_read_waits_its_cost_divided_by_its_share() {
        let b = Budget::new(0.05);
        assert!(b.due(), "the first run is due at once");
        // A run that took 20 ms may run again 20 ms ÷ 5 % = 400 ms after it started.
        let started = Instant::now() - Duration::from_millis(20);
        b.done(started, true);
        assert!(!b.due());
        let next = b.next.lock().unwrap().unwrap();
        let wait = next - started;
        assert!(
            wait >= Duration::from_millis(400) && wait < Duration::from_secs(2),
            "{wait:?}"
        );
        // A failed run says nothing about the cost: the next is due at once.
        b.done(Instant::now(), false);
        assert!(b.due());
        // A cheap run is due again right away (the caller's own period decides).
        b.done(Instant::now(), true);
        let cheap = b.next.lock().unwrap().unwrap();
        assert!(cheap <= Instant::now() + Duration::from_millis(5));
    }
}
