//! The command asking for the next occurrence of a completed task.
//!
//! Ids are UUIDv5: the next task's id from the series id and its due date,
//! the command's event id from that task id. Completing the same occurrence
//! twice, or the completion arriving twice, therefore yields the same
//! command, and task-api creates the task once.

use chrono::{DateTime, SecondsFormat, Utc};
use todo_core::{
    events::event_types,
    proto::v1::{Frequency, Task, TaskEvent, TaskOccurrenceRequested},
    timestamps,
};
use uuid::Uuid;

use crate::recurrence::{self, Rule};

/// A completion that cannot be acted on: poison, to be dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum InvalidCompletion {
    #[error("task.completed event without a task")]
    MissingTask,
    #[error("recurring task {0} has no due date")]
    MissingDueDate(String),
    #[error("invalid {field}: {reason}")]
    Field { field: &'static str, reason: String },
}

/// The next-occurrence command for `event`, None when the task does not
/// recur or its series has ended.
pub fn next_occurrence(
    event: &TaskEvent,
    now: DateTime<Utc>,
) -> Result<Option<TaskOccurrenceRequested>, InvalidCompletion> {
    let task = event.task.as_ref().ok_or(InvalidCompletion::MissingTask)?;
    let Some(recurrence) = task.recurrence.as_ref() else {
        return Ok(None);
    };
    let invalid = |field, reason: String| InvalidCompletion::Field { field, reason };
    let frequency = Frequency::try_from(recurrence.frequency)
        .ok()
        .filter(|f| *f != Frequency::Unspecified)
        .ok_or_else(|| invalid("task.recurrence.frequency", recurrence.frequency.to_string()))?;
    let due_at = task
        .due_at
        .as_ref()
        .ok_or_else(|| InvalidCompletion::MissingDueDate(task.id.clone()))?;
    let due_at = timestamps::from_proto(due_at).map_err(|err| invalid("task.due_at", err.to_string()))?;
    let until = recurrence
        .until
        .as_ref()
        .map(timestamps::from_proto)
        .transpose()
        .map_err(|err| invalid("task.recurrence.until", err.to_string()))?;
    let task_id = Uuid::parse_str(&task.id).map_err(|err| invalid("task.id", err.to_string()))?;
    // The first occurrence's id is the series id.
    let series_id = match task.series_id.as_str() {
        "" => task_id,
        id => Uuid::parse_str(id).map_err(|err| invalid("task.series_id", err.to_string()))?,
    };
    if event.user_id.is_empty() || event.user_id != task.user_id {
        return Err(invalid("user_id", "must be the task's owner".into()));
    }

    let rule = Rule {
        frequency,
        interval: recurrence.interval,
        until,
        count: recurrence.count,
        month_day: recurrence.month_day,
    };
    let occurrence_number = task.occurrence_number.max(1);
    // A series whose next date is past what a timestamp can carry (the
    // year 9999) ends there, like one that reached its `until`.
    let Some(next_due) =
        recurrence::next_due(due_at, occurrence_number, &rule).filter(|due| timestamps::representable(*due))
    else {
        return Ok(None);
    };

    let next_id = Uuid::new_v5(
        &series_id,
        next_due.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes(),
    );
    let event_id = Uuid::new_v5(&next_id, event_types::TASK_OCCURRENCE_REQUESTED.as_bytes());
    Ok(Some(TaskOccurrenceRequested {
        event_id: event_id.to_string(),
        event_type: event_types::TASK_OCCURRENCE_REQUESTED.to_owned(),
        occurred_at: Some(timestamps::to_proto(now)),
        user_id: event.user_id.clone(),
        series_id: series_id.to_string(),
        previous_task_id: task.id.clone(),
        task_id: next_id.to_string(),
        task: Some(Task {
            id: next_id.to_string(),
            user_id: task.user_id.clone(),
            title: task.title.clone(),
            description: task.description.clone(),
            priority: task.priority,
            due_at: Some(timestamps::to_proto(next_due)),
            tags: task.tags.clone(),
            recurrence: Some(*recurrence),
            series_id: series_id.to_string(),
            occurrence_number: occurrence_number + 1,
            ..Task::default()
        }),
        occurrence_number: occurrence_number + 1,
    }))
}

