//! One AppCallback implementation for every consumer.
//!
//! A service implements [`EventHandler`] (its subscriptions, what to do with
//! one event, and, for reminder-service, what to do when a job fires);
//! [`AppCallbackService`] turns that into both `AppCallback` and
//! `AppCallbackAlpha`, so the stable and the `…Alpha1` callback names behave
//! the same, and bulk deliveries are handled entry by entry, in order.

use std::sync::Arc;

use prost_types::{Struct, value::Kind};
use tonic::{Request, Response, Status};

use super::{
    common::{InvokeRequest, InvokeResponse},
    runtime::{
        BindingEventRequest, BindingEventResponse, HealthCheckResponse, JobEventRequest, JobEventResponse,
        ListInputBindingsResponse, ListTopicSubscriptionsResponse, TopicEventBulkRequest, TopicEventBulkRequestEntry,
        TopicEventBulkResponse, TopicEventBulkResponseEntry, TopicEventRequest, TopicEventResponse, TopicSubscription,
        app_callback_alpha_server::AppCallbackAlpha, app_callback_health_check_server::AppCallbackHealthCheck,
        app_callback_server::AppCallback, topic_event_bulk_request_entry::Event,
    },
};
use crate::dapr::callback::{AppTokenCheck, Outcome};

/// Full names of the callback services [`add_routes`] serves, for reflection.
pub const SERVICE_NAMES: [&str; 3] = [
    "dapr.proto.runtime.v1.AppCallback",
    "dapr.proto.runtime.v1.AppCallbackAlpha",
    "dapr.proto.runtime.v1.AppCallbackHealthCheck",
];

/// One delivered event, whether it came alone or in a bulk delivery.
#[derive(Debug, Clone, Default)]
pub struct DeliveredEvent {
    /// CloudEvent `id` (the publisher's `cloudevent.id`).
    pub id: String,
    /// CloudEvent `type`.
    pub event_type: String,
    pub topic: String,
    /// The route that matched (`path`), when the runtime says.
    pub path: String,
    /// MIME type of `data`.
    pub content_type: String,
    pub data: Vec<u8>,
    /// W3C trace context the CloudEvent carried.
    pub traceparent: Option<String>,
}

impl From<TopicEventRequest> for DeliveredEvent {
    fn from(request: TopicEventRequest) -> Self {
        Self {
            traceparent: traceparent(request.extensions.as_ref()),
            id: request.id,
            event_type: request.r#type,
            topic: request.topic,
            path: request.path,
            content_type: request.data_content_type,
            data: request.data,
        }
    }
}

impl DeliveredEvent {
    /// One entry of a bulk delivery to `topic`; None when the entry holds
    /// no event at all.
    pub fn from_bulk_entry(topic: &str, path: &str, entry: TopicEventBulkRequestEntry) -> Option<Self> {
        Some(match entry.event? {
            Event::CloudEvent(ce) => Self {
                traceparent: traceparent(ce.extensions.as_ref()),
                id: ce.id,
                event_type: ce.r#type,
                topic: topic.to_owned(),
                path: path.to_owned(),
                content_type: ce.data_content_type,
                data: ce.data,
            },
            Event::Bytes(data) => Self {
                id: entry.entry_id,
                event_type: entry.metadata.get("cloudevent.type").cloned().unwrap_or_default(),
                topic: topic.to_owned(),
                path: path.to_owned(),
                content_type: entry.content_type,
                traceparent: entry.metadata.get("traceparent").cloned(),
                data,
            },
        })
    }
}

/// What a consumer service does with deliveries.
#[tonic::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// The subscriptions to declare in `ListTopicSubscriptions`.
    fn subscriptions(&self) -> Vec<TopicSubscription>;

    /// Handles one event. Never fails with a gRPC error: the outcome says
    /// what the runtime should do.
    async fn on_event(&self, event: DeliveredEvent) -> Outcome;

    /// Handles the events of one bulk delivery together (in one
    /// transaction, say), answering one outcome per event, in order. `None`,
    /// the default, means one at a time: each goes to [`Self::on_event`].
    async fn on_batch(&self, _events: &[DeliveredEvent]) -> Option<Vec<Outcome>> {
        None
    }

    /// Handles a job that came due. Only apps that schedule jobs override it.
    async fn on_job(&self, job: JobEventRequest) -> Result<(), Status> {
        Err(Status::unimplemented(format!(
            "this app schedules no jobs (got {})",
            job.name
        )))
    }
}

