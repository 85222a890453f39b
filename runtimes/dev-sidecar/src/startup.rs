//! Building dev-sidecar from its configuration, and running it.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use todo_core::{
    server::{GrpcApp, base_routes},
    shutdown::CancellationToken,
};

use crate::{
    api::{
        dapr_api::{AppEndpoint, DaprApi},
        http::{Inspect, health_routes, inspection_routes},
    },
    apps::AppClients,
    config::Config,
    delivery::{self, Subscriptions},
    jobs::{JobsSignal, Scheduler},
    log::{Log, LogError},
    run_file::{self, App, RunFileError},
};

/// Why dev-sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    RunFile(#[from] RunFileError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Server(#[from] todo_core::server::ServerError),
    #[error("{0}")]
    Apps(String),
    #[error("cannot listen on {addr}: {source}")]
    Http { addr: SocketAddr, source: std::io::Error },
}

/// dev-sidecar with every listener bound, ready to run.
pub struct Application {
    config: Config,
    apps: Vec<App>,
    log: Log,
    clients: AppClients,
    subscriptions: Subscriptions,
    jobs: JobsSignal,
    grpc: Vec<(String, GrpcApp)>,
    http: Vec<(tokio::net::TcpListener, axum::Router)>,
}

async fn bind_http(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartupError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Http { addr, source })
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let apps = run_file::load(&config.run_file)?;
        let log = Log::open(&config.data_dir, config.partitions)?;
        let clients = AppClients::new(
            apps.iter().map(|app| (app.app_id.clone(), app.app_port)),
            config.app_api_token.as_deref(),
        )
        .map_err(StartupError::Apps)?;
        let subscriptions = Subscriptions::default();
        let jobs = JobsSignal::default();

        let mut grpc = Vec::new();
        let mut http = Vec::new();
        for app in &apps {
            let endpoint = Arc::new(AppEndpoint {
                app_id: app.app_id.clone(),
                log: log.clone(),
                jobs: jobs.clone(),
                subscriptions: subscriptions.clone(),
                api_token: config.dapr_api_token.clone(),
            });
            let mut base = base_routes(&["dapr.proto.runtime.v1.Dapr"])?;
            base.routes.add_service(DaprApi(endpoint));
            let addr = SocketAddr::new(config.host, app.grpc_port);
            grpc.push((app.app_id.clone(), GrpcApp::bind(addr, base).await?));
            if app.http_port != 0 {
                let addr = SocketAddr::new(config.host, app.http_port);
                http.push((bind_http(addr).await?, health_routes()));
            }
        }
        let inspect = Inspect {
            log: log.clone(),
            subscriptions: subscriptions.clone(),
        };
        let admin = SocketAddr::new(config.host, config.admin_port);
        http.push((bind_http(admin).await?, inspection_routes(inspect)));
        Ok(Self {
            config,
            apps,
            log,
            clients,
            subscriptions,
            jobs,
            grpc,
            http,
        })
    }

    /// Where each app's Dapr gRPC API listens.
    pub fn endpoints(&self) -> BTreeMap<String, SocketAddr> {
        self.grpc
            .iter()
            .map(|(app, server)| (app.clone(), server.local_addr()))
            .collect()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.http.last().and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Runs until `shutdown`: serves every endpoint, delivers, fires jobs,
    /// and (with `--run-apps`) runs the apps. On the way out the apps stop
    /// first, while the sidecar still accepts what they publish as they drain.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let servers_stop = CancellationToken::new();
        let mut servers = Vec::new();
        for (app_id, server) in self.grpc {
            tracing::info!(app = %app_id, addr = %server.local_addr(), "Dapr gRPC API");
            servers.push(tokio::spawn(server.run_until_stopped(servers_stop.clone())));
        }
        for (listener, router) in self.http {
            let stop = servers_stop.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
            });
        }

        let workers_stop = CancellationToken::new();
        let scheduler = Scheduler {
            log: self.log.clone(),
            apps: self.clients.clone(),
            signal: self.jobs.clone(),
        };
        tokio::spawn(scheduler.run(workers_stop.clone()));
        tokio::spawn(apply_retention(
            self.log.clone(),
            self.config.retention(),
            Duration::from_millis(self.config.retention_check_ms),
            workers_stop.clone(),
        ));
        for app in &self.apps {
            delivery::start(
                app.app_id.clone(),
                self.log.clone(),
                self.clients.clone(),
                self.config.retry_policy(),
                self.subscriptions.clone(),
                workers_stop.clone(),
            );
        }

        shutdown.cancelled().await;
        workers_stop.cancel();
        servers_stop.cancel();
        for server in servers {
            if let Ok(Err(err)) = server.await {
                tracing::warn!(error = %err, "server stopped with an error");
            }
        }
        Ok(())
    }
}

/// Trims the log every `every` until `stop` (see `log::retention`).
async fn apply_retention(log: Log, retention: crate::log::Retention, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        match log.trim(retention).await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "log trimmed"),
            Err(err) => tracing::warn!(error = %err, "trimming the log failed"),
        }
    }
}
