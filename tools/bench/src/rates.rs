//! The system at the seeds' rates (100 changes/s, the plans' throughput
//! goal, and 250/s), as its users see it: 16 users, each with a WatchTasks
//! stream open, make changes at a fixed total rate (nine in ten create a
//! task, one in ten completes a daily task), and the phase measures
//!
//! - `watch_at_<rate>`: CreateTask returned → `task.created` on the
//!   user's own stream (sync as a client sees it);
//! - `end_to_end_at_<rate>`: the event's commit → its audit record stored
//!   (`recorded_at - occurred_at`, both stamped by the services);
//! - `next_occurrence_at_<rate>`: CompleteTask returned → the next
//!   occurrence's `task.created` on the stream (it is committed, so visible
//!   in ListTasks, before its event is published).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use todo_core::{
    proto::v1::{CompleteTaskRequest, CreateTaskRequest, Frequency, Recurrence},
    shutdown::CancellationToken,
    timestamps,
};
use todo_stack::Stack;

use crate::{
    cpu::CpuSnapshot,
    open_loop::open_loop,
    report::{percentile, round},
    stack::{Client, audit_latencies_ms, request, wait_for_zero_lag},
    users::{Arrivals, streamed, watch},
};

const USERS: usize = 16;
/// One change in this many completes a recurring task.
const COMPLETE_EVERY: usize = 10;
/// How long the last events may take to arrive after the consumers' lag
/// is zero (the stream is fed by task-api's own subscription).
const LAST_EVENTS: Duration = Duration::from_secs(30);

/// The three sections of one rate, named `<what>_at_<rate>`.
pub async fn at_rate(stack: &Stack, rate: f64, seconds: f64) -> anyhow::Result<Vec<(String, Value)>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let users: Vec<String> = (0..USERS).map(|k| format!("bench-rate-{run}-{k}")).collect();
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let stop = CancellationToken::new();
    let mut watchers = Vec::new();
    let mut clients = Vec::new();
    for user in &users {
        watchers.push(watch(stack, user, arrivals.clone(), stop.clone()).await?);
        clients.push(stack.tasks(user).await);
    }
    let total = (rate * seconds) as usize;
    let series = recurring_tasks(&clients, total / COMPLETE_EVERY).await?;
    streamed(&arrivals, series.len(), Duration::from_secs(120)).await;
    wait_for_zero_lag(stack).await?;

    let from = chrono::Utc::now();
    let window_from = Instant::now();
    let cpu_before = CpuSnapshot::take();
    let mut phase = open_loop(rate, seconds, |n| {
        let arrivals = arrivals.clone();
        let completes = n % COMPLETE_EVERY == COMPLETE_EVERY - 1;
        let (mut client, series_id) = match series.get(n / COMPLETE_EVERY) {
            Some((owner, id)) if completes => (clients[*owner].clone(), Some(id.clone())),
            _ => (clients[n % USERS].clone(), None),
        };
        async move {
            if let Some(id) = series_id {
                let request = CompleteTaskRequest {
                    id: id.clone(),
                    expected_version: 0,
                };
                client.complete_task(request).await.map_err(drop)?;
                arrivals.lock().unwrap().completed.insert(id, Instant::now());
            } else {
                let task = client.create_task(request(n)).await.map_err(drop)?.into_inner().task;
                let id = task.ok_or(())?.id;
                arrivals.lock().unwrap().committed.insert(id, Instant::now());
            }
            Ok(())
        }
    })
    .await;
    let until = chrono::Utc::now();
    let window = window_from..Instant::now();
    // Over the phase only, per change: how busy the machine was at this rate.
    let cpu = CpuSnapshot::take().since(&cpu_before, total);
    let (drained, lag_at_end) = wait_for_zero_lag(stack).await?;
    let expected = {
        let arrivals = arrivals.lock().unwrap();
        series.len() + arrivals.committed.len() + arrivals.completed.len()
    };
    streamed(&arrivals, expected, LAST_EVENTS).await;
    stop.cancel();
    for watcher in watchers {
        let _ = watcher.await;
    }

    let ((mut watch, watch_missing), (mut next, next_missing)) = {
        let arrivals = arrivals.lock().unwrap();
        (
            arrivals.latencies_ms(window.clone()),
            arrivals.next_occurrence_ms(window),
        )
    };
    let mut audit = audit_latencies_ms(stack, &users, from, until).await?;
    let percentiles = |samples: &mut Vec<f64>| {
        json!({
            "p50_ms": round(percentile(samples, 50.0)),
            "p95_ms": round(percentile(samples, 95.0)),
            "p99_ms": round(percentile(samples, 99.0)),
            "samples": samples.len(),
        })
    };
    let with = |mut section: Value, fields: Value| {
        if let (Some(section), Value::Object(fields)) = (section.as_object_mut(), fields) {
            section.extend(fields);
        }
        section
    };
    let conditions = json!({
        "offered_rps": rate,
        "users": USERS,
        "errors": phase.errors,
        "answer_p50_ms": round(percentile(&mut phase.latencies_ms, 50.0)),
        "answer_p99_ms": round(percentile(&mut phase.latencies_ms, 99.0)),
    });
    let rate = rate as u64;
    Ok(vec![
        (
            format!("watch_at_{rate}"),
            with(
                with(percentiles(&mut watch), conditions.clone()),
                json!({
                    "missing": watch_missing,
                    "cpu": cpu,
                    "measured": "CreateTask returned → task.created on the same user's WatchTasks stream",
                }),
            ),
        ),
        (
            format!("end_to_end_at_{rate}"),
            with(
                with(percentiles(&mut audit), conditions.clone()),
                json!({
                    "lag_drained_s": round(drained.as_secs_f64()),
                    "lag_at_end": lag_at_end,
                    "measured": "audit record recorded_at - event occurred_at (the commit), every event of the phase",
                }),
            ),
        ),
        (
            format!("next_occurrence_at_{rate}"),
            with(
                with(percentiles(&mut next), conditions),
                json!({
                    "missing": next_missing,
                    "measured": "CompleteTask of a daily task returned → the next occurrence's task.created on the user's stream",
                }),
            ),
        ),
    ])
}

/// `count` daily tasks spread over the users, created before the phase:
/// (the owner's index, the task's id, which is also its series' id).
async fn recurring_tasks(clients: &[Client], count: usize) -> anyhow::Result<Vec<(usize, String)>> {
    let mut handles = Vec::new();
    for (owner, client) in clients.iter().enumerate() {
        let mut client = client.clone();
        let mine = (owner..count).step_by(clients.len()).count();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..mine {
                let request = CreateTaskRequest {
                    title: format!("daily {n}"),
                    due_at: Some(timestamps::to_proto(timestamps::now() + chrono::Duration::days(1))),
                    recurrence: Some(Recurrence {
                        frequency: Frequency::Daily as i32,
                        interval: 1,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                let task = client.create_task(request).await?.into_inner().task;
                ids.push((n, owner, task.map(|task| task.id).unwrap_or_default()));
            }
            Ok::<_, tonic::Status>(ids)
        }));
    }
    let mut series = Vec::new();
    for handle in handles {
        series.extend(handle.await??);
    }
    // Round robin over the owners, as the phase's other changes are.
    series.sort();
    Ok(series.into_iter().map(|(_, owner, id)| (owner, id)).collect())
}
