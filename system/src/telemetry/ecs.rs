//! [`EcsLayer`]: each event as one JSON line with Elastic Common Schema field names, the
//! fields of its enclosing spans merged in (the innermost value wins) and renamed by
//! [`ecs_key`]. Hand-written rather than `tracing_subscriber::fmt().json()`, because that
//! formatter can neither rename fields to ECS keys nor merge span fields into the top level of
//! the line (it nests them under `spans`), and Kibana's ECS mapping needs both.

use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::SERVICE_NAME;

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
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::super::test_writer::Buffer;
    use super::*;

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
        let provider = SdkTracerProvider::builder().build();
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
    fn ecs_keys_keep_dotted_names_and_namespace_plain_ones() {
        assert_eq!(ecs_key("event.dataset").unwrap(), "event.dataset");
        assert_eq!(ecs_key("error").unwrap(), "error.message");
        assert_eq!(ecs_key("user_id").unwrap(), "user.id");
        assert_eq!(ecs_key("round_id").unwrap(), "boxoffice.round_id");
        assert!(ecs_key("otel.name").is_none());
    }
}
