//! Rows of `outbox`: events waiting for the sidecar to accept them.

use sqlx::PgConnection;
use todo_core::{events::topics, proto::v1::TaskEvent};
use uuid::Uuid;

/// One event waiting to be published.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub event_type: String,
    pub partition_key: String,
    pub payload: Vec<u8>,
    pub traceparent: Option<String>,
}

/// Adds `event` (for `task-events`, keyed by its user) in the caller's
/// transaction. The payload is stored in the wire format, ready to publish.
pub async fn insert(conn: &mut PgConnection, event: &TaskEvent, traceparent: Option<&str>) -> sqlx::Result<()> {
    let event_id = Uuid::parse_str(&event.event_id).expect("task-api generates UUID event ids");
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, event_type, partition_key, payload, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event_id)
    .bind(topics::TASK_EVENTS)
    .bind(&event.event_type)
    .bind(&event.user_id)
    .bind(todo_core::events::encode_wire(event))
    .bind(traceparent)
    .execute(conn)
    .await?;
    Ok(())
}

/// The oldest `limit` rows, in insertion order.
pub async fn oldest(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<OutboxRow>> {
    sqlx::query_as(
        "SELECT id, event_id, topic, event_type, partition_key, payload, traceparent \
         FROM outbox ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Removes rows the sidecar accepted.
pub async fn delete(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}
