//! Configuration of task-api, read from the environment once at start-up.

use std::time::Duration;

use todo_core::config::{
    AuthConfig, ConfigError, DaprConfig, DatabaseConfig, ServerConfig, Source, millis, with_default,
};

use crate::{outbox::relay::RelayConfig, watch::WatchLimits};

/// Default gRPC port (`APP_PORT`), as in `dapr/dev.yaml`.
pub const DEFAULT_PORT: u16 = 50051;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub dapr: DaprConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    /// `OUTBOX_BATCH_SIZE` (default 500), `OUTBOX_ROWS_PER_USER` (default
    /// 4), `OUTBOX_POLL_MS` (default 250), `OUTBOX_MAX_BACKOFF_MS` (default
    /// 5000).
    pub relay: RelayConfig,
    /// `WATCH_PUBSUB_NAME` (default: `PUBSUB_NAME`): the component through
    /// which this replica receives `task-events` for WatchTasks. With several
    /// replicas it must give each pod its own consumer group (Kafka
    /// `consumerGroup: "{podName}"`), so every replica sees every event.
    pub watch_pubsub_name: String,
    /// `WATCH_MAX_PER_USER` (default 8), `WATCH_MAX_STREAMS` (default 512),
    /// `WATCH_BUFFER_BYTES` (default 131072): open WatchTasks streams per
    /// user and per process, and what one slow watcher may hold.
    pub watch: WatchLimits,
    /// `MAX_TASKS_PER_USER` (default 10000; 0: no quota): CreateTask beyond
    /// it is RESOURCE_EXHAUSTED (occurrences of a series are not refused).
    pub max_tasks_per_user: u32,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let defaults = RelayConfig::default();
        let batch_size = within(env, "OUTBOX_BATCH_SIZE", defaults.batch_size, 10_000)?;
        let rows_per_user = within(env, "OUTBOX_ROWS_PER_USER", defaults.rows_per_user, 100)?;
        let dapr = DaprConfig::from_env(env)?;
        let watch = WatchLimits::default();
        let watch = WatchLimits {
            per_user: within(env, "WATCH_MAX_PER_USER", watch.per_user as i64, 1_000)? as usize,
            total: within(env, "WATCH_MAX_STREAMS", watch.total as i64, 100_000)? as usize,
            buffer_bytes: within(env, "WATCH_BUFFER_BYTES", watch.buffer_bytes as i64, 64 << 20)? as usize,
        };
        Ok(Self {
            watch,
            max_tasks_per_user: with_default(env, "MAX_TASKS_PER_USER", 10_000)?,
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            watch_pubsub_name: with_default(env, "WATCH_PUBSUB_NAME", dapr.pubsub_name.clone())?,
            dapr,
            database: DatabaseConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
            relay: RelayConfig {
                batch_size,
                rows_per_user,
                poll_interval: millis(env, "OUTBOX_POLL_MS", defaults.poll_interval)?,
                max_backoff: millis(env, "OUTBOX_MAX_BACKOFF_MS", defaults.max_backoff)?.max(Duration::from_millis(1)),
                ..defaults
            },
        })
    }
}

/// `name`, between 1 and `max`.
fn within(env: &dyn Source, name: &'static str, default: i64, max: i64) -> Result<i64, ConfigError> {
    let value: i64 = with_default(env, name, default)?;
    if !(1..=max).contains(&value) {
        return Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: format!("must be between 1 and {max}"),
        });
    }
    Ok(value)
}
