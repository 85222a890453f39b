//! A stand-in for the Dapr sidecar's publish and jobs APIs that records what
//! it was given, and can be switched off to play a sidecar that is down.
//!
//! It serves `dapr.proto.runtime.v1.Dapr` as a raw gRPC router, so it needs
//! none of the ~90 other methods of the generated trait; every other method
//! answers UNIMPLEMENTED, as a runtime without that feature would.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tonic::{Request, Response, Status, body::Body, server::NamedService};
use tower::Service;

use todo_core::dapr::{
    API_TOKEN_HEADER, raw,
    runtime::{
        BulkPublishRequest, BulkPublishResponse, BulkPublishResponseFailedEntry, DeleteJobRequest, DeleteJobResponse,
        GetJobRequest, GetJobResponse, Job, PublishEventRequest, ScheduleJobRequest, ScheduleJobResponse,
    },
};

/// One event as the sidecar received it.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub topic: String,
    pub event_id: String,
    pub event_type: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    pub content_type: String,
    pub traceparent: Option<String>,
    pub api_token: Option<String>,
    /// `PublishEvent`, `BulkPublishEvent` or `BulkPublishEventAlpha1`.
    pub method: &'static str,
}

impl RecordedEvent {
    /// The published data decoded as `M`, by its content type, as a
    /// consumer would.
    pub fn decode<M>(&self) -> Result<M, todo_core::events::DecodeError>
    where
        M: prost::Message + prost::Name + Default,
    {
        let content_type = todo_core::events::ContentType::detect(&self.content_type, &self.data)?;
        todo_core::events::decode(content_type, &self.data)
    }
}

/// Which generation of the optional APIs (bulk publish, jobs) the fake
/// runtime offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiLevel {
    /// Stable names and their `Alpha1` twins (current daprd).
    Stable,
    /// Only the `…Alpha1` names (older daprd).
    Alpha1Only,
    /// Neither: plain `PublishEvent` only.
    None,
}

/// A job as the fake scheduler holds it.
#[derive(Debug, Clone)]
pub struct RecordedJob {
    pub name: String,
    pub due_time: String,
    /// `@every …` for a repeating job, else empty.
    pub schedule: String,
    /// How many triggers in all (0: not given).
    pub repeats: u32,
    pub data: Option<prost_types::Any>,
    pub traceparent: Option<String>,
    /// `ScheduleJob` or `ScheduleJobAlpha1`.
    pub method: &'static str,
}

struct State {
    events: Mutex<Vec<RecordedEvent>>,
    jobs: Mutex<std::collections::BTreeMap<String, RecordedJob>>,
    available: AtomicBool,
    /// How many more bulk entries to reject (see [`FakeSidecar::reject_bulk_entries`]).
    bulk_rejections: AtomicUsize,
    level: ApiLevel,
}

