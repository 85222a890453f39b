//! Sidecars for apps that run inside a test process, on either runtime:
//! dev-sidecar (one process serving every app) or the real runtime (Kafka,
//! the Scheduler and one daprd per app). The conformance suite drives both
//! through the same calls and expects the same outcomes.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use todo_core::dapr::runtime::{GetMetadataRequest, dapr_client::DaprClient};
use todo_testing::free_ports;
use tonic::transport::Channel;

use crate::{
    daprd::{Daprd, DaprdOptions, DaprdPorts},
    install::Installed,
    kafka::{Kafka, KafkaOptions, Topic},
    process::{Output, Proc, Spec, wait_for_port},
    resources,
    scheduler::{Scheduler, SchedulerPorts},
};

/// Which runtime a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    DevSidecar,
    Daprd,
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::DevSidecar => "dev-sidecar",
            Self::Daprd => "daprd",
        })
    }
}

/// One app, served by the test, and the sidecar endpoints it gets.
#[derive(Debug, Clone)]
pub struct SidecarApp {
    pub app_id: String,
    pub app_port: u16,
    pub grpc_port: u16,
    pub http_port: u16,
    internal_port: u16,
}

/// How the sidecars treat failures and tokens. Retries are short so that
/// exhausted retries happen within a test.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    pub max_retries: u32,
    pub retry_interval_ms: u64,
    pub app_api_token: Option<String>,
    pub dapr_api_token: Option<String>,
    /// Topics created before the sidecars start, with their partitions
    /// (on dev-sidecar, every new topic gets the most partitions named
    /// here); other topics are created on first use.
    pub topics: Vec<Topic>,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            max_retries: 3,
            retry_interval_ms: 200,
            app_api_token: None,
            dapr_api_token: None,
            topics: Vec::new(),
        }
    }
}

pub struct Sidecars {
    pub kind: RuntimeKind,
    pub apps: Vec<SidecarApp>,
    pub dir: tempfile::TempDir,
    dev_sidecar: Option<Proc>,
    pub kafka: Option<Kafka>,
    pub scheduler: Option<Scheduler>,
    pub daprds: Vec<Daprd>,
}

/// dev-sidecar's binary, next to the test binary's target directory.
pub fn dev_sidecar_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let mut dir = exe.parent().expect("deps/").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join("dev-sidecar");
    assert!(
        binary.is_file(),
        "{} not built: run `cargo build --workspace` first",
        binary.display()
    );
    binary
}

impl Sidecars {
    /// Sidecars for `app_ids` (each app then listens on its `app_port`).
    /// Nothing is asked of the apps until [`Self::connect_apps`].
    pub fn plan(kind: RuntimeKind, app_ids: &[&str]) -> Self {
        todo_testing::init_tracing();
        let mut ports = free_ports(app_ids.len() * 4).into_iter();
        let mut next = || ports.next().expect("enough ports");
        let apps = app_ids
            .iter()
            .map(|app_id| SidecarApp {
                app_id: (*app_id).to_owned(),
                app_port: next(),
                grpc_port: next(),
                http_port: next(),
                internal_port: next(),
            })
            .collect();
        Self {
            kind,
            apps,
            dir: tempfile::tempdir().expect("temp dir"),
            dev_sidecar: None,
            kafka: None,
            scheduler: None,
            daprds: Vec::new(),
        }
    }

    pub fn app(&self, app_id: &str) -> &SidecarApp {
        self.apps
            .iter()
            .find(|app| app.app_id == app_id)
            .unwrap_or_else(|| panic!("unknown app {app_id}"))
    }

    /// The Dapr gRPC endpoint `app_id` talks to, as a URL.
    pub fn endpoint(&self, app_id: &str) -> String {
        format!("http://127.0.0.1:{}", self.app(app_id).grpc_port)
    }

    /// Starts the runtime for apps that already listen, and waits until
    /// every app's sidecar is up and has read the app's subscriptions.
    pub async fn connect_apps(&mut self, options: &SidecarOptions) {
        match self.kind {
            RuntimeKind::DevSidecar => self.start_dev_sidecar(options).await,
            RuntimeKind::Daprd => self.start_real_runtime(options).await,
        }
    }