/// Serves an [`EventHandler`] as `AppCallback`, `AppCallbackAlpha` and
/// `AppCallbackHealthCheck`.
pub struct AppCallbackService<H> {
    handler: Arc<H>,
    token: AppTokenCheck,
}

impl<H> AppCallbackService<H> {
    /// A service that checks `app_api_token` (when set) on every call that
    /// delivers data.
    pub fn new(handler: Arc<H>, app_api_token: Option<secrecy::SecretString>) -> Self {
        Self {
            handler,
            token: AppTokenCheck::new(app_api_token),
        }
    }
}

impl<H> Clone for AppCallbackService<H> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            token: self.token.clone(),
        }
    }
}

fn traceparent(extensions: Option<&Struct>) -> Option<String> {
    match extensions?.fields.get("traceparent")?.kind.as_ref()? {
        Kind::StringValue(value) if !value.is_empty() => Some(value.clone()),
        _ => None,
    }
}

/// The consumer span of one event, a child of the trace the event carries.
fn consumer_span(event: &DeliveredEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "pubsub.process",
        otel.name = %format!("{} process", event.topic),
        otel.kind = "consumer",
        messaging.system = "dapr",
        messaging.destination.name = %event.topic,
        messaging.message.id = %event.id,
        messaging.message.type = %event.event_type,
        outcome = tracing::field::Empty,
    );
    crate::telemetry::set_parent(&span, event.traceparent.as_deref());
    span
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Retry => "retry",
        Outcome::Drop => "drop",
    }
}

impl<H: EventHandler> AppCallbackService<H> {
    /// Handles one event in a span that continues the event's trace.
    async fn handle(&self, event: DeliveredEvent) -> Outcome {
        self.handle_in(consumer_span(&event), event).await
    }

    async fn handle_in(&self, span: tracing::Span, event: DeliveredEvent) -> Outcome {
        use tracing::Instrument;
        let started = std::time::Instant::now();
        let topic = event.topic.clone();
        let outcome = self.handler.on_event(event).instrument(span.clone()).await;
        span.record("outcome", outcome_name(outcome));
        crate::telemetry::metrics::record_consumed(&topic, outcome_name(outcome), started);
        outcome
    }

    async fn bulk(&self, request: TopicEventBulkRequest) -> TopicEventBulkResponse {
        let mut entry_ids = Vec::with_capacity(request.entries.len());
        let mut events = Vec::with_capacity(request.entries.len());
        let mut outcomes = Vec::with_capacity(request.entries.len());
        for entry in request.entries {
            entry_ids.push(entry.entry_id.clone());
            match DeliveredEvent::from_bulk_entry(&request.topic, &request.path, entry) {
                Some(event) => {
                    events.push(event);
                    outcomes.push(None);
                }
                // An entry without an event is poison.
                None => outcomes.push(Some(Outcome::Drop)),
            }
        }
        let mut handled = self.handle_batch(events).await.into_iter();
        let statuses = entry_ids
            .into_iter()
            .zip(outcomes)
            .map(|(entry_id, outcome)| TopicEventBulkResponseEntry {
                entry_id,
                status: outcome.or_else(|| handled.next()).unwrap_or(Outcome::Retry).status() as i32,
            })
            .collect();
        TopicEventBulkResponse { statuses }
    }

    /// Handles a bulk delivery's events: together when the handler can,
    /// else one by one. Either way each event gets its own consumer span
    /// (continuing its own trace) and its outcome counted.
    async fn handle_batch(&self, mut events: Vec<DeliveredEvent>) -> Vec<Outcome> {
        let started = std::time::Instant::now();
        let spans: Vec<tracing::Span> = events.iter().map(consumer_span).collect();
        // What a handler passes on (to a job, a published event) continues
        // its event's consumer span, as when events come one by one.
        for (event, span) in events.iter_mut().zip(&spans) {
            if let Some(traceparent) = crate::telemetry::traceparent_of(span) {
                event.traceparent = Some(traceparent);
            }
        }
        match self.handler.on_batch(&events).await {
            Some(outcomes) if outcomes.len() == events.len() => {
                for ((event, outcome), span) in events.iter().zip(&outcomes).zip(&spans) {
                    span.record("outcome", outcome_name(*outcome));
                    crate::telemetry::metrics::record_consumed(&event.topic, outcome_name(*outcome), started);
                }
                outcomes
            }
            Some(outcomes) => {
                tracing::error!(
                    events = events.len(),
                    outcomes = outcomes.len(),
                    "a batch handler answered the wrong number of outcomes; asking for redelivery"
                );
                vec![Outcome::Retry; events.len()]
            }
            None => {
                let mut outcomes = Vec::with_capacity(events.len());
                for (event, span) in events.into_iter().zip(spans) {
                    outcomes.push(self.handle_in(span, event).await);
                }
                outcomes
            }
        }
    }
}

