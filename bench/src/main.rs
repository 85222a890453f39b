//! `just bench`: drives the real binaries and dev-sidecar with a load
//! generator and writes `target/bench/report.json` plus a table.
//!
//! - [`pubsub`]: dev-sidecar alone, bulk and one event per call, against a
//!   no-op subscriber; and the baseline: the official Python Dapr SDK
//!   publishing to, and subscribing through, the same sidecar.
//! - [`stack`]: the whole system: CreateTask latency and throughput, commit →
//!   audit record latency, memory of each service.
//! - [`report`]: percentiles, the machine, the JSON report and the table.

mod pubsub;
mod report;
mod stack;

use std::path::PathBuf;

use clap::Parser;

/// Benchmark the local stack.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Args {
    /// Under a minute, same shape (smaller counts, shorter phases).
    #[arg(long)]
    quick: bool,
    /// Where report.json and report.txt go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Python interpreter with `dapr[grpc]` for the baseline (see scripts/python-peers.sh).
    #[arg(long, env = "TODO_PYTHON", default_value = "python3")]
    python: String,
}

impl Args {
    fn scale(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut report = report::Report::new(args.quick);
    println!("bench: dev-sidecar, bulk ...");
    report.insert("sidecar_pubsub", pubsub::bulk(&args).await?);
    println!("bench: dev-sidecar, one event per call ...");
    report.insert("sidecar_pubsub_unary", pubsub::unary(&args).await?);
    println!("bench: baseline (Python Dapr SDK through dev-sidecar) ...");
    let baseline = pubsub::python_baseline(&args).await;
    match &baseline {
        Ok(section) => report.insert("baseline", section.clone()),
        Err(err) => {
            println!("  baseline skipped: {err}");
            report.insert("baseline", serde_json::json!({"error": err.to_string()}));
        }
    }
    println!("bench: the whole stack ...");
    for (name, section) in stack::run(&args).await? {
        report.insert(&name, section);
    }
    report.finish();
    report.write(&args.out)?;
    Ok(())
}
