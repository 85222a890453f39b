//! `just bench`: drives the real binaries with a load generator on
//! dev-sidecar and, with `--runtime dapr`, on the real runtime (daprd +
//! Kafka + the Scheduler) too, beside the machine's own limits measured in
//! the same run; writes `target/bench/report.json` plus a table.
//!
//! - [`pubsub`]: a runtime alone, bulk and one event per call, against a
//!   no-op subscriber; and the baseline: the official Python Dapr SDK
//!   publishing to, and subscribing through, the same runtime.
//! - [`stack`]: the whole system: CreateTask latency and throughput, commit →
//!   audit record latency at overload, memory of each process.
//! - [`capacity`]: the highest rate at which every consumer keeps up.
//! - [`rates`]: what users see at the seeds' rates (100/s, 250/s).
//! - [`users`]: the system as one user sees it: their changes on their own
//!   WatchTasks stream while another user bursts, and one user's rate.
//! - [`cpu`]: which processes the machine's CPU went to during a phase.
//! - [`limits`]: PostgreSQL alone (pgbench) and Kafka alone (a Rust client).
//! - [`report`]: percentiles, ratios, targets, the machine, the files.

mod capacity;
mod cpu;
mod limits;
mod open_loop;
mod pubsub;
mod rates;
mod report;
mod stack;
mod users;

use std::{path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
use serde_json::{Map, Value, json};
use todo_stack::{Runtime as RuntimeKind, StackOptions};

use crate::report::Report;

/// Which runtimes the benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Runtimes {
    /// dev-sidecar only (today's report).
    Sidecar,
    /// dev-sidecar, then the real runtime (the report's `real` section).
    Dapr,
    /// The real runtime only (the `real` section and the limits).
    Real,
}

/// Benchmark the local stack.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Args {
    /// A few minutes, same shape (smaller counts, shorter phases).
    #[arg(long)]
    quick: bool,
    #[arg(long, value_enum, default_value = "sidecar")]
    runtime: Runtimes,
    /// Where report.json and report.txt go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Only these parts, for a quick look at one (the report then holds
    /// only their keys): pubsub, baseline, stack, rates, users.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Part>,
    /// Python interpreter with `dapr[grpc]` for the baseline (see scripts/python-peers.sh).
    #[arg(long, env = "TODO_PYTHON", default_value = "python3")]
    python: String,
}

/// The parts of a runtime's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The runtime alone with a no-op app (and Kafka alone).
    Pubsub,
    /// The official Python Dapr SDK through the runtime.
    Baseline,
    /// The whole stack: CreateTask latency and rate, overload, capacity.
    Stack,
    /// What users see at the seeds' rates.
    Rates,
    /// One user beside another, and one user alone.
    Users,
}

impl Args {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }

    fn scale(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }

    /// Seconds of each open-loop phase.
    fn phase_seconds(&self) -> f64 {
        if self.quick { 5.0 } else { 20.0 }
    }
}

/// The rate of the overload commit → audit phase, and of daprd's own
/// latency beside it.
const END_TO_END_RATE: f64 = 1000.0;
/// The seeds' rates: the plans' throughput goal, and 250/s; both under
/// what the real runtime sustains on two cores, so that latency is latency,
/// not queueing. The system's phases and each runtime's no-op run at each.
const SEED_RATES: [f64; 2] = [100.0, 250.0];

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Durable commits, as on a production server (tests run with fsync off).
    todo_testing::postgres::use_durable_commits();
    let mut report = Report::new(args.quick);
    if args.runtime != Runtimes::Real {
        for (name, section) in runtime_sections(&args, RuntimeKind::DevSidecar).await? {
            report.insert(&name, section);
        }
    }
    println!("bench: PostgreSQL alone (pgbench) ...");
    report.limit("db", limits::db_tps(&args).await?);
    if args.runtime != Runtimes::Sidecar {
        let mut real = Map::new();
        for (name, section) in runtime_sections(&args, RuntimeKind::Daprd).await? {
            if let Some(limit) = name.strip_prefix("limit:") {
                report.limit(limit, section);
            } else {
                real.insert(name, section);
            }
        }
        report.insert("real", Value::Object(real));
    }
    report.finish();
    report.write(&args.out)?;
    Ok(())
}

