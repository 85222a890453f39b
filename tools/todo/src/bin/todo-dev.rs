//! `just dev` and `just dev-dapr`: the whole system on this machine, in the
//! foreground, on dev-sidecar or on the real runtime (daprd, Kafka, the Dapr
//! Scheduler, Jaeger). Reads `dapr/dev.yaml` (app ids, commands, ports,
//! environment) and starts, on loopback, through the same `todo-stack` the
//! system tests use: PostgreSQL, the runtime, each service (and on the real
//! runtime one daprd per service, with the cluster's components). Waits
//! until every service is subscribed, prints the endpoints, prefixes every
//! process's output with its name, and starts again any process that dies
//! (kill -9 one by hand and watch the system recover). Ctrl-C stops
//! everything in order: the services first, then the sidecars, then the
//! infrastructure and PostgreSQL.
//!
//! Why not `dapr run -f`: the Dapr CLI starts the apps and their daprd but
//! not Kafka, the Scheduler, Jaeger or PostgreSQL, expects `dapr init`'s
//! folder layout, and does not bring back a process that dies.
//!
//! `todo-dev lag`, `todo-dev dlq` and `todo-dev replay TOPIC-dlq [IDS]`
//! read the running real runtime's Kafka; `todo-dev dapr-protoset PATH`
//! writes the Dapr API's descriptor set for grpcurl.

use std::{io::Write, path::PathBuf, time::Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use real_runtime::{Installed, kafka::kafka_tool};
use todo_stack::{
    Apps, Database, Ports, Runtime, Stack, StackOptions,
    plan::{InfraPorts, Tokens, binaries_beside_this_program, repo_dir},
};

#[derive(Parser)]
#[command(about = "The local stack: PostgreSQL and the five services on dev-sidecar or on the real runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the stack and keep it running until Ctrl-C.
    Up(Up),
    /// Consumer-group offsets and lag, read from the real runtime's Kafka.
    Lag,
    /// The dead-letter topics' records, read from the real runtime's Kafka.
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
    /// Write the Dapr API's descriptor set to PATH, for grpcurl's
    /// `-protoset`: daprd serves no reflection for its own API (it takes an
    /// unknown service for service invocation), so grpcurl needs the protos.
    DaprProtoset { path: PathBuf },
}

#[derive(clap::Args)]
struct Up {
    /// sidecar (dev-sidecar) or dapr (daprd + Kafka + the Scheduler + Jaeger).
    #[arg(long, default_value = "sidecar")]
    runtime: Runtime,
    #[arg(long, env = "DEV_RUN_FILE")]
    run_file: Option<PathBuf>,
    /// Wiped at every start (default `.dev/<runtime>`).
    #[arg(long, env = "DEV_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Use this database instead of starting a throw-away PostgreSQL.
    #[arg(long, env = "DEV_DATABASE_URL")]
    database_url: Option<String>,
    /// The throw-away PostgreSQL's port.
    #[arg(long, env = "DEV_PG_PORT", default_value_t = 55432)]
    pg_port: u16,
    /// Turn on APP_API_TOKEN and DAPR_API_TOKEN (fresh random values).
    #[arg(long)]
    tokens: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bootstrap = format!("127.0.0.1:{}", InfraPorts::USUAL.kafka);
    match Cli::parse().command {
        Command::Up(up) => run(up).await,
        Command::Lag => print_tool("lag", &bootstrap, &[]),
        Command::Dlq { limit } => print_tool("dead-letters", &bootstrap, &[limit.to_string()]),
        Command::Replay { topic, ids } => {
            let mut args = vec![topic];
            args.extend(ids);
            print_tool("replay", &bootstrap, &args)
        }
        Command::DaprProtoset { path } => std::fs::write(&path, todo_core::proto::DAPR_FILE_DESCRIPTOR_SET)
            .with_context(|| format!("writing {}", path.display())),
    }
}

fn print_tool(command: &str, bootstrap: &str, args: &[String]) -> anyhow::Result<()> {
    let installed = Installed::locate()?;
    let output = kafka_tool(&installed.kafka_class_path(), command, bootstrap, args)
        .with_context(|| format!("is `just dev-dapr` running (Kafka on {bootstrap})?"))?;
    let value: serde_json::Value = serde_json::from_str(&output)?;
    say_plain(&serde_json::to_string_pretty(&value)?);
    Ok(())
}

