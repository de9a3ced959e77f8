//! Installing the global subscriber: the `RUST_LOG` filter, ECS JSON or human-readable logs,
//! and the OpenTelemetry layer with its OTLP/HTTP exporter when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set; [`shutdown`] flushes the exporter at exit.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use super::{EcsLayer, SERVICE_NAME};
use crate::config::LogFormat;

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

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::super::test_writer::Buffer;
    use super::*;

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
}
