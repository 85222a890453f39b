//! [`Stack`]: the system running on a runtime, started from a [`Plan`].
//! Everything a test, a launcher or the load test does with it: clients,
//! faults, inspection, supervision and an orderly stop.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use real_runtime::{jaeger::Jaeger, kafka::Kafka};
use supervisor::{Proc, Signal, Spec};
use todo_core::dapr::runtime::{GetMetadataRequest, dapr_client::DaprClient};
use todo_testing::TestDatabase;
use tonic::transport::Channel;

use crate::{
    clients::StackClients,
    cluster::Deployment,
    dev_sidecar,
    error::StackError,
    plan::{Apps, Database, Plan, StackOptions, Tokens},
    real::RealRuntime,
    runtime::Runtime,
};

/// How long the stack waits for its processes to come up.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// One event on a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    /// The app that gave up on it, where the runtime records it.
    pub failed_app: Option<String>,
}

/// The sidecars of the stack, by runtime.
enum Sidecars {
    DevSidecar(Proc),
    Daprd(Box<RealRuntime>),
    /// The cluster's, reached through the deployment's port-forwards.
    Cluster(Box<Deployment>),
}

/// The system, running.
pub struct Stack {
    pub runtime: Runtime,
    pub clients: StackClients,
    /// The services' database (None for external apps).
    pub database: Option<TestDatabase>,
    pub plan: Plan,
    tokens: Tokens,
    /// One per app instance, in the plan's order; None for apps the caller
    /// serves.
    apps: Vec<Option<Proc>>,
    sidecars: Sidecars,
    jaeger: Option<Jaeger>,
}

impl StackOptions {
    /// Plans and starts.
    pub async fn start(self) -> Result<Stack, StackError> {
        self.plan()?.start().await
    }
}

impl Plan {
    /// Starts everything the plan names and waits until every app is
    /// subscribed through its sidecar.
    pub async fn start(self) -> Result<Stack, StackError> {
        match self.options.runtime {
            Runtime::Cluster => Stack::deployed(self).await,
            Runtime::DevSidecar | Runtime::Daprd => Stack::launched(self).await,
        }
    }
}

impl Stack {
    /// Starts every process of `plan`'s stack on this machine.
    async fn launched(plan: Plan) -> Result<Self, StackError> {
        let database = match &plan.options.database {
            Database::None => None,
            Database::ThrowAway => Some(TestDatabase::create().await),
            Database::Local { port } => Some(todo_testing::postgres::local_server(*port).await),
            Database::Url(url) => Some(TestDatabase::existing(url)),
        };
        let tokens = plan.options.tokens.clone();
        let jaeger = if plan.options.jaeger {
            let installed = real_runtime::Installed::locate().map_err(real_runtime::RuntimeError::from)?;
            Some(Jaeger::start(&installed, plan.infra.jaeger, plan.output("jaeger", 2)).await?)
        } else {
            None
        };
        let otlp = jaeger.as_ref().map(Jaeger::otlp_endpoint);
        let sidecars = match plan.options.runtime {
            Runtime::DevSidecar => Sidecars::DevSidecar(dev_sidecar::start(&plan, &tokens, otlp.as_deref()).await?),
            Runtime::Daprd => Sidecars::Daprd(Box::new(RealRuntime::start(&plan, otlp.clone()).await?)),
            Runtime::Cluster => {
                return Err(StackError::NotOnThisRuntime {
                    what: "a process to launch".into(),
                    runtime: Runtime::Cluster,
                });
            }
        };
        let jwt_secret = plan
            .apps
            .iter()
            .find_map(|app| app.env.get("JWT_SECRET").cloned())
            .unwrap_or_else(|| todo_core::auth::jwt::DEV_SECRET.to_owned());
        let mut stack = Self {
            runtime: plan.options.runtime,
            clients: StackClients {
                ports: plan.apps.iter().map(|app| (app.instance.clone(), app.ports)).collect(),
                jwt_secret,
                app_token: tokens.app.clone(),
                user_suffix: String::new(),
            },
            database,
            tokens,
            apps: plan.apps.iter().map(|_| None).collect(),
            sidecars,
            jaeger,
            plan,
        };
        for index in 0..stack.plan.apps.len() {
            stack.start_app_process(index, otlp.as_deref())?;
            if let Sidecars::Daprd(real) = &mut stack.sidecars {
                real.start_daprd(&stack.plan, index, &stack.tokens).await?;
            }
        }
        stack.wait_until_ready().await?;
        Ok(stack)
    }

