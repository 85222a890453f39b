//! The whole system on the real runtime, as `just dev-dapr` runs it:
//! PostgreSQL, Kafka with the project's topics, the Scheduler, Jaeger, the
//! five service binaries and one daprd per service, on free ports, with
//! the same clients a [`TestStack`](todo_testing::TestStack) gives.

use std::{path::PathBuf, time::Duration};

use todo_testing::{
    DeadLetter, Inspect, StackClients, TestDatabase, free_ports,
    soak::Faults,
    stack::{AppPorts, JWT_SECRET, SERVICES},
};

use crate::{
    daprd::{Daprd, DaprdOptions, DaprdPorts},
    install::Installed,
    jaeger::{Jaeger, JaegerPorts},
    kafka::{Kafka, KafkaOptions, project_topics},
    process::{Output, Proc, Spec, wait_for_port},
    resources::{self, LocalAddresses},
    scheduler::{Scheduler, SchedulerPorts},
    sidecars::logs_in,
};

/// Options for [`RealStack::start`].
#[derive(Debug, Clone, Default)]
pub struct RealStackOptions {
    /// Run Jaeger and export every span (daprd's and the services') to it.
    pub jaeger: bool,
    /// Extra environment for every service.
    pub service_env: Vec<(String, String)>,
    /// Run a second task-api (`task-api-1`, its own daprd, same app id and
    /// consumer group), as a deployment with two replicas.
    pub second_task_api: bool,
}

/// The second task-api's name in [`StackClients`] and its pod name.
pub const SECOND_TASK_API: &str = "task-api-1";

pub struct RealStack {
    pub clients: StackClients,
    pub database: TestDatabase,
    pub dir: tempfile::TempDir,
    pub kafka: Kafka,
    pub scheduler: Scheduler,
    pub jaeger: Option<Jaeger>,
    /// One per instance, in the order of `instances`.
    pub daprds: Vec<Daprd>,
    pub apps: Vec<Proc>,
    /// Every app instance's name: the services, then `task-api-1` if asked for.
    pub instances: Vec<&'static str>,
}

/// The service binaries, next to the test binary's target directory.
pub fn service_binary_dir() -> PathBuf {
    let dev_sidecar = crate::sidecars::dev_sidecar_binary();
    dev_sidecar.parent().expect("target dir").to_owned()
}