async fn run(up: Up) -> anyhow::Result<()> {
    let started = Instant::now();
    let runtime = up.runtime;
    if runtime == Runtime::Cluster {
        anyhow::bail!("the cluster runs the system itself: `just deploy local` (or `just deploy` onto Minikube)");
    }
    let root = repo_dir();
    let mut env = Vec::new();
    // A secret in the environment wins over the run file's development one,
    // as `just token` signs with it.
    if let Ok(secret) = std::env::var("JWT_SECRET") {
        env.push(("JWT_SECRET".to_owned(), secret));
    }
    let options = StackOptions {
        runtime,
        apps: Apps::Services,
        ports: Ports::RunFile,
        run_file: up.run_file.unwrap_or_else(|| root.join("dapr/dev.yaml")),
        bin_dir: Some(binaries_beside_this_program()),
        state_dir: Some(up.state_dir.unwrap_or_else(|| root.join(".dev").join(runtime.name()))),
        terminal: true,
        database: match up.database_url {
            Some(url) => Database::Url(url),
            None => Database::Local { port: up.pg_port },
        },
        jaeger: runtime == Runtime::Daprd,
        tokens: if up.tokens { Tokens::random() } else { Tokens::default() },
        env,
        ..StackOptions::services(runtime)
    };
    say(&format!("starting the stack on {runtime}"));
    let mut stack = options.start().await?;
    banner(&stack, started);
    stack.supervise(say).await;
    say("stopping");
    let stopped = stack.stop().await;
    say("stopped");
    Ok(stopped?)
}

fn banner(stack: &Stack, started: Instant) {
    let mut lines = vec![format!(
        "\n\x1b[1;32mThe local stack is up on {}\x1b[0m (in {:.1} s).\n",
        stack.runtime,
        started.elapsed().as_secs_f64()
    )];
    for app in &stack.plan.apps {
        let role = match app.app_id.as_str() {
            "task-api" => "TaskService, gRPC and gRPC-Web",
            "notification-service" => "NotificationService",
            "audit-service" => "AuditService",
            _ => "AppCallback only",
        };
        lines.push(format!(
            "  {:<22} grpc://127.0.0.1:{:<6} {role:<32} sidecar grpc :{} http :{}",
            app.app_id, app.ports.app, app.ports.dapr_grpc, app.ports.dapr_http
        ));
    }
    let infra = &stack.plan.infra;
    match stack.runtime {
        Runtime::DevSidecar => lines.push(format!(
            "  {:<22} http://127.0.0.1:{}/{{topics,lag,dead-letters,jobs,subscriptions}}",
            "inspection", infra.admin
        )),
        Runtime::Daprd => {
            lines.push(format!(
                "  {:<22} 127.0.0.1:{} (topics and dead-letter topics created)",
                "Kafka", infra.kafka
            ));
            lines.push(format!("  {:<22} 127.0.0.1:{}", "Dapr Scheduler", infra.scheduler.grpc));
            lines.push(format!(
                "  {:<22} OTLP 127.0.0.1:{}, query API http://127.0.0.1:{}/api/services",
                "Jaeger", infra.jaeger.otlp_grpc, infra.jaeger.query_http
            ));
        }
        Runtime::Cluster => {}
    }
    if let Some(database) = &stack.database {
        lines.push(format!("  {:<22} {}", "PostgreSQL", database.url));
    }
    if let (Some(app), Some(api)) = (
        stack.plan.options.tokens.app.as_ref(),
        stack.plan.options.tokens.api.as_ref(),
    ) {
        lines.push(format!("\n  Tokens on: APP_API_TOKEN={app} DAPR_API_TOKEN={api}"));
    }
    lines.push(
        "\n  In another terminal:
    just demo                         # watch the event flow
    TOKEN=$(just token alice)         # a JWT for user alice
    grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{\"title\":\"hello\"}' \\
        localhost:50051 todo.v1.TaskService/CreateTask
    just lag; just dlq                # consumer lag, dead letters
    kill -9 <any pid of the stack>    # it comes back; nothing is lost

  Ctrl-C stops everything.
"
        .to_owned(),
    );
    say_plain(&lines.join("\n"));
}

/// Prints without panicking when the terminal or pipe has gone away
/// (`just dev | tee log`, then Ctrl-C): the stack must still stop in order.
fn say_plain(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn say(text: &str) {
    say_plain(&format!("\x1b[1m==> {text}\x1b[0m"));
}
