//! `TestStack`: the whole system as a user runs it — PostgreSQL, dev-sidecar
//! and the five service binaries it starts from a run file — on free ports,
//! with clients for each public API.
//!
//! The binaries are found next to the `dev-sidecar` binary under test (the
//! same target directory); `cargo nextest run --workspace` or
//! `cargo build --workspace` builds them.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use crate::{ServiceProcess, TestDatabase, free_ports, tokens};
use todo_core::proto::v1::{
    audit_service_client::AuditServiceClient, notification_service_client::NotificationServiceClient,
    task_service_client::TaskServiceClient,
};

/// The dev JWT secret the stack's services verify with.
pub const JWT_SECRET: &str = "e2e-test-secret";

/// The services, in run-file order.
pub const SERVICES: [&str; 5] = [
    "task-api",
    "recurring-service",
    "reminder-service",
    "notification-service",
    "audit-service",
];

/// Ports of one app and its sidecar endpoint.
#[derive(Debug, Clone, Copy)]
pub struct AppPorts {
    pub app: u16,
    pub dapr_grpc: u16,
    pub dapr_http: u16,
}

/// Clients of a running stack's public APIs and endpoints: what a user of
/// the system has, whichever runtime the stack runs on.
#[derive(Debug, Clone)]
pub struct StackClients {
    pub ports: Vec<(&'static str, AppPorts)>,
}

/// What a test can ask of the runtime under a stack, beyond the public APIs.
#[tonic::async_trait]
pub trait Inspect: Send + Sync {
    /// The ids of the events on `topic` (a dead-letter topic), one entry per
    /// dead letter, with the app that gave up on it where the runtime says.
    async fn dead_letters(&self, topic: &str) -> Result<Vec<DeadLetter>, String>;
    /// How many jobs are still scheduled, where the runtime can list them.
    async fn pending_jobs(&self) -> Option<usize>;
    /// Consumer lag per app (or consumer group), topic and partition.
    async fn lag(&self) -> Result<serde_json::Value, String>;
}

/// One event on a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    pub failed_app: Option<String>,
}

pub struct TestStack {
    pub clients: StackClients,
    pub admin_port: u16,
    pub database: TestDatabase,
    pub dir: tempfile::TempDir,
    sidecar: Option<ServiceProcess>,
    sidecar_binary: String,
    sidecar_env: Vec<(String, String)>,
}

/// Sends a test user's token, minting a fresh one before the last expires,
/// so clients that run for longer than a token lives (the soak) keep going.
#[derive(Clone)]
pub struct Bearer {
    user: String,
    header: MetadataValue<tonic::metadata::Ascii>,
    minted: Instant,
}

impl Bearer {
    /// Lifetime of each token, and when a new one is minted.
    const TTL_SECS: u64 = 600;
    const RENEW_AFTER: Duration = Duration::from_secs(Self::TTL_SECS / 2);

