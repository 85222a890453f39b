//! Building task-api from its configuration, and running it.

use std::sync::Arc;

use todo_core::{
    auth::AuthInterceptor,
    dapr::{app, publisher::Publisher},
    db,
    proto::v1::task_service_server::TaskServiceServer,
    server::{GrpcApp, base_routes},
    shutdown::CancellationToken,
};
use tokio::sync::Notify;
use tonic::service::interceptor::InterceptedService;

use crate::{
    api::{callback::TaskApiEvents, task_service::TaskApi},
    config::Config,
    operations::Tasks,
    outbox::relay::Relay,
    watch::WatchHub,
};

/// Largest request TaskService decodes.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "tasks";

/// Migrations of [`SCHEMA`], embedded in the binary.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Why task-api could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] todo_core::db::DbError),
    #[error(transparent)]
    Auth(#[from] todo_core::auth::AuthError),
    #[error(transparent)]
    Publisher(#[from] todo_core::dapr::publisher::PublishError),
    #[error(transparent)]
    Server(#[from] todo_core::server::ServerError),
}

/// task-api, bound and wired, ready to run.
pub struct Application {
    server: GrpcApp,
    relay: Relay,
    watch: WatchHub,
    pool: todo_core::db::Database,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let pool = db::connect_and_migrate(&config.database, SCHEMA, &MIGRATIONS).await?;
        let verifier = todo_core::auth::start(&config.auth).await?;
        let publisher = Publisher::connect_lazy(&config.dapr)?;
        let relay_wake = Arc::new(Notify::new());
        let tasks = Tasks::new(pool.clone(), relay_wake.clone(), config.max_tasks_per_user);
        let watch = WatchHub::new(config.watch);

        let mut base = base_routes(&[&["todo.v1.TaskService"][..], &app::SERVICE_NAMES].concat())?;
        // Far above any valid request (a task is a few KiB at most), far
        // below what would hurt: larger messages are refused with
        // RESOURCE_EXHAUSTED before they are decoded.
        let service = TaskServiceServer::new(TaskApi::new(tasks.clone(), watch.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES);
        base.routes.add_service(InterceptedService::new(
            service,
            AuthInterceptor::new(verifier, todo_core::auth::RateLimiter::new(config.auth.rate_limit)),
        ));
        let events = TaskApiEvents {
            tasks,
            watch: watch.clone(),
            pubsub_name: config.dapr.pubsub_name.clone(),
            watch_pubsub_name: config.watch_pubsub_name.clone(),
        };
        app::add_routes(&mut base.routes, Arc::new(events), config.dapr.app_api_token.clone());

        Ok(Self {
            server: GrpcApp::bind(config.server.listen, base).await?,
            relay: Relay::new(pool.pool().clone(), publisher, relay_wake, config.relay),
            watch,
            pool,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// Serves and relays until `shutdown`; in-flight calls finish, then the
    /// relay makes a last attempt to drain the outbox.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(self.relay.run(relay_stop.clone()));
        // Open WatchTasks streams would otherwise keep the server from draining.
        let watch = self.watch;
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            watch.close();
        });
        let served = self.server.run_until_stopped(shutdown).await;
        relay_stop.cancel();
        let _ = relay.await;
        self.pool.close().await;
        Ok(served?)
    }
}
