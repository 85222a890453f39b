//! Typed configuration from the environment, read and validated once at
//! start-up. A missing or malformed variable stops the service with a message
//! that names the variable and says what was expected.
//!
//! Each service composes the sections it needs ([`ServerConfig`],
//! [`DaprConfig`], [`DatabaseConfig`], [`AuthConfig`], [`TelemetryConfig`]);
//! the variable names are those Dapr and OpenTelemetry already use where one
//! exists (`APP_PORT`, `DAPR_GRPC_PORT`, `DAPR_API_TOKEN`, `APP_API_TOKEN`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`).

use std::{
    fmt::Display,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use secrecy::SecretString;

/// A configuration variable that is missing or cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required: {hint}")]
    Missing { name: &'static str, hint: &'static str },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Where variables come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
            .filter(|value| !value.is_empty())
    }
}

/// Reads `name`, parsing it with `FromStr`; `None` when unset or empty.
pub fn optional<T>(env: &dyn Source, name: &'static str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    env.get(name)
        .map(|value| {
            value.trim().parse().map_err(|err: T::Err| ConfigError::Invalid {
                name,
                value: value.clone(),
                reason: err.to_string(),
            })
        })
        .transpose()
}

/// Reads `name`, falling back to `default` when unset.
pub fn with_default<T>(env: &dyn Source, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    Ok(optional(env, name)?.unwrap_or(default))
}

/// Reads `name`, which must be set; `hint` tells the user what to put there.
pub fn required<T>(env: &dyn Source, name: &'static str, hint: &'static str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    optional(env, name)?.ok_or(ConfigError::Missing { name, hint })
}

/// Reads a secret; its value never appears in `Debug` output or logs.
pub fn secret(env: &dyn Source, name: &'static str) -> Option<SecretString> {
    env.get(name).map(SecretString::from)
}

/// Reads a duration given in milliseconds.
pub fn millis(env: &dyn Source, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    Ok(optional::<u64>(env, name)?.map_or(default, Duration::from_millis))
}

/// `DEV_MODE=true`: this is a development machine, not a deployment. Only
/// then are the well-known development secret, short secrets, a key set
/// over plain HTTP and an AppCallback without `APP_API_TOKEN` accepted.
/// Every service logs it loudly at start-up.
pub fn development_mode(env: &dyn Source) -> Result<bool, ConfigError> {
    with_default(env, DEV_MODE, false)
}

/// The shared JWT secret of the local development stack (`dapr/dev.yaml`),
/// published in this repository: refused outside [`DEV_MODE`].
pub const DEV_SECRET: &str = "dev-secret-change-me";

/// The variable [`development_mode`] reads.
pub const DEV_MODE: &str = "DEV_MODE";

/// Shortest `JWT_SECRET` accepted outside development: HS256 keys shorter
/// than the hash (32 bytes) are guessable offline from any one token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The gRPC server a service exposes (its Dapr "app port").
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `APP_HOST` (default 0.0.0.0) and `APP_PORT`.
    pub listen: SocketAddr,
}

