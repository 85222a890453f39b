//! Clients of a running stack's public APIs and endpoints: what a user of
//! the system has, whichever runtime the stack runs on.

use std::time::{Duration, Instant};

use todo_core::dapr::runtime::app_callback_client::AppCallbackClient;
use todo_core::proto::v1::{
    Task, audit_service_client::AuditServiceClient, notification_service_client::NotificationServiceClient,
    task_service_client::TaskServiceClient,
};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// The ports of one app instance and its sidecar endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppPorts {
    pub app: u16,
    pub dapr_grpc: u16,
    pub dapr_http: u16,
}

/// Endpoints of every app instance, the secret the stack's tokens are
/// signed with, and who its users are.
#[derive(Debug, Clone)]
pub struct StackClients {
    pub ports: Vec<(String, AppPorts)>,
    pub jwt_secret: String,
    /// What a sidecar sends to the apps' AppCallback, when they require it.
    pub app_token: Option<String>,
    /// Appended to every user name: empty on a stack of its own; on a
    /// deployment that outlives the stack, one per stack, so each run's
    /// `alice` starts with nothing.
    pub user_suffix: String,
}

/// Sends the app token to an app's AppCallback, as its sidecar does.
#[derive(Clone)]
pub struct AppToken(Option<MetadataValue<Ascii>>);

impl Interceptor for AppToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert(todo_core::dapr::API_TOKEN_HEADER, token.clone());
        }
        Ok(request)
    }
}

/// Sends a user's token, minting a fresh one before the last expires, so
/// clients that run for longer than a token lives (the soak) keep going.
#[derive(Clone)]
pub struct Bearer {
    secret: String,
    user: String,
    header: Option<MetadataValue<Ascii>>,
    minted: Instant,
}

impl Bearer {
    /// Lifetime of each token, and when a new one is minted.
    const TTL_SECS: u64 = 600;
    const RENEW_AFTER: Duration = Duration::from_secs(Self::TTL_SECS / 2);

    pub fn new(secret: &str, user: &str) -> Self {
        Self {
            secret: secret.to_owned(),
            user: user.to_owned(),
            header: Self::header(secret, user),
            minted: Instant::now(),
        }
    }

