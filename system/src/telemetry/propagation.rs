//! Trace context propagation (W3C `traceparent` / `tracestate`): into and out of HTTP
//! headers, the outbox row (a stored map) and Kafka message headers. Every helper does
//! nothing while no exporter is installed ([`tracing_enabled`]), so an untraced service pays
//! nothing for it.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{BorrowedHeaders, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::tracing_enabled;

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

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use rdkafka::message::{Header, OwnedHeaders};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn a_trace_context_survives_kafka_headers_and_parents_the_consumer_span() {
        let provider = SdkTracerProvider::builder().build();
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
}
