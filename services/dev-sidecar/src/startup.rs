//! Building dev-sidecar from its configuration, and running it.

use todo_core::{
    server::{GrpcApp, base_routes},
    shutdown::CancellationToken,
};

use crate::config::Config;

/// Why dev-sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Server(#[from] todo_core::server::ServerError),
}

/// dev-sidecar, bound and wired, ready to run.
pub struct Application {
    server: GrpcApp,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let base = base_routes(&[])?;
        Ok(Self {
            server: GrpcApp::bind(config.listen, base).await?,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight calls.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        self.server.run_until_stopped(shutdown).await?;
        Ok(())
    }
}
