//! Configuration of audit-service, read from the environment once at start-up.

use todo_core::config::{AuthConfig, ConfigError, DaprConfig, DatabaseConfig, ServerConfig, Source};

/// Default gRPC port (`APP_PORT`), as in `dapr/dev.yaml`.
pub const DEFAULT_PORT: u16 = 50055;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub dapr: DaprConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            dapr: DaprConfig::from_env(env)?,
            database: DatabaseConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
        })
    }
}