/// The running fake; stops when dropped.
pub struct FakeSidecar {
    pub addr: SocketAddr,
    state: Arc<State>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeSidecar {
    pub async fn start(level: ApiLevel) -> Self {
        let state = Arc::new(State {
            events: Mutex::new(Vec::new()),
            jobs: Mutex::new(Default::default()),
            available: AtomicBool::new(true),
            bulk_rejections: AtomicUsize::new(0),
            level,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake sidecar");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Router { state: state.clone() };
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(router)
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            state,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:<port>`, for `DAPR_GRPC_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While unavailable, every call fails with UNAVAILABLE and nothing is recorded.
    pub fn set_available(&self, available: bool) {
        self.state.available.store(available, Ordering::SeqCst);
    }

    /// Rejects the next `count` bulk entries it receives (reported as failed
    /// entries, not recorded) and accepts the rest of each call, as daprd
    /// does with Kafka when a partition's leader comes back in the middle of
    /// a bulk publish: earlier entries fail, later ones get through.
    pub fn reject_bulk_entries(&self, count: usize) {
        self.state.bulk_rejections.store(count, Ordering::SeqCst);
    }

    pub fn events(&self) -> Vec<RecordedEvent> {
        self.state.events.lock().expect("lock").clone()
    }

    /// The jobs currently scheduled, by name.
    pub fn jobs(&self) -> std::collections::BTreeMap<String, RecordedJob> {
        self.state.jobs.lock().expect("lock").clone()
    }

    /// Waits until at least `count` events were recorded; panics after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<RecordedEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events();
            if events.len() >= count {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "fake sidecar saw {} events, expected {count} within {timeout:?}",
                events.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[derive(Clone)]
struct Router {
    state: Arc<State>,
}

impl NamedService for Router {
    const NAME: &'static str = "dapr.proto.runtime.v1.Dapr";
}

fn metadata_value(request_metadata: &tonic::metadata::MetadataMap, key: &str) -> Option<String> {
    request_metadata
        .get(key)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

impl Router {
    fn check(&self) -> Result<(), Status> {
        if self.state.available.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Status::unavailable("fake sidecar is down"))
        }
    }

    fn publish(&self, request: Request<PublishEventRequest>) -> Result<Response<()>, Status> {
        self.check()?;
        let traceparent = metadata_value(request.metadata(), "traceparent");
        let api_token = metadata_value(request.metadata(), API_TOKEN_HEADER);
        let message = request.into_inner();
        let meta = |key: &str| message.metadata.get(key).cloned().unwrap_or_default();
        let event = RecordedEvent {
            topic: message.topic.clone(),
            event_id: meta("cloudevent.id"),
            event_type: meta("cloudevent.type"),
            partition_key: meta("partitionKey"),
            data: message.data.clone(),
            content_type: message.data_content_type.clone(),
            traceparent,
            api_token,
            method: "PublishEvent",
        };
        self.state.events.lock().expect("lock").push(event);
        Ok(Response::new(()))
    }

    fn bulk_publish(
        &self,
        request: Request<BulkPublishRequest>,
        method: &'static str,
    ) -> Result<Response<BulkPublishResponse>, Status> {
        self.check()?;
        let traceparent = metadata_value(request.metadata(), "traceparent");
        let api_token = metadata_value(request.metadata(), API_TOKEN_HEADER);
        let message = request.into_inner();
        let mut events = self.state.events.lock().expect("lock");
        let mut failed_entries = Vec::new();
        for entry in message.entries {
            let rejected = self
                .state
                .bulk_rejections
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                .is_ok();
            if rejected {
                failed_entries.push(BulkPublishResponseFailedEntry {
                    entry_id: entry.entry_id,
                    error: "kafka: leader not available".to_owned(),
                });
                continue;
            }
            let meta = |key: &str| entry.metadata.get(key).cloned().unwrap_or_default();
            events.push(RecordedEvent {
                topic: message.topic.clone(),
                event_id: meta("cloudevent.id"),
                event_type: meta("cloudevent.type"),
                partition_key: meta("partitionKey"),
                data: entry.event.clone(),
                content_type: entry.content_type.clone(),
                traceparent: traceparent.clone(),
                api_token: api_token.clone(),
                method,
            });
        }
        Ok(Response::new(BulkPublishResponse { failed_entries }))
    }
}

impl Router {
    fn schedule_job(
        &self,
        request: Request<ScheduleJobRequest>,
        method: &'static str,
    ) -> Result<Response<ScheduleJobResponse>, Status> {
        self.check()?;
        let traceparent = metadata_value(request.metadata(), "traceparent");
        let message = request.into_inner();
        let job = message.job.ok_or_else(|| Status::invalid_argument("job is required"))?;
        let mut jobs = self.state.jobs.lock().expect("lock");
        if jobs.contains_key(&job.name) && !message.overwrite {
            return Err(Status::already_exists(format!("job {} exists", job.name)));
        }
        jobs.insert(
            job.name.clone(),
            RecordedJob {
                name: job.name,
                due_time: job.due_time.unwrap_or_default(),
                schedule: job.schedule.unwrap_or_default(),
                repeats: job.repeats.unwrap_or_default(),
                data: job.data,
                traceparent,
                method,
            },
        );
        Ok(Response::new(ScheduleJobResponse {}))
    }

    /// As daprd: a missing job is INTERNAL wrapping the Scheduler's NOT_FOUND.
    fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<GetJobResponse>, Status> {
        self.check()?;
        let name = request.into_inner().name;
        let jobs = self.state.jobs.lock().expect("lock");
        let job = jobs.get(&name).ok_or_else(|| {
            Status::internal(format!(
                "failed to get job due to: rpc error: code = NotFound desc = job not found: {name}"
            ))
        })?;
        Ok(Response::new(GetJobResponse {
            job: Some(Job {
                name: job.name.clone(),
                schedule: (!job.schedule.is_empty()).then(|| job.schedule.clone()),
                repeats: (job.repeats > 0).then_some(job.repeats),
                due_time: (!job.due_time.is_empty()).then(|| job.due_time.clone()),
                ttl: None,
                data: job.data.clone(),
                failure_policy: None,
            }),
        }))
    }

    fn delete_job(&self, request: Request<DeleteJobRequest>) -> Result<Response<DeleteJobResponse>, Status> {
        self.check()?;
        let name = request.into_inner().name;
        match self.state.jobs.lock().expect("lock").remove(&name) {
            Some(_) => Ok(Response::new(DeleteJobResponse {})),
            None => Err(Status::not_found(format!("job {name} not found"))),
        }
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl Service<http::Request<Body>> for Router {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let router = self.clone();
        let method = raw::method_name(&request);
        let level = self.state.level;
        Box::pin(async move {
            let stable = level == ApiLevel::Stable;
            let alpha1 = level != ApiLevel::None;
            let response = match method.as_str() {
                "PublishEvent" => raw::unary(request, move |req| async move { router.publish(req) }).await,
                "BulkPublishEvent" if stable => {
                    raw::unary(request, move |req| async move {
                        router.bulk_publish(req, "BulkPublishEvent")
                    })
                    .await
                }
                "BulkPublishEventAlpha1" if alpha1 => {
                    raw::unary(request, move |req| async move {
                        router.bulk_publish(req, "BulkPublishEventAlpha1")
                    })
                    .await
                }
                "ScheduleJob" if stable => {
                    raw::unary(
                        request,
                        move |req| async move { router.schedule_job(req, "ScheduleJob") },
                    )
                    .await
                }
                "ScheduleJobAlpha1" if alpha1 => {
                    raw::unary(request, move |req| async move {
                        router.schedule_job(req, "ScheduleJobAlpha1")
                    })
                    .await
                }
                "GetJob" if stable => raw::unary(request, move |req| async move { router.get_job(req) }).await,
                "GetJobAlpha1" if alpha1 => raw::unary(request, move |req| async move { router.get_job(req) }).await,
                "DeleteJob" if stable => raw::unary(request, move |req| async move { router.delete_job(req) }).await,
                "DeleteJobAlpha1" if alpha1 => {
                    raw::unary(request, move |req| async move { router.delete_job(req) }).await
                }
                other => raw::unimplemented("the fake sidecar", other, "this runtime level lacks it"),
            };
            Ok(response)
        })
    }
}
