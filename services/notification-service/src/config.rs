//! Configuration of notification-service, read from the environment once at start-up.

use std::time::Duration;

use todo_core::config::{
    AuthConfig, ConfigError, DaprConfig, DatabaseConfig, ServerConfig, Source, millis, optional, with_default,
};

/// Default gRPC port (`APP_PORT`), as in `dapr/dev.yaml`.
pub const DEFAULT_PORT: u16 = 50054;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub dapr: DaprConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub webhook: Option<WebhookConfig>,
}

/// `NOTIFY_WEBHOOK_URL` (unset: notifications go to the log),
/// `NOTIFY_WEBHOOK_TIMEOUT_MS` (default 3000), `NOTIFY_WEBHOOK_ATTEMPTS` (default 3).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub timeout: Duration,
    pub attempts: u32,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let webhook = match optional::<String>(env, "NOTIFY_WEBHOOK_URL")? {
            None => None,
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        name: "NOTIFY_WEBHOOK_URL",
                        value: url,
                        reason: "must be an http(s) URL".into(),
                    });
                }
                Some(WebhookConfig {
                    url,
                    timeout: millis(env, "NOTIFY_WEBHOOK_TIMEOUT_MS", Duration::from_secs(3))?,
                    attempts: with_default(env, "NOTIFY_WEBHOOK_ATTEMPTS", 3u32)?.clamp(1, 10),
                })
            }
        };
        Ok(Self {
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            dapr: DaprConfig::from_env(env)?,
            database: DatabaseConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
            webhook,
        })
    }
}
