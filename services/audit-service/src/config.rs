//! Configuration of audit-service, read from the environment once at start-up.

use secrecy::{ExposeSecret, SecretString};
use todo_core::config::{
    AuthConfig, ConfigError, DaprConfig, DatabaseConfig, MIN_JWT_SECRET_BYTES, ServerConfig, Source, secret,
};

use crate::chain::Chain;

/// Default gRPC port (`APP_PORT`), as in `dapr/dev.yaml`.
pub const DEFAULT_PORT: u16 = 50055;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub dapr: DaprConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    /// `AUDIT_CHAIN_KEY`: when set (at least 32 bytes), the chain is an
    /// HMAC under it, which nobody with only database access can
    /// recompute. Set it before the first record: records hashed without
    /// it, or under another key, no longer verify.
    pub chain_key: Option<SecretString>,
}

impl Config {
    /// How this deployment hashes its chain.
    pub fn chain(&self) -> Chain {
        self.chain_key
            .as_ref()
            .map_or_else(Chain::default, |key| Chain::keyed(key.expose_secret().as_bytes()))
    }
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            dapr: DaprConfig::from_env(env)?,
            database: DatabaseConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
            chain_key: match secret(env, "AUDIT_CHAIN_KEY") {
                Some(key) if key.expose_secret().len() < MIN_JWT_SECRET_BYTES => {
                    return Err(ConfigError::Invalid {
                        name: "AUDIT_CHAIN_KEY",
                        value: "<hidden>".into(),
                        reason: format!("at least {MIN_JWT_SECRET_BYTES} random bytes are needed"),
                    });
                }
                key => key,
            },
        })
    }
}
