//! Capacity, end to end: the highest fixed rate of CreateTask at which
//! task-api answers on schedule and every consumer keeps up (no group's lag
//! grows over the phase), found by bisection below the closed-loop rate
//! (how fast task-api accepts, which bounds it). The closed-loop phase says
//! how fast task-api accepts; this says what the whole system carries.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use todo_core::shutdown::CancellationToken;
use todo_stack::Stack;

use crate::{
    Args,
    cpu::CpuSnapshot,
    open_loop::Phase,
    report::{percentile, round},
    stack::{Client, creates_at, lag_per_group, wait_for_zero_lag},
};

/// Steps of the bisection: the answer is within 1/2^STEPS of the accept rate.
const STEPS: usize = 4;
/// A group keeps up while its lag grows by less than this share of the
/// offered rate (it consumes ≥ 95% of what arrives) ...
const GROWTH_SHARE: f64 = 0.05;
/// ... or by less than this many seconds' worth of events over the phase:
/// daprd commits offsets about once a second, so its lag saws by about a
/// second of events however well it keeps up.
const GROWTH_FLOOR_S: f64 = 0.5;
/// Lag is read this often during a step.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// The search below `accepted_rps` (the closed loop's rate), each step,
/// and the CPU per change at the highest rate that held.
pub async fn sustainable(args: &Args, stack: &Stack, clients: &[Client], accepted_rps: f64) -> anyhow::Result<Value> {
    let seconds = if args.quick { 20.0 } else { 60.0 };
    let mut steps = Vec::new();
    let (mut held, mut failed) = (0.0, accepted_rps);
    let mut best = Value::Null;
    for _ in 0..STEPS {
        let rate = ((held + failed) / 2.0).round();
        let step = step(stack, clients, rate, seconds).await?;
        let kept_up = step["kept_up"] == json!(true);
        println!("  {rate}/s: {}", if kept_up { "kept up" } else { "fell behind" });
        if kept_up {
            held = rate;
            best = step.clone();
        } else {
            failed = rate;
        }
        steps.push(step);
    }
    Ok(json!({
        "rps": held,
        "fell_behind_at_rps": failed,
        "cpu": best["cpu"],
        "phase_s": seconds,
        "steps": steps,
        "measured": format!(
            "highest open-loop CreateTask rate ({STEPS} bisection steps below the closed loop's rate) at which \
             task-api answered every call on schedule and no consumer group's lag grew by more than \
             {GROWTH_SHARE} of the rate (and {GROWTH_FLOOR_S} s of events) over a {seconds} s phase"
        ),
    }))
}

/// One rate for `seconds`: did task-api answer on schedule, and did every
/// group keep up?
async fn step(stack: &Stack, clients: &[Client], rate: f64, seconds: f64) -> anyhow::Result<Value> {
    wait_for_zero_lag(stack).await?;
    let cpu_before = CpuSnapshot::take();
    let started = Instant::now();
    let (mut phase, samples) = lag_during(stack, creates_at(clients, rate, seconds)).await?;
    let cpu = CpuSnapshot::take().since(&cpu_before, phase.latencies_ms.len());
    let growth = growth_per_group(&samples, started, seconds);
    let growing: BTreeMap<&String, f64> = growth
        .iter()
        .filter(|(_, (per_s, over_phase))| *per_s > GROWTH_SHARE * rate && *over_phase > GROWTH_FLOOR_S * rate)
        .map(|(group, (per_s, _))| (group, round(*per_s)))
        .collect();
    let on_schedule = answered_on_schedule(&phase, seconds);
    Ok(json!({
        "offered_rps": rate,
        "kept_up": on_schedule && growing.is_empty() && !samples.is_empty(),
        "answered_rps": round(phase.answered_per_s()),
        "errors": phase.errors,
        "answer_p50_ms": round(percentile(&mut phase.latencies_ms, 50.0)),
        "answer_p99_ms": round(percentile(&mut phase.latencies_ms, 99.0)),
        "lag_samples": samples.len(),
        "max_lag": samples.iter().map(|(_, lag)| lag.values().sum::<u64>()).max().unwrap_or(0),
        "growing_per_s": growing,
        "cpu": cpu,
    }))
}

/// Every call answered, the last within a second of the phase's end (an
/// overloaded task-api answers ever later, and the phase runs over).
fn answered_on_schedule(phase: &Phase, seconds: f64) -> bool {
    phase.errors == 0 && phase.elapsed.as_secs_f64() <= seconds + 1.0
}

