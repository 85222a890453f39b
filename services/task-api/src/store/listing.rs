//! What a ListTasks query asks for, shared by the SQL that answers it
//! ([`super::tasks`]) and the page token that continues it
//! ([`super::page_token`]): the filters, the order and where the previous
//! page ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::task::TaskRecord;

/// ListTasks filters, already validated.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListFilter {
    pub completed: Option<bool>,
    pub priority: Option<i16>,
    pub tag: Option<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
    pub query: Option<String>,
}

/// Sort orders of ListTasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    CreatedDesc,
    DueAsc,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub id: Uuid,
}

impl Cursor {
    pub fn after(task: &TaskRecord) -> Self {
        Self {
            created_at: task.created_at,
            due_at: task.due_at,
            id: task.id,
        }
    }
}
