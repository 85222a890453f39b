//! The outbox relay.
//!
//! Rows are deleted only after the sidecar accepted their events: a crash
//! between publish and delete publishes an event twice (consumers dedupe on
//! the event id), but never loses one. So deletes commit without waiting
//! for the disk (a database crash can only undo a delete, never a write). Only one replica relays at a time,
//! holding a PostgreSQL advisory lock on a dedicated connection, so one
//! user's events leave in the order they committed. The relay is woken
//! in-process right after each commit and also polls briefly for rows that
//! other replicas wrote; it never uses NOTIFY inside the write transaction,
//! which would take a cluster-wide lock at commit and serialize all writers.

use std::{sync::Arc, time::Duration};

use sqlx::{Connection, PgConnection, PgPool};
use todo_core::{
    dapr::publisher::{OutgoingEvent, PublishError, Publisher},
    events::WIRE_FORMAT,
    shutdown::CancellationToken,
};
use tokio::sync::Notify;

use crate::store::outbox::{self, OutboxRow};

/// Advisory lock key held by the replica that relays ("todo-outbox").
const RELAY_LOCK_KEY: i64 = 0x746f_646f_6f75_7478;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows per round: the most one round reads and publishes.
    pub batch_size: i64,
    /// The most rows of one user a round takes. Each goes in a call of its
    /// own after the previous one was accepted, so this bounds how many
    /// round trips a busy user's backlog puts before anyone else's row.
    pub rows_per_user: i64,
    /// How often to look for rows other replicas wrote.
    pub poll_interval: Duration,
    /// First and longest wait after a failed publish.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            rows_per_user: 4,
            poll_interval: Duration::from_millis(250),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

pub struct Relay {
    pool: PgPool,
    publisher: Publisher,
    wake: Arc<Notify>,
    config: RelayConfig,
}

impl Relay {
    pub fn new(pool: PgPool, publisher: Publisher, wake: Arc<Notify>, config: RelayConfig) -> Self {
        Self {
            pool,
            publisher,
            wake,
            config,
        }
    }

