//! What recurring-service does with each delivered event.

use todo_core::{
    dapr::{
        app::{DeliveredEvent, EventHandler},
        callback::{Outcome, subscription},
        publisher::{OutgoingEvent, Publisher},
        runtime::TopicSubscription,
    },
    events::{self, ContentType, event_types, topics},
    proto::v1::TaskEvent,
};

use crate::occurrence::next_occurrence;

const COMPLETED_ROUTE: &str = "/task-events/completed";
const IGNORE_ROUTE: &str = "/ignore";

pub struct Recurring {
    pub publisher: Publisher,
    pub pubsub_name: String,
}

#[tonic::async_trait]
impl EventHandler for Recurring {
    fn subscriptions(&self) -> Vec<TopicSubscription> {
        vec![subscription(
            &self.pubsub_name,
            topics::TASK_EVENTS,
            &[(event_types::TASK_COMPLETED, COMPLETED_ROUTE)],
            IGNORE_ROUTE,
        )]
    }

    async fn on_event(&self, event: DeliveredEvent) -> Outcome {
        if event.event_type != event_types::TASK_COMPLETED {
            return Outcome::Success;
        }
        let decoded = ContentType::detect(&event.content_type, &event.data)
            .and_then(|content_type| events::decode::<TaskEvent>(content_type, &event.data));
        let completed = match decoded {
            Ok(completed) => completed,
            Err(err) => {
                tracing::warn!(event_id = %event.id, error = %err, "undecodable task event");
                return Outcome::Drop;
            }
        };
        let command = match next_occurrence(&completed, todo_core::timestamps::now()) {
            Ok(Some(command)) => command,
            Ok(None) => return Outcome::Success,
            Err(err) => {
                tracing::warn!(event_id = %event.id, error = %err, "invalid completion");
                return Outcome::Drop;
            }
        };
        let outgoing = match OutgoingEvent::from_message(
            &command.event_id,
            &command.event_type,
            &command.user_id,
            &command,
            todo_core::telemetry::traceparent_or(event.traceparent.as_deref()),
        ) {
            Ok(outgoing) => outgoing,
            Err(err) => {
                // Every later delivery would fail the same way: poison.
                tracing::warn!(event_id = %event.id, error = %err, "the next occurrence has no wire form");
                return Outcome::Drop;
            }
        };
        match self.publisher.publish(topics::TASK_COMMANDS, &outgoing).await {
            Ok(()) => {
                tracing::info!(
                    series_id = %command.series_id,
                    task_id = %command.task_id,
                    occurrence = command.occurrence_number,
                    "next occurrence requested"
                );
                Outcome::Success
            }
            Err(err) => {
                tracing::warn!(event_id = %event.id, error = %err, "publishing the occurrence command failed");
                Outcome::Retry
            }
        }
    }
}