    /// The system deployed on the cluster kubectl points at, reached
    /// through port-forwards; ready when every sidecar holds its app's
    /// subscriptions. Its users are this stack's own (`alice` becomes
    /// `alice-<run>`), as the deployment outlives the stack and keeps every
    /// earlier run's data.
    async fn deployed(plan: Plan) -> Result<Self, StackError> {
        let deployment = Deployment::connect(&plan).await?;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let stack = Self {
            runtime: Runtime::Cluster,
            clients: StackClients {
                ports: deployment.ports.clone(),
                jwt_secret: deployment.jwt_secret.clone(),
                app_token: deployment.tokens.app.clone(),
                user_suffix: format!("-{}", &run[..12]),
            },
            database: None,
            tokens: deployment.tokens.clone(),
            apps: plan.apps.iter().map(|_| None).collect(),
            sidecars: Sidecars::Cluster(Box::new(deployment)),
            jaeger: None,
            plan,
        };
        stack.wait_until_ready().await?;
        Ok(stack)
    }

    /// The environment of app instance `index`, later wins: the run file's,
    /// quiet logs in log files, the plan's extra variables, the database,
    /// span export, the tokens, then what daprd gives every app.
    fn app_spec(&self, index: usize, otlp: Option<&str>) -> Option<Spec> {
        let app = &self.plan.apps[index];
        let command = app.command.as_ref()?;
        let mut spec = Spec::new(
            &app.instance,
            &command.program,
            self.plan.output(&app.instance, index + 3),
        )
        .args(command.args.clone());
        spec.dir = Some(command.dir.clone());
        for (key, value) in &app.env {
            spec = spec.env(key, value.clone());
        }
        if let Some(level) = self.plan.quiet_logs() {
            spec = spec.env("RUST_LOG", level);
        }
        for (key, value) in &self.plan.options.env {
            spec = spec.env(key, value.clone());
        }
        if let Some(database) = &self.database {
            spec = spec.env("DATABASE_URL", database.url.clone());
        }
        if let Some(endpoint) = otlp {
            spec = spec.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
        }
        if self.runtime == Runtime::Daprd && app.app_id == "task-api" {
            // As in k8s: WatchTasks through the per-instance broadcast component.
            spec = spec.env("WATCH_PUBSUB_NAME", "pubsub-broadcast");
        }
        if let Some(token) = &self.tokens.app {
            spec = spec.env("APP_API_TOKEN", token.clone());
        }
        if let Some(token) = &self.tokens.api {
            spec = spec.env("DAPR_API_TOKEN", token.clone());
        }
        Some(
            spec.env("APP_ID", app.app_id.clone())
                .env("APP_HOST", "127.0.0.1")
                .env("APP_PORT", app.ports.app.to_string())
                .env("DAPR_GRPC_PORT", app.ports.dapr_grpc.to_string())
                .env("DAPR_HTTP_PORT", app.ports.dapr_http.to_string()),
        )
    }

    fn start_app_process(&mut self, index: usize, otlp: Option<&str>) -> Result<(), StackError> {
        if let Some(spec) = self.app_spec(index, otlp) {
            self.apps[index] = Some(Proc::start(spec)?);
        }
        Ok(())
    }

