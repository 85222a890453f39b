//! Running a service's `Application` inside the test process, on a random
//! port, the way `main` runs it.

use std::{future::Future, net::SocketAddr};

use tonic::transport::Channel;

use todo_core::{config::DaprConfig, shutdown::CancellationToken};

use crate::FakeSidecar;

/// A server running in the background; stopped (gracefully) when dropped.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl RunningServer {
    /// Spawns `run` (an `Application::run_until_stopped`) for the app bound at `addr`.
    pub fn spawn<F, Fut, E>(addr: SocketAddr, run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Debug + Send + 'static,
    {
        let stop = CancellationToken::new();
        let running = run(stop.clone());
        tokio::spawn(async move {
            if let Err(err) = running.await {
                panic!("server failed: {err:?}");
            }
        });
        Self { addr, stop }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to the server under test")
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Dapr settings pointing at `sidecar`, with an optional app API token.
pub fn dapr_config(sidecar: &FakeSidecar, app_api_token: Option<&str>) -> DaprConfig {
    DaprConfig {
        grpc_endpoint: sidecar.endpoint(),
        api_token: None,
        app_api_token: app_api_token.map(Into::into),
        pubsub_name: "pubsub".into(),
    }
}

/// HS256-only verification with `secret`, no issuer or audience.
pub fn auth_config(secret: &str) -> todo_core::config::AuthConfig {
    todo_core::config::AuthConfig {
        jwt_secret: Some(secret.into()),
        jwks_file: None,
        jwks_url: None,
        jwks_refresh: std::time::Duration::from_secs(300),
        issuer: None,
        audience: None,
        leeway_secs: 0,
        development: true,
        rate_limit: Default::default(),
    }
}

/// A small pool on `url`.
pub fn database_config(url: &str) -> todo_core::config::DatabaseConfig {
    todo_core::config::DatabaseConfig {
        url: url.to_owned().into(),
        max_connections: 10,
        acquire_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(10),
    }
}

/// A delivery as daprd makes it: `OnTopicEvent` with a CloudEvent's fields.
pub fn delivery(
    topic: &str,
    event_type: &str,
    data: Vec<u8>,
    content_type: &str,
) -> todo_core::dapr::runtime::TopicEventRequest {
    todo_core::dapr::runtime::TopicEventRequest {
        id: uuid::Uuid::new_v4().to_string(),
        source: "test".into(),
        r#type: event_type.into(),
        spec_version: "1.0".into(),
        data_content_type: content_type.into(),
        data,
        topic: topic.into(),
        pubsub_name: "pubsub".into(),
        path: String::new(),
        extensions: None,
    }
}
