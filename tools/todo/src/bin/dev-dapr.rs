//! `just dev-dapr`: the five services on the real runtime, in the
//! foreground. Reads the same run file as dev-sidecar (`dapr/dev.yaml`: app
//! ids, commands, ports, environment) and starts, on loopback:
//!
//!   Kafka (KRaft, one node) with the project's topics, the Dapr Scheduler,
//!   Jaeger, then each app and one daprd per app with the cluster's
//!   components (dapr/components/, local addresses);
//!
//! waits until every sidecar is healthy and every consumer group consumes,
//! prints the endpoints, prefixes every process's output with its name, and
//! starts again any process of the stack that dies (kill -9 one by hand and
//! watch the system recover). Ctrl-C stops everything, apps first.
//!
//! Why a launcher of our own rather than `dapr run -f`: the CLI starts the
//! apps and their daprd but not Kafka, the Scheduler or Jaeger, expects
//! `dapr init`'s folder layout, and does not bring back a process that
//! dies; this reads the same run file and does all of that.
//!
//! `dev-dapr lag` and `dev-dapr dlq` read the running stack's Kafka;
//! `dev-dapr replay TOPIC-dlq [IDS]` republishes dead letters.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use real_runtime::{
    daprd::{Daprd, DaprdOptions, DaprdPorts},
    install::Installed,
    jaeger::{Jaeger, JaegerPorts},
    kafka::{Kafka, KafkaOptions, kafka_tool, project_topics},
    process::{Output, Proc, Spec},
    resources::{self, LocalAddresses},
    scheduler::{Scheduler, SchedulerPorts},
};

#[derive(Parser)]
#[command(about = "The local stack on the real runtime: Kafka, the Dapr Scheduler, Jaeger, one daprd per app")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    up: Up,
}

#[derive(Subcommand)]
enum Command {
    /// Consumer-group offsets and lag, read from Kafka.
    Lag,
    /// The dead-letter topics' records, read from Kafka.
    Dlq {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Republish dead letters to the topic they came from, after a fix:
    /// all of TOPIC's, or only the given event ids. Harmless to repeat, as
    /// every consumer deduplicates on the event id.
    Replay {
        /// A dead-letter topic, e.g. task-events-dlq.
        topic: String,
        ids: Vec<String>,
    },
}

#[derive(clap::Args)]
struct Up {
    #[arg(long, env = "DEV_RUN_FILE", default_value = "dapr/dev.yaml")]
    run_file: PathBuf,
    /// Wiped at every start, like `just dev`'s state.
    #[arg(long, env = "DEV_DAPR_STATE", default_value = ".dev/real")]
    state_dir: PathBuf,
    /// Replaces the run file's placeholder DATABASE_URL for every app.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Turn on APP_API_TOKEN and DAPR_API_TOKEN (fresh random values).
    #[arg(long)]
    tokens: bool,
    #[arg(long, env = "DEV_KAFKA_PORT", default_value_t = 9092)]
    kafka_port: u16,
}

/// The Scheduler's usual standalone port (the run file skips it for apps).
const SCHEDULER_PORT: u16 = 50006;

const COLOURS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];

fn prefixed(name: &str, index: usize) -> Output {
    let colour = COLOURS[index % COLOURS.len()];
    Output::Prefixed(format!("\x1b[{colour}m{name:<24}|\x1b[0m "))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bootstrap = format!("127.0.0.1:{}", cli.up.kafka_port);
    match cli.command {
        Some(Command::Lag) => print_tool("lag", &bootstrap, &[]),
        Some(Command::Dlq { limit }) => print_tool("dead-letters", &bootstrap, &[limit.to_string()]),
        Some(Command::Replay { topic, ids }) => {
            let mut args = vec![topic];
            args.extend(ids);
            print_tool("replay", &bootstrap, &args)
        }
        None => up(cli.up).await,
    }
}

fn print_tool(command: &str, bootstrap: &str, args: &[String]) -> anyhow::Result<()> {
    let installed = Installed::locate()?;
    let output = kafka_tool(&installed.kafka_class_path(), command, bootstrap, args)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("is `just dev-dapr` running (Kafka on {bootstrap})?"))?;
    let value: serde_json::Value = serde_json::from_str(&output)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

/// Every process of the stack, in start order (stopped in reverse).
struct Stack {
    procs: Vec<Proc>,
}

async fn up(args: Up) -> anyhow::Result<()> {
    let started = Instant::now();
    let installed = Installed::locate()?;
    let apps = dev_sidecar::run_file::load(&args.run_file)?;
    let health_check = app_health_check(&args.run_file)?;
    if args.state_dir.exists() {
        std::fs::remove_dir_all(&args.state_dir).with_context(|| format!("wiping {}", args.state_dir.display()))?;
    }
    std::fs::create_dir_all(&args.state_dir)?;
    let state = std::fs::canonicalize(&args.state_dir)?;
    let mut stack = Stack { procs: Vec::new() };
    let result = run(&args, &installed, &apps, health_check, &state, &mut stack, started).await;
    stop(&mut stack);
    result
}