/// Each group's lag growth: events/s between the means of the middle and
/// the last third of the phase's samples (the first quarter is warm-up),
/// and that growth over the phase. Means, not end points, so that daprd's
/// once-a-second commits do not read as growth.
fn growth_per_group(
    samples: &[(Instant, BTreeMap<String, u64>)],
    started: Instant,
    seconds: f64,
) -> BTreeMap<String, (f64, f64)> {
    let at = |instant: &Instant| instant.saturating_duration_since(started).as_secs_f64();
    let settled: Vec<_> = samples.iter().filter(|(when, _)| at(when) >= seconds / 4.0).collect();
    let third = settled.len() / 3;
    let mut out = BTreeMap::new();
    if third == 0 {
        return out;
    }
    let (first, last) = (&settled[..third], &settled[settled.len() - third..]);
    let mean_time = |part: &[&(Instant, BTreeMap<String, u64>)]| {
        part.iter().map(|(when, _)| at(when)).sum::<f64>() / part.len() as f64
    };
    let span = (mean_time(last) - mean_time(first)).max(1e-9);
    let groups: std::collections::BTreeSet<&String> = settled.iter().flat_map(|(_, lag)| lag.keys()).collect();
    for group in groups {
        let mean = |part: &[&(Instant, BTreeMap<String, u64>)]| {
            part.iter()
                .map(|(_, lag)| lag.get(group).copied().unwrap_or(0) as f64)
                .sum::<f64>()
                / part.len() as f64
        };
        let per_s = (mean(last) - mean(first)) / span;
        out.insert(group.clone(), (per_s, per_s * seconds));
    }
    out
}

/// Runs `phase` while reading every group's lag each [`SAMPLE_EVERY`]: on
/// the real runtime by one long-lived Kafka admin client, on dev-sidecar
/// from its admin endpoint.
async fn lag_during<T>(
    stack: &Stack,
    phase: impl Future<Output = T>,
) -> anyhow::Result<(T, Vec<(Instant, BTreeMap<String, u64>)>)> {
    if let Some(kafka) = stack.kafka() {
        let watch = kafka.lag_every(SAMPLE_EVERY)?;
        let out = phase.await;
        let samples = watch
            .samples()
            .into_iter()
            .map(|(when, lag)| (when, lag_per_group(&lag)));
        return Ok((out, samples.collect()));
    }
    let done = CancellationToken::new();
    let samples = Mutex::new(Vec::new());
    let poll = async {
        while !done.is_cancelled() {
            if let Ok(lag) = stack.lag().await {
                samples.lock().unwrap().push((Instant::now(), lag_per_group(&lag)));
            }
            tokio::select! {
                () = tokio::time::sleep(SAMPLE_EVERY) => {}
                () = done.cancelled() => {}
            }
        }
    };
    let run = async {
        let out = phase.await;
        done.cancel();
        out
    };
    let (out, ()) = tokio::join!(run, poll);
    Ok((out, samples.into_inner().unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(started: Instant, lags: &[u64]) -> Vec<(Instant, BTreeMap<String, u64>)> {
        lags.iter()
            .enumerate()
            .map(|(n, lag)| {
                let when = started + Duration::from_secs(n as u64);
                (when, BTreeMap::from([("audit".to_owned(), *lag)]))
            })
            .collect()
    }

    #[test]
    fn a_sawing_lag_is_not_growth_and_a_climbing_one_is() {
        let started = Instant::now();
        // Commits once a second at 100/s: the lag saws between 0 and 100.
        let sawing: Vec<u64> = (0..20).map(|n| if n % 2 == 0 { 0 } else { 100 }).collect();
        let (per_s, _) = growth_per_group(&samples(started, &sawing), started, 20.0)["audit"];
        assert!(per_s.abs() < GROWTH_SHARE * 100.0, "{per_s}");
        // Consuming 80 of 100 a second: 20 more each second.
        let climbing: Vec<u64> = (0..20).map(|n| n * 20).collect();
        let (per_s, over_phase) = growth_per_group(&samples(started, &climbing), started, 20.0)["audit"];
        assert!((per_s - 20.0).abs() < 1.0, "{per_s}");
        assert!(over_phase > GROWTH_FLOOR_S * 100.0);
    }
}
