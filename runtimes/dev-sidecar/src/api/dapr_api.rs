//! The Dapr gRPC API one app sees on its `daprGRPCPort`.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use chrono::Utc;
use todo_core::dapr::{
    API_TOKEN_HEADER,
    raw::{self, unary},
    runtime::{
        BulkPublishRequest, BulkPublishResponse, BulkPublishResponseFailedEntry, DeleteJobRequest, DeleteJobResponse,
        GetJobRequest, GetJobResponse, GetMetadataRequest, GetMetadataResponse, Job, PublishEventRequest,
        PubsubSubscription, PubsubSubscriptionRule, PubsubSubscriptionRules, RegisteredComponents, ScheduleJobRequest,
        ScheduleJobResponse,
    },
};
use tonic::{Request, Response, Status, body::Body, server::NamedService};

use crate::{
    cloudevent,
    delivery::Subscriptions,
    jobs::{JobsSignal, ScheduleError, parse_due_time, parse_schedule},
    log::{Log, StoredJob},
};

/// Everything the endpoint of one app needs.
pub struct AppEndpoint {
    pub app_id: String,
    pub log: Log,
    pub jobs: JobsSignal,
    pub subscriptions: Subscriptions,
    /// `DAPR_API_TOKEN`: callers must present it when set.
    pub api_token: Option<String>,
}

/// The `dapr.proto.runtime.v1.Dapr` service, routed by method name.
#[derive(Clone)]
pub struct DaprApi(pub Arc<AppEndpoint>);

impl NamedService for DaprApi {
    const NAME: &'static str = "dapr.proto.runtime.v1.Dapr";
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<Body>> for DaprApi {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let endpoint = self.0.clone();
        let method = raw::method_name(&request);
        Box::pin(async move {
            if let Some(expected) = &endpoint.api_token {
                let presented = request.headers().get(API_TOKEN_HEADER).and_then(|v| v.to_str().ok());
                if presented != Some(expected.as_str()) {
                    return Ok(Status::unauthenticated("missing or wrong dapr-api-token").into_http());
                }
            }
            let e = endpoint;
            let response = match method.as_str() {
                "PublishEvent" => unary(request, move |req| async move { e.publish(req).await }).await,
                "BulkPublishEvent" | "BulkPublishEventAlpha1" => {
                    unary(request, move |req| async move { e.bulk_publish(req).await }).await
                }
                "ScheduleJob" | "ScheduleJobAlpha1" => {
                    unary(request, move |req| async move { e.schedule_job(req).await }).await
                }
                "GetJob" | "GetJobAlpha1" => unary(request, move |req| async move { e.get_job(req) }).await,
                "DeleteJob" | "DeleteJobAlpha1" => {
                    unary(request, move |req| async move { e.delete_job(req).await }).await
                }
                "GetMetadata" => unary(request, move |req| async move { e.metadata(req) }).await,
                other => raw::unimplemented(
                    "dev-sidecar",
                    other,
                    "it serves PublishEvent, BulkPublishEvent, the Jobs API and GetMetadata only",
                ),
            };
            Ok(response)
        })
    }
}

fn traceparent<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn storage_error(err: crate::log::LogError) -> Status {
    Status::unavailable(format!("dev-sidecar storage: {err}"))
}

impl AppEndpoint {
    async fn publish(&self, request: Request<PublishEventRequest>) -> Result<Response<()>, Status> {
        let trace = traceparent(&request);
        let message = request.into_inner();
        if message.pubsub_name.is_empty() || message.topic.is_empty() {
            return Err(Status::invalid_argument("pubsub_name and topic are required"));
        }
        let mut event = cloudevent::wrap(
            &self.log,
            &self.app_id,
            &message.pubsub_name,
            &message.topic,
            message.data,
            &message.data_content_type,
            &message.metadata,
            trace.as_deref(),
        );
        cloudevent::trace_accept(&mut event);
        self.log.append(vec![event]).await.map_err(storage_error)?;
        Ok(Response::new(()))
    }

    async fn bulk_publish(
        &self,
        request: Request<BulkPublishRequest>,
    ) -> Result<Response<BulkPublishResponse>, Status> {
        let trace = traceparent(&request);
        let message = request.into_inner();
        if message.pubsub_name.is_empty() || message.topic.is_empty() {
            return Err(Status::invalid_argument("pubsub_name and topic are required"));
        }
        let mut failed = Vec::new();
        let mut events = Vec::with_capacity(message.entries.len());
        for entry in message.entries {
            if entry.entry_id.is_empty() {
                failed.push(BulkPublishResponseFailedEntry {
                    entry_id: String::new(),
                    error: "entry_id is required".into(),
                });
                continue;
            }
            let mut metadata = message.metadata.clone();
            metadata.extend(entry.metadata);
            let mut event = cloudevent::wrap(
                &self.log,
                &self.app_id,
                &message.pubsub_name,
                &message.topic,
                entry.event,
                &entry.content_type,
                &metadata,
                trace.as_deref(),
            );
            cloudevent::trace_accept(&mut event);
            events.push(event);
        }
        // All entries commit together: a batch is accepted whole or not at all.
        self.log.append(events).await.map_err(storage_error)?;
        Ok(Response::new(BulkPublishResponse { failed_entries: failed }))
    }

