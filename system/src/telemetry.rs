//! Logs and traces.
//!
//! - **Logs**: one JSON object per line with Elastic Common Schema field names (`@timestamp`,
//!   `log.level`, `message`, `service.name`, `trace.id`, `http.request.method`,
//!   `event.dataset`…) on a pipe or file, so that Filebeat → Elasticsearch → Kibana needs no
//!   mapping; a human-readable format on a terminal. `RUST_LOG` filters (default `info`;
//!   [`log_filter`] keeps the per-span cost off the request path when it names only targets
//!   and levels).
//!   [`EcsLayer`] writes the JSON: the fields of the enclosing spans, then the event's own,
//!   renamed by [`ecs_key`] (dotted names are kept, `error` becomes `error.message`, `user_id`
//!   `user.id`, other plain names go under `boxoffice.`). Business events carry
//!   `event.dataset = boxoffice.booking | boxoffice.payment | boxoffice.coupon`; every request
//!   is logged once under `boxoffice.access`; everything else is `boxoffice.log`.
//! - **Traces**: OpenTelemetry over OTLP (HTTP/protobuf), only when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Spans come from `tracing` spans (HTTP request →
//!   handler → payment call, outbox relay, Kafka consumers); the W3C `traceparent` crosses
//!   process boundaries in HTTP headers ([`trace_headers`]), in the outbox row and in Kafka
//!   message headers ([`inject_kafka`] / [`extract_kafka`]), and `trace.id` / `span.id` appear
//!   in every log line written inside a traced span.

use std::collections::HashMap;
use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use rdkafka::message::{BorrowedHeaders, Headers, OwnedHeaders};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// The `service.name` of logs and traces.
pub const SERVICE_NAME: &str = "boxoffice";

/// True once an OTLP exporter is installed: propagation helpers do nothing otherwise.
static TRACING: AtomicBool = AtomicBool::new(false);
/// The tracer provider, kept to flush spans at exit.
static PROVIDER: OnceLock<Mutex<Option<SdkTracerProvider>>> = OnceLock::new();

/// Installs the global subscriber: JSON (ECS) or human-readable logs, and the OpenTelemetry
/// layer when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Safe to call more than once (later calls
/// do nothing). Call [`shutdown`] before exiting to flush spans.
pub fn init(format: LogFormat) {
    let filter = log_filter(&std::env::var("RUST_LOG").unwrap_or_default());
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let otel = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .and_then(|endpoint| match otlp_provider() {
            Ok(provider) => Some((endpoint, provider)),
            Err(e) => {
                eprintln!("OpenTelemetry disabled: {e:#}");
                None
            }
        });
    let otel_layer = otel.as_ref().map(|(_, provider)| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SERVICE_NAME))
            .with_tracked_inactivity(false)
    });
    let ecs = json.then(|| EcsLayer::new(std::io::stderr));
    let pretty = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(ecs)
        .with(pretty)
        .try_init()
        .is_ok();
    if let (true, Some((endpoint, provider))) = (installed, otel) {
        TRACING.store(true, Ordering::Release);
        *PROVIDER.get_or_init(Default::default).lock().expect("lock") = Some(provider);
        tracing::info!(endpoint, "OpenTelemetry traces exported over OTLP/HTTP");
    }
}

/// The filter of a `RUST_LOG` value (`info` when empty or unreadable). Targets and levels
/// only (`info,boxoffice::access=debug`, the usual case) give a static [`Targets`] filter,
/// decided once per callsite; span and field directives (`[http.request]=debug`) need an
/// [`EnvFilter`], which looks every span up in a locked map on each enter, exit and close:
/// on a request with three spans that costs more than the request's metrics.
///
/// [`Targets`]: tracing_subscriber::filter::Targets
pub fn log_filter<S>(spec: &str) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use tracing_subscriber::filter::Targets;
    let spec = spec.trim();
    let spec = if spec.is_empty() { "info" } else { spec };
    let dynamic = spec.contains(['[', '{']);
    if !dynamic {
        if let Ok(targets) = spec.parse::<Targets>() {
            return Box::new(targets);
        }
    }
    Box::new(EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info")))
}

