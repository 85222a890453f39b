//! The soak (`just soak [SECONDS] [sidecar|dapr]`): the workload from more
//! users for a long while, every fault the runtime's stack can inject
//! applied in turn, then the exactly-once check over everything and a
//! report. The same run on dev-sidecar and on daprd + Kafka + the
//! Scheduler; only the list of faults differs.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use todo_stack::Stack;

use crate::workload::{Workload, connection_lost};

/// How long and how hard to soak.
#[derive(Debug, Clone)]
pub struct Soak {
    pub duration: Duration,
    pub users: usize,
    /// One round of mutations per user this often.
    pub pace: Duration,
    /// The pause between one fault being over and the next.
    pub between_faults: Duration,
    /// Faults of the stack's list not to inject (`SOAK_SKIP`, comma-separated).
    pub skip: Vec<String>,
}

impl Soak {
    /// `SOAK_SECS` seconds (300 unless set). Four users at 300 ms is about
    /// 50 mutations/s plus their occurrences, which a debug build of the
    /// whole stack digests on two cores while faults keep interrupting it;
    /// a saturated stack falls behind and its reminders fire late.
    pub fn from_env() -> Self {
        let seconds = std::env::var("SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        Self {
            duration: Duration::from_secs(seconds),
            users: 4,
            pace: Duration::from_millis(300),
            between_faults: Duration::from_secs(3),
            skip: std::env::var("SOAK_SKIP")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|fault| !fault.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Runs the soak on `stack`, checks every effect exactly once and
    /// nothing dead-lettered (panics otherwise), and returns the report,
    /// also written to `target/soak/report-<runtime>.json`.
    pub async fn run(&self, stack: &mut Stack, catch_up: Duration) -> serde_json::Value {
        let users: Vec<String> = (1..=self.users).map(|n| format!("soak-{n}")).collect();
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        let faults: Vec<String> = stack
            .faults()
            .into_iter()
            .filter(|fault| !self.skip.contains(fault))
            .collect();
        assert!(!faults.is_empty(), "SOAK_SKIP leaves no fault to inject");
        let started = Instant::now();
        let workload = Workload::start(stack, &users, self.pace, connection_lost);
        let mut injected = BTreeMap::<String, u64>::new();
        for fault in faults.iter().cycle() {
            if started.elapsed() >= self.duration {
                break;
            }
            tokio::time::sleep(self.between_faults).await;
            let took = Instant::now();
            stack.inject(fault).await.unwrap_or_else(|err| panic!("{fault}: {err}"));
            *injected.entry(fault.clone()).or_default() += 1;
            eprintln!(
                "{:>5.0} s: {fault} (back after {:.1} s)",
                started.elapsed().as_secs_f64(),
                took.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let committed = workload.stop().await;
        let streamed_for = started.elapsed();
        let effects = committed.verify_with_no_dead_letters(stack, catch_up).await;
        let report = serde_json::json!({
            "runtime": stack.runtime.name(),
            "streamed_seconds": streamed_for.as_secs_f64().round(),
            "users": users.len(),
            "mutations_acknowledged": committed.mutations(),
            "calls_retried": committed.failures().count(),
            "faults_injected": injected,
            "faults_skipped": self.skip,
            "faults_total": injected.values().sum::<u64>(),
            "effects": {
                "audit_records": effects.audit_records,
                "next_occurrences": effects.occurrences,
                "notifications": effects.notifications,
            },
            // The check above fails on any missing or repeated effect and
            // on any dead letter, so a report is only written when all
            // three are zero.
            "lost": 0,
            "duplicated": 0,
            "dead_lettered": 0,
        });
        let dir = report_dir();
        std::fs::create_dir_all(&dir).expect("create target/soak");
        let text = serde_json::to_string_pretty(&report).expect("json");
        std::fs::write(dir.join(format!("report-{}.json", stack.runtime.name())), &text).expect("write the report");
        println!("{text}");
        report
    }
}

fn report_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| todo_stack::plan::repo_dir().join("target"));
    target.join("soak")
}
