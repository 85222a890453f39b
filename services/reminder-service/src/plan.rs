//! Which reminder jobs a task event asks for.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use prost::{Message, Name};
use prost_types::Any;
use todo_core::{
    events::event_types,
    proto::v1::{ReminderEvent, ReminderJob, ReminderKind, TaskEvent},
    timestamps,
};
use uuid::Uuid;

/// The two reminders and how long before the due date each fires.
pub const REMINDERS: [(ReminderKind, &str, i64); 2] = [
    (ReminderKind::ReminderKind24hBefore, "24h", 24),
    (ReminderKind::ReminderKind1hBefore, "1h", 1),
];

/// A reminder whose time passed less than this long ago still fires, at
/// once, if the task is not due yet: the event that asked for it was
/// delayed (a broker, sidecar or consumer restart), and a late reminder
/// beats none. An older one is past its use and is deleted instead.
pub const LATE_GRACE: Duration = Duration::minutes(10);

/// What to do with one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Schedule (or overwrite) `name` to fire at `at`.
    Schedule {
        name: String,
        at: DateTime<Utc>,
        job: ReminderJob,
    },
    /// Delete `name` if it exists.
    Delete { name: String },
}

/// An event the plan cannot use: poison.
#[derive(Debug, thiserror::Error)]
pub enum InvalidTaskEvent {
    #[error("event has no task")]
    MissingTask,
    #[error("task id {0:?} is not a UUID")]
    BadTaskId(String),
    #[error("due_at: {0}")]
    BadDueDate(String),
}

/// The deterministic job name of one reminder of one task.
pub fn job_name(task_id: &Uuid, suffix: &str) -> String {
    format!("reminder-{task_id}-{suffix}")
}

/// The jobs `event` asks for at `now`: both reminders scheduled for an open
/// task whose due date is ahead (one whose time passed within
/// [`LATE_GRACE`] fires at once; an older one is deleted instead); both deleted when the task is completed, deleted, or
/// has no due date. A task that was just created has no jobs yet, so its
/// event never asks for a deletion (most tasks have no due date: this spares
/// the sidecar two calls per new task).
pub fn plan(event: &TaskEvent, now: DateTime<Utc>, traceparent: Option<&str>) -> Result<Vec<Action>, InvalidTaskEvent> {
    let task = event.task.as_ref().ok_or(InvalidTaskEvent::MissingTask)?;
    let task_id = Uuid::parse_str(&task.id).map_err(|_| InvalidTaskEvent::BadTaskId(task.id.clone()))?;
    let due_at = task
        .due_at
        .as_ref()
        .map(timestamps::from_proto)
        .transpose()
        .map_err(|err| InvalidTaskEvent::BadDueDate(err.to_string()))?;
    let just_created = event.event_type == event_types::TASK_CREATED;
    let wanted = match (event.event_type.as_str(), due_at) {
        (event_types::TASK_DELETED, _) | (_, None) => None,
        _ if task.completed => None,
        (_, Some(due)) => Some(due),
    };
    Ok(REMINDERS
        .iter()
        .map(|(kind, suffix, hours)| {
            let name = job_name(&task_id, suffix);
            match wanted.map(|due| (due, due - Duration::hours(*hours))) {
                Some((due, at)) if due > now && at > now - LATE_GRACE => Action::Schedule {
                    name,
                    at: at.max(now),
                    job: ReminderJob {
                        user_id: event.user_id.clone(),
                        task_id: task.id.clone(),
                        title: task.title.clone(),
                        due_at: Some(timestamps::to_proto(due)),
                        kind: *kind as i32,
                        traceparent: traceparent.unwrap_or_default().to_owned(),
                        task_version: task.version,
                    },
                },
                _ => Action::Delete { name },
            }
        })
        .filter(|action| !(just_created && matches!(action, Action::Delete { .. })))
        .collect())
}

/// The job's data as the Jobs API carries it.
pub fn job_data(job: &ReminderJob) -> Any {
    Any {
        type_url: ReminderJob::type_url(),
        value: job.encode_to_vec(),
    }
}

/// The reminder a fired job publishes. Its id depends only on the task, the
/// due date and the kind, so a job that fires twice yields one notification.
pub fn reminder_event(job: &ReminderJob, now: DateTime<Utc>) -> Result<ReminderEvent, InvalidTaskEvent> {
    let task_id = Uuid::parse_str(&job.task_id).map_err(|_| InvalidTaskEvent::BadTaskId(job.task_id.clone()))?;
    let due = job
        .due_at
        .as_ref()
        .ok_or_else(|| InvalidTaskEvent::BadDueDate("missing".into()))
        .and_then(|ts| timestamps::from_proto(ts).map_err(|err| InvalidTaskEvent::BadDueDate(err.to_string())))?;
    let name = format!("{}/{}", due.to_rfc3339_opts(SecondsFormat::Micros, true), job.kind);
    Ok(ReminderEvent {
        event_id: Uuid::new_v5(&task_id, name.as_bytes()).to_string(),
        event_type: event_types::REMINDER_DUE_SOON.to_owned(),
        occurred_at: Some(timestamps::to_proto(now)),
        user_id: job.user_id.clone(),
        task_id: job.task_id.clone(),
        title: job.title.clone(),
        due_at: job.due_at,
        kind: job.kind,
    })
}

