//! What reminder-service does with deliveries and fired jobs.

use prost::{Message, Name};
use todo_core::{
    dapr::{
        app::{DeliveredEvent, EventHandler},
        callback::{Outcome, subscription},
        jobs::Jobs,
        publisher::{OutgoingEvent, Publisher},
        runtime::{JobEventRequest, TopicSubscription},
    },
    events::{self, ContentType, event_types, topics},
    proto::v1::{ReminderJob, TaskEvent},
    timestamps,
};
use tonic::Status;

use crate::plan::{Action, job_data, plan, reminder_event};

const TASK_EVENTS_ROUTE: &str = "/task-events/reminders";
const IGNORE_ROUTE: &str = "/ignore";

pub struct Reminders {
    pub jobs: Jobs,
    pub publisher: Publisher,
    pub pubsub_name: String,
}

#[tonic::async_trait]
impl EventHandler for Reminders {
    fn subscriptions(&self) -> Vec<TopicSubscription> {
        let rules: Vec<(&str, &str)> = event_types::TASK_EVENT_TYPES
            .iter()
            .map(|event_type| (*event_type, TASK_EVENTS_ROUTE))
            .collect();
        vec![subscription(
            &self.pubsub_name,
            topics::TASK_EVENTS,
            &rules,
            IGNORE_ROUTE,
        )]
    }

    async fn on_event(&self, event: DeliveredEvent) -> Outcome {
        if !event_types::TASK_EVENT_TYPES.contains(&event.event_type.as_str()) {
            return Outcome::Success;
        }
        let decoded = ContentType::detect(&event.content_type, &event.data)
            .and_then(|content_type| events::decode::<TaskEvent>(content_type, &event.data));
        let task_event = match decoded {
            Ok(task_event) => task_event,
            Err(err) => {
                tracing::warn!(event_id = %event.id, error = %err, "undecodable task event");
                return Outcome::Drop;
            }
        };
        let trace = todo_core::telemetry::traceparent_or(event.traceparent.as_deref());
        let actions = match plan(&task_event, timestamps::now(), trace.as_deref()) {
            Ok(actions) => actions,
            Err(err) => {
                tracing::warn!(event_id = %event.id, error = %err, "invalid task event");
                return Outcome::Drop;
            }
        };
        for action in actions {
            let result = match &action {
                Action::Schedule { name, at, job } => {
                    self.jobs
                        .schedule_once(name, *at, job_data(job), trace.as_deref())
                        .await
                }
                Action::Delete { name } => self.jobs.delete(name, trace.as_deref()).await,
            };
            if let Err(status) = result {
                tracing::warn!(event_id = %event.id, ?action, error = %status, "jobs API call failed");
                return Outcome::Retry;
            }
            tracing::debug!(?action, "reminder job updated");
        }
        Outcome::Success
    }

    /// Publishes the reminder. A malformed job is acknowledged (it would
    /// fail the same way every time); a publish failure is an error, so the
    /// scheduler tries the job again.
    async fn on_job(&self, job: JobEventRequest) -> Result<(), Status> {
        let reminder = job
            .data
            .as_ref()
            .filter(|any| any.type_url.is_empty() || any.type_url == ReminderJob::type_url())
            .and_then(|any| ReminderJob::decode(any.value.as_slice()).ok())
            .map(|data| (reminder_event(&data, timestamps::now()), data.traceparent));
        let (event, traceparent) = match reminder {
            Some((Ok(event), traceparent)) => (event, traceparent),
            Some((Err(err), _)) => {
                tracing::warn!(job = %job.name, error = %err, "invalid reminder job dropped");
                return Ok(());
            }
            None => {
                tracing::warn!(job = %job.name, "job without reminder data dropped");
                return Ok(());
            }
        };
        // The reminder continues the trace of the change that scheduled it.
        let span =
            tracing::info_span!("reminder.fire", otel.kind = "consumer", job = %job.name, task_id = %event.task_id);
        todo_core::telemetry::set_parent(&span, Some(traceparent.as_str()));
        let outgoing = OutgoingEvent {
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            partition_key: event.user_id.clone(),
            data: event.encode_to_vec(),
            content_type: ContentType::Protobuf,
            traceparent: todo_core::telemetry::traceparent_of(&span)
                .or((!traceparent.is_empty()).then_some(traceparent)),
        };
        use tracing::Instrument;
        self.publisher
            .publish(topics::REMINDERS, &outgoing)
            .instrument(span)
            .await
            .map_err(|err| Status::unavailable(format!("publishing the reminder failed: {err}")))?;
        tracing::info!(job = %job.name, task_id = %event.task_id, kind = event.kind, "reminder published");
        Ok(())
    }
}