    /// Relays until `shutdown`; then makes one last attempt to drain, so a
    /// clean stop leaves nothing behind when the sidecar is up.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = self.config.min_backoff;
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => backoff = self.config.min_backoff,
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "outbox relay lost its database connection");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    /// Waits for the relay lock and publishes while holding it.
    async fn lead(&self, shutdown: &CancellationToken) -> sqlx::Result<()> {
        // A detached connection: when it closes, the lock goes with it, and
        // it never returns to the pool still holding the lock.
        // Shutdown must not wait out the acquire timeout when PostgreSQL is down.
        let mut conn = tokio::select! {
            conn = self.pool.acquire() => conn?.detach(),
            () = shutdown.cancelled() => return Ok(()),
        };
        // PostgreSQL releases a session's advisory lock only when it learns
        // the session is gone; without keepalives a leader whose machine
        // vanished (no FIN, no RST) holds the lock, and stops every event,
        // for as long as the kernel's defaults take: over two hours. With
        // these its backend is ended within about a minute. A standby's
        // wait for the lock is no statement to time out.
        sqlx::query(
            "SELECT set_config('tcp_keepalives_idle', '15', false), \
                    set_config('tcp_keepalives_interval', '5', false), \
                    set_config('tcp_keepalives_count', '3', false), \
                    set_config('tcp_user_timeout', '30000', false), \
                    set_config('client_connection_check_interval', '5000', false), \
                    set_config('statement_timeout', '0', false)",
        )
        .execute(&mut conn)
        .await?;
        // A standby waits inside PostgreSQL on this one connection and
        // takes over the moment the leader's session ends (no polling, no
        // new connection per attempt). At shutdown the wait is dropped with
        // the connection, which the server notices within its connection
        // check interval.
        tokio::select! {
            locked = sqlx::query("SELECT pg_advisory_lock($1)").bind(RELAY_LOCK_KEY).execute(&mut conn) => {
                locked?;
            }
            () = shutdown.cancelled() => return Ok(()),
        }
        tracing::debug!("outbox relay is the leader");
        // The relay's deletes need not wait for the WAL flush: a delete lost
        // in a database crash only publishes its rows again, which consumers
        // dedupe, exactly as a relay crash between publish and delete does.
        // Each round then costs no fsync, and under load the fsync queue is
        // where a round waited longest.
        sqlx::query("SET synchronous_commit = off").execute(&mut conn).await?;
        let result = self.relay_while_leader(&mut conn, shutdown).await;
        conn.close().await.ok();
        result
    }

    async fn relay_while_leader(&self, conn: &mut PgConnection, shutdown: &CancellationToken) -> sqlx::Result<()> {
        let mut backoff = self.config.min_backoff;
        let mut measured = std::time::Instant::now() - Duration::from_secs(60);
        loop {
            // Outbox depth and age, at most once a second.
            if measured.elapsed() >= Duration::from_secs(1) {
                measured = std::time::Instant::now();
                let (depth, age): (i64, Option<f64>) =
                    sqlx::query_as("SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox")
                        .fetch_one(&mut *conn)
                        .await?;
                let metrics = todo_core::telemetry::metrics::metrics();
                metrics.outbox_depth.record(depth.max(0) as u64, &[]);
                metrics.outbox_age.record(age.unwrap_or(0.0), &[]);
            }
            if shutdown.is_cancelled() {
                // Last drain on the way out, bounded so shutdown stays quick.
                let _ = tokio::time::timeout(Duration::from_secs(3), self.publish_once(conn)).await;
                return Ok(());
            }
            match self.publish_once(conn).await? {
                Ok(0) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => backoff = self.config.min_backoff,
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "publishing outbox events failed; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    /// Publishes the next round (see [`outbox::next_round`]: every user
    /// with pending rows gets their oldest into it, none more than
    /// `rows_per_user`); returns how many rows were published (database
    /// errors outside, publish errors inside).
    ///
    /// A bulk publish can fail part way in any pattern: on Kafka, the
    /// first entries of a partition can fail while later ones are accepted
    /// (sarama gives up on a message while the leader is unknown and sends
    /// the next once it is back). So one call never carries two rows of
    /// the same partition key: the batch goes out in [`waves`], each after
    /// the previous one was accepted, and a wave with any failure ends the
    /// attempt — a row is published only once every earlier row of its
    /// user is, which keeps per-user commit order.
    async fn publish_once(&self, conn: &mut PgConnection) -> sqlx::Result<Result<usize, PublishError>> {
        let rows = outbox::next_round(conn, self.config.batch_size, self.config.rows_per_user).await?;
        if rows.is_empty() {
            return Ok(Ok(0));
        }
        let mut published = Vec::with_capacity(rows.len());
        let mut failure = None;
        'waves: for wave in waves(&rows) {
            // One producer span per event, each continuing the trace of the
            // RPC that made the change; they end when the wave is accepted.
            let spans: Vec<tracing::Span> = wave.iter().map(|row| publish_span(row)).collect();
            let events: Vec<OutgoingEvent> = wave.iter().zip(&spans).map(|(row, span)| outgoing(row, span)).collect();
            match self.publisher.publish_bulk(&wave[0].topic, &events).await {
                Ok(()) => published.extend(wave.iter().map(|row| row.id)),
                Err(PublishError::PartialBatch { failed_ids, .. }) => {
                    // Accepted entries are out; only the rejected ones stay.
                    published.extend(
                        wave.iter()
                            .filter(|row| !failed_ids.contains(&row.event_id.to_string()))
                            .map(|row| row.id),
                    );
                    failure = Some(PublishError::PartialBatch {
                        failed: failed_ids.len(),
                        total: wave.len(),
                        first_error: "see sidecar logs".into(),
                        failed_ids,
                    });
                    break 'waves;
                }
                Err(err) => {
                    failure = Some(err);
                    break 'waves;
                }
            }
        }
        if !published.is_empty() {
            outbox::delete(conn, &published).await?;
        }
        Ok(match failure {
            Some(err) => Err(err),
            None => Ok(published.len()),
        })
    }
}

/// Splits `rows` (each key's in commit order) into publish calls that can
/// each fail in part without breaking per-user order: every call has one
/// topic and at most one row per partition key, and a key's rows are in
/// successive calls in commit order. Wave k of a topic holds each key's
/// k-th row, so many users' rows still travel together (the outbox holds
/// one topic today).
fn waves(rows: &[OutboxRow]) -> Vec<Vec<&OutboxRow>> {
    let mut by_topic: Vec<Vec<&OutboxRow>> = Vec::new();
    for row in rows {
        match by_topic.iter_mut().find(|same| same[0].topic == row.topic) {
            Some(same) => same.push(row),
            None => by_topic.push(vec![row]),
        }
    }
    let mut calls = Vec::new();
    for topic in by_topic {
        let mut seen = std::collections::HashMap::<&str, usize>::new();
        let mut topic_waves: Vec<Vec<&OutboxRow>> = Vec::new();
        for row in topic {
            let nth = seen.entry(row.partition_key.as_str()).or_default();
            if *nth == topic_waves.len() {
                topic_waves.push(Vec::new());
            }
            topic_waves[*nth].push(row);
            *nth += 1;
        }
        calls.extend(topic_waves);
    }
    calls
}

fn publish_span(row: &OutboxRow) -> tracing::Span {
    let span = tracing::info_span!(
        "pubsub.publish",
        otel.name = %format!("{} publish", row.topic),
        otel.kind = "producer",
        messaging.system = "dapr",
        messaging.destination.name = %row.topic,
        messaging.message.id = %row.event_id,
        messaging.message.type = %row.event_type,
    );
    todo_core::telemetry::set_parent(&span, row.traceparent.as_deref());
    span
}

fn outgoing(row: &OutboxRow, span: &tracing::Span) -> OutgoingEvent {
    OutgoingEvent {
        event_id: row.event_id.to_string(),
        event_type: row.event_type.clone(),
        partition_key: row.partition_key.clone(),
        data: row.payload.clone(),
        content_type: WIRE_FORMAT,
        traceparent: todo_core::telemetry::traceparent_of(span).or_else(|| row.traceparent.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, topic: &str, key: &str) -> OutboxRow {
        OutboxRow {
            id,
            event_id: uuid::Uuid::now_v7(),
            topic: topic.to_owned(),
            event_type: "task.created".to_owned(),
            partition_key: key.to_owned(),
            payload: Vec::new(),
            traceparent: None,
        }
    }

    fn ids(calls: &[Vec<&OutboxRow>]) -> Vec<Vec<i64>> {
        calls
            .iter()
            .map(|call| call.iter().map(|row| row.id).collect())
            .collect()
    }

    #[test]
    fn each_call_holds_at_most_one_row_per_user_in_commit_order() {
        let rows = [
            row(1, "t", "ann"),
            row(2, "t", "ann"),
            row(3, "t", "ben"),
            row(4, "t", "ann"),
            row(5, "t", "ben"),
            row(6, "t", "cat"),
        ];
        assert_eq!(ids(&waves(&rows)), vec![vec![1, 3, 6], vec![2, 5], vec![4]]);
    }

    #[test]
    fn many_users_travel_in_one_call() {
        let rows: Vec<OutboxRow> = (0..50).map(|n| row(n, "t", &format!("user-{n}"))).collect();
        assert_eq!(waves(&rows).len(), 1);
    }

    #[test]
    fn a_call_never_mixes_topics() {
        let rows = [row(1, "a", "ann"), row(2, "b", "ann"), row(3, "a", "ben")];
        assert_eq!(ids(&waves(&rows)), vec![vec![1, 3], vec![2]]);
    }

    #[test]
    fn a_round_in_fair_order_keeps_each_users_commit_order() {
        // As next_round returns them: every key's first row, then seconds.
        let rows = [
            row(1, "t", "ann"),
            row(9, "t", "ben"),
            row(2, "t", "ann"),
            row(3, "t", "ann"),
        ];
        assert_eq!(ids(&waves(&rows)), vec![vec![1, 9], vec![2], vec![3]]);
    }
}