#[cfg(test)]
mod tests {
    use todo_core::proto::v1::Task;

    use super::*;

    fn event(event_type: &str, due_in_hours: Option<i64>, completed: bool, now: DateTime<Utc>) -> TaskEvent {
        TaskEvent {
            event_type: event_type.into(),
            user_id: "alice".into(),
            task: Some(Task {
                id: "7f9c24e5-0000-4000-8000-000000000001".into(),
                title: "Pay rent".into(),
                completed,
                due_at: due_in_hours.map(|h| timestamps::to_proto(now + Duration::hours(h))),
                ..Task::default()
            }),
            ..TaskEvent::default()
        }
    }

    fn scheduled(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Schedule { name, .. } => Some(name.rsplit('-').next().unwrap()),
                Action::Delete { .. } => None,
            })
            .collect()
    }

    #[test]
    fn both_reminders_for_a_task_due_in_two_days() {
        let now = Utc::now();
        let actions = plan(&event("task.created", Some(48), false, now), now, Some("00-abc")).unwrap();
        assert_eq!(scheduled(&actions), ["24h", "1h"]);
        let Action::Schedule { at, job, .. } = &actions[1] else {
            panic!()
        };
        assert_eq!(
            *at,
            timestamps::from_proto(job.due_at.as_ref().unwrap()).unwrap() - Duration::hours(1)
        );
        assert_eq!(job.traceparent, "00-abc");
    }

    #[test]
    fn past_reminder_times_are_skipped_and_deleted() {
        let now = Utc::now();
        let actions = plan(&event("task.updated", Some(5), false, now), now, None).unwrap();
        assert_eq!(scheduled(&actions), ["1h"]);
        assert!(matches!(&actions[0], Action::Delete { name } if name.ends_with("-24h")));
        let overdue = plan(&event("task.updated", Some(-1), false, now), now, None).unwrap();
        assert!(scheduled(&overdue).is_empty());
    }

    #[test]
    fn a_reminder_missed_by_a_delayed_event_fires_at_once_within_the_grace() {
        let now = Utc::now();
        let mut late = event("task.created", None, false, now);
        // Due in 55 minutes: the 1-hour reminder was due 5 minutes ago.
        late.task.as_mut().unwrap().due_at = Some(timestamps::to_proto(now + Duration::minutes(55)));
        let actions = plan(&late, now, None).unwrap();
        assert_eq!(scheduled(&actions), ["1h"]);
        let Action::Schedule { at, .. } = &actions[0] else {
            unreachable!()
        };
        assert_eq!(*at, now, "fires at once");
        // Due in 45 minutes: 15 minutes late is past the grace.
        late.task.as_mut().unwrap().due_at = Some(timestamps::to_proto(now + Duration::minutes(45)));
        assert!(scheduled(&plan(&late, now, None).unwrap()).is_empty());
    }

    #[test]
    fn a_new_task_never_asks_for_deletions() {
        let now = Utc::now();
        for due_in_hours in [None, Some(-1), Some(5)] {
            let actions = plan(&event("task.created", due_in_hours, false, now), now, None).unwrap();
            assert!(
                actions.iter().all(|a| matches!(a, Action::Schedule { .. })),
                "{actions:?}"
            );
        }
    }

    #[test]
    fn completion_deletion_and_no_due_date_delete_both() {
        let now = Utc::now();
        for e in [
            event("task.completed", Some(48), true, now),
            event("task.deleted", Some(48), false, now),
            event("task.updated", None, false, now),
        ] {
            let actions = plan(&e, now, None).unwrap();
            assert_eq!(actions.len(), 2);
            assert!(actions.iter().all(|a| matches!(a, Action::Delete { .. })));
        }
    }

    #[test]
    fn the_same_reminder_always_has_the_same_event_id() {
        let now = Utc::now();
        let actions = plan(&event("task.created", Some(48), false, now), now, None).unwrap();
        let Action::Schedule { job, .. } = &actions[0] else {
            panic!()
        };
        let first = reminder_event(job, now).unwrap();
        let again = reminder_event(job, now + Duration::seconds(5)).unwrap();
        assert_eq!(first.event_id, again.event_id);
        let Action::Schedule { job: other_kind, .. } = &actions[1] else {
            panic!()
        };
        assert_ne!(first.event_id, reminder_event(other_kind, now).unwrap().event_id);
    }

    #[test]
    fn malformed_events_are_invalid() {
        let now = Utc::now();
        assert!(plan(&TaskEvent::default(), now, None).is_err());
        let mut bad = event("task.created", Some(48), false, now);
        bad.task.as_mut().unwrap().id = "../etc".into();
        assert!(plan(&bad, now, None).is_err());
    }
}
