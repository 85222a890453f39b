//! The operations on tasks. Each one is a single transaction that changes
//! the task and writes its event to the outbox, so either both happen or
//! neither does; the relay is woken right after commit.

use std::sync::Arc;

use sqlx::PgConnection;
use todo_core::db::Database;
use todo_core::{
    events::event_types,
    proto::v1::{CreateTaskRequest, Task, TaskEvent, TaskOccurrenceRequested},
    timestamps,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    domain::{
        task::TaskRecord,
        update::{self, Change},
        validation::{self, REQUEST_FIELDS, TASK_FIELDS, TaskInput, ValidationError, invalid},
    },
    store::{
        listing::{Cursor, ListFilter, Order},
        outbox, page_token, tasks,
    },
};

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("task not found")]
    NotFound,
    #[error("task changed meanwhile: expected version {expected}, current {current}")]
    VersionMismatch { expected: i64, current: i64 },
    #[error("a user may have at most {limit} tasks; delete some first")]
    QuotaExceeded { limit: i64 },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A page of tasks.
pub struct Page {
    pub tasks: Vec<TaskRecord>,
    pub next_page_token: String,
}

/// Everything the operations need: the pool, the relay's wake-up, and how
/// many tasks one user may keep.
#[derive(Clone)]
pub struct Tasks {
    pool: Database,
    relay_wake: Arc<Notify>,
    max_tasks_per_user: i64,
}

impl Tasks {
    pub fn new(pool: Database, relay_wake: Arc<Notify>, max_tasks_per_user: u32) -> Self {
        Self {
            pool,
            relay_wake,
            max_tasks_per_user: i64::from(max_tasks_per_user),
        }
    }

    pub async fn create(
        &self,
        user_id: &str,
        request: &CreateTaskRequest,
        traceparent: Option<&str>,
    ) -> Result<TaskRecord, OperationError> {
        let request_id = match request.request_id.as_str() {
            "" => None,
            id => Some(Uuid::parse_str(id).map_err(|_| invalid("request_id", "must be a UUID"))?),
        };
        let input = TaskInput::of_request(request);
        let task = validation::new_task(Uuid::now_v7(), user_id, &input, &REQUEST_FIELDS, timestamps::now())?;
        self.check_quota(user_id, request_id).await?;

        if !self.insert_created(&task, request_id, traceparent).await? {
            // A retry of a create that already happened: answer as the first time.
            let mut conn = self.pool.acquire().await?;
            let existing = tasks::find_by_request_id(&mut conn, user_id, request_id.expect("ids are fresh UUIDv7"))
                .await?
                .ok_or(OperationError::NotFound)?;
            return Ok(existing);
        }
        Ok(task)
    }

