//! One consumer: an app's subscription on one partition.

use std::time::Duration;

use prost_types::{Struct, Value, value::Kind};
use todo_core::{
    dapr::runtime::{
        TopicEventBulkRequest, TopicEventBulkRequestEntry, TopicEventCeRequest, TopicEventRequest, TopicSubscription,
        topic_event_bulk_request_entry::Event, topic_event_response::TopicEventResponseStatus,
    },
    shutdown::CancellationToken,
};

use super::routing::route;
use crate::{
    apps::AppClients,
    cloudevent,
    jobs::is_connect_error,
    log::{Log, StoredEvent, store::PARTITION_EXTENSION},
};

/// Redelivery of events the app answers RETRY (or fails) for.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Redeliveries before the event is dead-lettered.
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

pub struct Consumer {
    pub log: Log,
    pub apps: AppClients,
    pub app_id: String,
    pub subscription: TopicSubscription,
    pub partition: u32,
    pub policy: RetryPolicy,
}

enum Verdict {
    Done,
    DeadLetter(String),
    Stopped,
}

impl Consumer {
    /// The consumer group: one per app id (and pub/sub component).
    pub fn group(&self) -> String {
        format!("{}|{}", self.app_id, self.subscription.pubsub_name)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let group = self.group();
        let topic = self.subscription.topic.clone();
        let mut next = match self.log.committed(&group, &topic, self.partition) {
            Ok(next) => next,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the committed offset; consumer not started");
                return;
            }
        };
        let bulk = self
            .subscription
            .bulk_subscribe
            .as_ref()
            .filter(|bulk| bulk.enabled)
            .map(|bulk| usize::try_from(bulk.max_messages_count).unwrap_or(0).clamp(1, 1000));
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let batch = match self.log.read(&topic, self.partition, next, bulk.unwrap_or(1)) {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::error!(error = %err, "reading the log failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = self.log.appended() => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
            let handled = match bulk {
                Some(_) => self.deliver_bulk(&batch, &shutdown).await,
                None => {
                    let (offset, event) = &batch[0];
                    match self.deliver_one(event, &shutdown).await {
                        Verdict::Done => Some(offset + 1),
                        Verdict::DeadLetter(reason) => self.dead_letter(event, &reason).await.then_some(offset + 1),
                        Verdict::Stopped => None,
                    }
                }
            };
            match handled {
                Some(after) => {
                    next = after;
                    self.log.commit(&group, &topic, self.partition, next);
                }
                None => return,
            }
        }
    }

    fn request(&self, event: &StoredEvent, path: String) -> TopicEventRequest {
        TopicEventRequest {
            id: event.id.clone(),
            source: event.source.clone(),
            r#type: event.event_type.clone(),
            spec_version: event.spec_version.clone(),
            data_content_type: event.data_content_type.clone(),
            data: event.data.clone(),
            topic: event.topic.clone(),
            pubsub_name: self.subscription.pubsub_name.clone(),
            path,
            extensions: Some(extensions(event)),
        }
    }

    /// The delivery hop: a span continuing the event's trace, and the event
    /// carrying that span's context, as the app receives it.
    fn delivery_hop(&self, event: &StoredEvent) -> (tracing::Span, StoredEvent) {
        let span = tracing::info_span!(
            "pubsub.deliver",
            otel.name = %format!("{} deliver", event.topic),
            otel.kind = "producer",
            messaging.system = "dev-sidecar",
            messaging.destination.name = %event.topic,
            messaging.message.id = %event.id,
            app = %self.app_id,
        );
        todo_core::telemetry::set_parent(&span, Some(event.traceparent.as_str()));
        let mut delivered = event.clone();
        if let Some(traceparent) = todo_core::telemetry::traceparent_of(&span) {
            delivered.traceparent = traceparent;
        }
        (span, delivered)
    }