    pub fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            header: Self::header(user),
            minted: Instant::now(),
        }
    }

    fn header(user: &str) -> MetadataValue<tonic::metadata::Ascii> {
        format!("Bearer {}", tokens::hs256(JWT_SECRET, user, Self::TTL_SECS))
            .parse()
            .expect("ascii token")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if self.minted.elapsed() >= Self::RENEW_AFTER {
            self.header = Self::header(&self.user);
            self.minted = Instant::now();
        }
        request.metadata_mut().insert("authorization", self.header.clone());
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

impl TestStack {
    /// Starts everything; `sidecar_binary` is `env!("CARGO_BIN_EXE_dev-sidecar")`.
    pub async fn start(sidecar_binary: &str, extra_sidecar_env: &[(&str, &str)]) -> Self {
        crate::init_tracing();
        let bin_dir = Path::new(sidecar_binary).parent().expect("binary directory").to_owned();
        for service in SERVICES {
            assert!(
                bin_dir.join(service).is_file(),
                "{} not built: run `cargo build --workspace` (or `just test`) first",
                bin_dir.join(service).display()
            );
        }
        let database = TestDatabase::create().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut picked = free_ports(SERVICES.len() * 3 + 1).into_iter();
        let mut next = || picked.next().expect("enough ports");
        let ports: Vec<(&'static str, AppPorts)> = SERVICES
            .iter()
            .map(|name| {
                (
                    *name,
                    AppPorts {
                        app: next(),
                        dapr_grpc: next(),
                        dapr_http: next(),
                    },
                )
            })
            .collect();
        let run_file = dir.path().join("dev.yaml");
        std::fs::write(&run_file, run_file_text(&bin_dir, &ports)).expect("write run file");
        let admin_port = next();
        let admin = admin_port.to_string();
        let data_dir = dir.path().join("sidecar");
        let log_level = if std::env::var_os("TEST_LOG").is_some() {
            "info"
        } else {
            "warn"
        };
        // The apps inherit dev-sidecar's environment (as under `dapr run`),
        // so the database and the JWT secret reach every service.
        let mut env = vec![
            ("DEV_SIDECAR_RUN_FILE", run_file.to_str().expect("utf-8 path")),
            ("DEV_SIDECAR_DATA_DIR", data_dir.to_str().expect("utf-8 path")),
            ("DEV_SIDECAR_ADMIN_PORT", admin.as_str()),
            ("DEV_SIDECAR_RUN_APPS", "true"),
            ("DATABASE_URL", database.url.as_str()),
            ("JWT_SECRET", JWT_SECRET),
            ("RUST_LOG", log_level),
        ];
        env.extend_from_slice(extra_sidecar_env);
        let sidecar_env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut stack = Self {
            clients: StackClients { ports },
            admin_port,
            database,
            dir,
            sidecar: None,
            sidecar_binary: sidecar_binary.to_owned(),
            sidecar_env,
        };
        stack.start_sidecar().await;
        stack
    }

    async fn start_sidecar(&mut self) {
        let env: Vec<(&str, &str)> = self.sidecar_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let task_api_dapr = self.clients.ports[0].1.dapr_grpc;
        let sidecar = ServiceProcess::start_on("dev-sidecar", &self.sidecar_binary, task_api_dapr, &env).await;
        self.sidecar = Some(sidecar);
        self.wait_until_subscribed(Duration::from_secs(60)).await;
    }

    /// kill -9 one service (dev-sidecar starts it again), and wait until it
    /// is back.
    pub async fn crash_app(&self, service: &str) {
        self.kill_app(service);
        self.wait_until_restarted(service).await;
    }

    /// kill -9 one service and return at once (dev-sidecar restarts it,
    /// unless it is frozen).
    pub fn kill_app(&self, service: &str) {
        let binary = Path::new(&self.sidecar_binary).parent().expect("bin dir").join(service);
        let pid = std::fs::read_dir("/proc")
            .expect("procfs")
            .flatten()
            .find(|entry| std::fs::read_link(entry.path().join("exe")).ok().as_deref() == Some(binary.as_path()))
            .and_then(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .unwrap_or_else(|| panic!("{service} is not running"));
        let pid = rustix::process::Pid::from_raw(pid).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL");
    }

    /// Freezes dev-sidecar (SIGSTOP): its ports still accept connections but
    /// nothing answers, as with a hung sidecar; nothing is delivered and no
    /// app is restarted until [`Self::thaw_sidecar`].
    pub fn freeze_sidecar(&self) {
        self.sidecar
            .as_ref()
            .expect("sidecar running")
            .signal(rustix::process::Signal::STOP);
    }

    pub fn thaw_sidecar(&self) {
        self.sidecar
            .as_ref()
            .expect("sidecar running")
            .signal(rustix::process::Signal::CONT);
    }

    /// Waits until dev-sidecar has started `service` again after a crash.
    pub async fn wait_until_restarted(&self, service: &str) {
        let port = self.port(service).app;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{service} was not restarted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9 dev-sidecar (its apps get SIGTERM from the kernel), then
    /// start it again on the same data directory and ports.
    pub async fn crash_and_restart_sidecar(&mut self) {
        if let Some(sidecar) = self.sidecar.take() {
            sidecar.kill().await;
        }
        // The apps release their ports as they stop.
        for (_, ports) in &self.clients.ports {
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", ports.app)).is_ok() {
                assert!(Instant::now() < deadline, "an app outlived its sidecar");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.start_sidecar().await;
    }

    /// Waits until every app has declared its subscriptions to the sidecar,
    /// which also means every app is up.
    async fn wait_until_subscribed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(subscriptions) = self.inspect("/subscriptions").await {
                let apps: std::collections::BTreeSet<String> = subscriptions
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|sub| sub["app"].as_str().map(str::to_owned))
                    .collect();
                if SERVICES.iter().all(|service| apps.contains(*service)) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the stack did not come up within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET on dev-sidecar's inspection surface.
    pub async fn inspect(&self, path_and_query: &str) -> Result<serde_json::Value, String> {
        get_json(self.admin_port, path_and_query).await
    }

    /// Stops dev-sidecar (which stops the apps) and checks it exits cleanly.
    pub async fn stop(mut self) {
        if let Some(sidecar) = self.sidecar.take() {
            let code = sidecar.terminate(Duration::from_secs(30)).await;
            assert_eq!(code, Some(0), "dev-sidecar exits cleanly, apps included");
        }
    }
}

impl StackClients {
    /// As `user`: creates a daily task due tomorrow, completes it, and waits
    /// until its next occurrence exists (the whole recurrence flow once).
    /// Returns the completed task.
    pub async fn complete_a_recurring_task(&self, user: &str, title: &str) -> todo_core::proto::v1::Task {
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
        tasks
            .complete_task(CompleteTaskRequest {
                id: task.id.clone(),
                expected_version: 0,
            })
            .await
            .expect("CompleteTask");
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

    pub fn port(&self, service: &str) -> AppPorts {
        self.ports
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, ports)| *ports)
            .expect("known service")
    }

    pub async fn channel(&self, service: &str) -> Channel {
        self.app_endpoint(service).connect().await.expect("connect to service")
    }

    fn app_endpoint(&self, service: &str) -> tonic::transport::Endpoint {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port(service).app)).expect("valid uri")
    }

    /// A channel that connects on first use and reconnects after the
    /// service restarts; each call gives up after 20 s.
    pub fn lazy_channel(&self, service: &str) -> Channel {
        self.app_endpoint(service)
            .timeout(Duration::from_secs(20))
            .connect_lazy()
    }

    /// A channel to `service`'s Dapr endpoint on dev-sidecar.
    pub async fn sidecar_channel(&self, service: &str) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port(service).dapr_grpc))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to dev-sidecar")
    }

    /// The Dapr gRPC endpoint of `service` on dev-sidecar, as a URL.
    pub fn sidecar_endpoint(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", self.port(service).dapr_grpc)
    }

    pub fn token(user: &str) -> String {
        tokens::hs256(JWT_SECRET, user, Bearer::TTL_SECS)
    }

    /// A lazy channel to `service` that sends `user`'s token, for clients
    /// that must survive the service restarting.
    pub fn lazy_authed(&self, service: &str, user: &str) -> Authed {
        InterceptedService::new(self.lazy_channel(service), Bearer::new(user))
    }

    pub async fn tasks(&self, user: &str) -> TaskServiceClient<Authed> {
        TaskServiceClient::with_interceptor(self.channel("task-api").await, Bearer::new(user))
    }

    pub async fn audit(&self, user: &str) -> AuditServiceClient<Authed> {
        AuditServiceClient::with_interceptor(self.channel("audit-service").await, Bearer::new(user))
    }

    pub async fn notifications(&self, user: &str) -> NotificationServiceClient<Authed> {
        NotificationServiceClient::with_interceptor(self.channel("notification-service").await, Bearer::new(user))
    }
}

