//! What the sidecar delivers to task-api.

use todo_core::{
    dapr::{
        app::{DeliveredEvent, EventHandler},
        callback::{BULK_MAX_AWAIT_MS, BULK_MAX_EVENTS, Outcome, subscription, with_bulk},
        runtime::TopicSubscription,
    },
    events::{self, ContentType, event_types, topics},
    proto::v1::{TaskEvent, TaskOccurrenceRequested},
};

use crate::{
    operations::{OperationError, Tasks},
    watch::WatchHub,
};

pub struct TaskApiEvents {
    pub tasks: Tasks,
    pub watch: WatchHub,
    pub pubsub_name: String,
    pub watch_pubsub_name: String,
}

/// Routes, as paths the subscription names (informational: handling
/// dispatches on topic and type, which holds even without routing rules).
const OCCURRENCE_ROUTE: &str = "/task-commands/occurrence-requested";
const IGNORE_ROUTE: &str = "/ignore";
const WATCH_ROUTE: &str = "/task-events/watch";

fn decode<M: prost::Message + prost::Name + Default>(event: &DeliveredEvent) -> Result<M, events::DecodeError> {
    let content_type = ContentType::detect(&event.content_type, &event.data)?;
    events::decode(content_type, &event.data)
}

#[tonic::async_trait]
impl EventHandler for TaskApiEvents {
    fn subscriptions(&self) -> Vec<TopicSubscription> {
        vec![
            subscription(
                &self.pubsub_name,
                topics::TASK_COMMANDS,
                &[(event_types::TASK_OCCURRENCE_REQUESTED, OCCURRENCE_ROUTE)],
                IGNORE_ROUTE,
            ),
            // In bulk: each event is only handed to the open streams, so a
            // call per event (one per partition at a time) made it the
            // consumer furthest behind under load.
            with_bulk(
                subscription(&self.watch_pubsub_name, topics::TASK_EVENTS, &[], WATCH_ROUTE),
                BULK_MAX_EVENTS,
                BULK_MAX_AWAIT_MS,
            ),
        ]
    }

    async fn on_event(&self, event: DeliveredEvent) -> Outcome {
        match (event.topic.as_str(), event.event_type.as_str()) {
            (topics::TASK_EVENTS, _) => match decode::<TaskEvent>(&event) {
                Ok(task_event) => {
                    self.watch.publish(task_event);
                    Outcome::Success
                }
                Err(err) => {
                    tracing::warn!(event_id = %event.id, error = %err, "undecodable task event");
                    Outcome::Drop
                }
            },
            (topics::TASK_COMMANDS, event_types::TASK_OCCURRENCE_REQUESTED) => {
                let command = match decode::<TaskOccurrenceRequested>(&event) {
                    Ok(command) => command,
                    Err(err) => {
                        tracing::warn!(event_id = %event.id, error = %err, "undecodable occurrence command");
                        return Outcome::Drop;
                    }
                };
                let trace = todo_core::telemetry::traceparent_or(event.traceparent.as_deref());
                match self.tasks.create_occurrence(&command, trace.as_deref()).await {
                    Ok(created) => {
                        tracing::info!(task_id = %command.task_id, created, "occurrence requested");
                        Outcome::Success
                    }
                    Err(OperationError::Invalid(err)) => {
                        tracing::warn!(event_id = %event.id, error = %err, "invalid occurrence command");
                        Outcome::Drop
                    }
                    Err(OperationError::Database(err)) if todo_core::db::is_transient(&err) => Outcome::Retry,
                    Err(err) => {
                        tracing::error!(event_id = %event.id, error = %err, "occurrence command failed");
                        Outcome::Retry
                    }
                }
            }
            // Unknown types are tolerated: acknowledged and ignored.
            _ => Outcome::Success,
        }
    }
}