    /// Delivers one event until it is handled, dead-lettered, or we stop.
    async fn deliver_one(&self, event: &StoredEvent, shutdown: &CancellationToken) -> Verdict {
        let Some(path) = route(self.subscription.routes.as_ref(), &event.event_type) else {
            return Verdict::Done;
        };
        let (span, delivered) = self.delivery_hop(event);
        let event = &delivered;
        let mut retries = 0;
        let mut backoff = self.policy.initial_backoff;
        loop {
            let answer = {
                use tracing::Instrument;
                self.apps
                    .on_topic_event(&self.app_id, self.request(event, path.clone()), &event.traceparent)
                    .instrument(span.clone())
                    .await
            };
            let failure = match answer {
                Ok(response) => match TopicEventResponseStatus::try_from(response.status) {
                    Ok(TopicEventResponseStatus::Success) => return Verdict::Done,
                    Ok(TopicEventResponseStatus::Drop) => return Verdict::DeadLetter("app answered DROP".into()),
                    _ => Some("app answered RETRY".to_owned()),
                },
                // Not reachable at all: wait for the app, without using up retries.
                Err(status) if is_connect_error(&status) => None,
                Err(status) => Some(format!("app failed: {status}")),
            };
            if let Some(reason) = failure {
                retries += 1;
                if retries > self.policy.max_retries {
                    return Verdict::DeadLetter(format!("{reason}; {} retries exhausted", self.policy.max_retries));
                }
                tracing::debug!(app = %self.app_id, event_id = %event.id, retries, %reason, "redelivering");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return Verdict::Stopped,
            }
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }

    /// Delivers a bulk batch; returns the offset after the last handled entry.
    async fn deliver_bulk(&self, batch: &[(u64, StoredEvent)], shutdown: &CancellationToken) -> Option<u64> {
        let mut retries = 0;
        let mut backoff = self.policy.initial_backoff;
        // One delivery hop per event, as when they go one by one.
        let hops: Vec<(u64, tracing::Span, StoredEvent)> = batch
            .iter()
            .map(|(offset, event)| {
                let (span, delivered) = self.delivery_hop(event);
                (*offset, span, delivered)
            })
            .collect();
        loop {
            let mut entries = Vec::new();
            let mut routed = Vec::new();
            for (offset, _, event) in &hops {
                if let Some(path) = route(self.subscription.routes.as_ref(), &event.event_type) {
                    routed.push((*offset, event, path));
                    entries.push(TopicEventBulkRequestEntry {
                        entry_id: offset.to_string(),
                        content_type: event.data_content_type.clone(),
                        metadata: Default::default(),
                        event: Some(Event::CloudEvent(TopicEventCeRequest {
                            id: event.id.clone(),
                            source: event.source.clone(),
                            r#type: event.event_type.clone(),
                            spec_version: event.spec_version.clone(),
                            data_content_type: event.data_content_type.clone(),
                            data: event.data.clone(),
                            extensions: Some(extensions(event)),
                        })),
                    });
                }
            }
            let last = batch.last().map(|(offset, _)| offset + 1)?;
            if entries.is_empty() {
                return Some(last);
            }
            let request = TopicEventBulkRequest {
                id: uuid::Uuid::new_v4().to_string(),
                entries,
                metadata: Default::default(),
                topic: self.subscription.topic.clone(),
                pubsub_name: self.subscription.pubsub_name.clone(),
                r#type: "com.dapr.event.sent.bulk".into(),
                path: routed[0].2.clone(),
            };
            let failure = match self
                .apps
                .on_bulk_topic_event(&self.app_id, request, &routed[0].1.traceparent)
                .await
            {
                Ok(response) => {
                    let status_of = |offset: u64| {
                        response
                            .statuses
                            .iter()
                            .find(|entry| entry.entry_id == offset.to_string())
                            .and_then(|entry| TopicEventResponseStatus::try_from(entry.status).ok())
                    };
                    // Handled entries in order, up to the first that must be retried.
                    let mut handled_until = None;
                    for (offset, event, _) in &routed {
                        match status_of(*offset) {
                            Some(TopicEventResponseStatus::Success) => handled_until = Some(offset + 1),
                            Some(TopicEventResponseStatus::Drop) => {
                                if !self.dead_letter(event, "app answered DROP").await {
                                    return None;
                                }
                                handled_until = Some(offset + 1);
                            }
                            _ => break,
                        }
                    }
                    match handled_until {
                        Some(after) if after >= routed.last().map_or(0, |(o, _, _)| o + 1) => return Some(last),
                        Some(after) => return Some(after),
                        None => Some("app answered RETRY for the first entry".to_owned()),
                    }
                }
                Err(status) if is_connect_error(&status) => None,
                Err(status) => Some(format!("app failed: {status}")),
            };
            if let Some(reason) = failure {
                retries += 1;
                if retries > self.policy.max_retries {
                    let (offset, event, _) = &routed[0];
                    let reason = format!("{reason}; {} retries exhausted", self.policy.max_retries);
                    return self.dead_letter(event, &reason).await.then_some(offset + 1);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return None,
            }
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }

    /// Forwards `event` to the subscription's dead-letter topic; true once
    /// it is stored (or there is no dead-letter topic and it is dropped).
    async fn dead_letter(&self, event: &StoredEvent, reason: &str) -> bool {
        let topic = &self.subscription.dead_letter_topic;
        if topic.is_empty() {
            tracing::warn!(app = %self.app_id, event_id = %event.id, %reason, "dropped: no dead-letter topic");
            return true;
        }
        let letter = cloudevent::dead_letter(&self.log, event, topic, &self.app_id, reason);
        match self.log.append(vec![letter]).await {
            Ok(_) => {
                tracing::warn!(app = %self.app_id, event_id = %event.id, dead_letter_topic = %topic, %reason, "dead-lettered");
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "could not store the dead letter; will deliver again");
                false
            }
        }
    }
}

/// CloudEvent extensions as the AppCallback request carries them.
fn extensions(event: &StoredEvent) -> Struct {
    let string = |value: &str| Value {
        kind: Some(Kind::StringValue(value.to_owned())),
    };
    let mut fields: std::collections::BTreeMap<String, Value> = event
        .extensions
        .iter()
        .filter(|(key, _)| key.as_str() != PARTITION_EXTENSION)
        .map(|(key, value)| (key.clone(), string(value)))
        .collect();
    if !event.traceparent.is_empty() {
        fields.insert("traceparent".into(), string(&event.traceparent));
    }
    fields.insert("topic".into(), string(&event.topic));
    fields.insert("pubsubname".into(), string(&event.pubsub_name));
    if !event.partition_key.is_empty() {
        fields.insert("partitionkey".into(), string(&event.partition_key));
    }
    if let Some(time) = chrono::DateTime::from_timestamp_millis(event.published_at_ms) {
        fields.insert("time".into(), string(&time.to_rfc3339()));
    }
    Struct {
        fields: fields.into_iter().collect(),
    }
}
