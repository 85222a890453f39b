//! What runs where: the apps (the system's services as `dapr/dev.yaml`
//! describes them, or apps a test serves itself), every port, the state
//! folder and where output goes. A [`Plan`] is made before anything
//! starts, so a test can serve its own apps on the planned ports first.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use real_runtime::{jaeger::JaegerPorts, kafka::Topic, scheduler::SchedulerPorts};
use supervisor::{Output, free_ports, ports::in_use};

use crate::{clients::AppPorts, error::StackError, runtime::Runtime};

/// Which apps the stack runs.
#[derive(Debug, Clone)]
pub enum Apps {
    /// The system's services, with their commands, ports and environment
    /// from the run file.
    Services,
    /// Apps the caller serves itself (conformance tests), by app id: only
    /// their sidecars are started.
    External(Vec<String>),
}

/// Where ports come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Free loopback ports, so stacks run side by side (tests).
    Free,
    /// The run file's ports and the usual ones of Kafka, the Scheduler and
    /// Jaeger (the launchers: what the README and grpcurl examples name).
    RunFile,
}

/// The services' PostgreSQL.
#[derive(Debug, Clone)]
pub enum Database {
    /// No database (apps that need none).
    None,
    /// A fresh database on a throw-away server (`todo_testing::postgres`:
    /// on `DATABASE_URL`'s server when set).
    ThrowAway,
    /// A throw-away server of its own on this port, its `postgres` database
    /// (the launchers).
    Local { port: u16 },
    /// An existing database.
    Url(String),
}

/// Redeliveries before a dead letter, short enough for a test to see them
/// run out. None in [`StackOptions::retries`]: the project's policies.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub max_retries: u32,
    pub interval_ms: u64,
}

/// The `dapr-api-token` values: the sidecar requires `api` from the app,
/// and sends `app` to the app's AppCallback.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub app: Option<String>,
    pub api: Option<String>,
}

impl Tokens {
    /// Fresh random values for both (`just dev-dapr --tokens`).
    pub fn random() -> Self {
        let random = || uuid::Uuid::new_v4().simple().to_string();
        Self {
            app: Some(random()),
            api: Some(random()),
        }
    }
}

/// Everything that decides what a stack is.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub runtime: Runtime,
    pub apps: Apps,
    pub ports: Ports,
    /// The run file describing the services (default `dapr/dev.yaml`).
    pub run_file: PathBuf,
    /// Where the service binaries are; None: where the run file's commands
    /// say (the debug build).
    pub bin_dir: Option<PathBuf>,
    /// The state folder, wiped at start; None: a temporary folder, removed
    /// at the end unless `REAL_RUNTIME_KEEP` is set.
    pub state_dir: Option<PathBuf>,
    /// Output on the terminal, prefixed with each process's name; otherwise
    /// one log file per process in the state folder.
    pub terminal: bool,
    pub database: Database,
    /// Run Jaeger and export every span to it.
    pub jaeger: bool,
    pub tokens: Tokens,
    /// Extra environment for every app and for dev-sidecar (later wins).
    pub env: Vec<(String, String)>,
    /// A second task-api (`task-api-1`, its own daprd, same app id and
    /// consumer group), as a deployment with two replicas (daprd only).
    pub second_task_api: bool,
    /// None: the project's delivery policies (dapr/components/ on daprd,
    /// dev-sidecar's defaults).
    pub retries: Option<Retries>,
    /// Topics created before the sidecars start (external apps; the
    /// services' topics are always the project's).
    pub topics: Vec<Topic>,
}

impl StackOptions {
    /// The five services on `runtime` on free ports, quiet, with a fresh
    /// database: what the system tests start.
    pub fn services(runtime: Runtime) -> Self {
        Self {
            runtime,
            apps: Apps::Services,
            ports: Ports::Free,
            run_file: repo_dir().join("dapr/dev.yaml"),
            bin_dir: Some(binaries_beside_this_program()),
            state_dir: None,
            terminal: false,
            database: Database::ThrowAway,
            jaeger: false,
            tokens: Tokens::default(),
            env: Vec::new(),
            second_task_api: false,
            retries: None,
            topics: Vec::new(),
        }
    }

