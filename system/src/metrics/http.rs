//! [`HttpMetrics`]: the request counter and duration histogram of each served route, resolved
//! once per route, method and status class rather than on every request.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{Histogram, IntCounter};

use super::Metrics;

/// The HTTP families' children (`boxoffice_http_requests_total`,
/// `boxoffice_http_request_duration_seconds`) resolved once per route, method and status
/// class instead of on every request: `with_label_values` hashes the labels and takes the
/// family's lock, which on a cache hit costs more than the handler.
///
/// The table is built with the router from the routes it serves; each slot is filled on first
/// use, so a series still appears only once a request has produced it (as with
/// `with_label_values`). A route or method outside the table falls back to
/// `with_label_values`.
#[derive(Debug)]
pub struct HttpMetrics {
    metrics: Metrics,
    /// Matched route pattern → its slots; immutable after [`HttpMetrics::new`], so reading it
    /// takes no lock.
    routes: HashMap<Box<str>, RouteSlots>,
}

/// One route's children by method index ([`method_index`]).
#[derive(Debug, Default)]
struct RouteSlots([MethodSlots; METHODS.len()]);

/// One route and method's children: a counter per status class, one histogram.
#[derive(Debug, Default)]
struct MethodSlots {
    requests: [OnceLock<IntCounter>; STATUS_CLASSES.len()],
    duration: OnceLock<Histogram>,
}

/// Methods with a slot; any other method takes the `with_label_values` path.
const METHODS: [http::Method; 7] = [
    http::Method::GET,
    http::Method::POST,
    http::Method::PUT,
    http::Method::DELETE,
    http::Method::PATCH,
    http::Method::HEAD,
    http::Method::OPTIONS,
];

/// The `status_class` label values, by hundreds (`1xx` … `5xx`).
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(method: &http::Method) -> Option<usize> {
    METHODS.iter().position(|m| m == method)
}

/// The index of `status`'s class in [`STATUS_CLASSES`] (anything from 500 on is `5xx`).
fn status_class(status: http::StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

impl HttpMetrics {
    /// A table for `routes` (matched patterns such as `/v1/holds/{id}`, and `unmatched`).
    pub fn new<R: Into<Box<str>>>(metrics: Metrics, routes: impl IntoIterator<Item = R>) -> Self {
        let routes = routes
            .into_iter()
            .map(|r| (r.into(), RouteSlots::default()))
            .collect();
        Self { metrics, routes }
    }

    /// Counts one request of `route` (a matched pattern) and `method` that ended with
    /// `status` after `elapsed`.
    pub fn observe(
        &self,
        route: &str,
        method: &http::Method,
        status: http::StatusCode,
        elapsed: Duration,
    ) {
        let class = status_class(status);
        let slots = self
            .routes
            .get(route)
            .zip(method_index(method))
            .map(|(r, m)| &r.0[m]);
        let Some(slots) = slots else {
            self.metrics
                .http_requests
                .with_label_values(&[route, method.as_str(), STATUS_CLASSES[class]])
                .inc();
            self.metrics
                .http_duration
                .with_label_values(&[route, method.as_str()])
                .observe(elapsed.as_secs_f64());
            return;
        };
        slots.requests[class]
            .get_or_init(|| {
                self.metrics.http_requests.with_label_values(&[
                    route,
                    method.as_str(),
                    STATUS_CLASSES[class],
                ])
            })
            .inc();
        slots
            .duration
            .get_or_init(|| {
                self.metrics
                    .http_duration
                    .with_label_values(&[route, method.as_str()])
            })
            .observe(elapsed.as_secs_f64());
    }
}
