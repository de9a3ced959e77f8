//! Admission: which requests the box office takes on, and which it refuses at once.
//!
//! - **While the database is unreachable** ([`Admission`]): requests that need it are refused at
//!   once with 503 `database_unavailable` and `Retry-After` (see [`crate::store::health`])
//!   instead of queueing for a connection until the pool's acquire timeout. Health, metrics,
//!   the OpenAPI document and the reads the catalog cache serves (event details and
//!   availability) are let through: they keep working from Redis during the outage.
//! - **Past capacity** ([`Admission`], [`Limiter`]): at most `--max-in-flight` buyer requests run
//!   at once; the others wait in a first-come, first-served queue. New work (a hold, a claim,
//!   a login, a catalog read) that could not start within `--admission-wait-ms` is refused
//!   with 503 `overloaded` and `Retry-After` — at once when the queue already holds more than
//!   that wait can drain, else when its wait runs out. A buyer's next step on what they
//!   already have (book, pay, cancel, release a hold) waits its turn but is never refused:
//!   a sale past its peak finishes the purchases it started instead of dropping them. So
//!   goodput stays near the peak and the excess hears "come back in a second" in
//!   milliseconds, instead of everyone queueing into multi-second latencies (a waiting room,
//!   as large ticket sites run one, without the page).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use prometheus::{Histogram, IntCounterVec, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::state::AppState;

/// Routes that work without the database (or answer from the cache first).
const WITHOUT_DATABASE: [&str; 6] = [
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/v1/events/{id}",
    "/v1/rounds/{id}/availability",
];

fn needs_database(method: &Method, path: &str) -> bool {
    !(method == Method::GET && WITHOUT_DATABASE.contains(&path))
}

/// The error code of a request refused past capacity.
pub const OVERLOADED: &str = "overloaded";

/// Why a request was refused past capacity (the `reason` label of
/// `boxoffice_admission_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue already held more than the wait budget can drain: refused on arrival.
    QueueFull,
    /// It queued, and its wait ran out before a slot freed.
    Timeout,
}

impl Refusal {
    /// Every reason, as the metric's label values.
    pub const ALL: [Refusal; 2] = [Refusal::QueueFull, Refusal::Timeout];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::Timeout => "timeout",
        }
    }
}

/// What a request is to admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not limited: health, metrics, admin and audit routes, streams, cache-served reads.
    Free,
    /// New work: may be refused past capacity.
    Entry,
    /// The next step of a purchase already under way: waits its turn, never refused.
    Continuation,
}

/// The series admission keeps (registered in [`crate::metrics`]).
#[derive(Debug, Clone)]
pub struct AdmissionMetrics {
    /// Requests refused, by reason.
    pub refused: IntCounterVec,
    /// Requests running (holding a slot).
    pub in_flight: IntGauge,
    /// Requests waiting for a slot.
    pub queued: IntGauge,
    /// How long admitted and timed-out requests waited for a slot, seconds.
    pub wait: Histogram,
}

/// The limiter behind [`Admission`]: a fair semaphore of `max_in_flight` slots, a wait budget,
/// and an estimate of how fast slots free up (a moving average of how long a request holds
/// its slot), from which it tells at once whether a newcomer could start within the budget.
#[derive(Debug)]
pub struct Limiter {
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    max_wait: Duration,
    max_queued: usize,
    queued: AtomicUsize,
    /// Moving average of a slot's holding time, microseconds.
    service_us: Arc<AtomicU64>,
    metrics: AdmissionMetrics,
}

/// A request's slot: freed (and its holding time averaged in) when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    since: Instant,
    service_us: Arc<AtomicU64>,
    in_flight: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let took = self.since.elapsed().as_micros().min(u128::from(u32::MAX)) as u64;
        // An exponential moving average with weight 1/16; a lost update between two
        // concurrent drops only skips one sample.
        let old = self.service_us.load(Ordering::Relaxed);
        self.service_us
            .store(old - old / 16 + took / 16, Ordering::Relaxed);
        self.in_flight.dec();
    }
}

/// What a slot is assumed to take before any request has finished, microseconds.
const INITIAL_SERVICE_US: u64 = 2_000;

