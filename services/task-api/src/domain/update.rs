//! Applying an `UpdateTaskRequest`: only the fields its mask names change.

use chrono::{DateTime, Utc};
use todo_core::proto::v1::Task;

use super::{
    task::TaskRecord,
    validation::{self, ValidationError, invalid},
};

/// Fields a client may change, by their proto names.
pub const UPDATABLE_FIELDS: [&str; 7] = [
    "title",
    "description",
    "priority",
    "due_at",
    "tags",
    "recurrence",
    "completed",
];

/// Fields the server owns.
const READ_ONLY_FIELDS: [&str; 8] = [
    "id",
    "user_id",
    "created_at",
    "updated_at",
    "completed_at",
    "series_id",
    "version",
    "occurrence_number",
];

/// The result of an update.
#[derive(Debug)]
pub struct Change {
    pub task: TaskRecord,
    /// Fields whose value actually changed; empty means nothing to store or
    /// publish.
    pub changed_fields: Vec<&'static str>,
    /// True when this update completed an open task.
    pub completed_now: bool,
}

/// Checks the mask and returns the fields it names, each once.
pub fn parse_mask(paths: &[String]) -> Result<Vec<&'static str>, ValidationError> {
    if paths.is_empty() {
        return Err(invalid("update_mask", "must name at least one field"));
    }
    let mut fields = Vec::new();
    for path in paths {
        let path = path.trim();
        if READ_ONLY_FIELDS.contains(&path) {
            return Err(invalid("update_mask", format!("field `{path}` is read-only")));
        }
        let Some(field) = UPDATABLE_FIELDS.iter().find(|name| **name == path) else {
            return Err(invalid(
                "update_mask",
                format!("unknown field `{path}`; updatable: {}", UPDATABLE_FIELDS.join(", ")),
            ));
        };
        if !fields.contains(field) {
            fields.push(*field);
        }
    }
    Ok(fields)
}