impl RealStack {
    pub async fn start(options: RealStackOptions) -> Self {
        todo_testing::init_tracing();
        let installed = Installed::locate().unwrap_or_else(|err| panic!("{err}"));
        let bin_dir = service_binary_dir();
        for service in SERVICES {
            assert!(
                bin_dir.join(service).is_file(),
                "{service} not built: run `cargo build --workspace`"
            );
        }
        let database = TestDatabase::create().await;
        let dir = tempfile::tempdir().expect("temp dir");
        if std::env::var_os("REAL_RUNTIME_KEEP").is_some() {
            eprintln!("real runtime files kept in {}", dir.path().display());
        }
        let output = |name: &str| Output::File(dir.path().join(format!("{name}.log")));
        let mut instances = SERVICES.to_vec();
        if options.second_task_api {
            instances.push(SECOND_TASK_API);
        }
        let mut picked = free_ports(instances.len() * 4 + 7 + 4).into_iter();
        let mut next = || picked.next().expect("enough ports");

        let kafka = Kafka::start(
            &installed,
            &dir.path().join("kafka"),
            KafkaOptions {
                port: next(),
                controller_port: next(),
                auto_create_topics: false,
                heap_mb: 384,
            },
            output("kafka"),
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        kafka
            .create_topics(&project_topics())
            .unwrap_or_else(|err| panic!("{err}"));
        let scheduler = Scheduler::start(
            &installed,
            &dir.path().join("scheduler"),
            SchedulerPorts {
                grpc: next(),
                healthz: next(),
                metrics: next(),
                etcd_client: next(),
                etcd_peer: next(),
            },
            output("scheduler"),
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        let jaeger_ports = JaegerPorts {
            otlp_grpc: next(),
            query_http: next(),
            query_grpc: next(),
            health: next(),
        };
        let jaeger = if options.jaeger {
            Some(
                Jaeger::start(&installed, jaeger_ports, output("jaeger"))
                    .await
                    .unwrap_or_else(|err| panic!("{err}")),
            )
        } else {
            None
        };
        let (resources_dir, config) = resources::render(
            dir.path(),
            &LocalAddresses {
                kafka: kafka.bootstrap(),
                otlp: jaeger.as_ref().map(|_| format!("127.0.0.1:{}", jaeger_ports.otlp_grpc)),
            },
        )
        .unwrap_or_else(|err| panic!("{err}"));

        let mut ports = Vec::new();
        let mut apps = Vec::new();
        let mut daprds = Vec::new();
        let log_level = if std::env::var_os("TEST_LOG").is_some() {
            "info"
        } else {
            "warn"
        };
        for &instance in &instances {
            let (service, pod_name) = match instance {
                SECOND_TASK_API => ("task-api", SECOND_TASK_API.to_owned()),
                service => (service, format!("{service}-0")),
            };
            let app_ports = AppPorts {
                app: next(),
                dapr_grpc: next(),
                dapr_http: next(),
            };
            let internal = next();
            let mut spec = Spec::new(instance, bin_dir.join(service), output(instance))
                .env("APP_ID", service)
                .env("APP_HOST", "127.0.0.1")
                .env("APP_PORT", app_ports.app.to_string())
                .env("DAPR_GRPC_PORT", app_ports.dapr_grpc.to_string())
                .env("DAPR_HTTP_PORT", app_ports.dapr_http.to_string())
                .env("DATABASE_URL", database.url.clone())
                .env("JWT_SECRET", JWT_SECRET)
                .env("RUST_LOG", log_level);
            if service == "task-api" {
                // As in k8s: WatchTasks through the per-instance broadcast component.
                spec = spec.env("WATCH_PUBSUB_NAME", "pubsub-broadcast");
            }
            if let Some(jaeger) = &jaeger {
                spec = spec.env("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint());
            }
            for (key, value) in &options.service_env {
                spec = spec.env(key, value.clone());
            }
            apps.push(Proc::start(spec).unwrap_or_else(|err| panic!("{err}")));
            daprds.push(
                Daprd::start(
                    &installed,
                    DaprdOptions {
                        app_id: service.to_owned(),
                        app_port: Some(app_ports.app),
                        ports: DaprdPorts {
                            grpc: app_ports.dapr_grpc,
                            http: app_ports.dapr_http,
                            internal_grpc: internal,
                        },
                        resources: resources_dir.clone(),
                        config: config.clone(),
                        scheduler: scheduler.address(),
                        app_api_token: None,
                        dapr_api_token: None,
                        app_health_check: true,
                        log_level: std::env::var("REAL_RUNTIME_DAPRD_LOG").unwrap_or_else(|_| "warn".into()),
                        pod_name,
                    },
                    output(&format!("daprd-{instance}")),
                    false,
                )
                .await
                .unwrap_or_else(|err| panic!("{err}")),
            );
            ports.push((instance, app_ports));
        }
        let stack = Self {
            clients: StackClients { ports },
            database,
            dir,
            kafka,
            scheduler,
            jaeger,
            daprds,
            apps,
            instances,
        };
        stack.wait_until_ready().await;
        stack
    }

    async fn wait_until_ready(&self) {
        for daprd in &self.daprds {
            if let Err(err) = daprd.wait_until_healthy(Duration::from_secs(90)).await {
                panic!("{err}\n{}", self.logs());
            }
        }
        // Every consumer group has joined and been given its partitions:
        // the broadcast group starts at the newest offset, so an event
        // published before it joins would never reach a WatchTasks stream.
        let mut groups: Vec<String> = SERVICES.iter().map(|service| (*service).to_owned()).collect();
        groups.push(format!("{}-0", SERVICES[0]));
        if self.instances.contains(&SECOND_TASK_API) {
            groups.push(SECOND_TASK_API.to_owned());
        }
        if let Err(err) = self.kafka.wait_until_consuming(&groups, Duration::from_secs(90)).await {
            panic!("{err}\n{}", self.logs());
        }
    }

    pub fn logs(&self) -> String {
        logs_in(self.dir.path())
    }

    /// Everything `instance`'s daprd has logged so far (at its log level).
    pub fn sidecar_log(&self, instance: &str) -> String {
        self.daprds[self.app_index(instance)].proc.log_tail(usize::MAX)
    }

    fn app_index(&self, instance: &str) -> usize {
        self.instances
            .iter()
            .position(|name| *name == instance)
            .unwrap_or_else(|| panic!("unknown app instance {instance}"))
    }

    /// kill -9 `instance` and start it again; waits until it listens.
    pub async fn crash_app(&mut self, instance: &str) {
        self.kill_app(instance);
        self.start_app(instance).await;
    }

    /// kill -9 `instance`, and leave it down.
    pub fn kill_app(&mut self, instance: &str) {
        let index = self.app_index(instance);
        self.apps[index].kill();
    }

    /// Starts `instance` again (after [`Self::kill_app`]); waits until it
    /// listens.
    pub async fn start_app(&mut self, instance: &str) {
        let index = self.app_index(instance);
        self.apps[index].restart().expect("restart the app");
        let port = self.clients.port(instance).app;
        wait_for_port(instance, port, Duration::from_secs(30))
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    }

    /// kill -9 `instance`'s daprd and start it again.
    pub async fn crash_sidecar(&mut self, instance: &str) {
        let index = self.app_index(instance);
        self.daprds[index]
            .crash_and_restart()
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    }

    /// Freezes `instance`'s daprd (SIGSTOP): its ports accept connections
    /// but nothing answers, as with a hung sidecar, until
    /// [`Self::thaw_sidecar`].
    pub fn freeze_sidecar(&self, instance: &str) {
        self.daprds[self.app_index(instance)]
            .proc
            .signal(rustix::process::Signal::STOP);
    }

    pub fn thaw_sidecar(&self, instance: &str) {
        self.daprds[self.app_index(instance)]
            .proc
            .signal(rustix::process::Signal::CONT);
    }

    /// The first half of a rolling restart, as Kubernetes replaces a pod:
    /// SIGTERM to the app (it drains through its sidecar), then to its
    /// daprd (which leaves the consumer group, so the group rebalances).
    pub fn terminate(&mut self, instance: &str) {
        let index = self.app_index(instance);
        self.apps[index].stop(Duration::from_secs(20));
        self.daprds[index].proc.stop(Duration::from_secs(20));
    }

    /// The second half: daprd and the app started again, back when the
    /// sidecar reports healthy (which needs the app).
    pub async fn start_terminated(&mut self, instance: &str) {
        let index = self.app_index(instance);
        self.daprds[index].proc.restart().expect("start daprd again");
        self.start_app(instance).await;
        if let Err(err) = self.daprds[index].wait_until_healthy(Duration::from_secs(60)).await {
            panic!("{err}");
        }
    }

    /// Stops everything: apps first (they drain through their sidecars),
    /// then the sidecars, then the infrastructure.
    pub fn stop(mut self) {
        for app in &mut self.apps {
            app.stop(Duration::from_secs(20));
        }
        for daprd in &mut self.daprds {
            daprd.proc.stop(Duration::from_secs(10));
        }
        self.scheduler.proc.stop(Duration::from_secs(10));
        self.kafka.proc.stop(Duration::from_secs(20));
    }
}

impl Drop for RealStack {
    fn drop(&mut self) {
        // REAL_RUNTIME_KEEP=1 keeps every process's log for a look after
        // the test (the path is printed at start).
        if std::env::var_os("REAL_RUNTIME_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            let _ = kept.keep();
        }
    }
}

impl std::ops::Deref for RealStack {
    type Target = StackClients;

    fn deref(&self) -> &StackClients {
        &self.clients
    }
}

#[tonic::async_trait]
impl Inspect for RealStack {
    async fn dead_letters(&self, topic: &str) -> Result<Vec<DeadLetter>, String> {
        let all = self.kafka.dead_letters()?;
        Ok(all["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["topic"] == topic)
            .flat_map(|entry| entry["records"].as_array().cloned().unwrap_or_default())
            .map(|record| {
                let value = record["value"].as_str().unwrap_or_default();
                let cloud_event: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
                DeadLetter {
                    id: cloud_event["id"].as_str().unwrap_or_default().to_owned(),
                    // daprd does not record which app gave up.
                    failed_app: None,
                }
            })
            .collect())
    }

    async fn pending_jobs(&self) -> Option<usize> {
        None
    }

    async fn lag(&self) -> Result<serde_json::Value, String> {
        self.kafka.lag()
    }
}

/// On the real runtime: each app killed and restarted with its daprd up,
/// each daprd killed and restarted, PostgreSQL crashed for 3 s (when the
/// cluster is the test's own), the Kafka broker killed for 4 s and the
/// Scheduler for 3 s, each restarted on its own data.
#[tonic::async_trait]
impl Faults for RealStack {
    fn runtime(&self) -> &'static str {
        "daprd"
    }

    fn faults(&self) -> Vec<String> {
        let mut faults = Vec::new();
        for instance in self.instances.iter().skip(1).chain(&self.instances[..1]) {
            faults.push((*instance).to_owned());
            faults.push(format!("daprd/{instance}"));
        }
        faults.push("kafka".to_owned());
        faults.push("scheduler".to_owned());
        if self.database.owns_server() {
            faults.push("postgresql".to_owned());
        }
        faults
    }

    async fn inject(&mut self, fault: &str) {
        match fault {
            "kafka" => self.kafka.crash_and_restart(Duration::from_secs(4)).await,
            "scheduler" => self.scheduler.crash_and_restart(Duration::from_secs(3)).await,
            "postgresql" => {
                self.database.crash_server();
                tokio::time::sleep(Duration::from_secs(3)).await;
                self.database.restart_server();
                Ok(())
            }
            other => {
                match other.strip_prefix("daprd/") {
                    Some(instance) => self.crash_sidecar(instance).await,
                    None => self.crash_app(other).await,
                }
                Ok(())
            }
        }
        .unwrap_or_else(|err| panic!("{fault}: {err}"));
    }
}
