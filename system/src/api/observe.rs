//! The observing middleware: every request counted and timed by matched route
//! (`boxoffice_http_requests_total`, `boxoffice_http_request_duration_seconds`), run inside an
//! `http.request` span (ECS fields, the caller's W3C trace context as parent when tracing is
//! on), server faults logged once, and every request logged at DEBUG under
//! `boxoffice::access` (`RUST_LOG=info,boxoffice::access=debug` to see them).
//!
//! It wraps every request, so it is a plain tower [`Service`] rather than
//! `axum::middleware::from_fn` (which clones the inner route and boxes a `Next` for each
//! request), and it allocates nothing of its own: its future is a named type around the route's
//! (no box), the route is the router's shared [`MatchedPath`], the metric children come from
//! [`HttpMetrics`]' table, the span's fields are borrowed, and the span is entered around each
//! poll without being cloned.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::metrics::HttpMetrics;

/// The `route` label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Wraps routes in [`Observe`].
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    metrics: Arc<HttpMetrics>,
}

impl ObserveLayer {
    /// Counts requests in `metrics` (whose table should know the router's routes).
    pub fn new(metrics: Arc<HttpMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// A route wrapped by [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<HttpMetrics>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let method = req.method().clone();
        let span = {
            let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            let span = tracing::info_span!(
                "http.request",
                otel.name = tracing::field::Empty,
                otel.kind = "server",
                http.request.method = method.as_str(),
                http.route = route,
                url.path = req.uri().path(),
                http.response.status_code = tracing::field::Empty,
            );
            if crate::telemetry::tracing_enabled() && !span.is_disabled() {
                span.record("otel.name", format!("{method} {route}"));
                crate::telemetry::adopt_http_parent(&span, req.headers());
            }
            span
        };
        let start = Instant::now();
        // A route's `call` only sets its future up: the handler runs inside the span when polled.
        let inner = self.inner.call(req);
        ObserveFuture {
            inner,
            done: Some(Done {
                span,
                start,
                matched,
                method,
                metrics: self.metrics.clone(),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Observe`]'s future: the route's own future polled inside the request span, then the
    /// request counted and logged. A named type rather than a boxed `async` block, so that a
    /// request costs no allocation and the route's future is not moved into a box.
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        done: Option<Done>,
    }
}

/// What [`ObserveFuture`] needs once the route has answered.
struct Done {
    span: tracing::Span,
    start: Instant,
    matched: Option<MatchedPath>,
    method: http::Method,
    metrics: Arc<HttpMetrics>,
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let done = this
            .done
            .as_ref()
            .expect("ObserveFuture polled after it finished");
        let Ok(res) = std::task::ready!(done.span.in_scope(|| this.inner.poll(cx)));
        let done = this.done.take().expect("checked above");
        done.finish(&res);
        Poll::Ready(Ok(res))
    }
}

impl Done {
    /// Counts the request and logs it (a server fault at ERROR, anything else at DEBUG under
    /// `boxoffice::access`).
    fn finish(self, res: &Response) {
        let elapsed = self.start.elapsed();
        let status = res.status();
        let route = self.matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
        self.metrics.observe(route, &self.method, status, elapsed);
        let span = self.span;
        let code = status.as_u16();
        // The exporter reads the status from the span; the log lines carry it themselves, which
        // spares every request a lookup of its span and a second encoding pass when nothing
        // exports spans (the default).
        if crate::telemetry::tracing_enabled() {
            span.record("http.response.status_code", code);
        }
        let error = res.extensions().get::<ApiError>();
        // A refusal past capacity is the service working as designed, counted in
        // `boxoffice_admission_refused_total`: one error line per shed request would
        // flood the logs exactly when the service is busiest.
        let shed = error.is_some_and(|e| e.code == super::admission::OVERLOADED);
        if status.is_server_error() && !shed {
            let detail = error.map(|e| e.message.as_str()).unwrap_or_default();
            tracing::error!(
                parent: &span,
                event.category = "web",
                event.outcome = "failure",
                http.response.status_code = code,
                error.message = %detail,
                "request failed"
            );
        } else {
            tracing::event!(
                target: "boxoffice::access",
                parent: &span,
                tracing::Level::DEBUG,
                event.dataset = "boxoffice.access",
                event.category = "web",
                http.response.status_code = code,
                event.duration = elapsed.as_nanos() as u64,
                "request served"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::metrics::Metrics;
    use crate::telemetry::test_writer::Buffer as Lines;
    use crate::telemetry::{log_filter, EcsLayer};

    fn app(metrics: &Metrics) -> Router {
        let table = HttpMetrics::new(metrics.clone(), ["/items/{id}", UNMATCHED]);
        Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .route(
                "/boom",
                get(|| async { ApiError::internal("the disk is on fire") }),
            )
            .layer(ObserveLayer::new(Arc::new(table)))
    }

    async fn get_status(app: &Router, path: &str) -> u16 {
        let req = Request::get(path).body(Body::empty()).unwrap();
        app.clone().oneshot(req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn every_request_is_counted_by_route_pattern_in_and_outside_the_table() {
        let metrics = Metrics::new("atomic");
        let app = app(&metrics);
        assert_eq!(get_status(&app, "/items/1").await, 200);
        assert_eq!(get_status(&app, "/items/2").await, 200);
        assert_eq!(get_status(&app, "/boom").await, 500);
        let requests = |route: &str, class: &str| {
            metrics
                .http_requests
                .with_label_values(&[route, "GET", class])
                .get()
        };
        assert_eq!(requests("/items/{id}", "2xx"), 2);
        // `/boom` is not in the table: counted through `with_label_values`, the same series.
        assert_eq!(requests("/boom", "5xx"), 1);
        let durations = |route: &str| {
            metrics
                .http_duration
                .with_label_values(&[route, "GET"])
                .get_sample_count()
        };
        assert_eq!(durations("/items/{id}"), 2);
        assert_eq!(durations("/boom"), 1);
        let text = metrics.render();
        assert!(
            !text.contains("route=\"/items/{id}\",status_class=\"5xx\""),
            "a class no request produced has no series: {text}"
        );
    }

    #[tokio::test]
    async fn access_lines_carry_the_request_span_and_a_server_fault_is_logged_once() {
        let metrics = Metrics::new("atomic");
        let app = app(&metrics);
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry()
            .with(log_filter("info,boxoffice::access=debug"))
            .with(EcsLayer::new(lines.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        get_status(&app, "/items/7").await;
        get_status(&app, "/boom").await;
        let lines = lines.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let (served, failed) = (&lines[0], &lines[1]);
        assert_eq!(served["event.dataset"], "boxoffice.access");
        assert_eq!(served["log.level"], "DEBUG");
        assert_eq!(served["http.request.method"], "GET");
        assert_eq!(served["http.route"], "/items/{id}");
        assert_eq!(served["url.path"], "/items/7");
        assert_eq!(served["http.response.status_code"], 200);
        assert!(served["event.duration"].as_u64().is_some(), "{served}");
        assert!(served.get("otel.kind").is_none(), "{served}");
        assert_eq!(failed["log.level"], "ERROR");
        assert_eq!(failed["event.dataset"], "boxoffice.log");
        assert_eq!(failed["error.message"], "the disk is on fire");
        assert_eq!(failed["http.route"], "/boom");
        assert_eq!(failed["http.response.status_code"], 500);
    }

    #[tokio::test]
    async fn at_info_a_served_request_writes_nothing() {
        let metrics = Metrics::new("atomic");
        let app = app(&metrics);
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry()
            .with(log_filter("info"))
            .with(EcsLayer::new(lines.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        get_status(&app, "/items/7").await;
        assert!(lines.lines().is_empty());
    }
}
