//! SQL for `notifications.notifications`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use todo_core::{proto::v1::Notification, timestamps};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub user_id: String,
    pub task_id: String,
    pub title: String,
    pub message: String,
    pub due_at: Option<DateTime<Utc>>,
    pub kind: i16,
    pub channel: String,
    pub created_at: DateTime<Utc>,
}

impl NotificationRow {
    pub fn to_proto(&self) -> Notification {
        Notification {
            id: self.id.to_string(),
            event_id: self.event_id.to_string(),
            user_id: self.user_id.clone(),
            task_id: self.task_id.clone(),
            title: self.title.clone(),
            message: self.message.clone(),
            due_at: self.due_at.map(timestamps::to_proto),
            kind: i32::from(self.kind),
            created_at: Some(timestamps::to_proto(self.created_at)),
            channel: self.channel.clone(),
        }
    }
}

/// Records a notification; false when its event was recorded before (a
/// redelivery), in which case nothing changes.
pub async fn insert(conn: &mut PgConnection, row: &NotificationRow) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, event_id, user_id, task_id, title, message, due_at, kind, channel, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(row.id)
    .bind(row.event_id)
    .bind(&row.user_id)
    .bind(&row.task_id)
    .bind(&row.title)
    .bind(&row.message)
    .bind(row.due_at)
    .bind(row.kind)
    .bind(&row.channel)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Where a page ended, and the filter it was served under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
    pub task_id: Option<String>,
}

/// The user's notifications, newest first, after `cursor`.
pub async fn list(
    conn: &mut PgConnection,
    user_id: &str,
    task_id: Option<&str>,
    cursor: Option<&Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<NotificationRow>> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT id, event_id, user_id, task_id, title, message, due_at, kind, channel, created_at \
         FROM notifications WHERE user_id = ",
    );
    sql.push_bind(user_id);
    if let Some(task_id) = task_id {
        sql.push(" AND task_id = ").push_bind(task_id);
    }
    if let Some(cursor) = cursor {
        sql.push(" AND (created_at, id) < (")
            .push_bind(cursor.created_at)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit);
    sql.build_query_as().fetch_all(conn).await
}
