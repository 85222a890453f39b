//! Metrics through OpenTelemetry, exported beside the spans.
//!
//! Instruments come from the global meter provider, which `telemetry::init`
//! installs only when an OTLP endpoint is configured; otherwise they are
//! no-ops and cost next to nothing.

use std::{sync::OnceLock, time::Instant};

use opentelemetry::{
    KeyValue, global,
    metrics::{Counter, Gauge, Histogram},
};
use tracing::{Subscriber, span};
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

/// Every instrument the services record.
pub struct Metrics {
    /// `rpc.server.duration` (ms), by `rpc.method`.
    pub rpc_duration: Histogram<f64>,
    /// `messaging.publish.messages`: events the sidecar accepted, by topic.
    pub published: Counter<u64>,
    /// `messaging.process.messages`: events handled, by topic and outcome.
    pub consumed: Counter<u64>,
    /// `messaging.process.duration` (ms): handling time, by topic.
    pub processing: Histogram<f64>,
    /// `outbox.depth`: rows waiting to be published.
    pub outbox_depth: Gauge<u64>,
    /// `outbox.age` (s): age of the oldest waiting row.
    pub outbox_age: Gauge<f64>,
}

/// The instruments, created on first use (after `telemetry::init`).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = global::meter("todo");
        Metrics {
            rpc_duration: meter.f64_histogram("rpc.server.duration").with_unit("ms").build(),
            published: meter.u64_counter("messaging.publish.messages").build(),
            consumed: meter.u64_counter("messaging.process.messages").build(),
            processing: meter
                .f64_histogram("messaging.process.duration")
                .with_unit("ms")
                .build(),
            outbox_depth: meter.u64_gauge("outbox.depth").build(),
            outbox_age: meter.f64_gauge("outbox.age").with_unit("s").build(),
        }
    })
}

pub fn record_published(topic: &str, count: usize) {
    metrics().published.add(
        count as u64,
        &[KeyValue::new("messaging.destination.name", topic.to_owned())],
    );
}

pub fn record_consumed(topic: &str, outcome: &'static str, started: Instant) {
    let topic = KeyValue::new("messaging.destination.name", topic.to_owned());
    let metrics = metrics();
    metrics
        .consumed
        .add(1, &[topic.clone(), KeyValue::new("outcome", outcome)]);
    metrics
        .processing
        .record(started.elapsed().as_secs_f64() * 1e3, &[topic]);
}

/// Times every `grpc.server` span (one per RPC) into `rpc.server.duration`.
pub struct RpcDurationLayer;

struct Started {
    at: Instant,
    method: String,
}

struct MethodField(String);

impl tracing::field::Visit for MethodField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "otel.name" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "otel.name" {
            self.0 = value.to_owned();
        }
    }
}

impl<S> Layer<S> for RpcDurationLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "grpc.server" {
            return;
        }
        let mut method = MethodField(String::new());
        attrs.record(&mut method);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Started {
                at: Instant::now(),
                method: method.0,
            });
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(started) = span.extensions().get::<Started>()
        {
            metrics().rpc_duration.record(
                started.at.elapsed().as_secs_f64() * 1e3,
                &[KeyValue::new("rpc.method", started.method.clone())],
            );
        }
    }
}
