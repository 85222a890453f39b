//! The whole system under load: CreateTask latency (open loop at 500/s),
//! commit → audit record latency (open loop at 1,000/s), how fast task-api
//! accepts (closed loop) and how fast the consumers catch up after it, and
//! each service's memory.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use todo_core::{
    proto::v1::task_service_client::TaskServiceClient,
    proto::v1::{CreateTaskRequest, ListAuditRecordsRequest},
    timestamps,
};
use todo_stack::{Authed, Stack};

use crate::{
    Args, END_TO_END_RATE,
    cpu::CpuSnapshot,
    open_loop::{self, Phase},
    report::{percentile, round},
};

const USERS: usize = 64;

pub type Client = TaskServiceClient<Authed>;

pub fn request(n: usize) -> CreateTaskRequest {
    CreateTaskRequest {
        title: format!("bench task {n}"),
        due_at: Some(timestamps::to_proto(timestamps::now() + chrono::Duration::days(3))),
        tags: vec!["bench".into()],
        ..Default::default()
    }
}

fn user(n: usize) -> String {
    format!("bench-user-{}", n % USERS)
}

/// The clients of the stack's phases: one per user.
pub async fn clients(stack: &Stack) -> Vec<Client> {
    let mut clients = Vec::new();
    for n in 0..USERS {
        clients.push(stack.tasks(&user(n)).await);
    }
    clients
}

/// The phases, on a stack that is up (either runtime's); the memory of its
/// processes is read after them.
pub async fn run(args: &Args, stack: &Stack) -> anyhow::Result<Vec<(String, Value)>> {
    let clients = clients(stack).await;
    let mut out = Vec::new();

    // CreateTask latency at 500 requests/s, whatever the answers do.
    let seconds = if args.quick { 5.0 } else { 20.0 };
    let mut phase = creates_at(&clients, 500.0, seconds).await;
    out.push((
        "create_task".into(),
        json!({
            "offered_rps": 500.0,
            "rps": round(phase.latencies_ms.len() as f64 / phase.elapsed.as_secs_f64()),
            "p50_ms": round(percentile(&mut phase.latencies_ms, 50.0)),
            "p99_ms": round(percentile(&mut phase.latencies_ms, 99.0)),
            "errors": phase.errors,
        }),
    ));
    wait_for_zero_lag(stack).await?;

    // Commit → audit record at 1,000 mutations/s: beyond what the real
    // runtime sustains here, so it reads overload (`rates` measures latency
    // at the rates users run).
    out.push((
        "end_to_end".into(),
        end_to_end(stack, &clients, END_TO_END_RATE, seconds).await?,
    ));

    // Sustained maximum: 32 clients as fast as answers come, then how long
    // the consumers need to catch up.
    let seconds = if args.quick { 5.0 } else { 60.0 };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let cpu_before = CpuSnapshot::take();
    let started = Instant::now();
    let mut handles = Vec::new();
    for worker in 0..32 {
        let mut client = clients[worker % USERS].clone();
        let latencies = latencies.clone();
        handles.push(tokio::spawn(async move {
            let mut n = worker;
            while Instant::now() < deadline {
                let sent = Instant::now();
                if client.create_task(request(n)).await.is_ok() {
                    latencies.lock().unwrap().push(sent.elapsed().as_secs_f64() * 1e3);
                }
                n += 32;
            }
        }));
    }
    for handle in handles {
        handle.await?;
    }
    let elapsed = started.elapsed();
    let mut closed = latencies.lock().unwrap().clone();
    let (closed_drain, closed_lag) = wait_for_zero_lag(stack).await?;
    // Up to the drained lag, so that the consumers' share of each request is in.
    let cpu = CpuSnapshot::take().since(&cpu_before, closed.len());
    out.push((
        "create_task_max".into(),
        json!({
            "concurrency": 32,
            "seconds": round(elapsed.as_secs_f64()),
            "rps": round(closed.len() as f64 / elapsed.as_secs_f64()),
            "p50_ms": round(percentile(&mut closed, 50.0)),
            "p99_ms": round(percentile(&mut closed, 99.0)),
            "lag_drained_s": round(closed_drain.as_secs_f64()),
            "lag_at_end": closed_lag,
            "cpu": cpu,
        }),
    ));

    Ok(out)
}

