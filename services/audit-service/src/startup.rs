//! Building audit-service from its configuration, and running it.

use std::sync::Arc;

use tonic::service::interceptor::InterceptedService;

use todo_core::{
    auth::AuthInterceptor,
    dapr::app,
    db::{self, Database},
    proto::v1::audit_service_server::AuditServiceServer,
    server::{GrpcApp, MAX_QUERY_REQUEST_BYTES, base_routes},
    shutdown::CancellationToken,
};

use crate::{api::AuditApi, config::Config, handler::Auditor};

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "audit";

/// Migrations of [`SCHEMA`], embedded in the binary.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Why audit-service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] todo_core::db::DbError),
    #[error(transparent)]
    Auth(#[from] todo_core::auth::AuthError),
    #[error(transparent)]
    Server(#[from] todo_core::server::ServerError),
}

/// audit-service, bound and wired, ready to run.
pub struct Application {
    server: GrpcApp,
    pool: Database,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let pool = db::connect_and_migrate(&config.database, SCHEMA, &MIGRATIONS).await?;
        let verifier = todo_core::auth::start(&config.auth).await?;
        let mut base = base_routes(&[&["todo.v1.AuditService"][..], &app::SERVICE_NAMES].concat())?;
        let api = AuditServiceServer::new(AuditApi {
            pool: pool.clone(),
            chain: config.chain(),
            verified: Default::default(),
        })
        .max_decoding_message_size(MAX_QUERY_REQUEST_BYTES);
        base.routes.add_service(InterceptedService::new(
            api,
            AuthInterceptor::new(verifier, todo_core::auth::RateLimiter::new(config.auth.rate_limit)),
        ));
        let auditor = Auditor {
            pool: pool.clone(),
            chain: config.chain(),
            pubsub_name: config.dapr.pubsub_name.clone(),
        };
        app::add_routes(&mut base.routes, Arc::new(auditor), config.dapr.app_api_token.clone());
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