    async fn start_dev_sidecar(&mut self, options: &SidecarOptions) {
        let mut run_file = String::from("version: 1\ncommon:\n  appProtocol: grpc\napps:\n");
        for app in &self.apps {
            run_file.push_str(&format!(
                "  - appID: {}\n    appPort: {}\n    daprGRPCPort: {}\n    daprHTTPPort: {}\n",
                app.app_id, app.app_port, app.grpc_port, app.http_port
            ));
        }
        let path = self.dir.path().join("run.yaml");
        std::fs::write(&path, run_file).expect("write run file");
        let admin_port = free_ports(1)[0];
        let mut spec = Spec::new("dev-sidecar", dev_sidecar_binary(), self.output("dev-sidecar"))
            .args([
                "--run-file".to_owned(),
                path.display().to_string(),
                "--data-dir".to_owned(),
                self.dir.path().join("sidecar").display().to_string(),
                "--admin-port".to_owned(),
                admin_port.to_string(),
                "--max-retries".to_owned(),
                options.max_retries.to_string(),
                "--retry-initial-ms".to_owned(),
                options.retry_interval_ms.to_string(),
                "--retry-max-ms".to_owned(),
                options.retry_interval_ms.to_string(),
            ])
            .env("RUST_LOG", log_level());
        if let Some(partitions) = options.topics.iter().map(|topic| topic.partitions).max() {
            spec = spec.args(["--partitions".to_owned(), partitions.to_string()]);
        }
        if let Some(token) = &options.app_api_token {
            spec = spec.env("APP_API_TOKEN", token.clone());
        }
        if let Some(token) = &options.dapr_api_token {
            spec = spec.env("DAPR_API_TOKEN", token.clone());
        }
        self.dev_sidecar = Some(Proc::start(spec).expect("start dev-sidecar"));
        for app in &self.apps {
            wait_for_port("dev-sidecar", app.grpc_port, Duration::from_secs(30))
                .await
                .unwrap_or_else(|err| panic!("{err}"));
        }
        self.wait_until_subscribed(options).await;
    }