impl Limiter {
    /// A limiter of `max_in_flight` slots (at least 1) whose new work waits at most
    /// `max_wait`, with at most `max_queued` waiting.
    pub fn new(
        max_in_flight: usize,
        max_wait: Duration,
        max_queued: usize,
        metrics: AdmissionMetrics,
    ) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            max_wait,
            max_queued,
            queued: AtomicUsize::new(0),
            service_us: Arc::new(AtomicU64::new(INITIAL_SERVICE_US)),
            metrics,
        }
    }

    /// How long a newcomer behind `queued` others would wait, by the moving average.
    fn expected_wait(&self, queued: usize) -> Duration {
        let per_slot = self.service_us.load(Ordering::Relaxed);
        Duration::from_micros((queued as u64 + 1) * per_slot / self.max_in_flight as u64)
    }

    /// A slot for a request of `class` (not [`Class::Free`]), or why not.
    pub async fn admit(&self, class: Class) -> Result<Slot, Refusal> {
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self.wait(class).await?,
        };
        self.metrics.in_flight.inc();
        Ok(Slot {
            _permit: permit,
            since: Instant::now(),
            service_us: Arc::clone(&self.service_us),
            in_flight: self.metrics.in_flight.clone(),
        })
    }

    async fn wait(&self, class: Class) -> Result<OwnedSemaphorePermit, Refusal> {
        let queued = self.queued.load(Ordering::Relaxed);
        let refuse_now = queued >= self.max_queued || self.expected_wait(queued) > self.max_wait;
        if class == Class::Entry && refuse_now {
            self.metrics
                .refused
                .with_label_values(&[Refusal::QueueFull.as_str()])
                .inc();
            return Err(Refusal::QueueFull);
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.metrics.queued.inc();
        let started = Instant::now();
        let acquire = Arc::clone(&self.slots).acquire_owned();
        let got = if class == Class::Entry {
            tokio::time::timeout(self.max_wait, acquire).await.ok()
        } else {
            Some(acquire.await)
        };
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.metrics.queued.dec();
        self.metrics.wait.observe(started.elapsed().as_secs_f64());
        match got {
            // The semaphore is never closed.
            Some(Ok(permit)) => Ok(permit),
            _ => {
                self.metrics
                    .refused
                    .with_label_values(&[Refusal::Timeout.as_str()])
                    .inc();
                Err(Refusal::Timeout)
            }
        }
    }
}

/// Routes never limited although they start with `/v1/`: the admin and audit routes (the
/// lab's checker reads them while a sale runs) and the long-lived streams.
const UNLIMITED: [&str; 2] = ["/v1/me/notifications", "/v1/rounds/{id}/seats/stream"];

/// Routes on which a buyer continues a purchase under way.
const CONTINUATIONS: [&str; 4] = [
    "/v1/bookings",
    "/v1/bookings/{id}/pay",
    "/v1/bookings/{id}/cancel",
    "/v1/holds/{id}",
];

/// How admission treats `method` on the matched route `path`.
pub fn classify(method: &Method, path: &str) -> Class {
    // The reads the cache serves are the ones that work without the database.
    if !path.starts_with("/v1/")
        || path.starts_with("/v1/admin/")
        || UNLIMITED.contains(&path)
        || !needs_database(method, path)
    {
        Class::Free
    } else if *method != Method::GET && CONTINUATIONS.contains(&path) {
        Class::Continuation
    } else {
        Class::Entry
    }
}

/// Wraps routes in [`Admission`]: the database gate, then the limit.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    health: crate::store::health::DbHealth,
    limiter: Option<Arc<Limiter>>,
}

