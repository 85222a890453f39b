//! SQL for `audit.audit_records`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use todo_core::db::Database;
use todo_core::{proto::v1::AuditRecord, timestamps};
use uuid::Uuid;

use crate::chain::{Chain, GENESIS, RecordFields};

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
/// in the log.
pub async fn append(db: &Database, chain: &Chain, record: &NewRecord) -> sqlx::Result<bool> {
    Ok(append_all(db, chain, std::slice::from_ref(record)).await?[0])
}

/// Appends `records` in order, in one transaction; for each, false when the
/// event was already in the log (or earlier in `records`). Appends for one
/// user are serialized by a transaction-scoped advisory lock, taken for all
/// the batch's users in sorted order so that concurrent batches never
/// deadlock; replicas never fork a chain, and other users proceed in
/// parallel. One transaction per batch is what lets a bulk delivery of
/// hundreds of events cost a handful of round trips and one commit.
pub async fn append_all(db: &Database, chain: &Chain, records: &[NewRecord]) -> sqlx::Result<Vec<bool>> {
    let mut tx = db.begin().await?;
    let mut users: Vec<&str> = records.iter().map(|record| record.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    // All of them in one round trip; PostgreSQL evaluates a volatile
    // output column after the sort, so the locks are taken in this order.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(u.user_id, 7)) \
         FROM unnest($1::text[]) WITH ORDINALITY AS u(user_id, n) ORDER BY u.n",
    )
    .bind(&users)
    .execute(&mut *tx)
    .await?;
    let event_ids: Vec<Uuid> = records.iter().map(|record| record.event_id).collect();
    let mut seen: HashSet<Uuid> = sqlx::query_scalar("SELECT event_id FROM audit_records WHERE event_id = ANY($1)")
        .bind(&event_ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    // Each user's chain head, by an index lookup per user.
    let mut heads: HashMap<String, (i64, Vec<u8>)> = sqlx::query_as::<_, (String, i64, Vec<u8>)>(
        "SELECT u.user_id, last.sequence, last.hash FROM unnest($1::text[]) AS u(user_id) \
         CROSS JOIN LATERAL (SELECT sequence, hash FROM audit_records a WHERE a.user_id = u.user_id \
         ORDER BY sequence DESC LIMIT 1) AS last",
    )
    .bind(&users)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(user, sequence, hash)| (user, (sequence, hash)))
    .collect();

    let mut appended = Vec::with_capacity(records.len());
    let mut rows = Vec::new();
    for record in records {
        if !seen.insert(record.event_id) {
            appended.push(false);
            continue;
        }
        let (sequence, previous_hash) = match heads.get(&record.user_id) {
            Some((sequence, hash)) => (sequence + 1, hash.clone()),
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
        let hash = chain.record_hash(&previous_hash, &fields).to_vec();
        heads.insert(record.user_id.clone(), (sequence, hash.clone()));
        rows.push((record, sequence, previous_hash, hash));
        appended.push(true);
    }
    if !rows.is_empty() {
        let mut insert: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO audit_records (user_id, sequence, event_id, event_type, task_id, occurred_at, payload, \
             previous_hash, hash) ",
        );
        insert.push_values(rows, |mut row, (record, sequence, previous_hash, hash)| {
            row.push_bind(&record.user_id)
                .push_bind(sequence)
                .push_bind(record.event_id)
                .push_bind(&record.event_type)
                .push_bind(&record.task_id)
                .push_bind(record.occurred_at)
                .push_bind(&record.payload)
                .push_bind(previous_hash)
                .push_bind(hash);
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(appended)
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
