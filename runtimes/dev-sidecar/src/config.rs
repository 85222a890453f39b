//! Configuration of dev-sidecar: command-line flags, each with an
//! environment variable, validated once at start-up.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::Parser;

use crate::delivery::RetryPolicy;

/// A local, Dapr-compatible sidecar for development and tests.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// The Dapr multi-app run file with the apps and their ports.
    #[arg(long, env = "DEV_SIDECAR_RUN_FILE", default_value = "dapr/dev.yaml")]
    pub run_file: PathBuf,
    /// Where the durable log and jobs live.
    #[arg(long, env = "DEV_SIDECAR_DATA_DIR", default_value = ".dev/sidecar")]
    pub data_dir: PathBuf,
    /// Partitions of each new topic.
    #[arg(long, env = "DEV_SIDECAR_PARTITIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub partitions: u32,
    /// Redeliveries of an event the app answers RETRY for, before it is
    /// dead-lettered. With the default backoff, 20 retries ride out more than
    /// a minute of database outage (dapr/local/resiliency.yaml gives daprd the
    /// same count with longer waits).
    #[arg(long, env = "DEV_SIDECAR_MAX_RETRIES", default_value_t = 20)]
    pub max_retries: u32,
    /// First wait before a redelivery, in milliseconds (doubles each time).
    #[arg(long, env = "DEV_SIDECAR_RETRY_INITIAL_MS", default_value_t = 100)]
    pub retry_initial_ms: u64,
    /// Longest wait between redeliveries, in milliseconds.
    #[arg(long, env = "DEV_SIDECAR_RETRY_MAX_MS", default_value_t = 5000)]
    pub retry_max_ms: u64,
    /// Retention per partition, in MiB: events every consumer group has
    /// committed are trimmed, oldest first, beyond this size (as Kafka's
    /// `retention.bytes`). What a group has not committed always stays.
    /// 4 MiB keeps some 8,000 task events per partition to inspect; a
    /// larger log mostly slows the B-tree down (docs/benchmarks.md).
    #[arg(long, env = "DEV_SIDECAR_RETENTION_MB", default_value_t = 4)]
    pub retention_mb: u64,
    /// Retention by age, in hours: committed events older than this are
    /// trimmed (as Kafka's `retention.ms`).
    #[arg(long, env = "DEV_SIDECAR_RETENTION_HOURS", default_value_t = 24)]
    pub retention_hours: u64,
    /// How often retention is applied, in milliseconds.
    #[arg(long, env = "DEV_SIDECAR_RETENTION_CHECK_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub retention_check_ms: u64,
    /// HTTP port of the inspection surface (topics, lag, dead letters, jobs).
    #[arg(long, env = "DEV_SIDECAR_ADMIN_PORT", default_value_t = 50100)]
    pub admin_port: u16,
    /// Address every endpoint listens on.
    #[arg(long, env = "DEV_SIDECAR_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Required from callers of the Dapr API when set.
    #[arg(long, env = "DAPR_API_TOKEN", hide_env_values = true)]
    pub dapr_api_token: Option<String>,
    /// Sent to the apps as `dapr-api-token` when set.
    #[arg(long, env = "APP_API_TOKEN", hide_env_values = true)]
    pub app_api_token: Option<String>,
}

impl Config {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            initial_backoff: Duration::from_millis(self.retry_initial_ms.max(1)),
            max_backoff: Duration::from_millis(self.retry_max_ms.max(self.retry_initial_ms).max(1)),
        }
    }

    pub fn retention(&self) -> crate::log::Retention {
        crate::log::Retention {
            max_bytes: self.retention_mb.saturating_mul(1 << 20),
            max_age: Duration::from_secs(self.retention_hours.saturating_mul(3600)),
        }
    }
}
