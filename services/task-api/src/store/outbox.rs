//! Rows of `outbox`: events waiting for the sidecar to accept them.

use sqlx::{PgConnection, Postgres, postgres::PgArguments};
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

/// An outbox row to be written: `event` for `task-events`, keyed by its
/// user, its payload already in the wire format, ready to publish.
pub struct NewRow {
    pub event_id: Uuid,
    pub event_type: String,
    pub partition_key: String,
    pub payload: Vec<u8>,
    pub traceparent: Option<String>,
}

impl NewRow {
    /// The row of `event`; an encoding error (a value validation let
    /// through that has no wire form) comes back as the statement's
    /// error, so the change is refused rather than its event lost.
    pub fn for_event(event: &TaskEvent, traceparent: Option<&str>) -> sqlx::Result<Self> {
        Ok(Self {
            event_id: Uuid::parse_str(&event.event_id).expect("task-api generates UUID event ids"),
            event_type: event.event_type.clone(),
            partition_key: event.user_id.clone(),
            payload: todo_core::events::encode_wire(event).map_err(|err| sqlx::Error::Encode(Box::new(err)))?,
            traceparent: traceparent.map(str::to_owned),
        })
    }

    /// Binds the row's six columns (event_id, topic, event_type,
    /// partition_key, payload, traceparent) in that order.
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        query
            .bind(self.event_id)
            .bind(topics::TASK_EVENTS)
            .bind(&self.event_type)
            .bind(&self.partition_key)
            .bind(&self.payload)
            .bind(&self.traceparent)
    }
}

/// Adds `row` in the caller's transaction.
pub async fn insert(conn: &mut PgConnection, row: &NewRow) -> sqlx::Result<()> {
    row.bind(sqlx::query(
        "INSERT INTO outbox (event_id, topic, event_type, partition_key, payload, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// The next round of rows to publish: up to `limit` rows, at most
/// `per_key` of any one partition key (its oldest), every key's first row
/// before any key's second, and in commit order within a key. One user's
/// backlog thus takes a bounded share of a round, and a row of a user with
/// nothing else pending goes out in the next round's first call.
pub async fn next_round(conn: &mut PgConnection, limit: i64, per_key: i64) -> sqlx::Result<Vec<OutboxRow>> {
    // On the (partition_key, id) index: the pending keys found by skipping
    // from one key to the next (a lookup per key, however many rows each
    // has), then each key's oldest rows; a backlog of one user's thousands
    // of rows costs each round no more than a quiet user's one.
    sqlx::query_as(
        "WITH RECURSIVE pending(key) AS ( \
             (SELECT partition_key FROM outbox ORDER BY partition_key LIMIT 1) \
             UNION ALL \
             SELECT (SELECT o.partition_key FROM outbox o WHERE o.partition_key > pending.key \
                     ORDER BY o.partition_key LIMIT 1) \
             FROM pending WHERE pending.key IS NOT NULL \
         ) \
         SELECT o.id, o.event_id, o.topic, o.event_type, o.partition_key, o.payload, o.traceparent \
         FROM pending \
         CROSS JOIN LATERAL ( \
             SELECT oldest.*, row_number() OVER (ORDER BY oldest.id) AS nth \
             FROM (SELECT * FROM outbox WHERE partition_key = pending.key ORDER BY id LIMIT $2) oldest \
         ) o \
         WHERE pending.key IS NOT NULL \
         ORDER BY o.nth, o.id \
         LIMIT $1",
    )
    .bind(limit)
    .bind(per_key)
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
