//! Building notification-service from its configuration, and running it.

use std::sync::Arc;

use tonic::service::interceptor::InterceptedService;

use todo_core::{
    auth::AuthInterceptor,
    dapr::app,
    db::{self, Database},
    proto::v1::notification_service_server::NotificationServiceServer,
    server::{GrpcApp, MAX_QUERY_REQUEST_BYTES, base_routes},
    shutdown::CancellationToken,
};

use crate::{
    api::NotificationApi,
    channel::{Channel, LogChannel, WebhookChannel},
    config::Config,
    handler::Notifier,
};

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
    #[error("NOTIFY_WEBHOOK_URL: {0}")]
    Webhook(String),
    #[error(transparent)]
    Server(#[from] todo_core::server::ServerError),
}

/// notification-service, bound and wired, ready to run.
pub struct Application {
    server: GrpcApp,
    pool: Database,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let pool = db::connect_and_migrate(&config.database, SCHEMA, &MIGRATIONS).await?;
        let verifier = todo_core::auth::start(&config.auth).await?;
        let channel: Arc<dyn Channel> = match &config.webhook {
            Some(webhook) => Arc::new(WebhookChannel::new(webhook).map_err(StartupError::Webhook)?),
            None => Arc::new(LogChannel),
        };
        let mut base = base_routes(&[&["todo.v1.NotificationService"][..], &app::SERVICE_NAMES].concat())?;
        let api = NotificationServiceServer::new(NotificationApi { pool: pool.clone() })
            .max_decoding_message_size(MAX_QUERY_REQUEST_BYTES);
        base.routes.add_service(InterceptedService::new(
            api,
            AuthInterceptor::new(verifier, todo_core::auth::RateLimiter::new(config.auth.rate_limit)),
        ));
        let notifier = Notifier {
            pool: pool.clone(),
            channel,
            pubsub_name: config.dapr.pubsub_name.clone(),
        };
        app::add_routes(&mut base.routes, Arc::new(notifier), config.dapr.app_api_token.clone());
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