    /// Sidecars on `runtime` for apps the caller serves itself, with short
    /// retries: what the conformance tests start.
    pub fn external_apps(runtime: Runtime, app_ids: &[&str]) -> Self {
        Self {
            apps: Apps::External(app_ids.iter().map(|id| (*id).to_owned()).collect()),
            database: Database::None,
            retries: Some(Retries {
                max_retries: 3,
                interval_ms: 200,
            }),
            ..Self::services(runtime)
        }
    }

    /// Chooses the ports and the apps; nothing starts yet.
    pub fn plan(self) -> Result<Plan, StackError> {
        Plan::new(self)
    }
}

/// One app instance and its sidecar.
#[derive(Debug, Clone)]
pub struct AppPlan {
    /// Its name in the stack: the app id, or `task-api-1` for a replica.
    pub instance: String,
    pub app_id: String,
    /// `POD_NAME` for daprd: the per-instance consumer group of WatchTasks.
    pub pod_name: String,
    pub ports: AppPorts,
    /// daprd's internal gRPC port.
    pub internal_grpc: u16,
    /// None for an app the caller serves.
    pub command: Option<Command>,
    /// The run file's environment for it.
    pub env: BTreeMap<String, String>,
    /// daprd probes the app's health (the run file's `enableAppHealthCheck`).
    pub app_health_check: bool,
}

/// How an app is started.
#[derive(Debug, Clone)]
pub struct Command {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub dir: PathBuf,
}

/// The ports of the runtime's own processes.
#[derive(Debug, Clone, Copy)]
pub struct InfraPorts {
    pub kafka: u16,
    pub kafka_controller: u16,
    pub scheduler: SchedulerPorts,
    pub jaeger: JaegerPorts,
    /// dev-sidecar's inspection surface.
    pub admin: u16,
}

impl InfraPorts {
    /// The usual ports, as the launchers, the README and `just lag` use them.
    pub const USUAL: Self = Self {
        kafka: 9092,
        kafka_controller: 9093,
        scheduler: SchedulerPorts {
            grpc: 50006,
            healthz: 58080,
            metrics: 59090,
            etcd_client: 52379,
            etcd_peer: 52380,
        },
        jaeger: JaegerPorts::DEFAULT,
        admin: 50100,
    };
    /// daprd's internal gRPC ports with the usual ports: this plus the
    /// app's index.
    const USUAL_INTERNAL_GRPC: u16 = 50200;
}

/// The name of the second task-api replica.
pub const SECOND_TASK_API: &str = "task-api-1";

/// A stack decided but not started.
pub struct Plan {
    pub options: StackOptions,
    pub apps: Vec<AppPlan>,
    pub infra: InfraPorts,
    pub(crate) dir: StateDir,
}

/// The state folder: temporary, or the one asked for.
pub(crate) enum StateDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl StateDir {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Self::Temp(dir) => dir.path(),
            Self::Kept(path) => path,
        }
    }

    fn new(asked: Option<&Path>) -> Result<Self, StackError> {
        let Some(path) = asked else {
            let dir = tempfile::Builder::new()
                .prefix("todo-stack-")
                .tempdir()
                .map_err(StackError::file(std::env::temp_dir()))?;
            if std::env::var_os("REAL_RUNTIME_KEEP").is_some() {
                let kept = dir.keep();
                eprintln!("stack files kept in {}", kept.display());
                return Ok(Self::Kept(kept));
            }
            return Ok(Self::Temp(dir));
        };
        if path.exists() {
            std::fs::remove_dir_all(path).map_err(StackError::file(path))?;
        }
        std::fs::create_dir_all(path).map_err(StackError::file(path))?;
        Ok(Self::Kept(std::fs::canonicalize(path).map_err(StackError::file(path))?))
    }
}