impl ServerConfig {
    pub fn from_env(env: &dyn Source, default_port: u16) -> Result<Self, ConfigError> {
        let host: IpAddr = with_default(env, "APP_HOST", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
        let port: u16 = with_default(env, "APP_PORT", default_port)?;
        Ok(Self {
            listen: SocketAddr::new(host, port),
        })
    }
}

/// How a service reaches its Dapr sidecar and how the sidecar reaches it.
#[derive(Debug, Clone)]
pub struct DaprConfig {
    /// `DAPR_GRPC_ENDPOINT` (e.g. `http://localhost:50001`), else built from
    /// `DAPR_HOST` (default 127.0.0.1) and `DAPR_GRPC_PORT` (default 50001).
    pub grpc_endpoint: String,
    /// `DAPR_API_TOKEN`: sent as `dapr-api-token` on every call to the sidecar.
    pub api_token: Option<SecretString>,
    /// `APP_API_TOKEN`: when set, AppCallback calls without this
    /// `dapr-api-token` are refused.
    pub app_api_token: Option<SecretString>,
    /// `PUBSUB_NAME`: the pub/sub component (default `pubsub`).
    pub pubsub_name: String,
}

impl DaprConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let grpc_endpoint = match env.get("DAPR_GRPC_ENDPOINT") {
            Some(endpoint) if endpoint.starts_with("http://") || endpoint.starts_with("https://") => endpoint,
            Some(endpoint) => format!("http://{endpoint}"),
            None => {
                let host: String = with_default(env, "DAPR_HOST", "127.0.0.1".to_owned())?;
                let port: u16 = with_default(env, "DAPR_GRPC_PORT", 50001)?;
                format!("http://{host}:{port}")
            }
        };
        let app_api_token = secret(env, "APP_API_TOKEN");
        // Without it AppCallback takes events from anyone who reaches the
        // port, and events carry the user they act for.
        if app_api_token.is_none() && !development_mode(env)? {
            return Err(ConfigError::Missing {
                name: "APP_API_TOKEN",
                hint: "the token the sidecar sends on AppCallback (Dapr's app API token); without it anyone who reaches this port could deliver events as any user (DEV_MODE=true on a development machine accepts its absence)",
            });
        }
        Ok(Self {
            grpc_endpoint,
            api_token: secret(env, "DAPR_API_TOKEN"),
            app_api_token,
            pubsub_name: with_default(env, "PUBSUB_NAME", "pubsub".to_owned())?,
        })
    }
}

