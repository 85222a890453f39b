//! SQL for `audit.audit_records`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use todo_core::db::Database;
use todo_core::{proto::v1::AuditRecord, timestamps};
use uuid::Uuid;

use crate::chain::{GENESIS, RecordFields, record_hash};

/// A stored record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordRow {
    pub user_id: String,
    pub sequence: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub task_id: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub payload: Vec<u8>,
    pub previous_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl RecordRow {
    pub fn fields(&self) -> RecordFields<'_> {
        RecordFields {
            sequence: self.sequence,
            event_id: self.event_id,
            event_type: &self.event_type,
            task_id: &self.task_id,
            user_id: &self.user_id,
            occurred_at: self.occurred_at,
            payload: &self.payload,
        }
    }

    pub fn to_proto(&self) -> AuditRecord {
        AuditRecord {
            sequence: self.sequence,
            event_id: self.event_id.to_string(),
            event_type: self.event_type.clone(),
            task_id: self.task_id.clone(),
            user_id: self.user_id.clone(),
            occurred_at: Some(timestamps::to_proto(self.occurred_at)),
            recorded_at: Some(timestamps::to_proto(self.recorded_at)),
            payload: self.payload.clone(),
            previous_hash: self.previous_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub event_id: Uuid,
    pub event_type: String,
    pub task_id: String,
    pub user_id: String,
    pub occurred_at: DateTime<Utc>,
    pub payload: Vec<u8>,
}

const COLUMNS: &str =
    "user_id, sequence, event_id, event_type, task_id, occurred_at, recorded_at, payload, previous_hash, hash";

/// Appends `record` to its user's chain; false when the event is already
/// in the log. Appends for one user are serialized by a transaction-scoped
/// advisory lock, so replicas never fork a chain; other users proceed in
/// parallel.
pub async fn append(db: &Database, record: &NewRecord) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
        .bind(&record.user_id)
        .execute(&mut *tx)
        .await?;
    let seen: Option<i64> = sqlx::query_scalar("SELECT sequence FROM audit_records WHERE event_id = $1")
        .bind(record.event_id)
        .fetch_optional(&mut *tx)
        .await?;
    if seen.is_some() {
        return Ok(false);
    }
    let last: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT sequence, hash FROM audit_records WHERE user_id = $1 ORDER BY sequence DESC LIMIT 1")
            .bind(&record.user_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (sequence, previous_hash) = match last {
        Some((sequence, hash)) => (sequence + 1, hash),
        None => (1, GENESIS.to_vec()),
    };
    let fields = RecordFields {
        sequence,
        event_id: record.event_id,
        event_type: &record.event_type,
        task_id: &record.task_id,
        user_id: &record.user_id,
        occurred_at: record.occurred_at,
        payload: &record.payload,
    };
    let hash = record_hash(&previous_hash, &fields);
    sqlx::query(
        "INSERT INTO audit_records (user_id, sequence, event_id, event_type, task_id, occurred_at, payload, \
         previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&record.user_id)
    .bind(sequence)
    .bind(record.event_id)
    .bind(&record.event_type)
    .bind(&record.task_id)
    .bind(record.occurred_at)
    .bind(&record.payload)
    .bind(previous_hash)
    .bind(hash.as_slice())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// ListAuditRecords filters, and where the previous page ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub task_id: Option<String>,
    pub occurred_after: Option<DateTime<Utc>>,
    pub occurred_before: Option<DateTime<Utc>>,
}

/// The user's records in chain order, after sequence `after`.
pub async fn list(
    db: &Database,
    user_id: &str,
    filter: &Filter,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<RecordRow>> {
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_records WHERE user_id = "));
    sql.push_bind(user_id);
    sql.push(" AND sequence > ").push_bind(after);
    if let Some(task_id) = &filter.task_id {
        sql.push(" AND task_id = ").push_bind(task_id);
    }
    if let Some(from) = filter.occurred_after {
        sql.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(until) = filter.occurred_before {
        sql.push(" AND occurred_at < ").push_bind(until);
    }
    sql.push(" ORDER BY sequence LIMIT ").push_bind(limit);
    let mut conn = db.acquire().await?;
    sql.build_query_as().fetch_all(&mut *conn).await
}
