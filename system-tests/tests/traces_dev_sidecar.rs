//! One user action, one trace: with an OTLP receiver in the test, a
//! CreateTask of a recurring task and its CompleteTask produce traces in
//! which task-api, dev-sidecar, audit-service and recurring-service spans
//! share the trace id, each linked to its real parent.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{KeyValue, any_value::Value},
};
use system_tests::{Runtime, runtime_tests};
use todo_stack::StackOptions;
use todo_testing::free_port;

runtime_tests! {
    dev_sidecar: [create_and_complete_of_a_recurring_task_are_each_one_connected_trace],
}
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
struct SpanRecord {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<SpanRecord>>>);

/// (service, metric name) pairs received.
#[derive(Clone, Default)]
struct MetricsReceiver(Arc<Mutex<BTreeSet<(String, String)>>>);

fn service_name(attributes: &[KeyValue]) -> String {
    attributes
        .iter()
        .find(|attribute| attribute.key == "service.name")
        .and_then(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
            Value::StringValue(name) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tonic::async_trait]
impl MetricsService for MetricsReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut seen = self.0.lock().unwrap();
        for resource_metrics in request.into_inner().resource_metrics {
            let service = service_name(resource_metrics.resource.as_ref().map_or(&[][..], |r| &r.attributes));
            for scope in resource_metrics.scope_metrics {
                for metric in scope.metrics {
                    seen.insert((service.clone(), metric.name));
                }
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(SpanRecord {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

async fn create_and_complete_of_a_recurring_task_are_each_one_connected_trace(runtime: Runtime) {
    let receiver = Receiver::default();
    let metrics = MetricsReceiver::default();
    let port = free_port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .add_service(MetricsServiceServer::new(metrics.clone()))
            .serve(SocketAddr::from(([127, 0, 0, 1], port))),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let stack = system_tests::start(StackOptions {
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
        ..StackOptions::services(runtime)
    })
    .await;

    stack.complete_a_recurring_task("alice", "traced", None).await;
    // Let the consumers finish, then stop everything: exporters flush on exit.
    tokio::time::sleep(Duration::from_secs(1)).await;
    system_tests::stop(stack).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_metrics(&metrics);
    let spans = receiver.0.lock().unwrap().clone();
    let by_id: HashMap<&str, &SpanRecord> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let root = |rpc: &str| {
        spans
            .iter()
            .find(|s| s.service == "task-api" && s.name == rpc)
            .unwrap_or_else(|| panic!("no {rpc} span among {} spans", spans.len()))
    };

    for (rpc, must_reach) in [
        (
            "todo.v1.TaskService/CreateTask",
            vec!["task-api", "dev-sidecar", "audit-service", "reminder-service"],
        ),
        (
            "todo.v1.TaskService/CompleteTask",
            vec!["task-api", "dev-sidecar", "audit-service", "recurring-service"],
        ),
    ] {
        let trace_id = &root(rpc).trace_id;
        let trace: Vec<&SpanRecord> = spans.iter().filter(|s| &s.trace_id == trace_id).collect();
        let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
        for service in must_reach {
            assert!(
                services.contains(service),
                "{rpc}: no {service} span in its trace; got {services:?}"
            );
        }
        // Every parent link points at a span of the same trace.
        for span in &trace {
            if span.parent_span_id.is_empty() {
                assert_eq!(span.name, rpc, "only the RPC is a root: {span:?}");
                continue;
            }
            let parent = by_id
                .get(span.parent_span_id.as_str())
                .unwrap_or_else(|| panic!("{rpc}: parent of {span:?} was never exported"));
            assert_eq!(&parent.trace_id, trace_id);
        }
    }

    // The completion's path, hop by hop, up to the RPC.
    let completion = &root("todo.v1.TaskService/CompleteTask").trace_id;
    let consumer = spans
        .iter()
        .find(|s| &s.trace_id == completion && s.service == "recurring-service" && s.name == "task-events process")
        .expect("recurring-service processed the completion in the same trace");
    let mut chain = vec![format!("{}:{}", consumer.service, consumer.name)];
    let mut current = consumer;
    while let Some(parent) = by_id.get(current.parent_span_id.as_str()) {
        chain.push(format!("{}:{}", parent.service, parent.name));
        current = parent;
    }
    assert_eq!(
        chain,
        [
            "recurring-service:task-events process",
            "dev-sidecar:task-events deliver",
            "dev-sidecar:task-events publish",
            "task-api:task-events publish",
            "task-api:todo.v1.TaskService/CompleteTask",
        ],
        "each hop's parent is the hop before it (message spans follow the event's \
         own context, so the bulk and callback RPC spans are their siblings)"
    );
}

// Kept in the same test as the traces: one stack, both signals.
fn assert_metrics(metrics: &MetricsReceiver) {
    let seen = metrics.0.lock().unwrap().clone();
    for (service, name) in [
        ("task-api", "rpc.server.duration"),
        ("task-api", "messaging.publish.messages"),
        ("task-api", "outbox.depth"),
        ("task-api", "outbox.age"),
        ("audit-service", "messaging.process.messages"),
        ("audit-service", "messaging.process.duration"),
        ("recurring-service", "messaging.process.messages"),
        ("recurring-service", "messaging.publish.messages"),
    ] {
        assert!(
            seen.contains(&(service.to_owned(), name.to_owned())),
            "{service} exported no {name}; got {seen:?}"
        );
    }
}
