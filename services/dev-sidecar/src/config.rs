//! Configuration of dev-sidecar, read from the environment once at start-up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use todo_core::config::{ConfigError, Source, with_default};

/// Default Dapr gRPC port, as daprd's.
pub const DEFAULT_PORT: u16 = 50001;

#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_HOST` (default 127.0.0.1) and `DAPR_GRPC_PORT`: where the Dapr API is served.
    pub listen: SocketAddr,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let host: IpAddr = with_default(env, "APP_HOST", IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let port: u16 = with_default(env, "DAPR_GRPC_PORT", DEFAULT_PORT)?;
        Ok(Self {
            listen: SocketAddr::new(host, port),
        })
    }
}