#[tonic::async_trait]
impl<H: EventHandler> AppCallback for AppCallbackService<H> {
    async fn on_invoke(&self, request: Request<InvokeRequest>) -> Result<Response<InvokeResponse>, Status> {
        self.token.verify(request.metadata())?;
        Err(Status::unimplemented(
            "service invocation is not used; talk through pub/sub",
        ))
    }

    async fn list_topic_subscriptions(
        &self,
        _request: Request<()>,
    ) -> Result<Response<ListTopicSubscriptionsResponse>, Status> {
        Ok(Response::new(ListTopicSubscriptionsResponse {
            subscriptions: self.handler.subscriptions(),
        }))
    }

    async fn on_topic_event(
        &self,
        request: Request<TopicEventRequest>,
    ) -> Result<Response<TopicEventResponse>, Status> {
        self.token.verify(request.metadata())?;
        let event = DeliveredEvent::from(request.into_inner());
        Ok(Response::new(self.handle(event).await.into()))
    }

    async fn list_input_bindings(&self, _request: Request<()>) -> Result<Response<ListInputBindingsResponse>, Status> {
        Ok(Response::new(ListInputBindingsResponse::default()))
    }

    async fn on_binding_event(
        &self,
        request: Request<BindingEventRequest>,
    ) -> Result<Response<BindingEventResponse>, Status> {
        self.token.verify(request.metadata())?;
        Err(Status::unimplemented("no input bindings"))
    }

    async fn on_bulk_topic_event(
        &self,
        request: Request<TopicEventBulkRequest>,
    ) -> Result<Response<TopicEventBulkResponse>, Status> {
        self.token.verify(request.metadata())?;
        Ok(Response::new(self.bulk(request.into_inner()).await))
    }

    async fn on_job_event(&self, request: Request<JobEventRequest>) -> Result<Response<JobEventResponse>, Status> {
        self.token.verify(request.metadata())?;
        self.handler.on_job(request.into_inner()).await?;
        Ok(Response::new(JobEventResponse {}))
    }
}

#[tonic::async_trait]
impl<H: EventHandler> AppCallbackAlpha for AppCallbackService<H> {
    async fn on_bulk_topic_event_alpha1(
        &self,
        request: Request<TopicEventBulkRequest>,
    ) -> Result<Response<TopicEventBulkResponse>, Status> {
        self.token.verify(request.metadata())?;
        Ok(Response::new(self.bulk(request.into_inner()).await))
    }

    async fn on_job_event_alpha1(
        &self,
        request: Request<JobEventRequest>,
    ) -> Result<Response<JobEventResponse>, Status> {
        self.token.verify(request.metadata())?;
        self.handler.on_job(request.into_inner()).await?;
        Ok(Response::new(JobEventResponse {}))
    }
}

/// daprd's app health check for gRPC apps (`--enable-app-health-check`).
/// The app answers once it serves; open without the token, like
/// `grpc.health.v1`, since it tells nothing about the data.
#[tonic::async_trait]
impl<H: EventHandler> AppCallbackHealthCheck for AppCallbackService<H> {
    async fn health_check(&self, _request: Request<()>) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {}))
    }
}

/// Adds `AppCallback`, `AppCallbackAlpha` and `AppCallbackHealthCheck` for
/// `handler` to `routes`; calls that deliver data need the app API token
/// when one is set.
pub fn add_routes<H: EventHandler>(
    routes: &mut tonic::service::RoutesBuilder,
    handler: Arc<H>,
    app_api_token: Option<secrecy::SecretString>,
) {
    use super::runtime::{
        app_callback_alpha_server::AppCallbackAlphaServer,
        app_callback_health_check_server::AppCallbackHealthCheckServer, app_callback_server::AppCallbackServer,
    };
    if app_api_token.is_none() {
        tracing::warn!(
            "APP_API_TOKEN is unset (DEV_MODE): AppCallback takes events from anyone who reaches this port; \
             never run a deployment like this"
        );
    }
    let service = AppCallbackService::new(handler, app_api_token);
    routes
        .add_service(AppCallbackServer::new(service.clone()))
        .add_service(AppCallbackAlphaServer::new(service.clone()))
        .add_service(AppCallbackHealthCheckServer::new(service));
}
