//! `TestApp`: task-api built exactly as `main` builds it, on a random port,
//! with its own database and a recording fake sidecar.

#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use task_api::{config::Config, outbox::relay::RelayConfig, startup::Application};
use todo_core::{
    config::{DaprConfig, ServerConfig},
    dapr::runtime::{TopicEventRequest, app_callback_client::AppCallbackClient},
    proto::v1::{CreateTaskRequest, Task, TaskEvent, task_service_client::TaskServiceClient},
    shutdown::CancellationToken,
};
use todo_testing::{ApiLevel, FakeSidecar, TestDatabase, auth_config, database_config, tokens};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub const JWT_SECRET: &str = "task-api-test-secret";
/// Small, so a test can reach it.
pub const MAX_TASKS_PER_USER: u32 = 50;

pub struct TestApp {
    pub addr: SocketAddr,
    pub sidecar: FakeSidecar,
    pub database: TestDatabase,
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("ascii token");
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

pub type Client = TaskServiceClient<InterceptedService<Channel, Bearer>>;

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(ApiLevel::Stable).await
    }

    pub async fn spawn_with(bulk: ApiLevel) -> Self {
        Self::spawn_on(TestDatabase::create().await, bulk).await
    }

    /// Another task-api process (a replica, or the same one restarted) on
    /// an existing database, with its own sidecar.
    pub async fn spawn_on(database: TestDatabase, bulk: ApiLevel) -> Self {
        Self::spawn_relaying(database, bulk, RelayConfig::default().batch_size).await
    }

    /// With relay rounds of at most `batch_size` rows.
    pub async fn spawn_with_batch_size(batch_size: i64) -> Self {
        Self::spawn_relaying(TestDatabase::create().await, ApiLevel::Stable, batch_size).await
    }

    async fn spawn_relaying(database: TestDatabase, bulk: ApiLevel, batch_size: i64) -> Self {
        todo_testing::init_tracing();
        let sidecar = FakeSidecar::start(bulk).await;
        let config = Config {
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
            },
            dapr: DaprConfig {
                grpc_endpoint: sidecar.endpoint(),
                api_token: None,
                app_api_token: None,
                pubsub_name: "pubsub".into(),
            },
            database: database_config(&database.url),
            auth: auth_config(JWT_SECRET),
            watch_pubsub_name: "pubsub".into(),
            watch: Default::default(),
            max_tasks_per_user: MAX_TASKS_PER_USER,
            relay: RelayConfig {
                batch_size,
                poll_interval: Duration::from_millis(50),
                min_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
                ..RelayConfig::default()
            },
        };
        let app = Application::build(config).await.expect("task-api builds");
        let addr = app.local_addr();
        let stop = CancellationToken::new();
        let handle = tokio::spawn({
            let stop = stop.clone();
            async move {
                app.run_until_stopped(stop).await.expect("task-api runs");
            }
        });
        Self {
            addr,
            sidecar,
            database,
            stop,
            handle: Some(handle),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to task-api")
    }

    /// A TaskService client acting as `user`.
    pub async fn client(&self, user: &str) -> Client {
        TaskServiceClient::with_interceptor(self.channel().await, Bearer(Some(tokens::hs256(JWT_SECRET, user, 300))))
    }

    /// A client sending `token` verbatim (None: no header at all).
    pub async fn client_with_token(&self, token: Option<String>) -> Client {
        TaskServiceClient::with_interceptor(self.channel().await, Bearer(token))
    }

    pub async fn app_callback(&self) -> AppCallbackClient<Channel> {
        AppCallbackClient::new(self.channel().await)
    }

    /// The task events the sidecar received, decoded.
    pub async fn wait_for_events(&self, count: usize) -> Vec<TaskEvent> {
        self.sidecar
            .wait_for(count, Duration::from_secs(10))
            .await
            .into_iter()
            .map(|recorded| recorded.decode::<TaskEvent>().expect("a TaskEvent in the wire format"))
            .collect()
    }

    /// Delivers `event` the way the sidecar would, on `task-events`.
    pub fn delivery(topic: &str, event_type: &str, data: Vec<u8>, content_type: &str) -> TopicEventRequest {
        TopicEventRequest {
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

    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("task-api stops cleanly");
        }
    }

    /// Stops the app and hands back its database, for a restart.
    pub async fn stop_keeping_database(mut self) -> TestDatabase {
        self.shutdown().await;
        std::mem::replace(&mut self.database, TestDatabase::placeholder())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn new_task(title: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        title: title.into(),
        ..Default::default()
    }
}

pub async fn create(client: &mut Client, request: CreateTaskRequest) -> Task {
    client
        .create_task(request)
        .await
        .expect("create_task")
        .into_inner()
        .task
        .expect("task in response")
}