    /// Every sidecar healthy, every app's subscriptions read, and on daprd
    /// every consumer group consuming (a group that joins late would miss
    /// what WatchTasks streams, which starts at the newest offset).
    async fn wait_until_ready(&self) -> Result<(), StackError> {
        if let Sidecars::Daprd(real) = &self.sidecars {
            real.wait_until_healthy(START_TIMEOUT).await?;
        }
        let services = matches!(self.plan.options.apps, Apps::Services);
        let deadline = Instant::now() + START_TIMEOUT;
        for app in &self.plan.apps {
            loop {
                match self.metadata_subscriptions(&app.instance).await {
                    Some(count) if count > 0 || !services => break,
                    _ if Instant::now() > deadline => {
                        return Err(self.timeout(&format!("{}'s subscriptions read by its sidecar", app.instance)));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        if let Sidecars::Daprd(real) = &self.sidecars {
            if services {
                let mut groups: Vec<String> = Vec::new();
                for app in &self.plan.apps {
                    if !groups.contains(&app.app_id) {
                        groups.push(app.app_id.clone());
                    }
                    if app.app_id == "task-api" {
                        groups.push(app.pod_name.clone());
                    }
                }
                real.kafka.wait_until_consuming(&groups, START_TIMEOUT).await?;
            } else {
                // daprd subscribes to Kafka after reading the app's
                // subscriptions; the consumer group joins shortly after.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Ok(())
    }

    fn timeout(&self, what: &str) -> StackError {
        StackError::Timeout {
            what: what.to_owned(),
            seconds: START_TIMEOUT.as_secs(),
            logs: self.logs(),
        }
    }

    /// How many subscriptions `instance`'s sidecar holds for its app, if
    /// the sidecar answers `GetMetadata`.
    pub async fn metadata_subscriptions(&self, instance: &str) -> Option<usize> {
        let channel = Channel::from_shared(self.clients.sidecar_endpoint(instance))
            .ok()?
            .connect()
            .await
            .ok()?;
        let mut request = tonic::Request::new(GetMetadataRequest {});
        if let Some(token) = &self.tokens.api {
            request
                .metadata_mut()
                .insert(todo_core::dapr::API_TOKEN_HEADER, token.parse().ok()?);
        }
        let response = DaprClient::new(channel).get_metadata(request).await.ok()?;
        Some(response.into_inner().subscriptions.len())
    }

    fn index(&self, instance: &str) -> Result<usize, StackError> {
        self.plan
            .apps
            .iter()
            .position(|app| app.instance == instance)
            .ok_or_else(|| StackError::UnknownApp(instance.to_owned()))
    }

    fn otlp(&self) -> Option<String> {
        self.jaeger.as_ref().map(Jaeger::otlp_endpoint)
    }

    // ------------------------------------------------------------ faults

    /// kill -9 app `instance` and leave it down.
    pub fn kill_app(&mut self, instance: &str) -> Result<(), StackError> {
        let index = self.index(instance)?;
        if let Some(app) = &mut self.apps[index] {
            app.kill();
        }
        Ok(())
    }

    /// Starts app `instance` again (after [`Self::kill_app`]) and waits
    /// until it listens.
    pub async fn start_app(&mut self, instance: &str) -> Result<(), StackError> {
        let index = self.index(instance)?;
        let otlp = self.otlp();
        match &mut self.apps[index] {
            Some(app) => app.restart()?,
            None => self.start_app_process(index, otlp.as_deref())?,
        }
        supervisor::wait_for_port(instance, self.plan.apps[index].ports.app, Duration::from_secs(30)).await?;
        Ok(())
    }

    /// kill -9 app `instance`, start it again, wait until it listens.
    pub async fn crash_app(&mut self, instance: &str) -> Result<(), StackError> {
        self.kill_app(instance)?;
        self.start_app(instance).await
    }

    /// kill -9 `instance`'s sidecar and start it again: its daprd, or the
    /// whole dev-sidecar (which serves every app) on the same data.
    pub async fn crash_sidecar(&mut self, instance: &str) -> Result<(), StackError> {
        let index = self.index(instance)?;
        match &mut self.sidecars {
            Sidecars::DevSidecar(proc) => {
                proc.kill();
                proc.restart()?;
                dev_sidecar::wait_listening(&self.plan).await?;
                self.wait_until_ready().await
            }
            Sidecars::Daprd(real) => {
                if let Some(daprd) = real.daprd_mut(index) {
                    daprd.crash_and_restart().await?;
                }
                Ok(())
            }
            Sidecars::Cluster(_) => Err(self.not_here("a sidecar process")),
        }
    }

    fn sidecar_proc(&self, instance: &str) -> Result<&Proc, StackError> {
        let index = self.index(instance)?;
        match &self.sidecars {
            Sidecars::DevSidecar(proc) => Ok(proc),
            Sidecars::Daprd(real) => real
                .daprd(index)
                .map(|daprd| &daprd.proc)
                .ok_or_else(|| StackError::UnknownApp(instance.to_owned())),
            Sidecars::Cluster(_) => Err(self.not_here("a sidecar process")),
        }
    }

    /// Freezes `instance`'s sidecar (SIGSTOP; on dev-sidecar, every app's):
    /// its ports accept connections but nothing answers, as with a hung
    /// sidecar, until [`Self::thaw_sidecar`].
    pub fn freeze_sidecar(&self, instance: &str) -> Result<(), StackError> {
        self.sidecar_proc(instance)?.signal(Signal::STOP);
        Ok(())
    }

    pub fn thaw_sidecar(&self, instance: &str) -> Result<(), StackError> {
        self.sidecar_proc(instance)?.signal(Signal::CONT);
        Ok(())
    }

    /// The first half of a rolling restart, as Kubernetes replaces a pod:
    /// SIGTERM to the app (it drains through its sidecar), then to its
    /// daprd (which leaves the consumer group, so the group rebalances).
    pub async fn terminate(&mut self, instance: &str) -> Result<(), StackError> {
        let index = self.index(instance)?;
        if let Some(app) = &mut self.apps[index] {
            app.stop(Duration::from_secs(20)).await;
        }
        if let Sidecars::Daprd(real) = &mut self.sidecars
            && let Some(daprd) = real.daprd_mut(index)
        {
            daprd.proc.stop(Duration::from_secs(20)).await;
        }
        Ok(())
    }

    /// The second half: the sidecar and the app started again, back when
    /// the sidecar reports healthy (which needs the app).
    pub async fn start_terminated(&mut self, instance: &str) -> Result<(), StackError> {
        let index = self.index(instance)?;
        if let Sidecars::Daprd(real) = &mut self.sidecars
            && let Some(daprd) = real.daprd_mut(index)
        {
            daprd.proc.restart()?;
        }
        self.start_app(instance).await?;
        if let Sidecars::Daprd(real) = &self.sidecars
            && let Some(daprd) = real.daprd(index)
        {
            daprd.wait_until_healthy(Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    /// kill -9 the Kafka broker, wait `down_for`, start it on the same log.
    pub async fn crash_broker(&mut self, down_for: Duration) -> Result<(), StackError> {
        let runtime = self.runtime;
        let kafka = self.kafka_mut().ok_or(StackError::NotOnThisRuntime {
            what: "a Kafka broker".into(),
            runtime,
        })?;
        Ok(kafka.crash_and_restart(down_for).await?)
    }

    /// kill -9 the Dapr Scheduler, wait `down_for`, start it on its data.
    pub async fn crash_scheduler(&mut self, down_for: Duration) -> Result<(), StackError> {
        match &mut self.sidecars {
            Sidecars::Daprd(real) => Ok(real.scheduler.crash_and_restart(down_for).await?),
            Sidecars::DevSidecar(_) | Sidecars::Cluster(_) => Err(self.not_here("the Dapr Scheduler process")),
        }
    }

    /// Crashes PostgreSQL (`pg_ctl -m immediate`) for `down_for`, when the
    /// stack started the server itself.
    pub async fn crash_database(&self, down_for: Duration) -> Result<(), StackError> {
        let database =
            self.database
                .as_ref()
                .filter(|database| database.owns_server())
                .ok_or(StackError::NotOnThisRuntime {
                    what: "a PostgreSQL server of the stack's own".into(),
                    runtime: self.runtime,
                })?;
        database.crash_server();
        tokio::time::sleep(down_for).await;
        database.restart_server();
        Ok(())
    }

    /// The faults [`Self::inject`] knows on this stack, in the order a soak
    /// cycles through them: each consumer then task-api killed; on daprd
    /// also each daprd, the broker and the Scheduler; dev-sidecar itself;
    /// PostgreSQL when the stack owns the server.
    pub fn faults(&self) -> Vec<String> {
        let mut faults = Vec::new();
        if self.runtime == Runtime::Cluster {
            // Faults in the cluster are Kubernetes' own (rollouts, deleted
            // pods): scripts/cluster-rollouts.py.
            return faults;
        }
        let instances: Vec<&str> = self.plan.apps.iter().map(|app| app.instance.as_str()).collect();
        for instance in instances.iter().skip(1).chain(&instances[..1.min(instances.len())]) {
            faults.push((*instance).to_owned());
            if self.runtime == Runtime::Daprd {
                faults.push(format!("daprd/{instance}"));
            }
        }
        match self.runtime {
            Runtime::DevSidecar => faults.push("dev-sidecar".into()),
            Runtime::Daprd => faults.extend(["kafka".to_owned(), "scheduler".to_owned()]),
            Runtime::Cluster => {}
        }
        if self.database.as_ref().is_some_and(TestDatabase::owns_server) {
            faults.push("postgresql".into());
        }
        faults
    }

    /// Injects `fault` (a name from [`Self::faults`]) and returns once what
    /// it broke is back.
    pub async fn inject(&mut self, fault: &str) -> Result<(), StackError> {
        match fault {
            "dev-sidecar" => {
                let first = self.plan.apps[0].instance.clone();
                self.crash_sidecar(&first).await
            }
            "kafka" => self.crash_broker(Duration::from_secs(4)).await,
            "scheduler" => self.crash_scheduler(Duration::from_secs(3)).await,
            "postgresql" => self.crash_database(Duration::from_secs(3)).await,
            other => match other.strip_prefix("daprd/") {
                Some(instance) => self.crash_sidecar(instance).await,
                None => self.crash_app(other).await,
            },
        }
    }

    // --------------------------------------------------------- inspection

    /// The Kafka broker, on daprd.
    pub fn kafka(&self) -> Option<&Kafka> {
        match &self.sidecars {
            Sidecars::Daprd(real) => Some(&real.kafka),
            Sidecars::DevSidecar(_) | Sidecars::Cluster(_) => None,
        }
    }

    fn kafka_mut(&mut self) -> Option<&mut Kafka> {
        match &mut self.sidecars {
            Sidecars::Daprd(real) => Some(&mut real.kafka),
            Sidecars::DevSidecar(_) | Sidecars::Cluster(_) => None,
        }
    }

    pub fn jaeger(&self) -> Option<&Jaeger> {
        self.jaeger.as_ref()
    }

    /// GET on the query API of the Jaeger the stack exports to (its own,
    /// or the cluster's), e.g. `/api/services` or `/api/traces/<id>`.
    pub async fn traces(&self, path_and_query: &str) -> Result<serde_json::Value, StackError> {
        let port = match (&self.jaeger, &self.sidecars) {
            (Some(jaeger), _) => jaeger.ports.query_http,
            (None, Sidecars::Cluster(deployment)) => deployment.jaeger_query,
            (None, _) => return Err(self.not_here("Jaeger (StackOptions::jaeger)")),
        };
        Ok(real_runtime::jaeger::query(port, path_and_query).await?)
    }

    /// How many instances of app `app_id` run (a Deployment's ready pods on
    /// the cluster): task-api's each consume task-events in a group of their
    /// own, for WatchTasks.
    pub async fn instances(&self, app_id: &str) -> Result<usize, StackError> {
        match &self.sidecars {
            Sidecars::Cluster(deployment) => deployment.ready_replicas(app_id).await,
            Sidecars::DevSidecar(_) | Sidecars::Daprd(_) => {
                Ok(self.plan.apps.iter().filter(|app| app.app_id == app_id).count())
            }
        }
    }

    /// The token the sidecars require from a caller of the Dapr API, when
    /// the stack has one.
    pub fn api_token(&self) -> Option<String> {
        self.tokens.api.clone()
    }

    fn not_here(&self, what: &str) -> StackError {
        StackError::NotOnThisRuntime {
            what: what.into(),
            runtime: self.runtime,
        }
    }

    /// GET on dev-sidecar's inspection surface (topics, lag, dead letters,
    /// jobs, subscriptions).
    pub async fn sidecar_admin(&self, path_and_query: &str) -> Result<serde_json::Value, StackError> {
        match self.runtime {
            Runtime::DevSidecar => dev_sidecar::admin_get(self.plan.infra.admin, path_and_query).await,
            Runtime::Daprd | Runtime::Cluster => Err(self.not_here("dev-sidecar's inspection surface")),
        }
    }

    /// The events on dead-letter topic `topic`.
    pub async fn dead_letters(&self, topic: &str) -> Result<Vec<DeadLetter>, StackError> {
        match &self.sidecars {
            Sidecars::DevSidecar(_) => {
                let letters = self.sidecar_admin(&format!("/dead-letters?topic={topic}")).await?;
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
            Sidecars::Daprd(real) => {
                let all = real.kafka.dead_letters()?;
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
            Sidecars::Cluster(deployment) => deployment.dead_letters(topic).await,
        }
    }

    /// How many jobs are still scheduled, where the runtime can list them
    /// (dev-sidecar).
    pub async fn pending_jobs(&self) -> Option<usize> {
        Some(self.sidecar_admin("/jobs").await.ok()?.as_array()?.len())
    }

    /// Consumer lag per app (or consumer group), topic and partition.
    pub async fn lag(&self) -> Result<serde_json::Value, StackError> {
        match &self.sidecars {
            Sidecars::DevSidecar(_) => self.sidecar_admin("/lag").await,
            Sidecars::Daprd(real) => Ok(real.kafka.lag()?),
            Sidecars::Cluster(_) => Err(self.not_here("consumer lag (kubectl exec into kafka-0)")),
        }
    }

    /// Every process of the stack with its pid: apps by instance,
    /// `dev-sidecar` or `daprd <instance>`, `kafka`, `scheduler`, `jaeger`.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut pids = Vec::new();
        for (app, proc) in self.plan.apps.iter().zip(&self.apps) {
            if let Some(pid) = proc.as_ref().and_then(Proc::pid) {
                pids.push((app.instance.clone(), pid));
            }
        }
        for proc in self.sidecar_procs() {
            if let Some(pid) = proc.pid() {
                pids.push((proc.spec.name.clone(), pid));
            }
        }
        if let Some(pid) = self.jaeger.as_ref().and_then(|jaeger| jaeger.proc.pid()) {
            pids.push(("jaeger".into(), pid));
        }
        pids
    }

    fn sidecar_procs(&self) -> Vec<&Proc> {
        match &self.sidecars {
            Sidecars::DevSidecar(proc) => vec![proc],
            Sidecars::Daprd(real) => {
                let mut procs: Vec<&Proc> = real.daprds.iter().flatten().map(|daprd| &daprd.proc).collect();
                procs.push(&real.kafka.proc);
                procs.push(&real.scheduler.proc);
                procs
            }
            Sidecars::Cluster(_) => Vec::new(),
        }
    }

    /// Everything `instance`'s sidecar has logged so far (with log files).
    pub fn sidecar_log(&self, instance: &str) -> String {
        self.sidecar_proc(instance)
            .map(|proc| proc.log_tail(usize::MAX))
            .unwrap_or_default()
    }

    /// The tail of every process's log file, for a failing assertion.
    pub fn logs(&self) -> String {
        logs_in(self.plan.dir())
    }

    // ----------------------------------------------- supervision and stop

    /// Brings back any process of the stack that exits, until Ctrl-C or
    /// SIGTERM (the launchers).
    pub async fn supervise(&mut self, say: impl Fn(&str)) {
        let stop = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut terminate) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        let mut procs: Vec<&mut Proc> = self.apps.iter_mut().flatten().collect();
        match &mut self.sidecars {
            Sidecars::DevSidecar(proc) => procs.push(proc),
            Sidecars::Daprd(real) => {
                procs.extend(real.daprds.iter_mut().flatten().map(|daprd| &mut daprd.proc));
                procs.push(&mut real.kafka.proc);
                procs.push(&mut real.scheduler.proc);
            }
            Sidecars::Cluster(_) => {}
        }
        if let Some(jaeger) = &mut self.jaeger {
            procs.push(&mut jaeger.proc);
        }
        supervisor::keep_running(procs, stop, say).await;
    }

    /// Stops everything in order: the apps first (they drain through their
    /// sidecars), then the sidecars, then Kafka, the Scheduler and Jaeger.
    /// Fails when an app or dev-sidecar did not exit cleanly.
    pub async fn stop(mut self) -> Result<(), StackError> {
        let mut unclean = Vec::new();
        let (names, mut apps): (Vec<String>, Vec<&mut Proc>) = self
            .plan
            .apps
            .iter()
            .zip(&mut self.apps)
            .filter_map(|(app, proc)| Some((app.instance.clone(), proc.as_mut()?)))
            .unzip();
        let codes = supervisor::stop_all(&mut apps, Duration::from_secs(20)).await;
        for (name, code) in names.into_iter().zip(codes) {
            if code != Some(0) {
                unclean.push((name, code));
            }
        }
        match &mut self.sidecars {
            Sidecars::DevSidecar(proc) => {
                let code = proc.stop(Duration::from_secs(30)).await;
                if code != Some(0) {
                    unclean.push(("dev-sidecar".to_owned(), code));
                }
            }
            Sidecars::Daprd(real) => {
                let mut daprds: Vec<&mut Proc> =
                    real.daprds.iter_mut().flatten().map(|daprd| &mut daprd.proc).collect();
                supervisor::stop_all(&mut daprds, Duration::from_secs(10)).await;
                real.scheduler.proc.stop(Duration::from_secs(10)).await;
                real.kafka.proc.stop(Duration::from_secs(20)).await;
            }
            Sidecars::Cluster(deployment) => deployment.stop().await,
        }
        if let Some(jaeger) = &mut self.jaeger {
            jaeger.proc.stop(Duration::from_secs(10)).await;
        }
        if unclean.is_empty() {
            Ok(())
        } else {
            Err(StackError::UncleanExit(unclean))
        }
    }
}

impl std::ops::Deref for Stack {
    type Target = StackClients;

    fn deref(&self) -> &StackClients {
        &self.clients
    }
}

/// The tail of every `*.log` file in `dir`.
fn logs_in(dir: &Path) -> String {
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
