//! Percentiles, the machine, and the report files.

use std::{collections::BTreeMap, path::Path};

use serde_json::{Value, json};

/// p-th percentile (0..=100) of `samples` in milliseconds.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

pub fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

pub struct Report {
    sections: BTreeMap<String, Value>,
    quick: bool,
}

impl Report {
    pub fn new(quick: bool) -> Self {
        Self {
            sections: BTreeMap::new(),
            quick,
        }
    }

    pub fn insert(&mut self, name: &str, section: Value) {
        self.sections.insert(name.to_owned(), section);
    }

    /// Adds the ratio to the baseline and the machine.
    pub fn finish(&mut self) {
        let ours = self.sections["sidecar_pubsub_unary"]["events_per_s"].as_f64();
        let baseline = self.sections["baseline"]["events_per_s"].as_f64();
        if let (Some(ours), Some(baseline)) = (ours, baseline) {
            self.sections
                .insert("ratio_vs_baseline".into(), json!(round(ours / baseline)));
        }
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split(':').nth(1))
                    .map(|name| name.trim().to_owned())
            })
            .unwrap_or_default();
        let targets = self.targets();
        self.sections.insert("targets".into(), targets);
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        self.sections.insert(
            "machine".into(),
            json!({"cores": cores, "cpu": cpu, "mode": if self.quick { "quick" } else { "full" }}),
        );
    }

    /// Each target of the performance issue against what was measured:
    /// met, or missed by how much.
    fn targets(&self) -> Value {
        fn at_least(section: &'static str, key: &'static str, target: f64) -> (&'static str, &'static str, f64, bool) {
            (section, key, target, true)
        }
        fn at_most(section: &'static str, key: &'static str, target: f64) -> (&'static str, &'static str, f64, bool) {
            (section, key, target, false)
        }
        let mut checks = vec![
            at_least("sidecar_pubsub", "events_per_s", 20_000.0),
            at_least("sidecar_pubsub_unary", "events_per_s", 8_000.0),
            at_most("create_task", "p50_ms", 2.0),
            at_most("create_task", "p99_ms", 10.0),
            at_least("create_task_max", "rps", 2_000.0),
            at_most("create_task_max", "lag_drained_s", 5.0),
            at_most("end_to_end", "p99_ms", 100.0),
        ];
        let services = [
            "task-api",
            "recurring-service",
            "reminder-service",
            "notification-service",
            "audit-service",
        ];
        for service in services {
            checks.push(at_most("rss_mb", service, 32.0));
        }
        let mut out = serde_json::Map::new();
        for (section, key, target, higher_is_better) in checks {
            let Some(measured) = self.sections.get(section).and_then(|s| s[key].as_f64()) else {
                continue;
            };
            let met = if higher_is_better {
                measured >= target
            } else {
                measured <= target
            };
            let missed_by = if met {
                Value::Null
            } else if higher_is_better {
                json!(format!("{}% short", round((1.0 - measured / target) * 100.0)))
            } else {
                json!(format!("{}x the limit", round(measured / target)))
            };
            out.insert(
                format!("{section}.{key}"),
                json!({
                    "target": format!("{} {target}", if higher_is_better { ">=" } else { "<=" }),
                    "measured": measured,
                    "met": met,
                    "missed_by": missed_by,
                }),
            );
        }
        Value::Object(out)
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(&self.sections)?;
        std::fs::write(dir.join("report.json"), &json)?;
        let mut table = String::new();
        for (section, value) in &self.sections {
            match value {
                Value::Object(fields) => {
                    for (key, value) in fields {
                        table.push_str(&format!("{:<40} {}\n", format!("{section}.{key}"), value));
                    }
                }
                other => table.push_str(&format!("{section:<40} {other}\n")),
            }
        }
        std::fs::write(dir.join("report.txt"), &table)?;
        println!("\n{table}\nwritten: {}/report.json", dir.display());
        Ok(())
    }
}
