//! dev-sidecar alone: publish → deliver throughput and latency against a
//! no-op subscriber, and the Python SDK baseline.

use std::{
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use serde_json::{Value, json};
use todo_core::{
    config::DaprConfig,
    dapr::{
        app::{self, DeliveredEvent, EventHandler},
        callback::{Outcome, subscription, with_bulk},
        publisher::{OutgoingEvent, Publisher},
        runtime::TopicSubscription,
    },
    events::ContentType,
    server::{GrpcApp, base_routes},
    testing::{RunningServer, free_ports},
};

use crate::{
    Args,
    report::{percentile, round},
};

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Counts deliveries and their publish → deliver latency (the publish time
/// travels in the JSON data as `sentNanos`: JSON, because it is what the
/// services publish and what daprd carries on both delivery paths).
struct Sink {
    bulk: bool,
    received: AtomicUsize,
    latencies_ms: Mutex<Vec<f64>>,
}

#[tonic::async_trait]
impl EventHandler for Sink {
    fn subscriptions(&self) -> Vec<TopicSubscription> {
        let sub = subscription("pubsub", "bench", &[], "/bench");
        vec![if self.bulk { with_bulk(sub, 500, 5) } else { sub }]
    }

    async fn on_event(&self, event: DeliveredEvent) -> Outcome {
        if let Some(sent) = serde_json::from_slice::<Value>(&event.data)
            .ok()
            .and_then(|data| data["sentNanos"].as_u64())
        {
            let ms = now_nanos().saturating_sub(sent) as f64 / 1e6;
            self.latencies_ms.lock().unwrap().push(ms);
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        Outcome::Success
    }
}

struct Setup {
    sink: Arc<Sink>,
    publisher: Publisher,
    _app: RunningServer,
    _sidecar: RunningServer,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A scratch directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn setup(bulk: bool) -> anyhow::Result<Setup> {
    let dir = std::env::temp_dir().join(format!("todo-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let [app_port, grpc_port, admin_port] = free_ports(3)[..] else {
        unreachable!()
    };
    let run_file = dir.join("dev.yaml");
    std::fs::write(
        &run_file,
        format!("version: 1\napps:\n  - appID: sink\n    appPort: {app_port}\n    daprGRPCPort: {grpc_port}\n"),
    )?;
    let sink = Arc::new(Sink {
        bulk,
        received: AtomicUsize::new(0),
        latencies_ms: Mutex::new(Vec::new()),
    });
    let mut base = base_routes(&app::SERVICE_NAMES)?;
    app::add_routes(&mut base.routes, sink.clone(), None);
    let server = GrpcApp::bind(([127, 0, 0, 1], app_port).into(), base).await?;
    let app = RunningServer::spawn(server.local_addr(), |stop| server.run_until_stopped(stop));
    let config = dev_sidecar::config::Config::parse_from([
        "dev-sidecar",
        "--run-file",
        run_file.to_str().unwrap(),
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--admin-port",
        &admin_port.to_string(),
        "--partitions",
        "8",
    ]);
    let sidecar = dev_sidecar::startup::Application::build(config).await?;
    let addr = sidecar.endpoints()["sink"];
    let sidecar = RunningServer::spawn(addr, |stop| sidecar.run_until_stopped(stop));
    let publisher = Publisher::connect_lazy(&DaprConfig {
        grpc_endpoint: format!("http://{addr}"),
        api_token: None,
        app_api_token: None,
        pubsub_name: "pubsub".into(),
    })?;
    // Let the sidecar discover the subscription.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Setup {
        sink,
        publisher,
        _app: app,
        _sidecar: sidecar,
        _dir: tempfile_dir::Dir(dir),
    })
}

fn event(n: usize) -> OutgoingEvent {
    // About the size of a TaskEvent with a short title.
    let data = format!(r#"{{"sentNanos":{},"pad":"{}"}}"#, now_nanos(), "x".repeat(100)).into_bytes();
    OutgoingEvent {
        event_id: format!("e{n}"),
        event_type: "bench.event".into(),
        partition_key: format!("user-{}", n % 64),
        data,
        content_type: ContentType::Json,
        traceparent: None,
    }
}

async fn wait_for(sink: &Sink, total: usize, started: Instant) -> anyhow::Result<Duration> {
    let deadline = started + Duration::from_secs(300);
    while sink.received.load(Ordering::Relaxed) < total {
        anyhow::ensure!(Instant::now() < deadline, "deliveries stalled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(started.elapsed())
}

fn section(total: usize, elapsed: Duration, sink: &Sink) -> Value {
    let mut latencies = sink.latencies_ms.lock().unwrap().clone();
    json!({
        "events": total,
        "seconds": round(elapsed.as_secs_f64()),
        "events_per_s": round(total as f64 / elapsed.as_secs_f64()),
        "p50_ms": round(percentile(&mut latencies, 50.0)),
        "p99_ms": round(percentile(&mut latencies, 99.0)),
    })
}

/// BulkPublishEvent (batches of 100, 8 publishers) → OnBulkTopicEvent.
pub async fn bulk(args: &Args) -> anyhow::Result<Value> {
    let setup = setup(true).await?;
    let total = args.scale(200_000, 40_000);
    let publishers = 8;
    let started = Instant::now();
    let mut handles = Vec::new();
    for p in 0..publishers {
        let publisher = setup.publisher.clone();
        handles.push(tokio::spawn(async move {
            let mut n = p;
            while n < total {
                let batch: Vec<_> = (0..100)
                    .map(|i| n + i * publishers)
                    .filter(|m| *m < total)
                    .map(event)
                    .collect();
                n += 100 * publishers;
                publisher.publish_bulk("bench", &batch).await?;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let elapsed = wait_for(&setup.sink, total, started).await?;
    Ok(section(total, elapsed, &setup.sink))
}

/// One PublishEvent per event (32 concurrent) → one OnTopicEvent per event.
pub async fn unary(args: &Args) -> anyhow::Result<Value> {
    let setup = setup(false).await?;
    let total = args.scale(40_000, 8_000);
    let workers = 32;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let publisher = setup.publisher.clone();
        let next = next.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(());
                }
                publisher.publish("bench", &event(n)).await?;
            }
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let elapsed = wait_for(&setup.sink, total, started).await?;
    Ok(section(total, elapsed, &setup.sink))
}

/// The same kind of workload through the official Python Dapr SDK:
/// `DaprClient.publish_event` to dev-sidecar, received by a
/// `dapr.ext.grpc.App` subscriber.
pub async fn python_baseline(args: &Args) -> anyhow::Result<Value> {
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/dev-sidecar/tests/python");
    let check = Command::new(&args.python)
        .args(["-c", "import dapr.clients, dapr.ext.grpc"])
        .status()?;
    anyhow::ensure!(
        check.success(),
        "{} lacks dapr[grpc] (run scripts/python-peers.sh)",
        args.python
    );
    let dir = std::env::temp_dir().join(format!("todo-bench-py-{}", uuid::Uuid::new_v4().simple()));
    let _cleanup = tempfile_dir::Dir(dir.clone());
    std::fs::create_dir_all(&dir)?;
    let [app_port, grpc_port, http_port, admin_port] = free_ports(4)[..] else {
        unreachable!()
    };
    let run_file = dir.join("dev.yaml");
    std::fs::write(
        &run_file,
        format!(
            "version: 1\napps:\n  - appID: pyapp\n    appPort: {app_port}\n    daprGRPCPort: {grpc_port}\n    daprHTTPPort: {http_port}\n"
        ),
    )?;
    let received = dir.join("received.jsonl");
    let mut subscriber = Command::new(&args.python)
        .arg(scripts.join("subscriber.py"))
        .arg(app_port.to_string())
        .arg(&received)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let config = dev_sidecar::config::Config::parse_from([
        "dev-sidecar",
        "--run-file",
        run_file.to_str().unwrap(),
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--admin-port",
        &admin_port.to_string(),
    ]);
    let sidecar = dev_sidecar::startup::Application::build(config).await?;
    let addr = sidecar.endpoints()["pyapp"];
    let _sidecar = RunningServer::spawn(addr, |stop| sidecar.run_until_stopped(stop));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let total = args.scale(3_000, 600);
    let python = args.python.clone();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(scripts.join("publisher.py"))
            .arg(total.to_string())
            .env("DAPR_GRPC_PORT", grpc_port.to_string())
            .env("DAPR_HTTP_PORT", http_port.to_string())
            .output()
    })
    .await??;
    anyhow::ensure!(
        output.status.success(),
        "python publisher failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let lines = std::fs::read_to_string(&received)
            .map(|text| text.lines().count())
            .unwrap_or(0);
        if lines >= total {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "python subscriber got {lines} of {total}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let _ = subscriber.kill();
    let _ = subscriber.wait();
    Ok(json!({
        "events": total,
        "seconds": round(elapsed.as_secs_f64()),
        "events_per_s": round(total as f64 / elapsed.as_secs_f64()),
        "what": "Python Dapr SDK 1.19: DaprClient.publish_event (one call per event) to dev-sidecar, dapr.ext.grpc.App subscriber",
    }))
}
