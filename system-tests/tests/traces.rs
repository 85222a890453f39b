//! One user action, one trace, on the real runtime and in the cluster: the
//! services and every daprd export to Jaeger, and the trace of a
//! CompleteTask, read back from Jaeger's query API, holds task-api, the
//! sidecars' own spans and each consumer that reacted, all linked to
//! parents within the trace; and health probes make no traces to bury it.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use system_tests::{Runtime, runtime_tests};
use todo_stack::{StackOptions, eventually};

runtime_tests! {
    daprd: [a_completion_is_one_trace_across_services_and_sidecars_in_jaeger],
    cluster: [a_completion_is_one_trace_across_services_and_sidecars_in_jaeger],
}

#[derive(Debug)]
struct Span {
    service: String,
    operation: String,
    span_id: String,
    parent: Option<String>,
}

/// The spans of trace `trace_id` as Jaeger's query API returns them.
fn spans_of(trace: &serde_json::Value) -> Vec<Span> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|span| Span {
            service: processes[span["processID"].as_str().unwrap_or_default()]["serviceName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            operation: span["operationName"].as_str().unwrap_or_default().to_owned(),
            span_id: span["spanID"].as_str().unwrap_or_default().to_owned(),
            parent: span["references"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|reference| reference["refType"] == "CHILD_OF")
                .and_then(|reference| reference["spanID"].as_str().map(str::to_owned)),
        })
        .collect()
}

/// daprd names its spans after the Dapr API method, with a leading slash
/// (`/dapr.proto.runtime.v1.Dapr/BulkPublishEvent`), or `pubsub/<topic>`
/// for a delivery; the services' own RPC spans have no slash in front.
fn is_daprd_span(span: &Span) -> bool {
    span.operation.starts_with("/dapr.proto.runtime.v1") || span.operation.starts_with("pubsub/")
}

/// A span of a health check: the standard gRPC health service (kubelet,
/// Kubernetes probes) or daprd's app health check.
fn is_probe(span: &Span) -> bool {
    span.operation.contains("grpc.health.v1.Health") || span.operation.contains("AppCallbackHealthCheck")
}

async fn a_completion_is_one_trace_across_services_and_sidecars_in_jaeger(runtime: Runtime) {
    let stack = system_tests::start(StackOptions {
        jaeger: true,
        env: vec![("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into())],
        ..StackOptions::services(runtime)
    })
    .await;
    // The client starts the trace, so the scenario reads its own
    // completion's trace whatever else the system is doing (a deployed
    // system is shared with other scenarios and users).
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let client_span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    stack
        .complete_a_recurring_task("alice", "traced", Some(&traceparent))
        .await;

    let must_reach = ["task-api", "recurring-service", "audit-service"];
    let spans = eventually(
        "the completion's trace reaches every consumer in Jaeger",
        Duration::from_secs(60),
        || async {
            let trace = stack.traces(&format!("/api/traces/{trace_id}")).await.ok()?;
            let spans = spans_of(&trace["data"][0]);
            let services: BTreeSet<&str> = spans.iter().map(|span| span.service.as_str()).collect();
            let consumer_processed = spans
                .iter()
                .any(|span| span.service == "recurring-service" && span.operation == "task-events process");
            // Each process exports in batches (daprd every few seconds):
            // wait until every parent a span names has arrived too.
            let ids: BTreeSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
            let connected = spans.iter().all(|span| {
                span.parent
                    .as_deref()
                    .is_none_or(|parent| ids.contains(parent) || parent == client_span)
            });
            (must_reach.iter().all(|service| services.contains(service))
                && consumer_processed
                && connected
                && spans.iter().any(|span| span.operation.starts_with("pubsub/")))
            .then_some(spans)
        },
    )
    .await;

    // daprd's own hops are in it: the publish on task-api's sidecar and the
    // delivery on a consumer's.
    let daprd_ops: BTreeSet<&str> = spans
        .iter()
        .filter(|span| is_daprd_span(span))
        .map(|span| span.operation.as_str())
        .collect();
    let all: Vec<(&str, &str)> = spans
        .iter()
        .map(|s| (s.service.as_str(), s.operation.as_str()))
        .collect();
    assert!(
        daprd_ops.iter().any(|op| op.contains("Publish")),
        "a daprd publish span: {daprd_ops:?} among {all:?}"
    );
    assert!(
        daprd_ops.iter().any(|op| op.starts_with("pubsub/")),
        "a daprd delivery span: {daprd_ops:?}"
    );
    // Connected: every parent a span names is in the same trace, but for
    // the one span the client's call is the parent of: CompleteTask's.
    let ids: HashMap<&str, &Span> = spans.iter().map(|span| (span.span_id.as_str(), span)).collect();
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|span| span.parent.as_deref().is_none_or(|parent| parent == client_span))
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    assert_eq!(roots[0].operation, "todo.v1.TaskService/CompleteTask");
    for span in &spans {
        if let Some(parent) = &span.parent {
            assert!(
                ids.contains_key(parent.as_str()) || *parent == client_span,
                "the parent of {span:?} is not in the trace"
            );
        }
    }

    // The kubelet's and daprd's health checks come every few seconds: none
    // of a service's recent traces may be nothing but a probe.
    let services = stack.traces("/api/services").await.unwrap();
    for service in services["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
    {
        let recent = stack
            .traces(&format!("/api/traces?service={service}&limit=100&lookback=1h"))
            .await
            .unwrap();
        let probes: Vec<String> = recent["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(spans_of)
            .filter(|spans| !spans.is_empty() && spans.iter().all(is_probe))
            .map(|spans| format!("{:?}", spans.first().map(|span| &span.operation)))
            .collect();
        assert!(
            probes.is_empty(),
            "traces of {service} that are only probes: {probes:?}"
        );
    }
    system_tests::stop(stack).await;
}