impl std::ops::Deref for TestStack {
    type Target = StackClients;

    fn deref(&self) -> &StackClients {
        &self.clients
    }
}

#[tonic::async_trait]
impl Inspect for TestStack {
    async fn dead_letters(&self, topic: &str) -> Result<Vec<DeadLetter>, String> {
        let letters = self.inspect(&format!("/dead-letters?topic={topic}")).await?;
        Ok(letters
            .as_array()
            .into_iter()
            .flatten()
            .map(|letter| DeadLetter {
                id: letter["id"].as_str().unwrap_or_default().to_owned(),
                failed_app: letter["failed_app"].as_str().map(str::to_owned),
            })
            .collect())
    }

    async fn pending_jobs(&self) -> Option<usize> {
        Some(self.inspect("/jobs").await.ok()?.as_array()?.len())
    }

    async fn lag(&self) -> Result<serde_json::Value, String> {
        self.inspect("/lag").await
    }
}

/// On dev-sidecar: each app killed (dev-sidecar restarts it), dev-sidecar
/// itself killed and restarted on its data, PostgreSQL crashed for 3 s
/// when the cluster is the test's own.
#[tonic::async_trait]
impl crate::soak::Faults for TestStack {
    fn runtime(&self) -> &'static str {
        "dev-sidecar"
    }

    fn faults(&self) -> Vec<String> {
        let mut faults: Vec<String> = SERVICES[1..]
            .iter()
            .chain(&SERVICES[..1])
            .map(|s| (*s).to_owned())
            .collect();
        faults.push("dev-sidecar".to_owned());
        if self.database.owns_server() {
            faults.push("postgresql".to_owned());
        }
        faults
    }

    async fn inject(&mut self, fault: &str) {
        match fault {
            "dev-sidecar" => self.crash_and_restart_sidecar().await,
            "postgresql" => {
                self.database.crash_server();
                tokio::time::sleep(Duration::from_secs(3)).await;
                self.database.restart_server();
            }
            app => self.crash_app(app).await,
        }
    }
}

fn run_file_text(bin_dir: &Path, ports: &[(&str, AppPorts)]) -> String {
    let mut text = String::from("version: 1\ncommon:\n  appProtocol: grpc\napps:\n");
    for (name, port) in ports {
        let binary: PathBuf = bin_dir.join(name);
        text.push_str(&format!(
            "  - appID: {name}\n    command: [\"{}\"]\n    appPort: {}\n    daprGRPCPort: {}\n    daprHTTPPort: {}\n",
            binary.display(),
            port.app,
            port.dapr_grpc,
            port.dapr_http
        ));
    }
    text
}

/// Polls `check` until it returns Some; panics with `what` after `timeout`.
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

/// GET `path_and_query` on 127.0.0.1:`port` (plain HTTP/1.1) and parse the
/// body as JSON: enough for dev-sidecar's inspection surface.
pub async fn get_json(port: u16, path_and_query: &str) -> Result<serde_json::Value, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|err| err.to_string())?;
    let request = format!("GET {path_and_query} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    socket
        .write_all(request.as_bytes())
        .await
        .map_err(|err| err.to_string())?;
    let mut response = String::new();
    socket
        .read_to_string(&mut response)
        .await
        .map_err(|err| err.to_string())?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    serde_json::from_str(body).map_err(|err| format!("{err}: {response}"))
}
