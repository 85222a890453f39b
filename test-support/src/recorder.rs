//! An app for conformance tests: declares the subscriptions it is given,
//! records every delivery and job it receives, and answers as scripted.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use todo_core::{
    dapr::{
        app::{self, DeliveredEvent, EventHandler},
        callback::{Outcome, subscription, with_bulk},
        runtime::{JobEventRequest, TopicSubscription},
    },
    server::{GrpcApp, base_routes},
};

use crate::RunningServer;
use tonic::Status;

#[derive(Default)]
pub struct Recorder {
    pub subscriptions: Vec<TopicSubscription>,
    received: Mutex<Vec<DeliveredEvent>>,
    /// Answers per event id, used up in order; SUCCESS once exhausted.
    script: Mutex<HashMap<String, VecDeque<Outcome>>>,
    /// Every job trigger that succeeded, and when it arrived.
    jobs: Mutex<Vec<(JobEventRequest, chrono::DateTime<chrono::Utc>)>>,
    /// Job triggers to fail (UNAVAILABLE) before one succeeds.
    failing_jobs: Mutex<u32>,
}

impl Recorder {
    pub fn new(subscriptions: Vec<TopicSubscription>) -> Arc<Self> {
        Arc::new(Self {
            subscriptions,
            ..Default::default()
        })
    }

    /// Subscribed to each of `topics` (routes to `/events`, bulk or not).
    pub fn on_topics(topics: &[&str], bulk: bool) -> Arc<Self> {
        Self::new(
            topics
                .iter()
                .map(|topic| {
                    let sub = subscription("pubsub", topic, &[], "/events");
                    if bulk { with_bulk(sub, 50, 100) } else { sub }
                })
                .collect(),
        )
    }

    /// Every delivered id, in arrival order.
    pub fn received_ids(&self) -> Vec<String> {
        self.received().into_iter().map(|event| event.id).collect()
    }

    /// Answers `outcomes` to the first deliveries of `event_id`, in order.
    pub fn script(&self, event_id: &str, outcomes: &[Outcome]) {
        self.script
            .lock()
            .unwrap()
            .insert(event_id.to_owned(), outcomes.iter().copied().collect());
    }

    /// Fails the next `count` job triggers.
    pub fn fail_jobs(&self, count: u32) {
        *self.failing_jobs.lock().unwrap() = count;
    }

    pub fn received(&self) -> Vec<DeliveredEvent> {
        self.received.lock().unwrap().clone()
    }

    /// Deliveries on `topic`, in arrival order.
    pub fn on_topic(&self, topic: &str) -> Vec<DeliveredEvent> {
        self.received()
            .into_iter()
            .filter(|event| event.topic == topic)
            .collect()
    }

    /// Ids delivered on `topic`, in arrival order (redeliveries repeat).
    pub fn ids_on(&self, topic: &str) -> Vec<String> {
        self.on_topic(topic).into_iter().map(|event| event.id).collect()
    }

    pub fn jobs(&self) -> Vec<JobEventRequest> {
        self.jobs.lock().unwrap().iter().map(|(job, _)| job.clone()).collect()
    }

    /// The name of every job trigger that succeeded, and when it arrived.
    pub fn job_arrivals(&self) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
        self.jobs
            .lock()
            .unwrap()
            .iter()
            .map(|(job, at)| (job.name.clone(), *at))
            .collect()
    }

    /// Serves this recorder as an app on 127.0.0.1:`port`.
    pub async fn serve(self: &Arc<Self>, port: u16, app_api_token: Option<&str>) -> RunningServer {
        let mut base = base_routes(&app::SERVICE_NAMES).expect("routes");
        app::add_routes(&mut base.routes, self.clone(), app_api_token.map(Into::into));
        let server = GrpcApp::bind(SocketAddr::from(([127, 0, 0, 1], port)), base)
            .await
            .expect("bind the recorder app");
        RunningServer::spawn(server.local_addr(), |stop| server.run_until_stopped(stop))
    }
}

#[tonic::async_trait]
impl EventHandler for Recorder {
    fn subscriptions(&self) -> Vec<TopicSubscription> {
        self.subscriptions.clone()
    }

    async fn on_event(&self, event: DeliveredEvent) -> Outcome {
        let outcome = self
            .script
            .lock()
            .unwrap()
            .get_mut(&event.id)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Outcome::Success);
        self.received.lock().unwrap().push(event);
        outcome
    }

    async fn on_job(&self, job: JobEventRequest) -> Result<(), Status> {
        {
            let mut failing = self.failing_jobs.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(Status::unavailable("scripted job failure"));
            }
        }
        self.jobs.lock().unwrap().push((job, chrono::Utc::now()));
        Ok(())
    }
}