    async fn schedule_job(
        &self,
        request: Request<ScheduleJobRequest>,
    ) -> Result<Response<ScheduleJobResponse>, Status> {
        let trace = traceparent(&request).unwrap_or_default();
        let message = request.into_inner();
        let job = message.job.ok_or_else(|| Status::invalid_argument("job is required"))?;
        if job.name.is_empty() || job.name.len() > 256 {
            return Err(Status::invalid_argument("job.name must be 1 to 256 characters"));
        }
        let schedule = job.schedule.clone().unwrap_or_default();
        let every = match schedule.as_str() {
            "" => None,
            text => Some(parse_schedule(text).map_err(|err| match err {
                ScheduleError::Unsupported(_) => Status::unimplemented(err.to_string()),
                ScheduleError::Invalid(_) => Status::invalid_argument(err.to_string()),
            })?),
        };
        let repeats = job.repeats.unwrap_or(0);
        if every.is_none() && repeats > 1 {
            return Err(Status::unimplemented(
                "dev-sidecar repeats a job only on an `@every` schedule",
            ));
        }
        let now = Utc::now();
        let due_time = job.due_time.clone().filter(|due| !due.is_empty());
        // With only a schedule, the first trigger is one interval from now.
        let due = match (&due_time, every) {
            (Some(text), _) => parse_due_time(text, now).map_err(Status::invalid_argument)?,
            (None, Some(every)) => now + every,
            (None, None) => return Err(Status::invalid_argument("job.due_time or job.schedule is required")),
        };
        if !message.overwrite && self.log.job(&self.app_id, &job.name).map_err(storage_error)?.is_some() {
            return Err(Status::already_exists(format!(
                "job {} exists; set overwrite",
                job.name
            )));
        }
        let name = job.name.clone();
        self.log
            .put_job(StoredJob {
                app_id: self.app_id.clone(),
                name: job.name,
                due_ms: due.timestamp_millis(),
                due_time: due_time.unwrap_or_default(),
                data: job.data,
                traceparent: trace,
                failure_policy: job.failure_policy,
                schedule,
                every_ms: every.map_or(0, |every| every.num_milliseconds().max(1)),
                repeats,
                triggered: 0,
            })
            .await
            .map_err(storage_error)?;
        self.jobs.changed(&self.app_id, &name);
        Ok(Response::new(ScheduleJobResponse {}))
    }

    fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<GetJobResponse>, Status> {
        let name = request.into_inner().name;
        let job = self
            .log
            .job(&self.app_id, &name)
            .map_err(storage_error)?
            // daprd wraps the Scheduler's NOT_FOUND in INTERNAL.
            .ok_or_else(|| {
                Status::internal(format!(
                    "failed to get job due to: rpc error: code = NotFound desc = job not found: {name}"
                ))
            })?;
        Ok(Response::new(GetJobResponse {
            job: Some(Job {
                name: job.name,
                schedule: (!job.schedule.is_empty()).then_some(job.schedule),
                repeats: (job.repeats > 0).then_some(job.repeats),
                due_time: (!job.due_time.is_empty()).then_some(job.due_time),
                ttl: None,
                data: job.data,
                failure_policy: job.failure_policy,
            }),
        }))
    }

    async fn delete_job(&self, request: Request<DeleteJobRequest>) -> Result<Response<DeleteJobResponse>, Status> {
        let name = request.into_inner().name;
        // Deleting a job that is not there succeeds, as on daprd.
        if self.log.delete_job(&self.app_id, &name).await.map_err(storage_error)? {
            self.jobs.changed(&self.app_id, &name);
        }
        Ok(Response::new(DeleteJobResponse {}))
    }

    fn metadata(&self, _request: Request<GetMetadataRequest>) -> Result<Response<GetMetadataResponse>, Status> {
        let subscriptions = self
            .subscriptions
            .read()
            .expect("lock")
            .get(&self.app_id)
            .cloned()
            .unwrap_or_default();
        Ok(Response::new(GetMetadataResponse {
            id: self.app_id.clone(),
            registered_components: vec![RegisteredComponents {
                name: "pubsub".into(),
                r#type: "pubsub.dev-sidecar".into(),
                version: "v1".into(),
                capabilities: vec!["BULK_PUBLISH".into(), "BULK_SUBSCRIBE".into()],
            }],
            subscriptions: subscriptions
                .into_iter()
                .map(|sub| PubsubSubscription {
                    pubsub_name: sub.pubsub_name,
                    topic: sub.topic,
                    metadata: sub.metadata,
                    rules: sub.routes.map(|routes| PubsubSubscriptionRules {
                        rules: routes
                            .rules
                            .into_iter()
                            .map(|rule| PubsubSubscriptionRule {
                                r#match: rule.r#match,
                                path: rule.path,
                            })
                            .collect(),
                    }),
                    dead_letter_topic: sub.dead_letter_topic,
                    r#type: 2,
                })
                .collect(),
            runtime_version: concat!("dev-sidecar/", env!("CARGO_PKG_VERSION")).into(),
            ..Default::default()
        }))
    }
}
