//! W3C trace context across process boundaries.
//!
//! The context travels as a `traceparent` string: in gRPC metadata, in the
//! outbox row, in the CloudEvent, in a reminder job. These helpers turn it
//! into a span's parent and back. When no OpenTelemetry layer is installed
//! (export off), spans carry no context: [`traceparent_or`] then passes the
//! incoming value through unchanged, so a trace stays joined across a hop
//! that does not export.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// Makes `span` a child of `traceparent` when it is a valid W3C value.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|value| !value.is_empty()) else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}

/// The W3C `traceparent` of `span`, when it has a valid context.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The current span's `traceparent`, else `fallback` (the value that came in).
pub fn traceparent_or(fallback: Option<&str>) -> Option<String> {
    traceparent_of(&tracing::Span::current()).or_else(|| fallback.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporter_the_incoming_context_passes_through() {
        let span = tracing::info_span!("test");
        set_parent(&span, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        let _entered = span.enter();
        assert_eq!(
            traceparent_or(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(traceparent_or(None), None);
        set_parent(&span, Some("garbage"));
    }
}