/// Every section measured on one runtime; on the real runtime also its
/// limits (`limit:daprd`, `limit:kafka`), measured on the same broker.
async fn runtime_sections(args: &Args, kind: RuntimeKind) -> anyhow::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    if args.runs(Part::Pubsub) {
        out.extend(runtime_alone(args, kind).await?);
    }
    if args.runs(Part::Baseline) {
        println!("bench: baseline (Python Dapr SDK through {kind}) ...");
        let baseline = pubsub::python_baseline(args, kind).await.unwrap_or_else(|err| {
            println!("  baseline skipped: {err}");
            json!({"error": err.to_string()})
        });
        out.push(("baseline".into(), baseline));
    }
    println!("bench: the whole stack on {kind} ...");
    // The bench measures what the system carries, with one user past any
    // per-user limit (`single_user`, `noisy_neighbour`): rate limits and
    // the task quota off.
    let stack = StackOptions {
        env: vec![
            ("RATE_LIMIT_PER_SECOND".into(), "0".into()),
            ("MAX_TASKS_PER_USER".into(), "0".into()),
        ],
        ..StackOptions::services(kind)
    }
    .start()
    .await?;
    println!("bench: the stack idle on {kind} ...");
    out.push(("idle".into(), idle(&stack).await?));
    if args.runs(Part::Stack) {
        let sections = stack::run(args, &stack).await?;
        // The closed loop's rate bounds what the whole system carries.
        let accepted_rps = sections
            .iter()
            .find(|(name, _)| name == "create_task_max")
            .and_then(|(_, section)| section["rps"].as_f64())
            .unwrap_or(1000.0);
        out.extend(sections);
        println!("bench: the highest rate every consumer keeps up with on {kind} ...");
        let clients = stack::clients(&stack).await;
        out.push((
            "sustainable".into(),
            capacity::sustainable(args, &stack, &clients, accepted_rps).await?,
        ));
    }
    if args.runs(Part::Rates) {
        for rate in SEED_RATES {
            println!("bench: what users see at {rate} changes/s on {kind} ...");
            out.extend(rates::at_rate(&stack, rate, args.phase_seconds()).await?);
        }
    }
    if args.runs(Part::Users) {
        println!("bench: one quiet user beside a burst of another's on {kind} ...");
        out.push(("noisy_neighbour".into(), users::noisy_neighbour(args, &stack).await?));
        println!("bench: one user alone, as fast as answered, on {kind} ...");
        out.push(("single_user".into(), users::single_user(args, &stack).await?));
    }
    let mut rss = Map::new();
    for (name, pid) in stack.pids() {
        // Report keys as before: `daprd-<app>` for each app's sidecar.
        let key = name.replace("daprd ", "daprd-");
        if let Some(mb) = stack::rss_mb_of(pid) {
            rss.insert(key, json!(mb));
        }
    }
    out.push(("rss_mb".into(), Value::Object(rss)));
    if kind == RuntimeKind::DevSidecar {
        // What retention leaves of the log once it has run after the load.
        tokio::time::sleep(Duration::from_secs(11)).await;
        out.push((
            "sidecar_disk_mb".into(),
            json!(report::round(dir_bytes(&stack.plan.dir().join("sidecar")) as f64 / 1e6)),
        ));
    }
    stack.stop().await?;
    Ok(out)
}

/// The runtime with a no-op app: bulk, one event per call, at fixed
/// rates; on the real runtime also Kafka alone.
async fn runtime_alone(args: &Args, kind: RuntimeKind) -> anyhow::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    println!("bench: {kind}, bulk ...");
    let setup = pubsub::Setup::start(kind, true).await?;
    out.push(("sidecar_pubsub".into(), setup.bulk(args).await?));
    drop(setup);
    println!("bench: {kind}, one event per call ...");
    let setup = pubsub::Setup::start(kind, false).await?;
    out.push((
        "sidecar_pubsub_unary".into(),
        setup.unary(args.scale(40_000, 8_000)).await?,
    ));
    if kind == RuntimeKind::Daprd {
        println!("bench: {kind} with a no-op app at {END_TO_END_RATE}/s ...");
        out.push((
            "limit:daprd".into(),
            setup.at_rate(END_TO_END_RATE, args.phase_seconds()).await?,
        ));
        println!("bench: Kafka alone ...");
        let kafka = setup
            .sidecars
            .kafka()
            .ok_or_else(|| anyhow::anyhow!("the real runtime has a broker"))?;
        out.push(("limit:kafka".into(), limits::kafka(args, &kafka.bootstrap()).await?));
    }
    for rate in SEED_RATES {
        println!("bench: {kind} with a no-op app at {rate}/s ...");
        let name = match kind {
            RuntimeKind::Daprd => format!("limit:daprd_at_{rate}"),
            _ => format!("sidecar_pubsub_at_{rate}"),
        };
        out.push((name, setup.at_rate(rate, args.phase_seconds()).await?));
    }
    Ok(out)
}

/// What the stack costs doing nothing, just started (its consumers
/// subscribed and caught up): `cpu.ms_per_unit` is ms of CPU per second,
/// 1,000 being one core.
async fn idle(stack: &todo_stack::Stack) -> anyhow::Result<Value> {
    const SECONDS: u64 = 5;
    stack::wait_for_zero_lag(stack).await?;
    let before = cpu::CpuSnapshot::take();
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    Ok(json!({
        "seconds": SECONDS,
        "cpu": cpu::CpuSnapshot::take().since(&before, SECONDS as usize),
    }))
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