/// Applies the masked fields of `patch` to `current`.
pub fn apply(
    current: &TaskRecord,
    patch: &Task,
    mask: &[&'static str],
    now: DateTime<Utc>,
) -> Result<Change, ValidationError> {
    let mut task = current.clone();
    for field in mask {
        match *field {
            "title" => task.title = validation::title("task.title", &patch.title)?,
            "description" => task.description = validation::description("task.description", &patch.description)?,
            "priority" => task.priority = validation::priority("task.priority", patch.priority)?,
            "due_at" => task.due_at = validation::optional_timestamp("task.due_at", patch.due_at.as_ref())?,
            "tags" => task.tags = validation::tags("task.tags", &patch.tags)?,
            "completed" => {
                if patch.completed && !task.completed {
                    task.completed_at = Some(now);
                } else if !patch.completed {
                    task.completed_at = None;
                }
                task.completed = patch.completed;
            }
            "recurrence" => {}
            other => unreachable!("parse_mask admits only updatable fields, got {other}"),
        }
    }
    // The rule is checked against the due date after this update.
    if mask.contains(&"recurrence") {
        let rule = validation::recurrence("task.recurrence", patch.recurrence.as_ref(), task.due_at)?;
        task.set_recurrence(rule);
    } else if task.recurrence_frequency.is_some() {
        let Some(due_at) = task.due_at else {
            return Err(invalid("task.due_at", "a recurring task needs due_at"));
        };
        // A monthly series moved to another day now falls on that day.
        if task.recurrence_month_day.is_some() && task.due_at != current.due_at {
            task.recurrence_month_day = Some(chrono::Datelike::day(&due_at) as i16);
        }
    }

    let changed_fields: Vec<&'static str> = UPDATABLE_FIELDS
        .into_iter()
        .filter(|field| match *field {
            "title" => task.title != current.title,
            "description" => task.description != current.description,
            "priority" => task.priority != current.priority,
            "due_at" => task.due_at != current.due_at,
            "tags" => task.tags != current.tags,
            "recurrence" => task.recurrence() != current.recurrence(),
            "completed" => task.completed != current.completed,
            _ => false,
        })
        .collect();
    if !changed_fields.is_empty() {
        task.updated_at = now;
        task.version = current.version + 1;
    }
    Ok(Change {
        completed_now: task.completed && !current.completed,
        task,
        changed_fields,
    })
}

#[cfg(test)]
mod tests {
    use todo_core::proto::v1::{Frequency, Recurrence};

    use super::*;

    fn stored() -> TaskRecord {
        let now = Utc::now();
        TaskRecord {
            id: uuid::Uuid::new_v4(),
            user_id: "alice".into(),
            title: "Old".into(),
            description: "keep me".into(),
            completed: false,
            priority: 2,
            due_at: None,
            tags: vec!["a".into()],
            recurrence_frequency: None,
            recurrence_interval: None,
            recurrence_until: None,
            recurrence_count: None,
            recurrence_month_day: None,
            series_id: None,
            occurrence_number: 0,
            created_at: now,
            updated_at: now,
            completed_at: None,
            version: 1,
        }
    }

    #[test]
    fn only_masked_fields_change() {
        let patch = Task {
            title: "New".into(),
            description: "ignored".into(),
            ..Default::default()
        };
        let change = apply(&stored(), &patch, &parse_mask(&["title".into()]).unwrap(), Utc::now()).unwrap();
        assert_eq!(change.task.title, "New");
        assert_eq!(change.task.description, "keep me");
        assert_eq!(change.changed_fields, ["title"]);
        assert_eq!(change.task.version, 2);
    }

    #[test]
    fn unchanged_values_bump_nothing() {
        let patch = Task {
            title: "Old".into(),
            ..Default::default()
        };
        let change = apply(&stored(), &patch, &["title"], Utc::now()).unwrap();
        assert!(change.changed_fields.is_empty());
        assert_eq!(change.task.version, 1);
    }

    #[test]
    fn bad_masks_name_the_problem() {
        assert!(parse_mask(&[]).unwrap_err().reason.contains("at least one"));
        assert!(
            parse_mask(&["version".into()])
                .unwrap_err()
                .reason
                .contains("read-only")
        );
        assert!(
            parse_mask(&["colour".into()])
                .unwrap_err()
                .reason
                .contains("unknown field")
        );
    }

    #[test]
    fn completing_and_reopening() {
        let done = apply(
            &stored(),
            &Task {
                completed: true,
                ..Default::default()
            },
            &["completed"],
            Utc::now(),
        )
        .unwrap();
        assert!(done.completed_now);
        assert!(done.task.completed_at.is_some());
        let reopened = apply(&done.task, &Task::default(), &["completed"], Utc::now()).unwrap();
        assert!(!reopened.task.completed);
        assert_eq!(reopened.task.completed_at, None);
        assert!(!reopened.completed_now);
    }

    #[test]
    fn recurrence_starts_a_series_and_needs_a_due_date() {
        let rule = Recurrence {
            frequency: Frequency::Daily as i32,
            interval: 1,
            ..Default::default()
        };
        let patch = Task {
            recurrence: Some(rule),
            ..Default::default()
        };
        assert_eq!(
            apply(&stored(), &patch, &["recurrence"], Utc::now()).unwrap_err().field,
            "task.recurrence"
        );
        let patch = Task {
            recurrence: Some(rule),
            due_at: Some(todo_core::timestamps::to_proto(Utc::now())),
            ..Default::default()
        };
        let change = apply(&stored(), &patch, &["recurrence", "due_at"], Utc::now()).unwrap();
        assert_eq!(change.task.series_id, Some(change.task.id));
        assert_eq!(change.task.occurrence_number, 1);
        // Clearing the due date of a recurring task alone is refused.
        let cleared = apply(&change.task, &Task::default(), &["due_at"], Utc::now()).unwrap_err();
        assert_eq!(cleared.field, "task.due_at");
    }
}
