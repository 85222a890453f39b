//! What audit-service does with each delivered event.

use prost::Message;
use todo_core::db::Database;
use todo_core::{
    dapr::{
        app::{DeliveredEvent, EventHandler},
        callback::{BULK_MAX_AWAIT_MS, BULK_MAX_EVENTS, Outcome, subscription, with_bulk},
        runtime::TopicSubscription,
    },
    events::{self, ContentType, topics},
    proto::v1::{TaskEvent, TaskOccurrenceRequested},
    timestamps,
};
use uuid::Uuid;

use crate::{
    chain::Chain,
    store::{self, NewRecord},
};

const AUDIT_ROUTE: &str = "/audit";

pub struct Auditor {
    pub pool: Database,
    pub chain: Chain,
    pub pubsub_name: String,
}

/// An event that cannot be recorded: poison.
#[derive(Debug, thiserror::Error)]
pub enum InvalidEvent {
    #[error(transparent)]
    Decode(#[from] events::DecodeError),
    #[error("invalid {0}")]
    Field(&'static str),
}

/// The record an event becomes. The payload is the event's canonical
/// protobuf encoding, whichever encoding it arrived in.
pub fn record_for(event: &DeliveredEvent) -> Result<Option<NewRecord>, InvalidEvent> {
    let content_type = ContentType::detect(&event.content_type, &event.data)?;
    let (event_id, event_type, user_id, task_id, occurred_at, payload) = match event.topic.as_str() {
        topics::TASK_EVENTS => {
            let decoded: TaskEvent = events::decode(content_type, &event.data)?;
            let task_id = decoded.task.as_ref().map(|task| task.id.clone()).unwrap_or_default();
            let payload = decoded.encode_to_vec();
            (
                decoded.event_id,
                decoded.event_type,
                decoded.user_id,
                task_id,
                decoded.occurred_at,
                payload,
            )
        }
        topics::TASK_COMMANDS => {
            let decoded: TaskOccurrenceRequested = events::decode(content_type, &event.data)?;
            let payload = decoded.encode_to_vec();
            (
                decoded.event_id,
                decoded.event_type,
                decoded.user_id,
                decoded.task_id,
                decoded.occurred_at,
                payload,
            )
        }
        _ => return Ok(None),
    };
    let event_id = Uuid::parse_str(&event_id).map_err(|_| InvalidEvent::Field("event_id"))?;
    if user_id.trim().is_empty() || user_id.len() > 255 || user_id.contains('\0') {
        return Err(InvalidEvent::Field("user_id"));
    }
    if task_id.is_empty() || task_id.len() > 64 || task_id.contains('\0') {
        return Err(InvalidEvent::Field("task_id"));
    }
    let event_type = if event_type.is_empty() {
        event.event_type.clone()
    } else {
        event_type
    };
    // PostgreSQL text cannot hold NUL: refused there, it would be retried
    // for ever instead of dropped as the poison it is.
    if event_type.is_empty() || event_type.len() > 100 || event_type.contains('\0') {
        return Err(InvalidEvent::Field("event_type"));
    }
    let occurred_at = match occurred_at {
        Some(ts) => timestamps::from_proto(&ts).map_err(|_| InvalidEvent::Field("occurred_at"))?,
        None => timestamps::now(),
    };
    Ok(Some(NewRecord {
        event_id,
        event_type,
        task_id,
        user_id,
        occurred_at,
        payload,
    }))
}

#[tonic::async_trait]
impl EventHandler for Auditor {
    fn subscriptions(&self) -> Vec<TopicSubscription> {
        [topics::TASK_EVENTS, topics::TASK_COMMANDS]
            .into_iter()
            // In bulk: a batch is one transaction (see `store::append_all`).
            // Single deliveries with group commit were measured: a lone
            // event waited less at low rates but, with at most one event in
            // flight per partition, throughput fell to a fraction and CPU
            // per event rose by half (docs/benchmarks.md).
            .map(|topic| {
                with_bulk(
                    subscription(&self.pubsub_name, topic, &[], AUDIT_ROUTE),
                    BULK_MAX_EVENTS,
                    BULK_MAX_AWAIT_MS,
                )
            })
            .collect()
    }

    async fn on_event(&self, event: DeliveredEvent) -> Outcome {
        let outcomes = self.append(std::slice::from_ref(&event)).await;
        outcomes[0]
    }

    async fn on_batch(&self, events: &[DeliveredEvent]) -> Option<Vec<Outcome>> {
        Some(self.append(events).await)
    }
}

impl Auditor {
    /// Records every valid event of `events` in one transaction; poison is
    /// dropped, events of other topics acknowledged, and a failed
    /// transaction asks for all of them again.
    async fn append(&self, events: &[DeliveredEvent]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Success; events.len()];
        let mut records = Vec::with_capacity(events.len());
        let mut positions = Vec::with_capacity(events.len());
        for (position, event) in events.iter().enumerate() {
            match record_for(event) {
                Ok(Some(record)) => {
                    records.push(record);
                    positions.push(position);
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(event_id = %event.id, topic = %event.topic, error = %err, "event dropped");
                    outcomes[position] = Outcome::Drop;
                }
            }
        }
        if records.is_empty() {
            return outcomes;
        }
        match store::append_all(&self.pool, &self.chain, &records).await {
            Ok(appended) => {
                tracing::debug!(
                    appended = appended.iter().filter(|a| **a).count(),
                    duplicates = appended.iter().filter(|a| !**a).count(),
                    "audit records appended"
                );
            }
            Err(err) => {
                tracing::warn!(events = records.len(), error = %err, "appending failed; will retry");
                for position in positions {
                    outcomes[position] = Outcome::Retry;
                }
            }
        }
        outcomes
    }
}
