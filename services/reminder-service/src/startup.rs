//! Building reminder-service from its configuration, and running it.

use std::sync::Arc;

use todo_core::{
    dapr::{
        app,
        jobs::Jobs,
        publisher::{Publisher, SidecarClient},
    },
    server::{GrpcApp, base_routes},
    shutdown::CancellationToken,
};

use crate::{config::Config, handler::Reminders};

/// Why reminder-service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Sidecar(#[from] todo_core::dapr::publisher::PublishError),
    #[error(transparent)]
    Server(#[from] todo_core::server::ServerError),
}

/// reminder-service, bound and wired, ready to run.
pub struct Application {
    server: GrpcApp,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let sidecar = SidecarClient::connect_lazy(&config.dapr)?;
        let handler = Reminders {
            jobs: Jobs::new(sidecar.clone()),
            publisher: Publisher::new(sidecar, &config.dapr.pubsub_name),
            pubsub_name: config.dapr.pubsub_name.clone(),
        };
        let mut base = base_routes(&app::SERVICE_NAMES)?;
        app::add_routes(&mut base.routes, Arc::new(handler), config.dapr.app_api_token.clone());
        Ok(Self {
            server: GrpcApp::bind(config.server.listen, base).await?,
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