    /// None for a user id that cannot travel in a header; the call then
    /// goes without a token and is refused as unauthenticated.
    fn header(secret: &str, user: &str) -> Option<MetadataValue<Ascii>> {
        format!("Bearer {}", todo_testing::tokens::hs256(secret, user, Self::TTL_SECS))
            .parse()
            .ok()
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if self.minted.elapsed() >= Self::RENEW_AFTER {
            self.header = Self::header(&self.secret, &self.user);
            self.minted = Instant::now();
        }
        if let Some(header) = &self.header {
            request.metadata_mut().insert("authorization", header.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

impl StackClients {
    /// The ports of app instance `instance` (a service's name, or
    /// `task-api-1` for a second replica).
    ///
    /// # Panics
    /// On an instance the stack does not have: a mistake in the test.
    pub fn port(&self, instance: &str) -> AppPorts {
        self.ports
            .iter()
            .find(|(name, _)| name == instance)
            .map(|(_, ports)| *ports)
            .unwrap_or_else(|| panic!("the stack has no app {instance}"))
    }

    fn app_endpoint(&self, instance: &str) -> Endpoint {
        Endpoint::from_shared(format!("http://127.0.0.1:{}", self.port(instance).app)).expect("a loopback URL is valid")
    }

    /// A channel to `instance`, connected now.
    pub async fn channel(&self, instance: &str) -> Channel {
        self.app_endpoint(instance)
            .connect()
            .await
            .unwrap_or_else(|err| panic!("connect to {instance}: {err}"))
    }

    /// A channel that connects on first use and reconnects after the app
    /// restarts; each call gives up after 20 s.
    pub fn lazy_channel(&self, instance: &str) -> Channel {
        self.app_endpoint(instance)
            .timeout(Duration::from_secs(20))
            .connect_lazy()
    }

    /// The Dapr gRPC endpoint of `instance`'s sidecar, as a URL.
    pub fn sidecar_endpoint(&self, instance: &str) -> String {
        format!("http://127.0.0.1:{}", self.port(instance).dapr_grpc)
    }

    /// A channel to `instance`'s sidecar (its Dapr gRPC API).
    pub async fn sidecar_channel(&self, instance: &str) -> Channel {
        Endpoint::from_shared(self.sidecar_endpoint(instance))
            .expect("a loopback URL is valid")
            .connect()
            .await
            .unwrap_or_else(|err| panic!("connect to {instance}'s sidecar: {err}"))
    }

    /// The id of this stack's user `name` (`alice`, or `alice-<run>` on a
    /// deployment: see [`Self::user_suffix`]); every client below takes
    /// the name and goes as this user.
    pub fn user(&self, name: &str) -> String {
        format!("{name}{}", self.user_suffix)
    }

    /// A token for user `name`, as the stack's services verify them.
    pub fn token(&self, name: &str) -> String {
        todo_testing::tokens::hs256(&self.jwt_secret, &self.user(name), Bearer::TTL_SECS)
    }

    pub fn bearer(&self, name: &str) -> Bearer {
        Bearer::new(&self.jwt_secret, &self.user(name))
    }

    /// `instance`'s AppCallback, called as its sidecar calls it.
    pub async fn app_callback(&self, instance: &str) -> AppCallbackClient<InterceptedService<Channel, AppToken>> {
        let token = self.app_token.as_deref().and_then(|token| token.parse().ok());
        AppCallbackClient::with_interceptor(self.channel(instance).await, AppToken(token))
    }

    /// A lazy channel to `instance` that sends `user`'s token, for clients
    /// that must survive the app restarting.
    pub fn lazy_authed(&self, instance: &str, user: &str) -> Authed {
        InterceptedService::new(self.lazy_channel(instance), self.bearer(user))
    }

    pub async fn tasks(&self, user: &str) -> TaskServiceClient<Authed> {
        TaskServiceClient::with_interceptor(self.channel("task-api").await, self.bearer(user))
    }

    pub async fn audit(&self, user: &str) -> AuditServiceClient<Authed> {
        AuditServiceClient::with_interceptor(self.channel("audit-service").await, self.bearer(user))
    }

    pub async fn notifications(&self, user: &str) -> NotificationServiceClient<Authed> {
        NotificationServiceClient::with_interceptor(self.channel("notification-service").await, self.bearer(user))
    }

    /// As `user`: creates a daily task due tomorrow, completes it (in the
    /// client's trace when given a `traceparent`), and waits until its next
    /// occurrence exists (the whole recurrence flow once). Returns the
    /// completed task.
    pub async fn complete_a_recurring_task(&self, user: &str, title: &str, traceparent: Option<&str>) -> Task {
        use todo_core::proto::v1::{CompleteTaskRequest, CreateTaskRequest, Frequency, ListTasksRequest, Recurrence};
        let mut tasks = self.tasks(user).await;
        let task = tasks
            .create_task(CreateTaskRequest {
                title: title.into(),
                due_at: Some(todo_core::timestamps::to_proto(
                    todo_core::timestamps::now() + chrono::Duration::days(1),
                )),
                recurrence: Some(Recurrence {
                    frequency: Frequency::Daily as i32,
                    interval: 1,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("CreateTask")
            .into_inner()
            .task
            .expect("a task");
        let mut complete = Request::new(CompleteTaskRequest {
            id: task.id.clone(),
            expected_version: 0,
        });
        if let Some(traceparent) = traceparent.and_then(|value| value.parse().ok()) {
            complete.metadata_mut().insert("traceparent", traceparent);
        }
        tasks.complete_task(complete).await.expect("CompleteTask");
        eventually("the next occurrence", Duration::from_secs(30), || {
            let mut client = tasks.clone();
            let id = task.id.clone();
            async move {
                let listed = client
                    .list_tasks(ListTasksRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .tasks;
                listed.iter().any(|other| other.series_id == id).then_some(())
            }
        })
        .await;
        task
    }
}

/// Polls `check` until it returns Some; panics with `what` after `timeout`
/// (a test fixture).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
