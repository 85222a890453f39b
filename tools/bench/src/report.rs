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

    /// A limit of the machine: its section under `limits.<name>`, and the
    /// figures outside checks read flat beside it (`limits.db_tps`,
    /// `limits.daprd_events_per_s`, `limits.daprd_p99_ms`,
    /// `limits.kafka_events_per_s`).
    pub fn limit(&mut self, name: &str, section: Value) {
        let limits = self.sections.entry("limits".into()).or_insert_with(|| json!({}));
        let flat: &[(&str, &str)] = match name {
            "db" => &[("db_tps", "tps")],
            "daprd" => &[("daprd_events_per_s", "events_per_s"), ("daprd_p99_ms", "p99_ms")],
            "kafka" => &[("kafka_events_per_s", "events_per_s"), ("kafka_p99_ms", "p99_ms")],
            _ => &[],
        };
        for (key, from) in flat {
            limits[*key] = section[*from].clone();
        }
        limits[name] = section;
    }

    /// The figure at a dotted path (`real.create_task.p99_ms`).
    fn get(&self, path: &str) -> Option<f64> {
        let mut parts = path.split('.');
        let mut value = self.sections.get(parts.next()?)?;
        for part in parts {
            value = value.get(part)?;
        }
        value.as_f64()
    }

    /// Every ratio of the performance issue whose two sides were measured.
    fn ratios(&self) -> Value {
        let mut pairs: Vec<(String, String, String)> = Vec::new();
        // What users see at the seeds' rates on the real runtime, against
        // daprd's own publish → deliver with a no-op app at the same rate.
        for rate in crate::SEED_RATES {
            for what in ["end_to_end", "watch", "next_occurrence"] {
                pairs.push((
                    format!("real_{what}_p99_vs_daprd_at_{rate}"),
                    format!("real.{what}_at_{rate}.p99_ms"),
                    format!("limits.daprd_at_{rate}.p99_ms"),
                ));
            }
        }
        let fixed = [
            ("create_task_max_vs_db", "create_task_max.rps", "limits.db_tps"),
            ("sustainable_vs_db", "sustainable.rps", "limits.db_tps"),
            ("real_sustainable_vs_db", "real.sustainable.rps", "limits.db_tps"),
            (
                "real_create_task_max_vs_db",
                "real.create_task_max.rps",
                "limits.db_tps",
            ),
            (
                "vs_python_sdk",
                "sidecar_pubsub_unary.events_per_s",
                "baseline.events_per_s",
            ),
            (
                "real_vs_python_sdk",
                "real.sidecar_pubsub_unary.events_per_s",
                "real.baseline.events_per_s",
            ),
            (
                "real_end_to_end_p99_vs_daprd",
                "real.end_to_end.p99_ms",
                "limits.daprd_p99_ms",
            ),
            (
                "real_end_to_end_vs_daprd_events",
                "real.end_to_end.events_per_s",
                "limits.daprd_events_per_s",
            ),
            (
                "real_pubsub_vs_kafka",
                "real.sidecar_pubsub.events_per_s",
                "limits.kafka_events_per_s",
            ),
        ];
        pairs.extend(fixed.map(|(name, ours, theirs)| (name.into(), ours.into(), theirs.into())));
        let mut out = serde_json::Map::new();
        for (name, ours, theirs) in pairs {
            if let (Some(ours), Some(theirs)) = (self.get(&ours), self.get(&theirs))
                && theirs > 0.0
            {
                out.insert(name, json!((ours / theirs * 1000.0).round() / 1000.0));
            }
        }
        Value::Object(out)
    }

    /// Adds the ratios, the targets and the machine.
    pub fn finish(&mut self) {
        if let Some(ratio) = self.ratios().get("vs_python_sdk") {
            // The key of the first report, kept for its readers.
            self.sections.insert("ratio_vs_baseline".into(), ratio.clone());
        }
        let ratios = self.ratios();
        self.sections.insert("ratios".into(), ratios);
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
        let at_least = |path: &str, target: f64| (path.to_owned(), target, true);
        let at_most = |path: &str, target: f64| (path.to_owned(), target, false);
        let mut checks = vec![
            // The first issue's, in absolute figures of this kind of machine.
            at_least("sidecar_pubsub.events_per_s", 20_000.0),
            at_least("sidecar_pubsub_unary.events_per_s", 8_000.0),
            at_most("create_task.p50_ms", 2.0),
            at_most("create_task.p99_ms", 10.0),
            at_least("create_task_max.rps", 2_000.0),
            at_most("create_task_max.lag_drained_s", 5.0),
            at_most("rss_mb.dev-sidecar", 64.0),
            // The real runtime's, as ratios to what this run measured.
            at_least("ratios.create_task_max_vs_db", 0.5),
            at_least("ratios.real_create_task_max_vs_db", 0.5),
            at_least("ratios.vs_python_sdk", 10.0),
            at_least("ratios.real_vs_python_sdk", 5.0),
            at_most("real.create_task_max.lag_drained_s", 5.0),
            // Real time (issue 26): a busy user leaves a quiet one's sync
            // within 3x of unloaded, and one user alone gets 250 changes/s
            // end to end, on both runtimes.
            at_most("noisy_neighbour.p99_vs_unloaded", 3.0),
            at_most("real.noisy_neighbour.p99_vs_unloaded", 3.0),
            at_least("single_user.rps", 250.0),
            at_least("real.single_user.rps", 250.0),
            // Latency at the seeds' rates (issue 26): the real runtime within
            // 3x of daprd's own, dev-sidecar within 25 ms at 250/s.
            at_most("ratios.real_end_to_end_p99_vs_daprd_at_100", 3.0),
            at_most("ratios.real_watch_p99_vs_daprd_at_100", 3.0),
            at_most("ratios.real_end_to_end_p99_vs_daprd_at_250", 3.0),
            at_most("ratios.real_watch_p99_vs_daprd_at_250", 3.0),
            at_most("end_to_end_at_250.p99_ms", 25.0),
            at_most("watch_at_250.p99_ms", 25.0),
            // Capacity, end to end, and what each change costs the machine.
            at_least("ratios.real_sustainable_vs_db", 0.15),
            at_least("ratios.sustainable_vs_db", 0.25),
            at_most("real.create_task_max.cpu.system_ms_per_unit", 1.5),
            at_most("create_task_max.cpu.system_ms_per_unit", 0.7),
        ];
        for service in todo_stack::plan::service_ids().unwrap_or_default() {
            checks.push(at_most(&format!("rss_mb.{service}"), 32.0));
            checks.push(at_most(&format!("real.rss_mb.{service}"), 32.0));
        }
        let mut out = serde_json::Map::new();
        for (path, target, higher_is_better) in checks {
            let Some(measured) = self.get(&path) else {
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
                path,
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
            flatten(section, value, &mut table);
        }
        std::fs::write(dir.join("report.txt"), &table)?;
        println!("\n{table}\nwritten: {}/report.json", dir.display());
        Ok(())
    }
}

