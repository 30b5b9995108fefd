//! OpenTelemetry traces, off unless configured: the core's spans (see
//! `modelgate_core::observe`: one per request, one per upstream attempt,
//! with the GenAI conventions' attributes) exported over OTLP/HTTP
//! (protobuf), with the W3C trace context taken from the client's
//! `traceparent` and sent upstream in each attempt's.
//!
//! The standard variables configure it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns it on, `OTEL_SERVICE_NAME`
//! names the service (default `modelgate`), and the exporter reads its own
//! `OTEL_EXPORTER_OTLP_*` settings (headers, timeout).

use axum::Router;
use axum::response::Response;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Level;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// Log to stderr (text or JSON, filtered by `MG_LOG`) and, with `traces`
/// and an OTLP endpoint configured, export the core's spans; the tracer
/// provider to shut down at exit.
pub fn init_logging(json: bool, traces: bool) -> Result<Option<SdkTracerProvider>, String> {
    let filter = EnvFilter::try_from_env("MG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let provider = if traces && configured(|k| std::env::var(k).ok()) {
        let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "modelgate".into());
        Some(provider(&service)?)
    } else {
        None
    };
    // Only the gateway's own spans (requests, upstream attempts) go out.
    let traced = Targets::new().with_target("modelgate_core", Level::INFO);
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(provider.as_ref().map(|p| layer(p).with_filter(traced)))
        .init();
    Ok(provider)
}

/// After each response, export the spans ended so far: a Lambda instance
/// may be frozen right after it answers, with the batch still waiting.
pub fn flush_after_each(router: Router, provider: SdkTracerProvider) -> Router {
    router.layer(axum::middleware::map_response(move |resp: Response| {
        let provider = provider.clone();
        async move {
            let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
            if let Ok(Err(e)) = flushed {
                tracing::warn!(error = %e, "spans not exported");
            }
            resp
        }
    }))
}

/// Whether the environment asks for traces.
pub fn configured(get: impl Fn(&str) -> Option<String>) -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| get(k).is_some_and(|v| !v.trim().is_empty()))
}

/// A tracer provider exporting in batches to the configured endpoint
/// (flush it, or shut it down, before the process ends).
pub fn provider(service: &str) -> Result<SdkTracerProvider, String> {
    // The exporter's client is reqwest with rustls, which needs a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Protobuf unless JSON is asked for (with both built in, the
    // exporter's own default would be JSON).
    let json = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok())
    .is_some_and(|p| p.trim() == "http/json");
    let protocol = if json {
        Protocol::HttpJson
    } else {
        Protocol::HttpBinary
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The `tracing` layer that turns spans into the provider's.
pub fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("modelgate"))
}

/// Make `span` continue the trace a valid `traceparent` in `headers`
/// names (an invalid or absent one starts a new trace).
pub fn adopt(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Rename `span` (started, so its `otel.name` field no longer applies).
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

/// Put the current span's context (an upstream attempt's) in `headers`
/// as `traceparent`, when traces are on.
pub fn inject(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}
