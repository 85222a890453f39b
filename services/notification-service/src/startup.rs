//! Building notification-service from its configuration, and running it.

use sqlx::PgPool;
use todo_core::{
    db,
    server::{GrpcApp, base_routes},
    shutdown::CancellationToken,
};

use crate::config::Config;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "notifications";

/// Migrations of [`SCHEMA`], embedded in the binary.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Why notification-service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] todo_core::db::DbError),
    #[error(transparent)]
    Auth(#[from] todo_core::auth::AuthError),
    #[error(transparent)]
    Server(#[from] todo_core::server::ServerError),
}

/// notification-service, bound and wired, ready to run.
pub struct Application {
    server: GrpcApp,
    pool: PgPool,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let pool = db::connect_and_migrate(&config.database, SCHEMA, &MIGRATIONS).await?;
        let _verifier = todo_core::auth::start(&config.auth).await?;
        let base = base_routes(&[], &[])?;
        Ok(Self {
            server: GrpcApp::bind(config.server.listen, base).await?,
            pool,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight calls.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        self.server.run_until_stopped(shutdown).await?;
        self.pool.close().await;
        Ok(())
    }
}