#[cfg(test)]
mod tests {
    use todo_core::proto::v1::Recurrence;

    use super::*;

    fn completed(due_seconds: i64, recurrence: Option<Recurrence>) -> TaskEvent {
        let id = Uuid::new_v4().to_string();
        TaskEvent {
            event_id: Uuid::new_v4().to_string(),
            event_type: "task.completed".into(),
            user_id: "alice".into(),
            task: Some(Task {
                id: id.clone(),
                user_id: "alice".into(),
                title: "water plants".into(),
                due_at: Some(prost_types::Timestamp {
                    seconds: due_seconds,
                    nanos: 0,
                }),
                recurrence,
                series_id: id,
                occurrence_number: 1,
                ..Task::default()
            }),
            ..TaskEvent::default()
        }
    }

    fn daily() -> Option<Recurrence> {
        Some(Recurrence {
            frequency: Frequency::Daily as i32,
            interval: 1,
            ..Default::default()
        })
    }

    #[test]
    fn the_same_completion_always_asks_for_the_same_task() {
        let event = completed(1_800_000_000, daily());
        let first = next_occurrence(&event, Utc::now()).unwrap().unwrap();
        let mut redelivered = event.clone();
        redelivered.event_id = Uuid::new_v4().to_string();
        let second = next_occurrence(&redelivered, Utc::now()).unwrap().unwrap();
        assert_eq!(first.task_id, second.task_id);
        assert_eq!(first.event_id, second.event_id);
        let task = first.task.unwrap();
        assert_eq!(task.due_at.unwrap().seconds, 1_800_000_000 + 86_400);
        assert_eq!(task.occurrence_number, 2);
        assert_eq!(task.title, "water plants");
        assert_eq!(first.series_id, event.task.unwrap().id);
    }

    #[test]
    fn a_series_ends_where_a_timestamp_can_no_longer_carry_its_next_date() {
        // 9999-12-31T12:00:00Z: the next day is in the year 10000.
        let last_day = completed(253_402_257_600, daily());
        assert!(next_occurrence(&last_day, Utc::now()).unwrap().is_none());
        // The day before still has a next occurrence, and it encodes.
        let day_before = completed(253_402_257_600 - 86_400, daily());
        let command = next_occurrence(&day_before, Utc::now()).unwrap().unwrap();
        assert!(todo_core::events::encode_wire(&command).is_ok());
    }

    #[test]
    fn one_off_tasks_and_ended_series_ask_for_nothing() {
        assert!(
            next_occurrence(&completed(1_800_000_000, None), Utc::now())
                .unwrap()
                .is_none()
        );
        let once = Some(Recurrence {
            frequency: Frequency::Daily as i32,
            count: 1,
            ..Default::default()
        });
        assert!(
            next_occurrence(&completed(1_800_000_000, once), Utc::now())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_recurring_tasks_are_invalid() {
        let mut no_due = completed(0, daily());
        no_due.task.as_mut().unwrap().due_at = None;
        assert!(next_occurrence(&no_due, Utc::now()).is_err());
        let mut bad_id = completed(0, daily());
        bad_id.task.as_mut().unwrap().id = "x".into();
        bad_id.task.as_mut().unwrap().series_id = String::new();
        assert!(next_occurrence(&bad_id, Utc::now()).is_err());
        let mut wrong_owner = completed(0, daily());
        wrong_owner.user_id = "mallory".into();
        assert!(next_occurrence(&wrong_owner, Utc::now()).is_err());
        let unknown = completed(
            0,
            Some(Recurrence {
                frequency: 77,
                ..Default::default()
            }),
        );
        assert!(next_occurrence(&unknown, Utc::now()).is_err());
        assert!(next_occurrence(&TaskEvent::default(), Utc::now()).is_err());
    }
}
