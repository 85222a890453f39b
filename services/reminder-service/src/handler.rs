//! What reminder-service does with deliveries and fired jobs.

use std::collections::HashMap;

use prost::{Message, Name};
use todo_core::{
    dapr::{
        app::{DeliveredEvent, EventHandler},
        callback::{BULK_MAX_AWAIT_MS, BULK_MAX_EVENTS, Outcome, subscription, with_bulk},
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
        // In bulk: a batch's job updates run concurrently (see `apply`).
        vec![with_bulk(
            subscription(&self.pubsub_name, topics::TASK_EVENTS, &rules, IGNORE_ROUTE),
            BULK_MAX_EVENTS,
            BULK_MAX_AWAIT_MS,
        )]
    }

    async fn on_event(&self, mut event: DeliveredEvent) -> Outcome {
        // The job carries this consumer's context on to the reminder.
        event.traceparent = todo_core::telemetry::traceparent_or(event.traceparent.as_deref());
        self.apply(std::slice::from_ref(&event)).await[0]
    }

    async fn on_batch(&self, events: &[DeliveredEvent]) -> Option<Vec<Outcome>> {
        Some(self.apply(events).await)
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
        let outgoing = match OutgoingEvent::from_message(
            &event.event_id,
            &event.event_type,
            &event.user_id,
            &event,
            todo_core::telemetry::traceparent_of(&span).or((!traceparent.is_empty()).then_some(traceparent)),
        ) {
            Ok(outgoing) => outgoing,
            Err(err) => {
                // Every later trigger would fail the same way: drop it.
                tracing::warn!(job = %job.name, error = %err, "reminder has no wire form; dropped");
                return Ok(());
            }
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

impl Reminders {
    /// Brings each task's reminder jobs in line with its latest event in
    /// `events`: every event carries the whole task, so within a batch only
    /// the latest one per task matters (by task version, not position), and
    /// the jobs of different tasks are updated concurrently (the sidecar
    /// commits concurrent writes together). All calls are idempotent, so if
    /// any fails, every event of the batch is asked for again.
    async fn apply(&self, events: &[DeliveredEvent]) -> Vec<Outcome> {
        let now = timestamps::now();
        let mut outcomes = vec![Outcome::Success; events.len()];
        let mut latest: HashMap<String, (Option<Action>, Option<String>, i64)> = HashMap::new();
        let mut planned = Vec::new();
        for (position, event) in events.iter().enumerate() {
            if !event_types::TASK_EVENT_TYPES.contains(&event.event_type.as_str()) {
                continue;
            }
            let decoded = ContentType::detect(&event.content_type, &event.data)
                .and_then(|content_type| events::decode::<TaskEvent>(content_type, &event.data));
            let task_event = match decoded {
                Ok(task_event) => task_event,
                Err(err) => {
                    tracing::warn!(event_id = %event.id, error = %err, "undecodable task event");
                    outcomes[position] = Outcome::Drop;
                    continue;
                }
            };
            match plan(&task_event, now, event.traceparent.as_deref()) {
                Ok(action) => {
                    let (task_id, version) = task_event.task.map(|task| (task.id, task.version)).unwrap_or_default();
                    let newer = latest.get(&task_id).is_none_or(|(_, _, seen)| version >= *seen);
                    if newer {
                        latest.insert(task_id, (action, event.traceparent.clone(), version));
                    }
                    planned.push(position);
                }
                Err(err) => {
                    tracing::warn!(event_id = %event.id, error = %err, "invalid task event");
                    outcomes[position] = Outcome::Drop;
                }
            }
        }
        let mut calls = tokio::task::JoinSet::new();
        for (action, trace, version) in latest.into_values() {
            let Some(action) = action else { continue };
            let jobs = self.jobs.clone();
            calls.spawn(async move {
                let result = apply_unless_stale(&jobs, &action, version, trace.as_deref()).await;
                (action, result)
            });
        }
        let mut failed = false;
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok((action, Ok(()))) => tracing::debug!(?action, "reminder job updated"),
                Ok((action, Err(status))) => {
                    tracing::warn!(?action, error = %status, "jobs API call failed");
                    failed = true;
                }
                Err(err) => {
                    tracing::error!(error = %err, "a jobs API call panicked");
                    failed = true;
                }
            }
        }
        if failed {
            for position in planned {
                outcomes[position] = Outcome::Retry;
            }
        }
        outcomes
    }
}

/// Carries out `action`, planned from an event of task version `version`,
/// unless the task's job was scheduled from a later version: a redelivered
/// or replayed older event (`just replay`) must not move, bring back or
/// remove the reminder a newer change set. (A job that fired for the last
/// time, or was deleted, leaves nothing to compare with: a replayed older
/// event can then schedule it again; see docs/reliability.md.)
async fn apply_unless_stale(
    jobs: &todo_core::dapr::jobs::Jobs,
    action: &Action,
    version: i64,
    trace: Option<&str>,
) -> Result<(), Status> {
    let name = match action {
        Action::Schedule { name, .. } | Action::Delete { name } => name,
    };
    let current = jobs
        .get(name)
        .await?
        .and_then(|data| ReminderJob::decode(data.value.as_slice()).ok());
    match (action, current) {
        (_, Some(current)) if current.task_version > version => {
            tracing::debug!(job = %name, version, current = current.task_version, "stale task event ignored");
            Ok(())
        }
        (Action::Schedule { name, at, repeat, job }, _) => {
            jobs.schedule(name, *at, *repeat, job_data(job), trace).await
        }
        // Nothing to delete.
        (Action::Delete { .. }, None) => Ok(()),
        (Action::Delete { name }, Some(_)) => jobs.delete(name, trace).await,
    }
}
