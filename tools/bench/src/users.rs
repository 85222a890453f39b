//! The system as one user sees it: their own changes arriving on their own
//! WatchTasks stream (commit = CreateTask returned → the `task.created`
//! event on the stream), alone and while another user bursts, and how many
//! changes a second one user alone gets through end to end.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use todo_core::proto::v1::{CreateTaskRequest, WatchTasksRequest};
use todo_core::shutdown::CancellationToken;
use todo_stack::Stack;

use crate::{
    Args,
    report::{percentile, round},
};

/// The quiet user's rate, and the burst another user makes meanwhile.
const QUIET_RATE: f64 = 5.0;
const BURST_CHANGES: usize = 2_000;
const BURST_CLIENTS: usize = 8;

/// When each task was committed and when its `task.created` arrived on its
/// user's stream, by task id; and when each recurring series' first task
/// was completed and when the next occurrence arrived, by series id.
#[derive(Default)]
pub struct Arrivals {
    pub committed: HashMap<String, Instant>,
    pub streamed: HashMap<String, Instant>,
    pub completed: HashMap<String, Instant>,
    pub next_streamed: HashMap<String, Instant>,
}

impl Arrivals {
    /// Commit → stream latencies of the tasks committed in `window`, in ms
    /// (an event can arrive before its CreateTask answer: 0 then), and how
    /// many of them never arrived.
    pub fn latencies_ms(&self, window: std::ops::Range<Instant>) -> (Vec<f64>, usize) {
        between(&self.committed, &self.streamed, window)
    }

    /// Complete → next occurrence on the stream, for the completions in
    /// `window`, and how many next occurrences never arrived.
    pub fn next_occurrence_ms(&self, window: std::ops::Range<Instant>) -> (Vec<f64>, usize) {
        between(&self.completed, &self.next_streamed, window)
    }
}

/// `to[id] - from[id]` in ms for each `from` in `window`, and how many have
/// no `to`.
fn between(
    from: &HashMap<String, Instant>,
    to: &HashMap<String, Instant>,
    window: std::ops::Range<Instant>,
) -> (Vec<f64>, usize) {
    let mut latencies = Vec::new();
    let mut missing = 0;
    for (id, started) in from {
        if !window.contains(started) {
            continue;
        }
        match to.get(id) {
            Some(arrived) => latencies.push(arrived.saturating_duration_since(*started).as_secs_f64() * 1e3),
            None => missing += 1,
        }
    }
    (latencies, missing)
}

/// Opens `user`'s WatchTasks stream and records each `task.created` on it
/// (a recurring series' later occurrence also by its series) until `stop`.
pub async fn watch(
    stack: &Stack,
    user: &str,
    arrivals: Arc<Mutex<Arrivals>>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut stream = stack
        .tasks(user)
        .await
        .watch_tasks(WatchTasksRequest {})
        .await?
        .into_inner();
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = stop.cancelled() => return,
            };
            let Ok(Some(response)) = message else { return };
            let Some(event) = response.event else { continue };
            if event.event_type == "task.created"
                && let Some(task) = event.task
            {
                let mut arrivals = arrivals.lock().unwrap();
                if task.occurrence_number > 1 {
                    arrivals.next_streamed.insert(task.series_id, Instant::now());
                }
                arrivals.streamed.insert(task.id, Instant::now());
            }
        }
    }))
}

/// Waits until `count` events are on the stream behind `arrivals`, or
/// `timeout` (the phase then reports what arrived).
pub async fn streamed(arrivals: &Mutex<Arrivals>, count: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while arrivals.lock().unwrap().streamed.len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `user` creates a task every 1/`rate` s until `stop`, recording commits.
fn create_at_rate(
    stack: &Stack,
    user: &str,
    rate: f64,
    arrivals: Arc<Mutex<Arrivals>>,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + 'static {
    let client = stack.lazy_authed("task-api", user);
    async move {
        let mut client = todo_core::proto::v1::task_service_client::TaskServiceClient::new(client);
        let started = Instant::now();
        for n in 0u64.. {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                () = stop.cancelled() => return,
            }
            let request = CreateTaskRequest {
                title: format!("quiet {n}"),
                ..Default::default()
            };
            if let Ok(response) = client.create_task(request).await
                && let Some(task) = response.into_inner().task
            {
                arrivals.lock().unwrap().committed.insert(task.id, Instant::now());
            }
        }
    }
}

