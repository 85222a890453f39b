//! Which reminder jobs a task event asks for.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use prost::{Message, Name};
use prost_types::Any;
use todo_core::{
    dapr::jobs::Repeat,
    events::event_types,
    proto::v1::{ReminderEvent, ReminderJob, ReminderKind, TaskEvent},
    timestamps,
};
use uuid::Uuid;

/// The two reminders, in the order they fire, and how many hours before
/// the due date each one fires.
pub const REMINDERS: [(ReminderKind, i64); 2] = [
    (ReminderKind::ReminderKind24hBefore, 24),
    (ReminderKind::ReminderKind1hBefore, 1),
];

/// A reminder whose time passed less than this long ago still fires, at
/// once, if the task is not due yet: the event that asked for it was
/// delayed (a broker, sidecar or consumer restart), and a late reminder
/// beats none. An older one is past its use and is left out instead.
pub const LATE_GRACE: Duration = Duration::minutes(10);

/// A trigger of a two-reminder job that arrives this close to the due date
/// is the 1-hour one. The 24-hour trigger comes 23 hours earlier, and even
/// with an hour of retries (the jobs' failure policy) it is far outside.
const SECOND_TRIGGER_WINDOW: Duration = Duration::hours(2);

/// What to do with a task's job.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Schedule (or overwrite) `name` to fire at `at`, then as `repeat` says.
    Schedule {
        name: String,
        at: DateTime<Utc>,
        repeat: Option<Repeat>,
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

/// The deterministic name of a task's reminder job.
pub fn job_name(task_id: &Uuid) -> String {
    format!("reminder-{task_id}")
}

/// The job `event` asks for at `now`. An open task whose due date is ahead
/// gets one job that fires for each reminder still ahead: at 24 h and,
/// repeating once, at 1 h before the due date, or only at 1 h when the
/// 24-hour time has passed (a reminder whose time passed within
/// [`LATE_GRACE`] fires at once). One job instead of one per reminder
/// halves the Scheduler's writes. The job is deleted when the task is
/// completed, deleted, or has no due date; a task that was just created
/// has no job yet, so its event never asks for a deletion (most tasks have
/// no due date: this spares the sidecar a call per new task).
pub fn plan(
    event: &TaskEvent,
    now: DateTime<Utc>,
    traceparent: Option<&str>,
) -> Result<Option<Action>, InvalidTaskEvent> {
    let task = event.task.as_ref().ok_or(InvalidTaskEvent::MissingTask)?;
    let task_id = Uuid::parse_str(&task.id).map_err(|_| InvalidTaskEvent::BadTaskId(task.id.clone()))?;
    let due_at = task
        .due_at
        .as_ref()
        .map(timestamps::from_proto)
        .transpose()
        .map_err(|err| InvalidTaskEvent::BadDueDate(err.to_string()))?;
    let name = job_name(&task_id);
    let just_created = event.event_type == event_types::TASK_CREATED;
    let due = match (event.event_type.as_str(), due_at) {
        (event_types::TASK_DELETED, _) | (_, None) => None,
        _ if task.completed => None,
        (_, Some(due)) if due > now => Some(due),
        _ => None,
    };
    let ahead: Vec<(ReminderKind, DateTime<Utc>)> = due
        .map(|due| {
            REMINDERS
                .iter()
                .map(|(kind, hours)| (*kind, due - Duration::hours(*hours)))
                .filter(|(_, at)| *at > now - LATE_GRACE)
                .collect()
        })
        .unwrap_or_default();
    let (Some(due), Some(&(first_kind, first_at))) = (due, ahead.first()) else {
        return Ok((!just_created).then_some(Action::Delete { name }));
    };
    let at = first_at.max(now);
    let repeat = ahead.get(1).map(|(_, second_at)| Repeat {
        every: *second_at - at,
        times: 2,
    });
    Ok(Some(Action::Schedule {
        name,
        at,
        repeat,
        job: ReminderJob {
            user_id: event.user_id.clone(),
            task_id: task.id.clone(),
            title: task.title.clone(),
            due_at: Some(timestamps::to_proto(due)),
            kind: first_kind as i32,
            traceparent: traceparent.unwrap_or_default().to_owned(),
            task_version: task.version,
        },
    }))
}

/// Which reminder a trigger of `job` at `now` is: the job's first, unless
/// that is the 24-hour one and the due date is within
/// [`SECOND_TRIGGER_WINDOW`], where only its repeat fires. Both triggers
/// carry the same data, and the Scheduler says nothing of which one it is.
/// A 24-hour trigger delayed that far (a Scheduler outage of a day) counts
/// as the 1-hour one, and its repeat then yields the same reminder again.
pub fn fired_kind(job: &ReminderJob, due: DateTime<Utc>, now: DateTime<Utc>) -> i32 {
    let first_is_24h = job.kind == ReminderKind::ReminderKind24hBefore as i32;
    if first_is_24h && now >= due - SECOND_TRIGGER_WINDOW {
        ReminderKind::ReminderKind1hBefore as i32
    } else {
        job.kind
    }
}

/// The job's data as the Jobs API carries it.
pub fn job_data(job: &ReminderJob) -> Any {
    Any {
        type_url: ReminderJob::type_url(),
        value: job.encode_to_vec(),
    }
}

/// The reminder a trigger of `job` at `now` publishes. Its id depends only
/// on the task, the due date and the kind, so a trigger delivered twice
/// yields one notification.
pub fn reminder_event(job: &ReminderJob, now: DateTime<Utc>) -> Result<ReminderEvent, InvalidTaskEvent> {
    let task_id = Uuid::parse_str(&job.task_id).map_err(|_| InvalidTaskEvent::BadTaskId(job.task_id.clone()))?;
    let due = job
        .due_at
        .as_ref()
        .ok_or_else(|| InvalidTaskEvent::BadDueDate("missing".into()))
        .and_then(|ts| timestamps::from_proto(ts).map_err(|err| InvalidTaskEvent::BadDueDate(err.to_string())))?;
    let kind = fired_kind(job, due, now);
    let name = format!("{}/{}", due.to_rfc3339_opts(SecondsFormat::Micros, true), kind);
    Ok(ReminderEvent {
        event_id: Uuid::new_v5(&task_id, name.as_bytes()).to_string(),
        event_type: event_types::REMINDER_DUE_SOON.to_owned(),
        occurred_at: Some(timestamps::to_proto(now)),
        user_id: job.user_id.clone(),
        task_id: job.task_id.clone(),
        title: job.title.clone(),
        due_at: job.due_at,
        kind,
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

    /// Now, to the microsecond a protobuf timestamp keeps.
    fn now_micros() -> DateTime<Utc> {
        timestamps::from_proto(&timestamps::to_proto(Utc::now())).unwrap()
    }

    /// The job's triggers: (time, kind) of each.
    fn triggers(action: &Action) -> Vec<(DateTime<Utc>, i32)> {
        let Action::Schedule { at, repeat, job, .. } = action else {
            return Vec::new();
        };
        let mut out = vec![(*at, job.kind)];
        if let Some(repeat) = repeat {
            assert_eq!(repeat.times, 2);
            out.push((*at + repeat.every, ReminderKind::ReminderKind1hBefore as i32));
        }
        out
    }

    const H24: i32 = ReminderKind::ReminderKind24hBefore as i32;
    const H1: i32 = ReminderKind::ReminderKind1hBefore as i32;

    #[test]
    fn one_job_fires_both_reminders_for_a_task_due_in_two_days() {
        let now = now_micros();
        let due = now + Duration::hours(48);
        let action = plan(&event("task.created", Some(48), false, now), now, Some("00-abc"))
            .unwrap()
            .unwrap();
        assert_eq!(
            triggers(&action),
            [(due - Duration::hours(24), H24), (due - Duration::hours(1), H1)]
        );
        let Action::Schedule { name, job, .. } = &action else {
            unreachable!()
        };
        assert_eq!(name, "reminder-7f9c24e5-0000-4000-8000-000000000001");
        assert_eq!(job.traceparent, "00-abc");
    }

    #[test]
    fn a_past_reminder_time_is_left_out() {
        let now = now_micros();
        let action = plan(&event("task.updated", Some(5), false, now), now, None)
            .unwrap()
            .unwrap();
        assert_eq!(triggers(&action), [(now + Duration::hours(4), H1)]);
        let overdue = plan(&event("task.updated", Some(-1), false, now), now, None).unwrap();
        assert!(matches!(overdue, Some(Action::Delete { .. })));
    }

    #[test]
    fn a_reminder_missed_by_a_delayed_event_fires_at_once_within_the_grace() {
        let now = now_micros();
        let mut late = event("task.created", None, false, now);
        // Due in 55 minutes: the 1-hour reminder was due 5 minutes ago.
        late.task.as_mut().unwrap().due_at = Some(timestamps::to_proto(now + Duration::minutes(55)));
        let action = plan(&late, now, None).unwrap().unwrap();
        assert_eq!(triggers(&action), [(now, H1)], "fires at once");
        // Due in 23 h 55 min: the 24-hour one fires at once, the 1-hour one still on time.
        let due = now + Duration::hours(23) + Duration::minutes(55);
        late.task.as_mut().unwrap().due_at = Some(timestamps::to_proto(due));
        let action = plan(&late, now, None).unwrap().unwrap();
        assert_eq!(triggers(&action), [(now, H24), (due - Duration::hours(1), H1)]);
        // Due in 45 minutes: 15 minutes late is past the grace.
        late.task.as_mut().unwrap().due_at = Some(timestamps::to_proto(now + Duration::minutes(45)));
        assert_eq!(plan(&late, now, None).unwrap(), None);
    }

    #[test]
    fn a_new_task_never_asks_for_a_deletion() {
        let now = now_micros();
        for due_in_hours in [None, Some(-1), Some(5)] {
            let action = plan(&event("task.created", due_in_hours, false, now), now, None).unwrap();
            assert!(!matches!(action, Some(Action::Delete { .. })), "{action:?}");
        }
    }

    #[test]
    fn completion_deletion_and_no_due_date_delete_the_job() {
        let now = now_micros();
        for e in [
            event("task.completed", Some(48), true, now),
            event("task.deleted", Some(48), false, now),
            event("task.updated", None, false, now),
        ] {
            let action = plan(&e, now, None).unwrap();
            assert!(matches!(action, Some(Action::Delete { .. })), "{action:?}");
        }
    }

    #[test]
    fn each_trigger_publishes_its_own_reminder_and_a_repeated_trigger_the_same_one() {
        let now = now_micros();
        let due = now + Duration::hours(48);
        let Some(Action::Schedule { job, .. }) = plan(&event("task.created", Some(48), false, now), now, None).unwrap()
        else {
            unreachable!()
        };
        let first_at = due - Duration::hours(24);
        let first = reminder_event(&job, first_at).unwrap();
        assert_eq!(first.kind, H24);
        // Retried for an hour (the failure policy): still the 24-hour reminder.
        let retried = reminder_event(&job, first_at + Duration::hours(1)).unwrap();
        assert_eq!((retried.kind, &retried.event_id), (H24, &first.event_id));
        let second = reminder_event(&job, due - Duration::hours(1)).unwrap();
        assert_eq!(second.kind, H1);
        assert_ne!(first.event_id, second.event_id);
        // Delivered late, up to the due date: still the 1-hour one.
        let late = reminder_event(&job, due - Duration::minutes(1)).unwrap();
        assert_eq!(late.event_id, second.event_id);
    }

    #[test]
    fn a_one_hour_job_always_fires_the_one_hour_reminder() {
        let now = now_micros();
        let Some(Action::Schedule { job, at, .. }) =
            plan(&event("task.created", Some(5), false, now), now, None).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(reminder_event(&job, at).unwrap().kind, H1);
    }

    #[test]
    fn malformed_events_are_invalid() {
        let now = now_micros();
        assert!(plan(&TaskEvent::default(), now, None).is_err());
        let mut bad = event("task.created", Some(48), false, now);
        bad.task.as_mut().unwrap().id = "../etc".into();
        assert!(plan(&bad, now, None).is_err());
    }
}
