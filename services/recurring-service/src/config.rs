//! Configuration of recurring-service, read from the environment once at start-up.

use todo_core::config::{ConfigError, DaprConfig, ServerConfig, Source};

/// Default gRPC port (`APP_PORT`), as in `dapr/dev.yaml`.
pub const DEFAULT_PORT: u16 = 50052;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub dapr: DaprConfig,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            dapr: DaprConfig::from_env(env)?,
        })
    }
}