/// Flushes and stops the trace exporter (spans still queued are sent).
pub fn shutdown() {
    let provider = PROVIDER
        .get()
        .and_then(|p| p.lock().ok().and_then(|mut p| p.take()));
    if let Some(provider) = provider {
        TRACING.store(false, Ordering::Release);
        if let Err(e) = provider.shutdown() {
            eprintln!("OpenTelemetry shutdown: {e}");
        }
    }
}

/// Whether spans are exported (an OTLP endpoint was configured).
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Acquire)
}

/// An OTLP/HTTP (protobuf) span exporter on the reqwest client the crate already uses, in a
/// batch processor. The endpoint and headers come from the standard `OTEL_EXPORTER_OTLP_*`
/// variables.
fn otlp_provider() -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| anyhow::anyhow!("no tokio runtime to send spans from"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(OtlpHttpClient {
            client: reqwest::Client::new(),
            runtime,
        })
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The OTLP exporter's HTTP client: reqwest 0.13, run on the application's tokio runtime
/// (the batch processor calls it from its own thread, which has no reactor).
#[derive(Debug)]
struct OtlpHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let call = async move {
            let res = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = http::Response::new(bytes::Bytes::new());
            *out.status_mut() = res.status();
            *out.headers_mut() = res.headers().clone();
            *out.body_mut() = res.bytes().await?;
            Ok::<_, reqwest::Error>(out)
        };
        Ok(self.runtime.spawn(call).await??)
    }
}

// --- propagation -------------------------------------------------------------------------

fn propagator() -> &'static TraceContextPropagator {
    static P: OnceLock<TraceContextPropagator> = OnceLock::new();
    P.get_or_init(TraceContextPropagator::new)
}

/// The W3C trace context (`traceparent`, `tracestate`) of the current span, empty when
/// tracing is off or there is no span.
pub fn current_context_fields() -> HashMap<String, String> {
    let mut fields = HashMap::new();
    if tracing_enabled() {
        inject_span(&tracing::Span::current(), &mut fields);
    }
    fields
}

/// Writes `span`'s trace context into `carrier` (nothing when the span is not traced).
pub fn inject_span(span: &tracing::Span, carrier: &mut dyn Injector) {
    propagator().inject_context(&span.context(), carrier);
}

/// Headers carrying the current trace context, for an outgoing HTTP call.
pub fn trace_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (k, v) in current_context_fields() {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::try_from(k),
            http::HeaderValue::try_from(v),
        ) {
            headers.insert(k, v);
        }
    }
    headers
}

/// Makes the trace context in incoming HTTP `headers` the parent of `span` (when tracing is on
/// and the caller sent one).
pub fn adopt_http_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !tracing_enabled() || !headers.contains_key("traceparent") {
        return;
    }
    struct HeaderExtractor<'a>(&'a http::HeaderMap);
    impl Extractor for HeaderExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    let cx = propagator().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(cx);
}

