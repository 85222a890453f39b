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
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        self.sections.insert(
            "machine".into(),
            json!({"cores": cores, "cpu": cpu, "mode": if self.quick { "quick" } else { "full" }}),
        );
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
