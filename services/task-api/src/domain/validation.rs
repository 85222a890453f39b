//! Input limits and checks. Every error names the offending field, so a
//! client can show it next to the right input.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Utc};
use prost_types::Timestamp;
use todo_core::{
    proto::v1::{CreateTaskRequest, Frequency, Priority, Recurrence},
    timestamps,
};

use super::task::RecurrenceRule;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 4_000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;
pub const MAX_INTERVAL: u32 = 365;
pub const MAX_OCCURRENCES: u32 = 10_000;
pub const MAX_QUERY_CHARS: usize = 200;
pub const DEFAULT_PAGE_SIZE: i32 = 50;
pub const MAX_PAGE_SIZE: i32 = 500;

/// Bad input in one named field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: String,
}

pub fn invalid(field: &'static str, reason: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        reason: reason.into(),
    }
}

/// One line of text: no control characters. PostgreSQL's text cannot hold
/// NUL (the statement would fail as an internal error), and every other
/// one grows sixfold in an event's JSON (`\u0001`), which is what bounds
/// how many events fit in one delivery.
fn storable(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Free text: as [`storable`], but tabs and line breaks are welcome.
fn storable_text(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(invalid(
            field,
            "must not contain control characters other than tabs and line breaks",
        ));
    }
    Ok(())
}

/// A title: trimmed, 1 to [`MAX_TITLE_CHARS`] characters.
pub fn title(field: &'static str, value: &str) -> Result<String, ValidationError> {
    storable(field, value)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(invalid(
            field,
            format!("must be at most {MAX_TITLE_CHARS} characters, got {chars}"),
        ));
    }
    Ok(trimmed.to_owned())
}

pub fn description(field: &'static str, value: &str) -> Result<String, ValidationError> {
    storable_text(field, value)?;
    let chars = value.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            field,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters, got {chars}"),
        ));
    }
    Ok(value.to_owned())
}

/// A priority; unspecified means medium, unknown numbers are refused.
pub fn priority(field: &'static str, value: i32) -> Result<i16, ValidationError> {
    match Priority::try_from(value) {
        Ok(Priority::Unspecified) => Ok(Priority::Medium as i16),
        Ok(known) => Ok(known as i16),
        Err(_) => Err(invalid(field, format!("unknown priority {value}"))),
    }
}

/// Tags: trimmed, non-empty, at most [`MAX_TAG_CHARS`] each and
/// [`MAX_TAGS`] in all; duplicates merged, first spelling and order kept.
pub fn tags(field: &'static str, values: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for value in values {
        storable(field, value)?;
        let tag = value.trim();
        if tag.is_empty() {
            return Err(invalid(field, "tags must not be empty"));
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(invalid(
                field,
                format!("each tag must be at most {MAX_TAG_CHARS} characters"),
            ));
        }
        if seen.insert(tag.to_lowercase()) {
            out.push(tag.to_owned());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(invalid(field, format!("at most {MAX_TAGS} tags, got {}", out.len())));
    }
    Ok(out)
}

pub fn timestamp(field: &'static str, value: &Timestamp) -> Result<DateTime<Utc>, ValidationError> {
    timestamps::from_proto(value).map_err(|err| invalid(field, err.to_string()))
}

pub fn optional_timestamp(
    field: &'static str,
    value: Option<&Timestamp>,
) -> Result<Option<DateTime<Utc>>, ValidationError> {
    value.map(|ts| timestamp(field, ts)).transpose()
}

/// A repeat rule; needs a due date to repeat from.
pub fn recurrence(
    field: &'static str,
    value: Option<&Recurrence>,
    due_at: Option<DateTime<Utc>>,
) -> Result<Option<RecurrenceRule>, ValidationError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let frequency = match Frequency::try_from(value.frequency) {
        Ok(Frequency::Unspecified) => return Err(invalid(field, "frequency must be set")),
        Ok(known) => known as i16,
        Err(_) => return Err(invalid(field, format!("unknown frequency {}", value.frequency))),
    };
    if value.interval > MAX_INTERVAL {
        return Err(invalid(field, format!("interval must be at most {MAX_INTERVAL}")));
    }
    if value.count > MAX_OCCURRENCES {
        return Err(invalid(field, format!("count must be at most {MAX_OCCURRENCES}")));
    }
    let Some(due_at) = due_at else {
        return Err(invalid(field, "a recurring task needs due_at"));
    };
    let until = optional_timestamp(field, value.until.as_ref())?;
    if until.is_some_and(|until| until < due_at) {
        return Err(invalid(field, "until must not be before due_at"));
    }
    let month_day = if frequency == Frequency::Monthly as i16 {
        match value.month_day {
            0 => Some(due_at.day() as i16),
            day @ 1..=31 => Some(day as i16),
            _ => return Err(invalid(field, "month_day must be between 1 and 31")),
        }
    } else {
        None
    };
    Ok(Some(RecurrenceRule {
        frequency,
        interval: value.interval.max(1) as i32,
        until,
        count: (value.count > 0).then_some(value.count as i32),
        month_day,
    }))
}

/// How the fields of a new task are named in the message they came in, so
/// errors point at the right place (`title` in CreateTaskRequest,
/// `task.title` in an occurrence command).
pub struct FieldNames {
    pub title: &'static str,
    pub description: &'static str,
    pub priority: &'static str,
    pub due_at: &'static str,
    pub tags: &'static str,
    pub recurrence: &'static str,
}