/// Adds `fields` (a trace context, see [`current_context_fields`]) to Kafka message headers.
pub fn inject_kafka(mut headers: OwnedHeaders, fields: &HashMap<String, String>) -> OwnedHeaders {
    for (k, v) in fields {
        headers = headers.insert(rdkafka::message::Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    headers
}

/// Writes `span`'s trace context into Kafka message headers.
pub fn inject_kafka_span(span: &tracing::Span, headers: OwnedHeaders) -> OwnedHeaders {
    let mut fields = HashMap::new();
    inject_span(span, &mut fields);
    inject_kafka(headers, &fields)
}

/// The trace context carried by a Kafka message's headers (an empty context when none).
pub fn extract_kafka(headers: Option<&BorrowedHeaders>) -> opentelemetry::Context {
    struct KafkaExtractor(HashMap<String, String>);
    impl Extractor for KafkaExtractor {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(String::as_str)
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }
    let mut map = HashMap::new();
    if let Some(h) = headers {
        for header in h.iter() {
            if let Some(v) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                map.insert(header.key.to_owned(), v.to_owned());
            }
        }
    }
    propagator().extract(&KafkaExtractor(map))
}

/// Makes the trace context of a Kafka message the parent of `span` (tracing on, context present).
pub fn adopt_kafka_parent(span: &tracing::Span, headers: Option<&BorrowedHeaders>) {
    if !tracing_enabled() {
        return;
    }
    let cx = extract_kafka(headers);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Makes a stored trace context (from an outbox row) the parent of `span`.
pub fn adopt_stored_parent(span: &tracing::Span, fields: &HashMap<String, String>) {
    if !tracing_enabled() || fields.is_empty() {
        return;
    }
    let cx = propagator().extract(fields);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

// --- ECS JSON logs -----------------------------------------------------------------------

/// The ECS name of a `tracing` field: dotted names are already ECS (`event.dataset`,
/// `http.request.method`) and kept; `error` is `error.message`, `user_id` is `user.id`;
/// `otel.*` (span metadata for the exporter) is dropped (`None`); any other plain name is a
/// custom field under `boxoffice.` so it never collides with an ECS field.
pub fn ecs_key(name: &str) -> Option<std::borrow::Cow<'static, str>> {
    use std::borrow::Cow;
    Some(match name {
        "message" => Cow::Borrowed("message"),
        "error" => Cow::Borrowed("error.message"),
        "user_id" => Cow::Borrowed("user.id"),
        n if n.starts_with("otel.") => return None,
        n if n.contains('.') => Cow::Owned(n.to_owned()),
        n => Cow::Owned(format!("boxoffice.{n}")),
    })
}

/// [`ecs_key`] of a field name, borrowing it when it is kept as is (field names are
/// `'static`), so that only `boxoffice.`-prefixed names allocate.
fn ecs_field_key(name: &'static str) -> Option<std::borrow::Cow<'static, str>> {
    match name {
        n if n.contains('.') && !n.starts_with("otel.") => Some(std::borrow::Cow::Borrowed(n)),
        n => ecs_key(n),
    }
}

/// Field values encoded as JSON once, when recorded, into one buffer: a span keeps this in
/// its extensions for the events inside it, an event builds one for its own fields. Names are
/// the raw `tracing` names (renamed by [`ecs_key`] only when a line is written), `otel.*`
/// is not kept. A span's fields cost two allocations whatever their number, and nothing is
/// merged or renamed unless an event is actually written.
#[derive(Debug, Default)]
struct Fields {
    /// Name and byte range of its JSON value in `buf`, in recording order (a later entry of
    /// the same name wins).
    index: Vec<(&'static str, std::ops::Range<usize>)>,
    /// The JSON values, back to back.
    buf: Vec<u8>,
}

impl Fields {
    /// Appends `name` with the JSON that `write` puts in the buffer.
    fn push(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.index.push((name, start..self.buf.len()));
    }

    fn push_json<T: serde::Serialize + ?Sized>(&mut self, name: &'static str, value: &T) {
        if name.starts_with("otel.") {
            return;
        }
        self.push(name, |buf| {
            if serde_json::to_writer(&mut *buf, value).is_err() {
                buf.extend_from_slice(b"null");
            }
        });
    }

    /// Name and raw JSON of each field.
    fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        self.index
            .iter()
            .map(|(name, range)| (*name, &self.buf[range.clone()]))
    }
}

/// The visitor of span and event fields: `otel.*` fields are metadata for the exporter.
impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push_json(field.name(), &value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push_json(field.name(), &value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json writes `null` for NaN and infinities (JSON has neither).
        self.push_json(field.name(), &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push_json(field.name(), &value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push_json(field.name(), value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push_json(field.name(), &value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !field.name().starts_with("otel.") {
            self.push_json(field.name(), &format!("{value:?}"));
        }
    }
}

/// A `tracing` layer that writes each event as one ECS JSON line to `W`.
///
/// Spans pay only for encoding their field values (nothing at all for a span without
/// values); merging them with the event's fields, renaming them to ECS and formatting the
/// timestamp happen only for an event that is written.
#[derive(Debug)]
pub struct EcsLayer<W> {
    make_writer: W,
}

impl<W> EcsLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    /// Writes to `make_writer` (e.g. `std::io::stderr`).
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

impl<S, W> Layer<S> for EcsLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if attrs.is_empty() {
            return;
        }
        // Sized for the span's declared fields and a request's path and route, so that
        // recording does not grow the buffers value by value.
        let mut fields = Fields {
            index: Vec::with_capacity(attrs.fields().len()),
            buf: Vec::with_capacity(128),
        };
        attrs.record(&mut fields);
        if fields.index.is_empty() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<Fields>() {
            values.record(fields);
        } else {
            let mut fields = Fields::default();
            values.record(&mut fields);
            if !fields.index.is_empty() {
                ext.insert(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        use std::borrow::Cow;
        use std::collections::BTreeMap;

        let meta = event.metadata();
        let spans: Vec<_> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().collect())
            .unwrap_or_default();
        let exts: Vec<_> = spans.iter().map(|span| span.extensions()).collect();
        let mut own = Fields::default();
        event.record(&mut own);

        // Fields that are not `tracing` fields, under their final names.
        let mut extra = Fields::default();
        let leaf_ids = exts
            .iter()
            .rev()
            .filter_map(|ext| ext.get::<tracing_opentelemetry::OtelData>())
            .find_map(|otel| otel.trace_id().zip(otel.span_id()));
        if let Some((trace, span)) = leaf_ids {
            if trace != opentelemetry::TraceId::INVALID {
                extra.push_json("trace.id", &trace.to_string());
                extra.push_json("span.id", &span.to_string());
            }
        }
        let ids = extra.index.len();
        extra.push_json(
            "@timestamp",
            &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        );
        extra.push_json("log.level", meta.level().as_str());
        extra.push_json("log.logger", meta.target());
        extra.push_json("service.name", SERVICE_NAME);
        extra.push_json("ecs.version", "8.11.0");
        let fixed = extra.index.len();
        extra.push_json("event.dataset", "boxoffice.log");
        extra.push_json("event.kind", "event");

        // Outer spans first, then inner ones, then the event: the innermost value wins.
        let mut obj: BTreeMap<Cow<'static, str>, &[u8]> = BTreeMap::new();
        let renamed = |(name, raw)| ecs_field_key(name).map(|key| (key, raw));
        for ext in &exts {
            if let Some(fields) = ext.get::<Fields>() {
                obj.extend(fields.iter().filter_map(renamed));
            }
        }
        let mut extras = extra.iter().map(|(k, v)| (Cow::Borrowed(k), v));
        obj.extend(extras.by_ref().take(ids));
        obj.extend(own.iter().filter_map(renamed));
        obj.extend(extras.by_ref().take(fixed - ids));
        for (key, default) in extras {
            obj.entry(key).or_insert(default);
        }

        let mut line = Vec::with_capacity(256 + own.buf.len());
        line.push(b'{');
        for (i, (key, raw)) in obj.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            let _ = serde_json::to_writer(&mut line, key.as_ref());
            line.push(b':');
            line.extend_from_slice(raw);
        }
        line.extend_from_slice(b"}\n");
        let _ = self.make_writer.make_writer().write_all(&line);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use rdkafka::message::{Header, OwnedHeaders};
    use serde_json::Value;

    use super::*;

    /// An in-memory writer for the layer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
                .collect()
        }
    }

    fn test_provider() -> SdkTracerProvider {
        SdkTracerProvider::builder().build()
    }

    #[test]
    fn a_log_line_is_one_ecs_json_object_with_span_and_event_fields() {
        let buf = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(EcsLayer::new(buf.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "http.request",
                http.request.method = "POST",
                url.path = "/v1/bookings/7/pay",
                http.response.status_code = tracing::field::Empty,
                user_id = 42,
                otel.kind = "server",
            );
            let _g = span.enter();
            span.record("http.response.status_code", 402);
            tracing::warn!(
                event.dataset = "boxoffice.payment",
                event.action = "payment-failed",
                booking_id = 7,
                error = "payment_declined",
                "payment failed"
            );
        });
        let lines = buf.lines();
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        for (key, want) in [
            ("log.level", "WARN"),
            ("message", "payment failed"),
            ("service.name", "boxoffice"),
            ("http.request.method", "POST"),
            ("url.path", "/v1/bookings/7/pay"),
            ("event.dataset", "boxoffice.payment"),
            ("event.action", "payment-failed"),
            ("error.message", "payment_declined"),
        ] {
            assert_eq!(l[key], want, "{key} in {l}");
        }
        assert_eq!(l["http.response.status_code"], 402);
        assert_eq!(l["user.id"], 42);
        assert_eq!(l["boxoffice.booking_id"], 7);
        assert!(l.get("otel.kind").is_none(), "{l}");
        assert!(l.get("trace.id").is_none(), "no tracer, no trace id: {l}");
        let ts = l["@timestamp"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(ts).expect("@timestamp is RFC 3339");
        assert!(ts.ends_with('Z'), "{ts}");
    }

    #[test]
    fn an_event_outside_business_flows_falls_in_the_default_dataset() {
        let buf = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(EcsLayer::new(buf.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(rows = 3u64, "relay published");
        });
        let l = &buf.lines()[0];
        assert_eq!(l["event.dataset"], "boxoffice.log");
        assert_eq!(l["boxoffice.rows"], 3);
        assert_eq!(l["log.level"], "INFO");
    }

    #[test]
    fn log_lines_inside_a_traced_span_carry_its_trace_and_span_ids() {
        let provider = test_provider();
        let buf = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(EcsLayer::new(buf.clone()));
        let (trace, span_id) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("work");
            let _g = span.enter();
            tracing::info!("inside");
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            (sc.trace_id().to_string(), sc.span_id().to_string())
        });
        let l = &buf.lines()[0];
        assert_eq!(l["trace.id"], trace.as_str());
        assert_eq!(l["span.id"], span_id.as_str());
        assert_eq!(trace.len(), 32);
        assert_ne!(trace, "00000000000000000000000000000000");
    }

    #[test]
    fn a_trace_context_survives_kafka_headers_and_parents_the_consumer_span() {
        let provider = test_provider();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            // Producer side: the relay's span writes its context into the headers.
            let producer = tracing::info_span!("outbox.publish");
            let sent = producer.context().span().span_context().clone();
            assert!(sent.is_valid());
            let headers = inject_kafka_span(
                &producer,
                OwnedHeaders::new().insert(Header {
                    key: "other",
                    value: Some("x"),
                }),
            );
            let parent = headers
                .iter()
                .find(|h| h.key == "traceparent")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
                .expect("a traceparent header");
            assert_eq!(
                parent,
                format!("00-{}-{}-01", sent.trace_id(), sent.span_id())
            );
            // Consumer side: the same bytes, read back as a message's headers would be.
            let received = extract_kafka(Some(headers.as_borrowed()));
            let rsc = received.span().span_context().clone();
            assert_eq!(rsc.trace_id(), sent.trace_id());
            assert_eq!(rsc.span_id(), sent.span_id());
            assert!(rsc.is_remote());
            let consumer = tracing::info_span!("ledger.apply");
            consumer.set_parent(received).unwrap();
            assert_eq!(
                consumer.context().span().span_context().trace_id(),
                sent.trace_id(),
                "the consumer's span joins the producer's trace"
            );
        });
    }

    #[test]
    fn no_headers_means_no_parent() {
        let cx = extract_kafka(None);
        assert!(!cx.span().span_context().is_valid());
        let empty = OwnedHeaders::new();
        assert!(!extract_kafka(Some(empty.as_borrowed()))
            .span()
            .span_context()
            .is_valid());
    }

    #[test]
    fn the_innermost_value_of_a_field_wins_and_no_key_is_written_twice() {
        let buf = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(EcsLayer::new(buf.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", round_id = 1, url.path = "/a");
            let _o = outer.enter();
            let inner = tracing::info_span!(
                "inner",
                round_id = 2,
                http.response.status_code = tracing::field::Empty
            );
            let _i = inner.enter();
            inner.record("http.response.status_code", 200);
            inner.record("http.response.status_code", 503);
            tracing::info!(event.dataset = "boxoffice.booking", "one");
            tracing::info!(round_id = 3, "two");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in &lines {
            for key in [
                "\"boxoffice.round_id\"",
                "\"http.response.status_code\"",
                "\"event.dataset\"",
            ] {
                assert_eq!(line.matches(key).count(), 1, "{key} in {line}");
            }
        }
        let (one, two) = (buf.lines()[0].clone(), buf.lines()[1].clone());
        assert_eq!(one["boxoffice.round_id"], 2);
        assert_eq!(one["url.path"], "/a");
        assert_eq!(one["http.response.status_code"], 503);
        assert_eq!(one["event.dataset"], "boxoffice.booking");
        assert_eq!(two["boxoffice.round_id"], 3);
        assert_eq!(two["event.dataset"], "boxoffice.log");
        assert_eq!(two["event.kind"], "event");
    }

    #[test]
    fn string_fields_are_escaped_and_debug_fields_formatted() {
        let buf = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(EcsLayer::new(buf.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("s", note = "a \"quoted\"\nline", otel.name = "x");
            let _g = span.enter();
            tracing::warn!(error = %"bad \\ thing", ratio = 0.5, big = u64::MAX, ok = true, "m");
        });
        let l = &buf.lines()[0];
        assert_eq!(l["boxoffice.note"], "a \"quoted\"\nline");
        assert_eq!(l["error.message"], "bad \\ thing");
        assert_eq!(l["boxoffice.ratio"], 0.5);
        assert_eq!(l["boxoffice.big"], u64::MAX);
        assert_eq!(l["boxoffice.ok"], true);
        assert!(l.get("otel.name").is_none(), "{l}");
    }

    #[test]
    fn a_rust_log_of_targets_and_levels_filters_as_env_filter_would() {
        for spec in [
            "info,boxoffice::access=debug",
            "warn,boxoffice::access=debug,[http.request]=info",
        ] {
            let buf = Buffer::default();
            let subscriber = tracing_subscriber::registry()
                .with(log_filter(spec))
                .with(EcsLayer::new(buf.clone()));
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "boxoffice::access", "served");
                tracing::debug!(target: "boxoffice::store", "hidden");
                tracing::warn!(target: "sqlx", "shown");
            });
            let messages: Vec<_> = buf.lines().iter().map(|l| l["message"].clone()).collect();
            assert_eq!(messages, ["served", "shown"], "{spec}");
        }
        for spec in ["", "  ", "not a filter=="] {
            let buf = Buffer::default();
            let subscriber = tracing_subscriber::registry()
                .with(log_filter(spec))
                .with(EcsLayer::new(buf.clone()));
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!("hidden");
                tracing::info!("shown");
            });
            assert_eq!(buf.lines().len(), 1, "{spec:?} means info");
        }
    }

    #[test]
    fn ecs_keys_keep_dotted_names_and_namespace_plain_ones() {
        assert_eq!(ecs_key("event.dataset").unwrap(), "event.dataset");
        assert_eq!(ecs_key("error").unwrap(), "error.message");
        assert_eq!(ecs_key("user_id").unwrap(), "user.id");
        assert_eq!(ecs_key("round_id").unwrap(), "boxoffice.round_id");
        assert!(ecs_key("otel.name").is_none());
    }
}
