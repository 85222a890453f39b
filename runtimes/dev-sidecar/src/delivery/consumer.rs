//! One consumer: an app's subscription on one partition.

use std::{sync::Arc, time::Duration};

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
    log::{Log, StoredEvent, store::PARTITION_EXTENSION},
    payload,
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
    /// Taken for every bulk delivery, retries and dead letters included, and
    /// shared by all of the app's bulk consumers on one pub/sub component:
    /// daprd's Kafka component delivers one bulk batch at a time per app,
    /// whatever its partition or topic (a mutex across its claims), while
    /// single deliveries of different partitions overlap.
    pub bulk_turn: Arc<tokio::sync::Mutex<()>>,
}

/// Why an event no route matched ended on the dead-letter topic.
const NO_ROUTE: &str = "no route matched the event";

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
        // Registers the group on this partition before it reads anything, so
        // retention keeps what it has yet to see.
        self.log.commit(&group, &topic, self.partition, next);
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
            let turn = match bulk {
                Some(_) => Some(tokio::select! {
                    turn = self.bulk_turn.lock() => turn,
                    () = shutdown.cancelled() => return,
                }),
                None => None,
            };
            let batch = match self.log.read(&topic, self.partition, next, bulk.unwrap_or(1)) {
                Ok(batch) => batch,
                Err(err) => {
                    drop(turn);
                    tracing::error!(error = %err, "reading the log failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                drop(turn);
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
            data: payload::delivered(&event.data_content_type, &event.data, payload::Path::Single),
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
    /// As daprd: RETRY, an error and an app that cannot be reached all use
    /// up a retry; an event no route matches is acknowledged and
    /// dead-lettered.
    async fn deliver_one(&self, event: &StoredEvent, shutdown: &CancellationToken) -> Verdict {
        let Some(path) = route(self.subscription.routes.as_ref(), &event.event_type) else {
            return Verdict::DeadLetter(NO_ROUTE.into());
        };
        let (span, delivered) = self.delivery_hop(event);
        let event = &delivered;
        let mut retries = 0;
        let mut backoff = self.policy.initial_backoff;
        loop {
            let answer = {
                use tracing::Instrument;
                let record = [
                    ("__key", event.partition_key.as_str()),
                    ("__topic", event.topic.as_str()),
                    ("partitionKey", event.partition_key.as_str()),
                ];
                self.apps
                    .on_topic_event(
                        &self.app_id,
                        self.request(event, path.clone()),
                        &event.traceparent,
                        &record,
                    )
                    .instrument(span.clone())
                    .await
            };
            let reason = match answer {
                Ok(response) => match TopicEventResponseStatus::try_from(response.status) {
                    Ok(TopicEventResponseStatus::Success) => return Verdict::Done,
                    Ok(TopicEventResponseStatus::Drop) => return Verdict::DeadLetter("app answered DROP".into()),
                    _ => "app answered RETRY".to_owned(),
                },
                // daprd acknowledges what an app does not implement.
                Err(status) if status.code() == tonic::Code::Unimplemented => return Verdict::Done,
                Err(status) => format!("app failed: {status}"),
            };
            retries += 1;
            if retries > self.policy.max_retries {
                return Verdict::DeadLetter(format!("{reason}; {} retries exhausted", self.policy.max_retries));
            }
            tracing::debug!(app = %self.app_id, event_id = %event.id, retries, %reason, "redelivering");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return Verdict::Stopped,
            }
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }

    /// Delivers a bulk batch as daprd does: one call per route, only the
    /// entries still failing are sent again, DROP and no-route entries are
    /// dead-lettered one by one, and once retries run out the failing
    /// entries are dead-lettered and the batch is done. Returns the offset
    /// after the batch, or None when we stop (or a dead letter could not be
    /// stored) and the batch must be delivered again.
    async fn deliver_bulk(&self, batch: &[(u64, StoredEvent)], shutdown: &CancellationToken) -> Option<u64> {
        let last = batch.last().map(|(offset, _)| offset + 1)?;
        // One delivery hop per event, as when they go one by one.
        let mut pending: Vec<(u64, StoredEvent, String)> = Vec::new();
        let mut spans = Vec::new();
        for (offset, event) in batch {
            match route(self.subscription.routes.as_ref(), &event.event_type) {
                Some(path) => {
                    let (span, delivered) = self.delivery_hop(event);
                    spans.push(span);
                    pending.push((*offset, delivered, path));
                }
                None => {
                    if !self.dead_letter(event, NO_ROUTE).await {
                        return None;
                    }
                }
            }
        }
        let mut retries = 0;
        let mut backoff = self.policy.initial_backoff;
        let mut reason = String::new();
        while !pending.is_empty() {
            let mut paths: Vec<String> = pending.iter().map(|(_, _, path)| path.clone()).collect();
            paths.dedup();
            let mut still_failing = Vec::new();
            for path in paths {
                let (for_path, others): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(_, _, p)| *p == path);
                pending = others;
                match self.call_bulk(&path, &for_path).await {
                    Ok(statuses) => {
                        for ((offset, event, path), status) in for_path.into_iter().zip(statuses) {
                            match status {
                                Some(TopicEventResponseStatus::Success) => {}
                                Some(TopicEventResponseStatus::Drop) => {
                                    if !self.dead_letter(&event, "app answered DROP").await {
                                        return None;
                                    }
                                }
                                _ => {
                                    reason = "app answered RETRY".into();
                                    still_failing.push((offset, event, path));
                                }
                            }
                        }
                    }
                    // daprd acknowledges what an app does not implement.
                    Err(status) if status.code() == tonic::Code::Unimplemented => {}
                    Err(status) => {
                        reason = format!("app failed: {status}");
                        still_failing.extend(for_path);
                    }
                }
            }
            pending = still_failing;
            if pending.is_empty() {
                break;
            }
            retries += 1;
            if retries > self.policy.max_retries {
                let reason = format!("{reason}; {} retries exhausted", self.policy.max_retries);
                for (_, event, _) in &pending {
                    if !self.dead_letter(event, &reason).await {
                        return None;
                    }
                }
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return None,
            }
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
        Some(last)
    }

    /// One `OnBulkTopicEvent` call for `entries` (all routed to `path`); the
    /// status of each entry, in order (None: the app did not say).
    async fn call_bulk(
        &self,
        path: &str,
        entries: &[(u64, StoredEvent, String)],
    ) -> Result<Vec<Option<TopicEventResponseStatus>>, tonic::Status> {
        let traceparents: Vec<&str> = entries.iter().map(|(_, event, _)| event.traceparent.as_str()).collect();
        let request = TopicEventBulkRequest {
            id: uuid::Uuid::new_v4().to_string(),
            entries: entries
                .iter()
                .map(|(offset, event, _)| TopicEventBulkRequestEntry {
                    entry_id: offset.to_string(),
                    // Kafka gives daprd no per-entry content type.
                    content_type: String::new(),
                    metadata: Default::default(),
                    event: Some(Event::CloudEvent(TopicEventCeRequest {
                        id: event.id.clone(),
                        source: event.source.clone(),
                        r#type: event.event_type.clone(),
                        spec_version: event.spec_version.clone(),
                        data_content_type: event.data_content_type.clone(),
                        data: payload::delivered(&event.data_content_type, &event.data, payload::Path::Bulk),
                        extensions: Some(extensions(event)),
                    })),
                })
                .collect(),
            metadata: [("pubsubName".to_owned(), self.subscription.pubsub_name.clone())].into(),
            topic: self.subscription.topic.clone(),
            pubsub_name: self.subscription.pubsub_name.clone(),
            r#type: "com.dapr.event.sent.bulk".into(),
            path: path.to_owned(),
        };
        let response = self
            .apps
            .on_bulk_topic_event(&self.app_id, request, &traceparents)
            .await?;
        Ok(entries
            .iter()
            .map(|(offset, _, _)| {
                response
                    .statuses
                    .iter()
                    .find(|entry| entry.entry_id == offset.to_string())
                    .and_then(|entry| TopicEventResponseStatus::try_from(entry.status).ok())
            })
            .collect())
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