    /// Refuses a new task when the user already has as many as allowed
    /// (the table, and the audit log behind it, are shared by everyone).
    /// Concurrent creates may pass it together: the bound is approximate by
    /// that many. A retried create that already happened is not refused.
    async fn check_quota(&self, user_id: &str, request_id: Option<Uuid>) -> Result<(), OperationError> {
        // Off: not even the count (it reads up to the limit's index entries).
        if self.max_tasks_per_user == 0 {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        if tasks::count_up_to(&mut conn, user_id, self.max_tasks_per_user).await? < self.max_tasks_per_user {
            return Ok(());
        }
        if let Some(request_id) = request_id
            && tasks::find_by_request_id(&mut conn, user_id, request_id)
                .await?
                .is_some()
        {
            return Ok(());
        }
        Err(OperationError::QuotaExceeded {
            limit: self.max_tasks_per_user,
        })
    }

    /// Writes a new task and its `task.created` event in one round trip;
    /// false when it already exists.
    async fn insert_created(
        &self,
        task: &TaskRecord,
        request_id: Option<Uuid>,
        traceparent: Option<&str>,
    ) -> Result<bool, OperationError> {
        let event = outbox::NewRow::for_event(
            &task_event(task, event_types::TASK_CREATED, created_fields(task)),
            traceparent,
        )?;
        let mut conn = self.pool.acquire().await?;
        let created = tasks::insert_created(&mut conn, task, request_id, &event).await?;
        if created {
            self.relay_wake.notify_one();
        }
        Ok(created)
    }

    pub async fn get(&self, user_id: &str, id: &str) -> Result<TaskRecord, OperationError> {
        let id = validation::task_id("id", id)?;
        let mut conn = self.pool.acquire().await?;
        tasks::get(&mut conn, user_id, id)
            .await?
            .ok_or(OperationError::NotFound)
    }

    pub async fn list(
        &self,
        user_id: &str,
        filter: ListFilter,
        order: Order,
        page_token: &str,
        page_size: i64,
    ) -> Result<Page, OperationError> {
        let cursor = match page_token {
            "" => None,
            token => Some(page_token::decode(token, order, &filter)?),
        };
        let mut conn = self.pool.acquire().await?;
        let mut rows = tasks::list(&mut conn, user_id, &filter, order, cursor.as_ref(), page_size + 1).await?;
        let next_page_token =
            if todo_core::pagination::fit_page(&mut rows, page_size as usize, TaskRecord::approximate_size) {
                let last = rows.last().expect("a page is never empty");
                page_token::encode(order, Cursor::after(last), &filter)
            } else {
                String::new()
            };
        Ok(Page {
            tasks: rows,
            next_page_token,
        })
    }

    /// Applies a field-masked update; nothing is stored or published when
    /// no value actually changes.
    pub async fn update(
        &self,
        user_id: &str,
        patch: &Task,
        mask: &[String],
        expected_version: i64,
        traceparent: Option<&str>,
    ) -> Result<TaskRecord, OperationError> {
        let id = validation::task_id("task.id", &patch.id)?;
        let fields = update::parse_mask(mask)?;
        self.change(user_id, id, expected_version, traceparent, |current, now| {
            update::apply(current, patch, &fields, now)
        })
        .await
    }

    pub async fn complete(
        &self,
        user_id: &str,
        id: &str,
        expected_version: i64,
        traceparent: Option<&str>,
    ) -> Result<TaskRecord, OperationError> {
        let id = validation::task_id("id", id)?;
        let completed = Task {
            completed: true,
            ..Task::default()
        };
        self.change(user_id, id, expected_version, traceparent, |current, now| {
            update::apply(current, &completed, &["completed"], now)
        })
        .await
    }

    /// Locks the task, applies `change`, stores it with its event.
    async fn change(
        &self,
        user_id: &str,
        id: Uuid,
        expected_version: i64,
        traceparent: Option<&str>,
        change: impl FnOnce(&TaskRecord, chrono::DateTime<chrono::Utc>) -> Result<Change, ValidationError>,
    ) -> Result<TaskRecord, OperationError> {
        let mut tx = self.pool.begin().await?;
        let current = tasks::lock(&mut tx, user_id, id)
            .await?
            .ok_or(OperationError::NotFound)?;
        check_version(&current, expected_version)?;
        let Change {
            task,
            changed_fields,
            completed_now,
        } = change(&current, timestamps::now())?;
        if changed_fields.is_empty() {
            return Ok(current);
        }
        tasks::update(&mut tx, &task).await?;
        let event_type = if completed_now {
            event_types::TASK_COMPLETED
        } else {
            event_types::TASK_UPDATED
        };
        record_event(&mut tx, &task, event_type, changed_fields, traceparent).await?;
        tx.commit().await?;
        self.relay_wake.notify_one();
        Ok(task)
    }

    pub async fn delete(
        &self,
        user_id: &str,
        id: &str,
        expected_version: i64,
        traceparent: Option<&str>,
    ) -> Result<(), OperationError> {
        let id = validation::task_id("id", id)?;
        let mut tx = self.pool.begin().await?;
        let current = tasks::lock(&mut tx, user_id, id)
            .await?
            .ok_or(OperationError::NotFound)?;
        check_version(&current, expected_version)?;
        tasks::delete(&mut tx, user_id, id).await?;
        record_event(&mut tx, &current, event_types::TASK_DELETED, Vec::new(), traceparent).await?;
        tx.commit().await?;
        self.relay_wake.notify_one();
        Ok(())
    }

    /// Creates the occurrence a `task.occurrence.requested` command asks
    /// for. Its id is deterministic, so a repeated command finds the task
    /// already there and changes nothing (returns false).
    pub async fn create_occurrence(
        &self,
        command: &TaskOccurrenceRequested,
        traceparent: Option<&str>,
    ) -> Result<bool, OperationError> {
        let task = occurrence_from_command(command)?;
        self.insert_created(&task, None, traceparent).await
    }
}

fn check_version(current: &TaskRecord, expected: i64) -> Result<(), OperationError> {
    if expected != 0 && expected != current.version {
        return Err(OperationError::VersionMismatch {
            expected,
            current: current.version,
        });
    }
    Ok(())
}

/// Validates a command's task as strictly as CreateTask validates a client's.
pub fn occurrence_from_command(command: &TaskOccurrenceRequested) -> Result<TaskRecord, ValidationError> {
    if command.user_id.trim().is_empty() || command.user_id.len() > todo_core::auth::jwt::MAX_USER_ID_LEN {
        return Err(invalid("user_id", "must be a user id"));
    }
    let id = validation::task_id("task_id", &command.task_id)?;
    let series_id = validation::task_id("series_id", &command.series_id)?;
    let template = command.task.as_ref().ok_or_else(|| invalid("task", "must be set"))?;
    let input = TaskInput {
        title: &template.title,
        description: &template.description,
        priority: template.priority,
        due_at: template.due_at.as_ref(),
        tags: &template.tags,
        recurrence: template.recurrence.as_ref(),
    };
    let mut task = validation::new_task(id, &command.user_id, &input, &TASK_FIELDS, timestamps::now())?;
    task.series_id = Some(series_id);
    task.occurrence_number = command.occurrence_number.max(1) as i32;
    Ok(task)
}

/// The fields a new task sets, for `changed_fields` of `task.created`.
fn created_fields(task: &TaskRecord) -> Vec<&'static str> {
    let mut fields = vec!["title"];
    if !task.description.is_empty() {
        fields.push("description");
    }
    fields.push("priority");
    if task.due_at.is_some() {
        fields.push("due_at");
    }
    if !task.tags.is_empty() {
        fields.push("tags");
    }
    if task.recurrence_frequency.is_some() {
        fields.push("recurrence");
    }
    fields
}

async fn record_event(
    conn: &mut PgConnection,
    task: &TaskRecord,
    event_type: &str,
    changed_fields: Vec<&'static str>,
    traceparent: Option<&str>,
) -> sqlx::Result<()> {
    let event = task_event(task, event_type, changed_fields);
    outbox::insert(conn, &outbox::NewRow::for_event(&event, traceparent)?).await
}

/// The event that tells consumers `task` changed.
pub fn task_event(task: &TaskRecord, event_type: &str, changed_fields: Vec<&'static str>) -> TaskEvent {
    TaskEvent {
        event_id: Uuid::now_v7().to_string(),
        event_type: event_type.to_owned(),
        occurred_at: Some(timestamps::to_proto(task.updated_at.max(timestamps::now()))),
        user_id: task.user_id.clone(),
        task: Some(task.to_proto()),
        changed_fields: changed_fields.into_iter().map(str::to_owned).collect(),
        task_version: task.version,
    }
}