/// Commit → audit record latency of CreateTask sent at `rate` for
/// `seconds`: only that phase's records.
async fn end_to_end(stack: &Stack, clients: &[Client], rate: f64, seconds: f64) -> anyhow::Result<Value> {
    let from = chrono::Utc::now();
    let phase = creates_at(clients, rate, seconds).await;
    let until = chrono::Utc::now();
    let (drained, lag_at_end) = wait_for_zero_lag(stack).await?;
    let users: Vec<String> = (0..USERS).map(user).collect();
    let mut e2e = audit_latencies_ms(stack, &users, from, until).await?;
    Ok(json!({
        "offered_rps": rate,
        "events_per_s": round(e2e.len() as f64 / (until - from).as_seconds_f64()),
        "audited_events": e2e.len(),
        "errors": phase.errors,
        "p50_ms": round(percentile(&mut e2e, 50.0)),
        "p99_ms": round(percentile(&mut e2e, 99.0)),
        "lag_drained_s": round(drained.as_secs_f64()),
        "lag_at_end": lag_at_end,
        "measured": format!("audit record recorded_at - event occurred_at (the commit), open loop at {rate} CreateTask/s"),
    }))
}

/// CreateTask at `rate` per second for `seconds`, spread over the users.
pub async fn creates_at(clients: &[Client], rate: f64, seconds: f64) -> Phase {
    open_loop::open_loop(rate, seconds, |n| {
        let mut client = clients[n % clients.len()].clone();
        async move { client.create_task(request(n)).await.map(drop).map_err(drop) }
    })
    .await
}

/// Commit → audit latency of every audit record of `users` whose event
/// was committed between `from` and `until`.
pub async fn audit_latencies_ms(
    stack: &Stack,
    users: &[String],
    from: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for user in users {
        let mut audit = stack.audit(user).await;
        let mut token = String::new();
        loop {
            let page = audit
                .list_audit_records(ListAuditRecordsRequest {
                    page_size: 500,
                    page_token: token.clone(),
                    occurred_after: Some(timestamps::to_proto(from)),
                    occurred_before: Some(timestamps::to_proto(until)),
                    ..Default::default()
                })
                .await?
                .into_inner();
            for record in &page.records {
                let (Some(occurred), Some(recorded)) = (&record.occurred_at, &record.recorded_at) else {
                    continue;
                };
                let (occurred, recorded) = (timestamps::from_proto(occurred)?, timestamps::from_proto(recorded)?);
                latencies.push((recorded - occurred).num_microseconds().unwrap_or(0) as f64 / 1e3);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
    }
    Ok(latencies)
}

/// How long until every consumer group has committed everything (on the
/// real runtime that is when daprd has committed, about once a second),
/// and which groups were behind when the wait began, by how much. On the
/// real runtime one long-lived Kafka admin client reads the lag: a JVM per
/// reading would itself take a core and show up in the CPU figures.
pub async fn wait_for_zero_lag(stack: &Stack) -> anyhow::Result<(Duration, Value)> {
    const TIMEOUT: Duration = Duration::from_secs(300);
    let started = Instant::now();
    let mut at_start = None;
    let watch = match stack.kafka() {
        Some(kafka) => Some(kafka.lag_every(Duration::from_millis(100))?),
        None => None,
    };
    let mut seen = 0;
    loop {
        let lag = match &watch {
            Some(watch) => {
                let new = watch.samples_from(seen);
                seen += new.len();
                new.last().map(|(_, lag)| lag.clone())
            }
            None => Some(stack.lag().await.map_err(anyhow::Error::msg)?),
        };
        if let Some(lag) = lag {
            let behind = at_start.get_or_insert_with(|| lag_by_group(&lag));
            if lag["total"].as_u64() == Some(0) {
                return Ok((started.elapsed(), behind.clone()));
            }
            anyhow::ensure!(started.elapsed() < TIMEOUT, "lag did not drain: {lag}");
        }
        anyhow::ensure!(started.elapsed() < TIMEOUT, "no lag reading in {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The groups with a lag, by how much.
fn lag_by_group(lag: &Value) -> Value {
    let mut behind = lag_per_group(lag);
    behind.retain(|_, lag| *lag > 0);
    json!(behind)
}

/// Every group's lag in either runtime's report, summed over partitions:
/// Kafka's (`groups[].group`, `.lag`) or dev-sidecar's (`partitions[]` by
/// app and topic).
pub fn lag_per_group(lag: &Value) -> std::collections::BTreeMap<String, u64> {
    let mut behind = std::collections::BTreeMap::<String, u64>::new();
    for group in lag["groups"].as_array().into_iter().flatten() {
        let name = group["group"].as_str().unwrap_or_default();
        *behind.entry(name.to_owned()).or_default() += group["lag"].as_u64().unwrap_or(0);
    }
    for partition in lag["partitions"].as_array().into_iter().flatten() {
        let name = format!(
            "{}/{}",
            partition["app"].as_str().unwrap_or_default(),
            partition["topic"].as_str().unwrap_or_default()
        );
        *behind.entry(name).or_default() += partition["lag"].as_u64().unwrap_or(0);
    }
    behind
}

/// Resident memory of process `pid`, in MB.
pub fn rss_mb_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(round(kb / 1024.0))
}