/// The PostgreSQL connection of a service that owns a schema.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`; `sslmode=require` works against managed PostgreSQL.
    pub url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS` (default 10).
    pub max_connections: u32,
    /// `DATABASE_CONNECT_TIMEOUT_MS` (default 2000): how long an RPC waits for
    /// a connection before failing with UNAVAILABLE (after one such failure,
    /// callers fail at once until PostgreSQL answers again; see
    /// [`crate::db::Database`]).
    pub acquire_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (default 10000): the longest one
    /// statement may run. Every statement the services run takes
    /// milliseconds; one that runs longer (a user's query over a huge
    /// list, say) is cancelled instead of holding a connection that every
    /// other user's calls need. 0 turns it off.
    pub statement_timeout: Duration,
}

impl DatabaseConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let url = secret(env, "DATABASE_URL").ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
            hint: "a PostgreSQL URL such as postgres://user:password@localhost:5432/todo",
        })?;
        let max_connections = with_default(env, "DATABASE_MAX_CONNECTIONS", 10u32)?;
        if max_connections == 0 {
            return Err(ConfigError::Invalid {
                name: "DATABASE_MAX_CONNECTIONS",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            url,
            max_connections,
            acquire_timeout: millis(env, "DATABASE_CONNECT_TIMEOUT_MS", Duration::from_secs(2))?,
            statement_timeout: millis(env, "DATABASE_STATEMENT_TIMEOUT_MS", Duration::from_secs(10))?,
        })
    }
}

/// Who may call the public APIs (see [`crate::auth`]).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `JWT_SECRET`: shared secret for HS256 tokens (development).
    pub jwt_secret: Option<SecretString>,
    /// `JWKS_FILE`: path of a JSON Web Key Set with asymmetric public keys.
    pub jwks_file: Option<PathBuf>,
    /// `JWKS_URL`: an identity provider's key set (e.g. Better Auth's
    /// `/api/auth/jwks`), fetched at start-up and refreshed.
    pub jwks_url: Option<String>,
    /// `JWKS_REFRESH_SECS` (default 300): how often the URL is re-read.
    pub jwks_refresh: Duration,
    /// `JWT_ISSUER`: required `iss` when set.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: required `aud` when set.
    pub audience: Option<String>,
    /// `JWT_LEEWAY_SECS` (default 0): clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// [`DEV_MODE`]: the checks above are relaxed for local development.
    pub development: bool,
    /// `RATE_LIMIT_PER_SECOND` (default 100; 0: off) and `RATE_LIMIT_BURST`
    /// (default 200): calls per user to this service's public API.
    pub rate_limit: crate::auth::rate_limit::RateLimit,
}

impl AuthConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let config = Self {
            jwt_secret: secret(env, "JWT_SECRET"),
            jwks_file: optional(env, "JWKS_FILE")?,
            jwks_url: optional(env, "JWKS_URL")?,
            jwks_refresh: Duration::from_secs(with_default::<u64>(env, "JWKS_REFRESH_SECS", 300)?.max(1)),
            issuer: optional(env, "JWT_ISSUER")?,
            audience: optional(env, "JWT_AUDIENCE")?,
            leeway_secs: with_default(env, "JWT_LEEWAY_SECS", 0)?,
            development: development_mode(env)?,
            rate_limit: crate::auth::rate_limit::RateLimit {
                per_second: with_default(
                    env,
                    "RATE_LIMIT_PER_SECOND",
                    crate::auth::rate_limit::RateLimit::default().per_second,
                )?,
                burst: with_default(
                    env,
                    "RATE_LIMIT_BURST",
                    crate::auth::rate_limit::RateLimit::default().burst,
                )?,
            },
        };
        if config.jwt_secret.is_none() && config.jwks_file.is_none() && config.jwks_url.is_none() {
            return Err(ConfigError::Missing {
                name: "JWT_SECRET",
                hint: "set JWT_SECRET (HS256), JWKS_FILE or JWKS_URL (EdDSA/RS256/ES256 public keys) so callers can be authenticated",
            });
        }
        config.refuse_insecure()?;
        Ok(config)
    }

    /// Outside development: no published or short HS256 secret, no key set
    /// over plain HTTP (anyone on the path could hand us their keys), and
    /// an audience with a key set (a provider signs tokens for all its
    /// applications with the same keys).
    fn refuse_insecure(&self) -> Result<(), ConfigError> {
        let invalid = |name: &'static str, value: &str, reason: String| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason,
        };
        if (self.jwks_file.is_some() || self.jwks_url.is_some()) && self.audience.is_none() {
            return Err(ConfigError::Missing {
                name: "JWT_AUDIENCE",
                hint: "with JWKS_FILE or JWKS_URL, set the audience your identity provider puts in this API's tokens; without it a token the provider issued for any other application would be accepted",
            });
        }
        if self.development {
            return Ok(());
        }
        if let Some(secret) = &self.jwt_secret {
            use secrecy::ExposeSecret;
            let secret = secret.expose_secret();
            if secret == DEV_SECRET {
                return Err(invalid(
                    "JWT_SECRET",
                    "<the development secret>",
                    format!(
                        "is the published development secret; set a random one of at least {MIN_JWT_SECRET_BYTES} bytes (or {DEV_MODE}=true on a development machine)"
                    ),
                ));
            }
            if secret.len() < MIN_JWT_SECRET_BYTES {
                return Err(invalid(
                    "JWT_SECRET",
                    "<hidden>",
                    format!(
                        "is {} bytes; at least {MIN_JWT_SECRET_BYTES} random bytes are needed (or {DEV_MODE}=true on a development machine)",
                        secret.len()
                    ),
                ));
            }
        }
        if let Some(url) = &self.jwks_url
            && !url.starts_with("https://")
        {
            return Err(invalid(
                "JWKS_URL",
                url,
                format!(
                    "must be https: over plain HTTP anyone on the path can substitute their keys (or {DEV_MODE}=true on a development machine)"
                ),
            ));
        }
        Ok(())
    }
}

/// Log format of the `tracing` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (default).
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "pretty" | "text" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("expected `json` or `pretty`, got `{other}`")),
        }
    }
}

/// Logging and trace export.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Reported as `service.name`; `OTEL_SERVICE_NAME` overrides it.
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP/gRPC collector; no export when unset.
    pub otlp_endpoint: Option<String>,
    /// `LOG_FORMAT`: `pretty` (default) or `json`.
    pub log_format: LogFormat,
}

impl TelemetryConfig {
    pub fn from_env(env: &dyn Source, service_name: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            service_name: with_default(env, "OTEL_SERVICE_NAME", service_name.to_owned())?,
            otlp_endpoint: optional(env, "OTEL_EXPORTER_OTLP_ENDPOINT")?,
            log_format: with_default(env, "LOG_FORMAT", LogFormat::Pretty)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_names_the_variable() {
        let err = ServerConfig::from_env(&[("APP_PORT", "eighty")], 1).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("APP_PORT"), "{message}");
        assert!(message.contains("eighty"), "{message}");
    }

    #[test]
    fn appcallback_needs_its_token_outside_development() {
        let err = DaprConfig::from_env(&[("DAPR_GRPC_PORT", "50007")]).unwrap_err();
        assert!(err.to_string().contains("APP_API_TOKEN"), "{err}");
        assert!(DaprConfig::from_env(&[("APP_API_TOKEN", "t")]).is_ok());
        let dev = DaprConfig::from_env(&[("DEV_MODE", "true")]).unwrap();
        assert!(dev.app_api_token.is_none());
    }

    #[test]
    fn defaults_apply_when_unset() {
        let server = ServerConfig::from_env(&[("APP_HOST", "")], 50051).unwrap();
        assert_eq!(server.listen, "0.0.0.0:50051".parse().unwrap());
        let dapr = DaprConfig::from_env(&[("DAPR_GRPC_PORT", "50007"), ("DEV_MODE", "true")]).unwrap();
        assert_eq!(dapr.grpc_endpoint, "http://127.0.0.1:50007");
        assert_eq!(dapr.pubsub_name, "pubsub");
        assert!(dapr.api_token.is_none());
    }

    #[test]
    fn dapr_endpoint_without_scheme_gets_http() {
        let dapr = DaprConfig::from_env(&[("DAPR_GRPC_ENDPOINT", "sidecar:50001"), ("APP_API_TOKEN", "t")]).unwrap();
        assert_eq!(dapr.grpc_endpoint, "http://sidecar:50001");
    }

    #[test]
    fn auth_needs_a_key_source() {
        let err = AuthConfig::from_env(&[("JWT_ISSUER", "me")]).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET"));
        assert!(AuthConfig::from_env(&[("JWT_SECRET", "a-random-secret-of-32-bytes-or-more")]).is_ok());
    }

    #[test]
    fn outside_development_weak_token_settings_are_refused() {
        let refused = |env: &[(&str, &str); 3]| {
            let err = AuthConfig::from_env(env).unwrap_err();
            let message = err.to_string();
            assert!(!message.contains("s3cret"), "secrets stay out of messages: {message}");
            message
        };
        let dev_secret = refused(&[("JWT_SECRET", DEV_SECRET), ("", ""), ("", "")]);
        assert!(dev_secret.contains("development secret"), "{dev_secret}");
        assert!(refused(&[("JWT_SECRET", "s3cret"), ("", ""), ("", "")]).contains("at least 32"));
        let http = refused(&[
            ("JWKS_URL", "http://idp.example/jwks"),
            ("JWT_AUDIENCE", "todo"),
            ("", ""),
        ]);
        assert!(http.contains("https"), "{http}");
        let no_audience = refused(&[("JWKS_URL", "https://idp.example/jwks"), ("", ""), ("", "")]);
        assert!(no_audience.contains("JWT_AUDIENCE"), "{no_audience}");
        // A development machine may use all of it, but a key set still
        // needs its audience.
        let dev = AuthConfig::from_env(&[("JWT_SECRET", DEV_SECRET), ("DEV_MODE", "true"), ("", "")]);
        assert!(dev.unwrap().development);
        assert!(
            AuthConfig::from_env(&[
                ("JWKS_URL", "http://localhost/jwks"),
                ("JWT_AUDIENCE", "todo"),
                ("DEV_MODE", "true")
            ])
            .is_ok()
        );
        refused(&[("JWKS_URL", "http://localhost/jwks"), ("DEV_MODE", "true"), ("", "")]);
    }

    #[test]
    fn database_url_is_required_and_hidden_from_debug() {
        assert!(matches!(
            DatabaseConfig::from_env(&[("X", "")]),
            Err(ConfigError::Missing {
                name: "DATABASE_URL",
                ..
            })
        ));
        let config = DatabaseConfig::from_env(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn log_format_parses() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