pub const REQUEST_FIELDS: FieldNames = FieldNames {
    title: "title",
    description: "description",
    priority: "priority",
    due_at: "due_at",
    tags: "tags",
    recurrence: "recurrence",
};

pub const TASK_FIELDS: FieldNames = FieldNames {
    title: "task.title",
    description: "task.description",
    priority: "task.priority",
    due_at: "task.due_at",
    tags: "task.tags",
    recurrence: "task.recurrence",
};

/// The client-supplied content of a new task, before validation.
pub struct TaskInput<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub priority: i32,
    pub due_at: Option<&'a Timestamp>,
    pub tags: &'a [String],
    pub recurrence: Option<&'a Recurrence>,
}

impl<'a> TaskInput<'a> {
    /// What a client's CreateTaskRequest asks for.
    pub fn of_request(request: &'a CreateTaskRequest) -> Self {
        Self {
            title: &request.title,
            description: &request.description,
            priority: request.priority,
            due_at: request.due_at.as_ref(),
            tags: &request.tags,
            recurrence: request.recurrence.as_ref(),
        }
    }
}

/// A new, open task `id` of `user_id`, validated field by field.
pub fn new_task(
    id: uuid::Uuid,
    user_id: &str,
    input: &TaskInput<'_>,
    names: &FieldNames,
    now: DateTime<Utc>,
) -> Result<super::task::TaskRecord, ValidationError> {
    let due_at = optional_timestamp(names.due_at, input.due_at)?;
    let mut task = super::task::TaskRecord {
        id,
        user_id: user_id.to_owned(),
        title: title(names.title, input.title)?,
        description: description(names.description, input.description)?,
        completed: false,
        priority: priority(names.priority, input.priority)?,
        due_at,
        tags: tags(names.tags, input.tags)?,
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
    };
    task.set_recurrence(recurrence(names.recurrence, input.recurrence, due_at)?);
    Ok(task)
}

/// A task id: must be a UUID.
pub fn task_id(field: &'static str, value: &str) -> Result<uuid::Uuid, ValidationError> {
    if value.is_empty() {
        return Err(invalid(field, "must be set"));
    }
    uuid::Uuid::parse_str(value).map_err(|_| invalid(field, "must be a UUID"))
}

/// Page size: 0 means the default; otherwise 1 to [`MAX_PAGE_SIZE`].
pub fn page_size(value: i32) -> Result<i64, ValidationError> {
    todo_core::pagination::page_size(value, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        .map_err(|_| invalid("page_size", format!("must be between 1 and {MAX_PAGE_SIZE}")))
}

pub fn query(value: &str) -> Result<Option<String>, ValidationError> {
    storable("query", value)?;
    let trimmed = value.trim();
    if trimmed.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(
            "query",
            format!("must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(title("title", "  Pay rent ").unwrap(), "Pay rent");
        assert!(title("title", "bell\u{7}").is_err());
        assert!(title("title", "two\nlines").is_err());
        assert!(description("description", "two\nlines\tand a tab\r\n").is_ok());
        assert!(description("description", "escape \u{1b}[31m").is_err());
        assert_eq!(title("title", "   ").unwrap_err().field, "title");
        assert!(title("title", &"é".repeat(200)).is_ok());
        assert!(title("title", &"é".repeat(201)).is_err());
    }

    #[test]
    fn tags_are_deduplicated_and_bounded() {
        let input = vec!["Home".to_owned(), "home".to_owned(), " work ".to_owned()];
        assert_eq!(tags("tags", &input).unwrap(), ["Home", "work"]);
        let many: Vec<String> = (0..21).map(|n| format!("t{n}")).collect();
        assert!(tags("tags", &many).is_err());
        assert!(tags("tags", &["".to_owned()]).is_err());
        assert!(tags("tags", &["x".repeat(51)]).is_err());
    }

    #[test]
    fn priorities_default_and_refuse_unknown_values() {
        assert_eq!(priority("priority", 0).unwrap(), Priority::Medium as i16);
        assert_eq!(priority("priority", 3).unwrap(), Priority::High as i16);
        assert!(priority("priority", 99).is_err());
        assert!(priority("priority", -1).is_err());
    }

    #[test]
    fn recurrence_needs_frequency_and_due_date() {
        let due = Some(Utc::now());
        let daily = Recurrence {
            frequency: Frequency::Daily as i32,
            ..Default::default()
        };
        assert_eq!(
            recurrence("recurrence", Some(&daily), due).unwrap().unwrap().interval,
            1
        );
        assert!(recurrence("recurrence", Some(&daily), None).is_err());
        let unset = Recurrence::default();
        assert!(recurrence("recurrence", Some(&unset), due).is_err());
        let unknown = Recurrence {
            frequency: 42,
            ..Default::default()
        };
        assert!(recurrence("recurrence", Some(&unknown), due).is_err());
        let too_often = Recurrence {
            frequency: Frequency::Weekly as i32,
            interval: 366,
            ..Default::default()
        };
        assert!(recurrence("recurrence", Some(&too_often), due).is_err());
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(500).unwrap(), 500);
        assert!(page_size(501).is_err());
        assert!(page_size(-1).is_err());
    }
}
