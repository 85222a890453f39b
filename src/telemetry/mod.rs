//! Logging and tracing, set up in one place for every binary and for tests.
//!
//! `tracing` is the only instrumentation API in the code. This module builds
//! the subscriber: an env filter (`RUST_LOG`, default `info`), human-readable
//! or JSON lines (`LOG_FORMAT`), and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set, an OpenTelemetry layer that batches spans to an OTLP/gRPC collector
//! with W3C trace-context propagation. Unset, nothing is exported and the
//! layer is not installed at all, so it costs nothing.

pub mod context;
pub mod metrics;

pub use context::{set_parent, traceparent_of, traceparent_or};

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource, metrics::SdkMeterProvider, propagation::TraceContextPropagator, trace::SdkTracerProvider,
};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, TelemetryConfig};

/// Failure to start telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes what is batched.
#[must_use = "dropping the guard without shutdown() loses buffered spans"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter. Call once, after the servers stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing spans failed: {err}");
        }
        if let Some(provider) = self.meter_provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing metrics failed: {err}");
        }
    }
}

/// Installs the global subscriber for a service binary.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    // RUST_LOG filters the log output only: spans go to the exporter at
    // INFO and above whatever the log level, so quiet logs keep full traces.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_filter(filter)
            .boxed(),
    };
    let tracer_provider = config
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| tracer_provider(&config.service_name, endpoint))
        .transpose()?;
    let otel = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(config.service_name.clone()))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    let meter_provider = config
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| meter_provider(&config.service_name, endpoint))
        .transpose()?;
    let rpc_metrics = meter_provider.as_ref().map(|_| metrics::RpcDurationLayer);
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(rpc_metrics)
        .try_init()?;
    Ok(Telemetry {
        tracer_provider,
        meter_provider,
    })
}

fn resource(service_name: &str) -> Resource {
    Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.namespace", "todo"),
        ])
        .build()
}

fn exporter_error(endpoint: &str, err: impl std::fmt::Display) -> TelemetryError {
    TelemetryError::Exporter {
        endpoint: endpoint.to_owned(),
        reason: err.to_string(),
    }
}

/// Metrics are read and exported periodically (`OTEL_METRIC_EXPORT_INTERVAL`).
fn meter_provider(service_name: &str, endpoint: &str) -> Result<SdkMeterProvider, TelemetryError> {
    let exporter = MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|err| exporter_error(endpoint, err))?;
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource(service_name))
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    Ok(provider)
}

fn tracer_provider(service_name: &str, endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|err| exporter_error(endpoint, err))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service_name))
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}