    async fn start_real_runtime(&mut self, options: &SidecarOptions) {
        let installed = Installed::locate().unwrap_or_else(|err| panic!("{err}"));
        let [
            kafka_port,
            controller_port,
            grpc,
            healthz,
            metrics,
            etcd_client,
            etcd_peer,
        ] = free_ports(7)[..]
        else {
            unreachable!()
        };
        let kafka = Kafka::start(
            &installed,
            &self.dir.path().join("kafka"),
            KafkaOptions {
                port: kafka_port,
                controller_port,
                auto_create_topics: true,
                heap_mb: 384,
            },
            self.output("kafka"),
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        kafka
            .create_topics(&options.topics)
            .unwrap_or_else(|err| panic!("{err}"));
        let scheduler = Scheduler::start(
            &installed,
            &self.dir.path().join("scheduler"),
            SchedulerPorts {
                grpc,
                healthz,
                metrics,
                etcd_client,
                etcd_peer,
            },
            self.output("scheduler"),
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        let resources_dir = self.dir.path().join("resources");
        std::fs::create_dir_all(&resources_dir).expect("resources dir");
        std::fs::write(
            resources_dir.join("pubsub.yaml"),
            resources::test_pubsub("pubsub", &kafka.bootstrap()).expect("render pubsub"),
        )
        .expect("write pubsub");
        std::fs::write(
            resources_dir.join("resiliency.yaml"),
            resources::test_resiliency(options.max_retries, options.retry_interval_ms),
        )
        .expect("write resiliency");
        let config = self.dir.path().join("config.yaml");
        std::fs::write(
            &config,
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: test\nspec:\n  tracing:\n    samplingRate: \"1\"\n",
        )
        .expect("write config");
        for app in self.apps.clone() {
            let daprd = Daprd::start(
                &installed,
                DaprdOptions {
                    app_id: app.app_id.clone(),
                    app_port: Some(app.app_port),
                    ports: DaprdPorts {
                        grpc: app.grpc_port,
                        http: app.http_port,
                        internal_grpc: app.internal_port,
                    },
                    resources: resources_dir.clone(),
                    config: config.clone(),
                    scheduler: scheduler.address(),
                    app_api_token: options.app_api_token.clone(),
                    dapr_api_token: options.dapr_api_token.clone(),
                    app_health_check: false,
                    log_level: std::env::var("REAL_RUNTIME_DAPRD_LOG").unwrap_or_else(|_| "warn".into()),
                    pod_name: format!("{}-0", app.app_id),
                },
                self.output(&format!("daprd-{}", app.app_id)),
                false,
            )
            .await
            .unwrap_or_else(|err| panic!("{err}"));
            self.daprds.push(daprd);
        }
        for daprd in &self.daprds {
            daprd
                .wait_until_healthy(Duration::from_secs(60))
                .await
                .unwrap_or_else(|err| panic!("{err}"));
        }
        self.kafka = Some(kafka);
        self.scheduler = Some(scheduler);
        self.wait_until_subscribed(options).await;
    }

    fn output(&self, name: &str) -> Output {
        Output::File(self.dir.path().join(format!("{name}.log")))
    }

    /// Waits until every app's sidecar reports the app's subscriptions in
    /// `GetMetadata` (apps without subscriptions count once the call answers).
    async fn wait_until_subscribed(&self, options: &SidecarOptions) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for app in &self.apps {
            loop {
                if self.metadata_subscriptions(&app.app_id, options).await.is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: {}'s sidecar never answered GetMetadata\n{}",
                    self.kind,
                    app.app_id,
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // daprd subscribes to Kafka after reading the app's subscriptions;
        // the consumer group joins shortly after.
        if self.kind == RuntimeKind::Daprd {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// How many subscriptions `app_id`'s sidecar holds, if it answers.
    pub async fn metadata_subscriptions(&self, app_id: &str, options: &SidecarOptions) -> Option<usize> {
        let channel = Channel::from_shared(self.endpoint(app_id)).ok()?.connect().await.ok()?;
        let mut request = tonic::Request::new(GetMetadataRequest {});
        if let Some(token) = &options.dapr_api_token {
            request
                .metadata_mut()
                .insert(todo_core::dapr::API_TOKEN_HEADER, token.parse().ok()?);
        }
        let response = DaprClient::new(channel).get_metadata(request).await.ok()?;
        Some(response.into_inner().subscriptions.len())
    }

    /// Every log file of the stack's processes, for a failing assertion.
    pub fn logs(&self) -> String {
        logs_in(self.dir.path())
    }

    /// kill -9 `app_id`'s sidecar and start it again (daprd), or the whole
    /// dev-sidecar (which serves every app).
    pub async fn crash_and_restart_sidecar(&mut self, app_id: &str) {
        match self.kind {
            RuntimeKind::DevSidecar => {
                let sidecar = self.dev_sidecar.as_mut().expect("dev-sidecar running");
                sidecar.restart().expect("restart dev-sidecar");
                wait_for_port("dev-sidecar", self.app(app_id).grpc_port, Duration::from_secs(30))
                    .await
                    .unwrap_or_else(|err| panic!("{err}"));
            }
            RuntimeKind::Daprd => {
                let daprd = self
                    .daprds
                    .iter_mut()
                    .find(|daprd| daprd.options.app_id == app_id)
                    .expect("known app");
                daprd.crash_and_restart().await.unwrap_or_else(|err| panic!("{err}"));
            }
        }
    }
}

/// The tail of every `*.log` file in `dir`.
pub fn logs_in(dir: &Path) -> String {
    let mut out = String::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("--- {} (last 40 lines)\n", path.display()));
        out.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
        out.push('\n');
    }
    out
}

fn log_level() -> &'static str {
    if std::env::var_os("TEST_LOG").is_some() {
        "info"
    } else {
        "warn"
    }
}
