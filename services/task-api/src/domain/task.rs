//! A stored task and its protobuf form.

use chrono::{DateTime, Utc};
use todo_core::{
    proto::v1::{Recurrence, Task},
    timestamps,
};
use uuid::Uuid;

/// A task as stored in `tasks.tasks`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskRecord {
    pub id: Uuid,
    pub user_id: String,
    pub title: String,
    pub description: String,
    pub completed: bool,
    pub priority: i16,
    pub due_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub recurrence_frequency: Option<i16>,
    pub recurrence_interval: Option<i32>,
    pub recurrence_until: Option<DateTime<Utc>>,
    pub recurrence_count: Option<i32>,
    pub recurrence_month_day: Option<i16>,
    pub series_id: Option<Uuid>,
    pub occurrence_number: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// A validated repeat rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrenceRule {
    pub frequency: i16,
    pub interval: i32,
    pub until: Option<DateTime<Utc>>,
    pub count: Option<i32>,
    /// Monthly rules only: the day of month the series falls on.
    pub month_day: Option<i16>,
}

impl TaskRecord {
    /// About what the task adds to a response: its text and a fixed part
    /// for the ids, times and numbers.
    pub fn approximate_size(&self) -> usize {
        const FIXED: usize = 256;
        self.title.len() + self.description.len() + self.tags.iter().map(|tag| tag.len() + 2).sum::<usize>() + FIXED
    }

    pub fn recurrence(&self) -> Option<RecurrenceRule> {
        self.recurrence_frequency.map(|frequency| RecurrenceRule {
            frequency,
            interval: self.recurrence_interval.unwrap_or(1),
            until: self.recurrence_until,
            count: self.recurrence_count,
            month_day: self.recurrence_month_day,
        })
    }

    pub fn set_recurrence(&mut self, rule: Option<RecurrenceRule>) {
        self.recurrence_frequency = rule.map(|r| r.frequency);
        self.recurrence_interval = rule.map(|r| r.interval);
        self.recurrence_until = rule.and_then(|r| r.until);
        self.recurrence_count = rule.and_then(|r| r.count);
        self.recurrence_month_day = rule.and_then(|r| r.month_day);
        // The first recurring occurrence starts its series.
        if rule.is_some() && self.series_id.is_none() {
            self.series_id = Some(self.id);
            self.occurrence_number = 1;
        }
    }

    pub fn to_proto(&self) -> Task {
        Task {
            id: self.id.to_string(),
            user_id: self.user_id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            completed: self.completed,
            priority: i32::from(self.priority),
            due_at: self.due_at.map(timestamps::to_proto),
            tags: self.tags.clone(),
            recurrence: self.recurrence().map(|rule| Recurrence {
                frequency: i32::from(rule.frequency),
                interval: rule.interval as u32,
                until: rule.until.map(timestamps::to_proto),
                count: rule.count.unwrap_or(0) as u32,
                month_day: rule.month_day.unwrap_or(0) as u32,
            }),
            created_at: Some(timestamps::to_proto(self.created_at)),
            updated_at: Some(timestamps::to_proto(self.updated_at)),
            completed_at: self.completed_at.map(timestamps::to_proto),
            series_id: self.series_id.map(|id| id.to_string()).unwrap_or_default(),
            version: self.version,
            occurrence_number: self.occurrence_number as u32,
        }
    }
}