#[allow(clippy::too_many_arguments)]
async fn run(
    args: &Up,
    installed: &Installed,
    apps: &[dev_sidecar::run_file::App],
    health_check: bool,
    state: &Path,
    stack: &mut Stack,
    started: Instant,
) -> anyhow::Result<()> {
    say(&format!(
        "starting Kafka {} on 127.0.0.1:{}",
        installed.kafka_version, args.kafka_port
    ));
    let kafka = Kafka::start(
        installed,
        &state.join("kafka"),
        KafkaOptions {
            port: args.kafka_port,
            controller_port: args.kafka_port + 1,
            auto_create_topics: false,
            heap_mb: 512,
        },
        prefixed("kafka", 0),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    kafka.create_topics(&project_topics()).map_err(anyhow::Error::msg)?;
    let bootstrap = kafka.bootstrap();
    let Kafka { proc, .. } = kafka;
    stack.procs.push(proc);

    say(&format!(
        "starting the Dapr Scheduler {} on 127.0.0.1:{SCHEDULER_PORT}",
        installed.dapr_version
    ));
    let scheduler = Scheduler::start(
        installed,
        &state.join("scheduler"),
        SchedulerPorts {
            grpc: SCHEDULER_PORT,
            healthz: 58080,
            metrics: 59090,
            etcd_client: 52379,
            etcd_peer: 52380,
        },
        prefixed("scheduler", 1),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let scheduler_address = scheduler.address();
    stack.procs.push(scheduler.proc);

    let jaeger_ports = JaegerPorts::DEFAULT;
    say(&format!("starting Jaeger (OTLP 127.0.0.1:{})", jaeger_ports.otlp_grpc));
    let jaeger = Jaeger::start(installed, jaeger_ports, prefixed("jaeger", 2))
        .await
        .map_err(anyhow::Error::msg)?;
    let otlp = jaeger.otlp_endpoint();
    stack.procs.push(jaeger.proc);

    let (resources_dir, config) = resources::render(
        state,
        &LocalAddresses {
            kafka: bootstrap.clone(),
            otlp: Some(format!("127.0.0.1:{}", jaeger_ports.otlp_grpc)),
        },
    )
    .map_err(anyhow::Error::msg)?;
    let tokens = args.tokens.then(|| (random_token(), random_token()));

    say("starting the services and their daprd");
    let mut daprds = Vec::new();
    for (index, app) in apps.iter().enumerate() {
        let mut env: BTreeMap<String, String> = app.env.clone();
        if let Some(url) = &args.database_url {
            env.insert("DATABASE_URL".into(), url.clone());
        }
        env.insert("APP_ID".into(), app.app_id.clone());
        env.insert("APP_HOST".into(), "127.0.0.1".into());
        env.insert("APP_PORT".into(), app.app_port.to_string());
        env.insert("DAPR_GRPC_PORT".into(), app.grpc_port.to_string());
        env.insert("DAPR_HTTP_PORT".into(), app.http_port.to_string());
        env.entry("OTEL_EXPORTER_OTLP_ENDPOINT".into())
            .or_insert_with(|| otlp.clone());
        if app.app_id == "task-api" {
            // As in k8s: WatchTasks through the per-instance broadcast component.
            env.entry("WATCH_PUBSUB_NAME".into())
                .or_insert_with(|| "pubsub-broadcast".into());
        }
        if let Some((app_token, api_token)) = &tokens {
            env.insert("APP_API_TOKEN".into(), app_token.clone());
            env.insert("DAPR_API_TOKEN".into(), api_token.clone());
        }
        let (program, rest) = app.command.split_first().context("every app needs a command")?;
        let mut spec =
            Spec::new(&app.app_id, app.dir.join(program), prefixed(&app.app_id, index + 3)).args(rest.to_vec());
        spec.dir = Some(app.dir.clone());
        spec.env = env.into_iter().collect();
        stack.procs.push(Proc::start(spec)?);
        let daprd = Daprd::start(
            installed,
            DaprdOptions {
                app_id: app.app_id.clone(),
                app_port: Some(app.app_port),
                ports: DaprdPorts {
                    grpc: app.grpc_port,
                    http: app.http_port,
                    internal_grpc: 50200 + index as u16,
                },
                resources: resources_dir.clone(),
                config: config.clone(),
                scheduler: scheduler_address.clone(),
                app_api_token: tokens.as_ref().map(|(app_token, _)| app_token.clone()),
                dapr_api_token: tokens.as_ref().map(|(_, api_token)| api_token.clone()),
                app_health_check: health_check,
                log_level: "warn".into(),
                pod_name: format!("{}-local", app.app_id),
            },
            prefixed(&format!("daprd {}", app.app_id), index + 3),
            false,
        )
        .await
        .map_err(anyhow::Error::msg)?;
        daprds.push(daprd);
    }
    for daprd in &daprds {
        daprd
            .wait_until_healthy(Duration::from_secs(90))
            .await
            .map_err(anyhow::Error::msg)?;
    }
    wait_until_consuming(installed, &bootstrap, apps).await?;
    stack.procs.extend(daprds.into_iter().map(|daprd| daprd.proc));
    banner(apps, &bootstrap, args, tokens.as_ref(), started.elapsed());
    supervise(stack).await
}

/// `enableAppHealthCheck` from the run file's `common` section.
fn app_health_check(run_file: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(run_file)?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
    Ok(doc["common"]["enableAppHealthCheck"].as_bool().unwrap_or(false))
}

async fn wait_until_consuming(
    installed: &Installed,
    bootstrap: &str,
    apps: &[dev_sidecar::run_file::App],
) -> anyhow::Result<()> {
    let mut groups: Vec<String> = apps.iter().map(|app| app.app_id.clone()).collect();
    groups.push("task-api-local".into());
    real_runtime::kafka::wait_until_consuming(
        &installed.kafka_class_path(),
        bootstrap,
        &groups,
        Duration::from_secs(120),
    )
    .await
    .map_err(anyhow::Error::msg)
}

/// Brings back any process that dies, until Ctrl-C or SIGTERM.
async fn supervise(stack: &mut Stack) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = tick.tick() => {
                for proc in &mut stack.procs {
                    if !proc.is_running() {
                        say(&format!("{} exited; starting it again", proc.spec.name));
                        if let Err(err) = proc.restart() {
                            say(&format!("cannot restart {}: {err}", proc.spec.name));
                        }
                    }
                }
            }
        }
    }
}

