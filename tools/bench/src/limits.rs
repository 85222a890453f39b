//! The machine's own limits, measured in the same run as the stack so that
//! every target is a ratio: PostgreSQL alone running CreateTask's statement
//! (pgbench), and Kafka alone, produce → consume with a Rust client.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rskafka::{
    client::{
        ClientBuilder,
        partition::{Compression, UnknownTopicHandling},
    },
    record::Record,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use todo_core::config::DatabaseConfig;
use todo_testing::TestDatabase;

use crate::{
    Args,
    pubsub::now_nanos,
    report::{percentile, round},
};

/// The clients of the sustained CreateTask phase, given to pgbench too.
pub const CONCURRENCY: usize = 32;

/// CreateTask's one statement (task-api `store::tasks::insert_created`:
/// the task row and its outbox row), with values of the benchmark's size.
const CREATE_TASK_SCRIPT: &str = r"\set user random(0, 63)
WITH created AS (
  INSERT INTO tasks (id, user_id, title, description, completed, priority, due_at, tags,
    recurrence_frequency, recurrence_interval, recurrence_until, recurrence_count, series_id,
    occurrence_number, created_at, updated_at, completed_at, version, request_id, recurrence_month_day)
  VALUES (gen_random_uuid(), 'bench-user-' || :user, 'bench task', '', false, 0, now() + interval '3 days',
    ARRAY['bench'], NULL, NULL, NULL, NULL, NULL, 0, now(), now(), NULL, 1, NULL, NULL)
  ON CONFLICT DO NOTHING RETURNING id)
INSERT INTO outbox (event_id, topic, event_type, partition_key, payload, traceparent)
SELECT gen_random_uuid(), 'task-events', 'task.created', 'bench-user-' || :user,
  decode(repeat('ab', 200), 'hex'), NULL FROM created;
";

/// pgbench running CreateTask's statement against a fresh database with
/// task-api's schema, on the same (durable) server as the stack, with
/// [`CONCURRENCY`] clients.
pub async fn db_tps(args: &Args) -> anyhow::Result<Value> {
    let database = TestDatabase::create().await;
    let config = DatabaseConfig {
        url: SecretString::from(database.url.clone()),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: std::time::Duration::from_secs(10),
    };
    todo_core::db::connect_and_migrate(&config, task_api::startup::SCHEMA, &task_api::startup::MIGRATIONS).await?;
    let dir = std::env::temp_dir().join(format!("todo-bench-pgbench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("create_task.sql");
    std::fs::write(&script, CREATE_TASK_SCRIPT)?;
    let separator = if database.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{separator}options=-csearch_path%3D{}",
        database.url,
        task_api::startup::SCHEMA
    );
    let seconds = if args.quick { 5 } else { 20 };
    // Beside the server's own binaries: PATH may hold only links to a few.
    let pg_ctl = todo_testing::postgres::bin_dir().join("pg_ctl");
    let pgbench = std::fs::canonicalize(&pg_ctl)
        .unwrap_or(pg_ctl)
        .with_file_name("pgbench");
    let output = tokio::process::Command::new(&pgbench)
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &CONCURRENCY.to_string(), "-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(&url)
        .output()
        .await
        .map_err(|err| anyhow::anyhow!("cannot run {}: {err}", pgbench.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tps = parse_tps(&stdout).ok_or_else(|| anyhow::anyhow!("no tps in pgbench's output: {stdout}"))?;
    let latency_ms = stdout
        .lines()
        .find_map(|line| line.strip_prefix("latency average = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ms| ms.parse::<f64>().ok());
    Ok(json!({
        "tps": round(tps),
        "latency_avg_ms": latency_ms,
        "clients": CONCURRENCY,
        "seconds": seconds,
        "what": "pgbench -M prepared: CreateTask's statement (task row + outbox row) per transaction, fsync on",
    }))
}

fn parse_tps(pgbench_stdout: &str) -> Option<f64> {
    pgbench_stdout
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
}

/// Kafka alone: records produced in batches of 100, one producer per
/// partition, and read back by one fetch loop per partition; events/s from
/// the first produce to the last record read, and produce → read latency.
pub async fn kafka(args: &Args, bootstrap: &str) -> anyhow::Result<Value> {
    const TOPIC: &str = "bench-kafka-alone";
    const PARTITIONS: i32 = 6;
    const BATCH: usize = 100;
    let client = Arc::new(ClientBuilder::new(vec![bootstrap.to_owned()]).build().await?);
    client
        .controller_client()?
        .create_topic(TOPIC, PARTITIONS, 1, 10_000)
        .await?;
    let total = args.scale(200_000, 40_000);
    let per_partition = total / PARTITIONS as usize;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let mut handles = Vec::new();
    for partition in 0..PARTITIONS {
        let producer = client
            .partition_client(TOPIC, partition, UnknownTopicHandling::Retry)
            .await?;
        handles.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < per_partition {
                let batch = (0..BATCH.min(per_partition - sent))
                    .map(|_| record())
                    .collect::<Vec<_>>();
                sent += batch.len();
                producer.produce(batch, Compression::NoCompression).await?;
            }
            anyhow::Ok(())
        }));
        let consumer = client
            .partition_client(TOPIC, partition, UnknownTopicHandling::Retry)
            .await?;
        let latencies = latencies.clone();
        handles.push(tokio::spawn(async move {
            let (mut offset, mut read) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(300);
            while read < per_partition {
                anyhow::ensure!(Instant::now() < deadline, "Kafka alone: {read} of {per_partition} read");
                let (records, _high_watermark) = consumer.fetch_records(offset, 1..4_000_000, 100).await?;
                let now = now_nanos();
                let mut latencies = latencies.lock().unwrap();
                for record in records {
                    offset = record.offset + 1;
                    read += 1;
                    if let Some(sent) = record.record.value.as_deref().and_then(sent_nanos) {
                        latencies.push(now.saturating_sub(sent) as f64 / 1e6);
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let elapsed = started.elapsed();
    let mut latencies = latencies.lock().unwrap().clone();
    let events = per_partition * PARTITIONS as usize;
    Ok(json!({
        "events": events,
        "seconds": round(elapsed.as_secs_f64()),
        "events_per_s": round(events as f64 / elapsed.as_secs_f64()),
        "p50_ms": round(percentile(&mut latencies, 50.0)),
        "p99_ms": round(percentile(&mut latencies, 99.0)),
        "what": "rskafka: produce in batches of 100 → fetch, 6 partitions, the same broker build as daprd's",
    }))
}

/// A record of the size of the benchmark's events, its send time first.
fn record() -> Record {
    let mut value = now_nanos().to_be_bytes().to_vec();
    value.resize(8 + 140, b'x');
    Record {
        key: Some(b"user".to_vec()),
        value: Some(value),
        headers: Default::default(),
        timestamp: chrono::Utc::now(),
    }
}

fn sent_nanos(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tps_from_pgbench_output() {
        let out = "number of failed transactions: 0 (0.000%)\nlatency average = 4.750 ms\n\
                   initial connection time = 12.345 ms\ntps = 6732.412345 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(6732.412345));
        assert_eq!(parse_tps("nothing here"), None);
    }

    #[test]
    fn a_record_carries_its_send_time() {
        let before = now_nanos();
        let record = record();
        let sent = sent_nanos(record.value.as_deref().unwrap()).unwrap();
        assert!(sent >= before && sent <= now_nanos());
        assert_eq!(sent_nanos(b"short"), None);
    }
}
