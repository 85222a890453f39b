//! Where the machine's CPU goes during a phase: the CPU time every process
//! on the machine spent, summed by executable (all PostgreSQL backends are
//! `postgres`, every daprd is `daprd`, the broker is `java`). This is the
//! first profile of a phase: it says which process to profile next.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::{Map, Value, json};

use crate::report::round;

/// `/proc/<pid>/stat` counts in clock ticks of 1/USER_HZ s; USER_HZ is 100
/// on every Linux architecture this runs on (it is part of the user ABI,
/// whatever the kernel's own HZ).
const TICKS_PER_S: f64 = 100.0;

/// CPU ticks of every process at one instant, by (pid, start time) so that
/// a reused pid is not taken for the same process.
pub struct CpuSnapshot {
    at: Instant,
    processes: BTreeMap<(u32, u64), (String, u64)>,
}

impl CpuSnapshot {
    pub fn take() -> Self {
        let mut processes = BTreeMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                continue;
            };
            let Some((start, ticks)) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
            else {
                continue;
            };
            let name = std::fs::read_link(entry.path().join("exe"))
                .ok()
                .and_then(|exe| Some(exe.file_name()?.to_str()?.to_owned()))
                .unwrap_or_else(|| "other".to_owned());
            processes.insert((pid, start), (name, ticks));
        }
        Self {
            at: Instant::now(),
            processes,
        }
    }

    /// CPU used since `earlier`, by executable: milliseconds per one of `units`
    /// (a request, an event), and how many cores were busy.
    /// Processes that ended in between are not counted.
    pub fn since(&self, earlier: &CpuSnapshot, units: usize) -> Value {
        let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
        let mut load_generator = 0;
        for (key, (name, ticks)) in &self.processes {
            let before = earlier.processes.get(key).map_or(0, |(_, ticks)| *ticks);
            let used = ticks.saturating_sub(before);
            *by_name.entry(name.as_str()).or_default() += used;
            if key.0 == std::process::id() {
                load_generator += used;
            }
        }
        cpu_section(&by_name, load_generator, self.at - earlier.at, units)
    }
}

/// `load_generator`: the ticks of this benchmark's own process, which
/// `system_ms_per_unit` leaves out (it is the users, not the system).
fn cpu_section(by_name: &BTreeMap<&str, u64>, load_generator: u64, elapsed: Duration, units: usize) -> Value {
    let total: u64 = by_name.values().sum();
    let per_unit_ms = |ticks: u64| round(ticks as f64 / TICKS_PER_S * 1e3 / units.max(1) as f64);
    let mut processes = Map::new();
    // Only what used at least 1% of it: the idle rest is noise.
    for (name, ticks) in by_name.iter().filter(|(_, ticks)| **ticks * 100 >= total) {
        processes.insert((*name).to_owned(), json!(per_unit_ms(*ticks)));
    }
    json!({
        "cores_busy": round(total as f64 / TICKS_PER_S / elapsed.as_secs_f64().max(1e-9)),
        "total_ms_per_unit": per_unit_ms(total),
        "system_ms_per_unit": per_unit_ms(total.saturating_sub(load_generator)),
        "ms_per_unit": processes,
    })
}

/// (start time, utime + stime) from a `/proc/<pid>/stat` line. The command
/// name in field 2 may hold spaces and parentheses: fields are counted
/// from its last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(22)?, field(14)? + field(15)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 25 0 0 20 0 9 0 777 0 0";
        assert_eq!(parse_stat(stat), Some((777, 175)));
    }

    #[test]
    fn sums_by_executable_per_unit_and_drops_the_idle_rest() {
        let by_name = BTreeMap::from([("postgres", 300), ("task-api", 100), ("sshd", 2), ("todo-bench", 100)]);
        let section = cpu_section(&by_name, 100, Duration::from_secs(2), 1000);
        assert_eq!(section["cores_busy"], json!(2.51));
        assert_eq!(section["total_ms_per_unit"], json!(5.02));
        assert_eq!(section["system_ms_per_unit"], json!(4.02));
        assert_eq!(section["ms_per_unit"]["postgres"], json!(3.0));
        assert_eq!(section["ms_per_unit"]["task-api"], json!(1.0));
        assert!(section["ms_per_unit"].get("sshd").is_none());
    }
}