impl Plan {
    pub fn new(options: StackOptions) -> Result<Self, StackError> {
        if options.second_task_api && options.runtime != Runtime::Daprd {
            return Err(StackError::NotOnThisRuntime {
                what: "a second task-api replica".into(),
                runtime: options.runtime,
            });
        }
        let mut apps = match &options.apps {
            Apps::Services => services(&options)?,
            Apps::External(ids) => ids
                .iter()
                .map(|id| AppPlan {
                    instance: id.clone(),
                    app_id: id.clone(),
                    pod_name: format!("{id}-0"),
                    ports: AppPorts {
                        app: 0,
                        dapr_grpc: 0,
                        dapr_http: 0,
                    },
                    internal_grpc: 0,
                    command: None,
                    env: BTreeMap::new(),
                    app_health_check: false,
                })
                .collect(),
        };
        let deployed = options.runtime == Runtime::Cluster;
        let infra = match (options.ports, &options.apps) {
            // The cluster's apps listen on the run file's ports in their
            // pods; the stack reaches them through port-forwards.
            _ if deployed => InfraPorts::USUAL,
            (Ports::RunFile, Apps::Services) => {
                for (index, app) in apps.iter_mut().enumerate() {
                    app.internal_grpc = InfraPorts::USUAL_INTERNAL_GRPC + index as u16;
                }
                InfraPorts::USUAL
            }
            _ => {
                let mut free = free_ports(apps.len() * 4 + 12)?.into_iter();
                let mut next = || free.next().unwrap_or_default();
                for app in &mut apps {
                    app.ports = AppPorts {
                        app: next(),
                        dapr_grpc: next(),
                        dapr_http: next(),
                    };
                    app.internal_grpc = next();
                }
                InfraPorts {
                    kafka: next(),
                    kafka_controller: next(),
                    scheduler: SchedulerPorts {
                        grpc: next(),
                        healthz: next(),
                        metrics: next(),
                        etcd_client: next(),
                        etcd_peer: next(),
                    },
                    jaeger: JaegerPorts {
                        otlp_grpc: next(),
                        query_http: next(),
                        query_grpc: next(),
                        health: next(),
                    },
                    admin: next(),
                }
            }
        };
        let plan = Self {
            dir: StateDir::new(options.state_dir.as_deref())?,
            options,
            apps,
            infra,
        };
        if plan.options.ports == Ports::RunFile && !deployed {
            plan.check_ports_free()?;
        }
        Ok(plan)
    }

    /// The plan of app instance `instance`.
    pub fn app(&self, instance: &str) -> Result<&AppPlan, StackError> {
        self.apps
            .iter()
            .find(|app| app.instance == instance)
            .ok_or_else(|| StackError::UnknownApp(instance.to_owned()))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where process `name`'s output goes.
    pub(crate) fn output(&self, name: &str, index: usize) -> Output {
        if self.options.terminal {
            const COLOURS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];
            let colour = COLOURS[index % COLOURS.len()];
            Output::Prefixed(format!("\x1b[{colour}m{name:<24}|\x1b[0m "))
        } else {
            Output::File(self.dir().join(format!("{}.log", name.replace(' ', "-"))))
        }
    }