fn stop(stack: &mut Stack) {
    say("stopping");
    // Apps first, so they drain through their sidecars; the sidecars next;
    // the infrastructure last.
    let (mut apps_and_sidecars, mut infra): (Vec<&mut Proc>, Vec<&mut Proc>) = stack
        .procs
        .iter_mut()
        .partition(|proc| !matches!(proc.spec.name.as_str(), "kafka" | "scheduler" | "jaeger"));
    apps_and_sidecars.sort_by_key(|proc| proc.spec.name.starts_with("daprd"));
    for proc in apps_and_sidecars.iter_mut().chain(infra.iter_mut().rev()) {
        proc.stop(Duration::from_secs(20));
    }
    say("stopped");
}

fn banner(
    apps: &[dev_sidecar::run_file::App],
    bootstrap: &str,
    args: &Up,
    tokens: Option<&(String, String)>,
    took: Duration,
) {
    let mut lines = vec![format!(
        "\n\x1b[1;32mThe local stack is up on the real runtime\x1b[0m (in {:.1} s).\n",
        took.as_secs_f64()
    )];
    for app in apps {
        lines.push(format!(
            "  {:<22} grpc://127.0.0.1:{:<6} daprd grpc :{} http :{}",
            app.app_id, app.app_port, app.grpc_port, app.http_port
        ));
    }
    lines.push(format!(
        "  {:<22} {bootstrap} (topics and dead-letter topics created)",
        "Kafka"
    ));
    lines.push(format!("  {:<22} 127.0.0.1:{SCHEDULER_PORT}", "Dapr Scheduler"));
    lines.push(format!(
        "  {:<22} OTLP 127.0.0.1:4317, query API http://127.0.0.1:16686/api/services",
        "Jaeger"
    ));
    if let Some(url) = &args.database_url {
        lines.push(format!("  {:<22} {url}", "PostgreSQL"));
    }
    if let Some((app_token, api_token)) = tokens {
        lines.push(format!(
            "\n  Tokens on: APP_API_TOKEN={app_token} DAPR_API_TOKEN={api_token}"
        ));
    }
    lines.push(
        "\n  In another terminal:
    just demo                         # watch the event flow
    TOKEN=$(just token alice)         # a JWT for user alice
    grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{\"title\":\"hello\"}' \\
        localhost:50051 todo.v1.TaskService/CreateTask
    just lag; just dlq                # consumer lag, dead letters (read from Kafka)
    kill -9 <any pid of the stack>    # it comes back; nothing is lost

  Ctrl-C stops everything.
"
        .to_owned(),
    );
    println!("{}", lines.join("\n"));
}

fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn say(text: &str) {
    println!("\x1b[1m==> {text}\x1b[0m");
}