/// One `path value` line per figure, nested sections joined with dots.
fn flatten(path: &str, value: &Value, table: &mut String) {
    match value {
        Value::Object(fields) if !fields.contains_key("target") => {
            for (key, value) in fields {
                flatten(&format!("{path}.{key}"), value, table);
            }
        }
        other => table.push_str(&format!("{path:<48} {other}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_flat_where_checks_read_them_and_ratios_use_them() {
        let mut report = Report::new(true);
        report.insert("create_task_max", json!({"rps": 600.0}));
        report.insert("sidecar_pubsub_unary", json!({"events_per_s": 5000.0}));
        report.insert("baseline", json!({"events_per_s": 400.0}));
        report.insert(
            "real",
            json!({"create_task_max": {"rps": 400.0}, "end_to_end": {"p99_ms": 90.0}, "rss_mb": {"task-api": 40.0}}),
        );
        report.limit("db", json!({"tps": 1000.0, "clients": 32}));
        report.limit("daprd", json!({"events_per_s": 990.0, "p99_ms": 45.0}));
        report.finish();
        let sections = &report.sections;
        assert_eq!(sections["limits"]["db_tps"], json!(1000.0));
        assert_eq!(sections["limits"]["db"]["clients"], json!(32));
        assert_eq!(sections["limits"]["daprd_p99_ms"], json!(45.0));
        let ratios = &sections["ratios"];
        assert_eq!(ratios["create_task_max_vs_db"], json!(0.6));
        assert_eq!(ratios["real_create_task_max_vs_db"], json!(0.4));
        assert_eq!(ratios["vs_python_sdk"], json!(12.5));
        assert_eq!(ratios["real_end_to_end_p99_vs_daprd"], json!(2.0));
        assert!(
            ratios.get("real_vs_python_sdk").is_none(),
            "a side not measured gives no ratio"
        );
        let targets = &sections["targets"];
        assert_eq!(targets["ratios.create_task_max_vs_db"]["met"], json!(true));
        assert_eq!(targets["ratios.real_create_task_max_vs_db"]["met"], json!(false));
        assert_eq!(
            targets["ratios.real_create_task_max_vs_db"]["missed_by"],
            json!("20% short")
        );
        assert_eq!(targets["real.rss_mb.task-api"]["missed_by"], json!("1.25x the limit"));
        assert!(targets.get("ratios.real_vs_python_sdk").is_none());
    }
}