    /// `RUST_LOG` for the apps and dev-sidecar: quiet in log files unless
    /// `TEST_LOG` is set, the run file's otherwise.
    pub(crate) fn quiet_logs(&self) -> Option<&'static str> {
        (!self.options.terminal).then(|| {
            if std::env::var_os("TEST_LOG").is_some() {
                "info"
            } else {
                "warn"
            }
        })
    }

    /// Refuses to start over something that already listens on a port the
    /// plan uses (another `just dev`, say).
    fn check_ports_free(&self) -> Result<(), StackError> {
        let mut ports: Vec<(u16, String)> = Vec::new();
        for app in &self.apps {
            ports.push((app.ports.app, app.instance.clone()));
            ports.push((app.ports.dapr_grpc, format!("{}'s sidecar", app.instance)));
            if app.ports.dapr_http != 0 {
                ports.push((app.ports.dapr_http, format!("{}'s sidecar (HTTP)", app.instance)));
            }
        }
        match self.options.runtime {
            Runtime::DevSidecar => ports.push((self.infra.admin, "dev-sidecar's inspection surface".into())),
            Runtime::Daprd => {
                ports.push((self.infra.kafka, "Kafka".into()));
                ports.push((self.infra.scheduler.grpc, "the Dapr Scheduler".into()));
            }
            Runtime::Cluster => {}
        }
        if self.options.jaeger {
            ports.push((self.infra.jaeger.otlp_grpc, "Jaeger (OTLP)".into()));
            ports.push((self.infra.jaeger.query_http, "Jaeger (query)".into()));
        }
        if let Database::Local { port } = self.options.database {
            ports.push((port, "PostgreSQL".into()));
        }
        match ports.into_iter().find(|(port, _)| in_use(*port)) {
            Some((port, what)) => Err(StackError::PortInUse { port, what }),
            None => Ok(()),
        }
    }
}

/// The services of the run file, each with its command (from `bin_dir`
/// when given; none on the cluster, which runs its own images), plus the
/// second task-api when asked for.
fn services(options: &StackOptions) -> Result<Vec<AppPlan>, StackError> {
    let mut apps = Vec::new();
    for app in dev_sidecar::run_file::load(&options.run_file)? {
        let command = match options.runtime {
            Runtime::Cluster => None,
            Runtime::DevSidecar | Runtime::Daprd => Some(command(options, &app)?),
        };
        apps.push(AppPlan {
            instance: app.app_id.clone(),
            pod_name: format!("{}-0", app.app_id),
            ports: AppPorts {
                app: app.app_port,
                dapr_grpc: app.grpc_port,
                dapr_http: app.http_port,
            },
            internal_grpc: 0,
            command,
            env: app.env.clone(),
            app_health_check: app.app_health_check,
            app_id: app.app_id,
        });
    }
    if options.second_task_api {
        let first = apps
            .iter()
            .find(|app| app.app_id == "task-api")
            .ok_or_else(|| StackError::UnknownApp("task-api".into()))?;
        let mut second = first.clone();
        second.instance = SECOND_TASK_API.into();
        second.pod_name = SECOND_TASK_API.into();
        apps.push(second);
    }
    Ok(apps)
}

/// How `app` of the run file starts: its program from `bin_dir` when
/// given, which must be built.
fn command(options: &StackOptions, app: &dev_sidecar::run_file::App) -> Result<Command, StackError> {
    let Some((program, args)) = app.command.split_first() else {
        return Err(StackError::NotBuilt {
            what: format!("{} (no command in the run file)", app.app_id),
            path: options.run_file.clone(),
        });
    };
    let program = match &options.bin_dir {
        Some(dir) => dir.join(Path::new(program).file_name().unwrap_or_default()),
        None => app.dir.join(program),
    };
    if !program.is_file() {
        return Err(StackError::NotBuilt {
            what: app.app_id.clone(),
            path: program,
        });
    }
    Ok(Command {
        program,
        args: args.to_vec(),
        dir: app.dir.clone(),
    })
}

/// The repository root (this crate sits in `runtimes/stack/`).
pub fn repo_dir() -> PathBuf {
    real_runtime::install::repo_dir()
}

/// The folder of the program running now, or its parent when that is
/// cargo's `deps/` (a test binary): where cargo put the workspace's
/// binaries of the same profile.
pub fn binaries_beside_this_program() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The app ids of the system's services, in `dapr/dev.yaml`'s order.
pub fn service_ids() -> Result<Vec<String>, StackError> {
    Ok(dev_sidecar::run_file::load(&repo_dir().join("dapr/dev.yaml"))?
        .into_iter()
        .map(|app| app.app_id)
        .collect())
}
