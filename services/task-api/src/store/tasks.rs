//! Rows of `tasks`.

use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    listing::{Cursor, ListFilter, Order},
    outbox::NewRow,
};
use crate::domain::task::TaskRecord;

const COLUMNS: &str = "id, user_id, title, description, completed, priority, due_at, tags, \
    recurrence_frequency, recurrence_interval, recurrence_until, recurrence_count, recurrence_month_day, \
    series_id, occurrence_number, created_at, updated_at, completed_at, version";

/// Inserts `task` and its `task.created` outbox row in one statement (one
/// round trip, atomic without a transaction); false, and neither written,
/// when a task with its id, or the same request id for this user, already
/// exists (a retried create or a duplicate command), or when a task with
/// its id was deleted (a command replayed after the user deleted the
/// occurrence it created).
pub async fn insert_created(
    conn: &mut PgConnection,
    task: &TaskRecord,
    request_id: Option<Uuid>,
    event: &NewRow,
) -> sqlx::Result<bool> {
    let query = sqlx::query(
        "WITH created AS ( \
           INSERT INTO tasks (id, user_id, title, description, completed, priority, due_at, tags, \
           recurrence_frequency, recurrence_interval, recurrence_until, recurrence_count, series_id, \
           occurrence_number, created_at, updated_at, completed_at, version, request_id, recurrence_month_day) \
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20 \
           WHERE NOT EXISTS (SELECT 1 FROM deleted_tasks WHERE id = $1) \
           ON CONFLICT DO NOTHING RETURNING id) \
         INSERT INTO outbox (event_id, topic, event_type, partition_key, payload, traceparent) \
         SELECT $21, $22, $23, $24, $25, $26 FROM created",
    )
    .bind(task.id)
    .bind(&task.user_id)
    .bind(&task.title)
    .bind(&task.description)
    .bind(task.completed)
    .bind(task.priority)
    .bind(task.due_at)
    .bind(&task.tags)
    .bind(task.recurrence_frequency)
    .bind(task.recurrence_interval)
    .bind(task.recurrence_until)
    .bind(task.recurrence_count)
    .bind(task.series_id)
    .bind(task.occurrence_number)
    .bind(task.created_at)
    .bind(task.updated_at)
    .bind(task.completed_at)
    .bind(task.version)
    .bind(request_id)
    .bind(task.recurrence_month_day);
    let result = event.bind(query).execute(conn).await?;
    Ok(result.rows_affected() == 1)
}

/// How many tasks `user_id` has, counting no further than `limit` (so
/// the cost stays bounded whatever the user holds).
pub async fn count_up_to(conn: &mut PgConnection, user_id: &str, limit: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM tasks WHERE user_id = $1 LIMIT $2) AS mine")
        .bind(user_id)
        .bind(limit)
        .fetch_one(conn)
        .await
}

pub async fn find_by_request_id(
    conn: &mut PgConnection,
    user_id: &str,
    request_id: Uuid,
) -> sqlx::Result<Option<TaskRecord>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE user_id = $1 AND request_id = $2"
    ))
    .bind(user_id)
    .bind(request_id)
    .fetch_optional(conn)
    .await
}

/// The user's task, or None (also when it belongs to someone else).
pub async fn get(conn: &mut PgConnection, user_id: &str, id: Uuid) -> sqlx::Result<Option<TaskRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// Like [`get`], locking the row until the transaction ends, so concurrent
/// changes to one task serialize (and their outbox rows keep their order).
pub async fn lock(conn: &mut PgConnection, user_id: &str, id: Uuid) -> sqlx::Result<Option<TaskRecord>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = $1 AND user_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// Stores every mutable column of `task`.
pub async fn update(conn: &mut PgConnection, task: &TaskRecord) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tasks SET title = $3, description = $4, completed = $5, priority = $6, due_at = $7, \
         tags = $8, recurrence_frequency = $9, recurrence_interval = $10, recurrence_until = $11, \
         recurrence_count = $12, series_id = $13, occurrence_number = $14, updated_at = $15, \
         completed_at = $16, version = $17, recurrence_month_day = $18 WHERE id = $1 AND user_id = $2",
    )
    .bind(task.id)
    .bind(&task.user_id)
    .bind(&task.title)
    .bind(&task.description)
    .bind(task.completed)
    .bind(task.priority)
    .bind(task.due_at)
    .bind(&task.tags)
    .bind(task.recurrence_frequency)
    .bind(task.recurrence_interval)
    .bind(task.recurrence_until)
    .bind(task.recurrence_count)
    .bind(task.series_id)
    .bind(task.occurrence_number)
    .bind(task.updated_at)
    .bind(task.completed_at)
    .bind(task.version)
    .bind(task.recurrence_month_day)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the task; a task of a series leaves its id behind in
/// `deleted_tasks`, so no replayed command creates it again.
pub async fn delete(conn: &mut PgConnection, user_id: &str, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "WITH gone AS (DELETE FROM tasks WHERE id = $1 AND user_id = $2 RETURNING id, series_id) \
         INSERT INTO deleted_tasks (id) SELECT id FROM gone WHERE series_id IS NOT NULL ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// One page of the user's tasks after `cursor`, in `order`; fetches
/// `limit` rows.
pub async fn list(
    conn: &mut PgConnection,
    user_id: &str,
    filter: &ListFilter,
    order: Order,
    cursor: Option<&Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<TaskRecord>> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM tasks WHERE user_id = "));
    sql.push_bind(user_id);
    if let Some(completed) = filter.completed {
        sql.push(" AND completed = ").push_bind(completed);
    }
    if let Some(priority) = filter.priority {
        sql.push(" AND priority = ").push_bind(priority);
    }
    if let Some(tag) = &filter.tag {
        sql.push(" AND tags @> ARRAY[").push_bind(tag).push("]::text[]");
    }
    if let Some(before) = filter.due_before {
        sql.push(" AND due_at < ").push_bind(before);
    }
    if let Some(after) = filter.due_after {
        sql.push(" AND due_at >= ").push_bind(after);
    }
    if let Some(query) = &filter.query {
        let pattern = format!("%{}%", escape_like(query));
        sql.push(" AND (title ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR description ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    match (order, cursor) {
        (Order::CreatedDesc, Some(cursor)) => {
            sql.push(" AND (created_at, id) < (")
                .push_bind(cursor.created_at)
                .push(", ")
                .push_bind(cursor.id)
                .push(")");
        }
        (Order::DueAsc, Some(cursor)) => match cursor.due_at {
            // Rows with a due date sort first, then the undated ones.
            Some(due) => {
                sql.push(" AND (due_at > ")
                    .push_bind(due)
                    .push(" OR (due_at = ")
                    .push_bind(due)
                    .push(" AND id > ")
                    .push_bind(cursor.id)
                    .push(") OR due_at IS NULL)");
            }
            None => {
                sql.push(" AND due_at IS NULL AND id > ").push_bind(cursor.id);
            }
        },
        (_, None) => {}
    }
    sql.push(match order {
        Order::CreatedDesc => " ORDER BY created_at DESC, id DESC",
        Order::DueAsc => " ORDER BY due_at ASC NULLS LAST, id ASC",
    });
    sql.push(" LIMIT ").push_bind(limit);
    sql.build_query_as().fetch_all(conn).await
}

/// Makes `%`, `_` and `\` in user text match literally in ILIKE.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::escape_like(r"50%_off\"), r"50\%\_off\\");
    }
}