impl AdmissionLayer {
    /// Admission as `state` configures it (no limit when `--admission-wait-ms 0`).
    pub fn new(state: &AppState) -> Self {
        Self {
            health: state.db.health().clone(),
            limiter: state.admission.clone(),
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;
    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            health: self.health.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

/// A route behind admission: refused at once with 503 `database_unavailable` while the
/// breaker is open and it needs the database; else, unless it is free of the limit, admitted
/// past the [`Limiter`] or refused with 503 `overloaded`.
///
/// It runs on every request, so it is a plain tower [`Service`] rather than two
/// `axum::middleware::from_fn` layers (each of which clones the route and boxes a `Next` per
/// request): a request free of the limit goes straight to the route's own future.
#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    health: crate::store::health::DbHealth,
    limiter: Option<Arc<Limiter>>,
}

impl<S> Service<Request> for Admission<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        if !self.health.is_up() && needs_database(request.method(), path) {
            let refused = ApiError::database_unavailable().into_response();
            return Either::Right(Box::pin(std::future::ready(Ok(refused))));
        }
        let limited = self
            .limiter
            .as_ref()
            .map(|limiter| (limiter, classify(request.method(), path)))
            .filter(|(_, class)| *class != Class::Free);
        let Some((limiter, class)) = limited else {
            return Either::Left(self.inner.call(request));
        };
        let limiter = Arc::clone(limiter);
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            match limiter.admit(class).await {
                Ok(slot) => {
                    let response = inner.call(request).await;
                    drop(slot);
                    response
                }
                Err(_) => Ok(ApiError::unavailable(
                    OVERLOADED,
                    "the box office is at capacity; retry after the Retry-After delay",
                )
                .into_response()),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> AdmissionMetrics {
        let m = crate::metrics::Metrics::new("atomic");
        m.admission.clone()
    }

    #[test]
    fn new_work_is_limited_and_a_purchase_under_way_is_not_refused() {
        assert_eq!(
            classify(&Method::POST, "/v1/rounds/{id}/holds"),
            Class::Entry
        );
        assert_eq!(
            classify(&Method::GET, "/v1/rounds/{id}/seats"),
            Class::Entry
        );
        assert_eq!(classify(&Method::POST, "/v1/auth/token"), Class::Entry);
        assert_eq!(classify(&Method::POST, "/v1/bookings"), Class::Continuation);
        assert_eq!(
            classify(&Method::POST, "/v1/bookings/{id}/pay"),
            Class::Continuation
        );
        assert_eq!(
            classify(&Method::DELETE, "/v1/holds/{id}"),
            Class::Continuation
        );
        assert_eq!(classify(&Method::GET, "/v1/holds/{id}"), Class::Entry);
        for free in [
            "/health/ready",
            "/metrics",
            "/v1/admin/rounds/{id}/audit",
            "/v1/rounds/{id}/availability",
            "/v1/rounds/{id}/seats/stream",
            "/",
        ] {
            assert_eq!(classify(&Method::GET, free), Class::Free, "{free}");
        }
    }

    #[tokio::test]
    async fn past_capacity_new_work_is_refused_fast_and_continuations_wait() {
        let m = metrics();
        let limiter = Arc::new(Limiter::new(1, Duration::from_millis(50), 1, m.clone()));
        let first = limiter.admit(Class::Entry).await.expect("a free slot");
        assert_eq!(m.in_flight.get(), 1);
        // One may queue; it times out while the slot stays taken.
        let started = Instant::now();
        let waiting = tokio::spawn({
            let limiter = Arc::clone(&limiter);
            async move { limiter.admit(Class::Entry).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(m.queued.get(), 1);
        // The queue is full: the next is refused at once.
        assert_eq!(
            limiter.admit(Class::Entry).await.err(),
            Some(Refusal::QueueFull)
        );
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(waiting.await.unwrap(), Err(Refusal::Timeout));
        assert!(started.elapsed() >= Duration::from_millis(50));
        // A continuation waits past the budget and gets the slot once it frees.
        let continuation = tokio::spawn({
            let limiter = Arc::clone(&limiter);
            async move { limiter.admit(Class::Continuation).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!continuation.is_finished());
        drop(first);
        assert_eq!(continuation.await.unwrap(), Ok(()));
        assert_eq!(m.in_flight.get(), 0);
        assert_eq!(m.queued.get(), 0);
        let refused = |r: Refusal| m.refused.with_label_values(&[r.as_str()]).get();
        assert_eq!(
            (refused(Refusal::QueueFull), refused(Refusal::Timeout)),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn a_queue_longer_than_the_budget_can_drain_is_refused_on_arrival() {
        let limiter = Limiter::new(2, Duration::from_millis(100), 10_000, metrics());
        // Slots have been taking 100 ms each: with two slots, the budget drains two waiters.
        limiter.service_us.store(100_000, Ordering::Relaxed);
        let _a = limiter.admit(Class::Entry).await.unwrap();
        let _b = limiter.admit(Class::Entry).await.unwrap();
        assert_eq!(limiter.expected_wait(0), Duration::from_millis(50));
        assert_eq!(limiter.expected_wait(1), Duration::from_millis(100));
        limiter.queued.store(2, Ordering::Relaxed);
        assert_eq!(
            limiter.admit(Class::Entry).await.err(),
            Some(Refusal::QueueFull)
        );
    }
}