/// One quiet user at 5 changes/s, first alone, then while another user
/// makes 2,000 changes with 8 concurrent clients: the quiet user's commit →
/// stream latency over the burst until the system has caught up, against
/// the same unloaded.
pub async fn noisy_neighbour(args: &Args, stack: &Stack) -> anyhow::Result<Value> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (quiet, noisy) = (format!("bench-quiet-{run}"), format!("bench-noisy-{run}"));
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let noisy_arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let stop = CancellationToken::new();
    let watcher = watch(stack, &quiet, arrivals.clone(), stop.clone()).await?;
    let noisy_watcher = watch(stack, &noisy, noisy_arrivals.clone(), stop.clone()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let creator = tokio::spawn(create_at_rate(
        stack,
        &quiet,
        QUIET_RATE,
        arrivals.clone(),
        stop.clone(),
    ));

    let alone_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(if args.quick { 6 } else { 15 })).await;
    let burst_from = Instant::now();
    let burst = burst(stack, &noisy, BURST_CHANGES, BURST_CLIENTS).await;
    let committed_in = burst_from.elapsed();
    // Caught up: the burst's last event is on the noisy user's own stream
    // (the quiet user keeps going meanwhile, so lag is never quite zero).
    streamed(&noisy_arrivals, burst.committed, Duration::from_secs(300)).await;
    let burst_until = Instant::now();
    // The last quiet changes' events, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let _ = creator.await;
    let _ = watcher.await;
    let _ = noisy_watcher.await;

    let arrivals = arrivals.lock().unwrap();
    let (mut alone, alone_missing) = arrivals.latencies_ms(alone_from..burst_from);
    let (mut during, during_missing) = arrivals.latencies_ms(burst_from..burst_until);
    let alone_p99 = percentile(&mut alone, 99.0);
    let during_p99 = percentile(&mut during, 99.0);
    Ok(json!({
        "quiet_rps": QUIET_RATE,
        "burst_changes": burst.committed,
        "burst_errors": burst.errors,
        "burst_clients": BURST_CLIENTS,
        "burst_commit_s": round(committed_in.as_secs_f64()),
        "caught_up_s": round((burst_until - burst_from).as_secs_f64()),
        "burst_streamed": noisy_arrivals.lock().unwrap().streamed.len(),
        "p50_ms": round(percentile(&mut during, 50.0)),
        "p95_ms": round(percentile(&mut during, 95.0)),
        "p99_ms": round(during_p99),
        "samples": during.len(),
        "missing": during_missing,
        "unloaded_p50_ms": round(percentile(&mut alone, 50.0)),
        "unloaded_p99_ms": round(alone_p99),
        "unloaded_samples": alone.len(),
        "unloaded_missing": alone_missing,
        "p99_vs_unloaded": round(during_p99 / alone_p99),
        "measured": "the quiet user's CreateTask returned → task.created on their own WatchTasks stream, during the other user's burst until the burst's last event was on its own stream",
    }))
}

/// One user alone, `BURST_CLIENTS` concurrent clients making changes as
/// fast as they are answered: changes per second from the first commit to
/// the last event on the user's own stream.
pub async fn single_user(args: &Args, stack: &Stack) -> anyhow::Result<Value> {
    let user = format!("bench-single-{}", uuid::Uuid::new_v4().simple());
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let stop = CancellationToken::new();
    let watcher = watch(stack, &user, arrivals.clone(), stop.clone()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let changes = args.scale(BURST_CHANGES * 2, BURST_CHANGES / 2);
    let started = Instant::now();
    let burst = burst(stack, &user, changes, BURST_CLIENTS).await;
    let committed_in = started.elapsed();
    streamed(&arrivals, burst.committed, Duration::from_secs(120)).await;
    stop.cancel();
    let _ = watcher.await;
    let arrivals = arrivals.lock().unwrap();
    let last = arrivals.streamed.values().max().copied().unwrap_or(started);
    let seconds = last.saturating_duration_since(started).as_secs_f64();
    Ok(json!({
        "changes": burst.committed,
        "errors": burst.errors,
        "streamed": arrivals.streamed.len(),
        "clients": BURST_CLIENTS,
        "committed_rps": round(burst.committed as f64 / committed_in.as_secs_f64()),
        "seconds": round(seconds),
        "rps": round(arrivals.streamed.len() as f64 / seconds),
        "measured": "one user's changes from the first CreateTask to the last task.created on their own WatchTasks stream",
    }))
}

/// What a burst committed.
struct Burst {
    committed: usize,
    errors: usize,
}

/// `user` makes `changes` CreateTasks over `clients` concurrent clients.
async fn burst(stack: &Stack, user: &str, changes: usize, clients: usize) -> Burst {
    let mut handles = Vec::new();
    for worker in 0..clients {
        let mut client = stack.tasks(user).await;
        handles.push(tokio::spawn(async move {
            let (mut committed, mut errors) = (0, 0);
            for n in (worker..changes).step_by(clients) {
                let request = CreateTaskRequest {
                    title: format!("burst {n}"),
                    ..Default::default()
                };
                match client.create_task(request).await {
                    Ok(_) => committed += 1,
                    Err(_) => errors += 1,
                }
            }
            (committed, errors)
        }));
    }
    let mut total = Burst {
        committed: 0,
        errors: 0,
    };
    for handle in handles {
        if let Ok((committed, errors)) = handle.await {
            total.committed += committed;
            total.errors += errors;
        }
    }
    total
}
