//! Publish → deliver on one runtime, against a subscriber that does
//! nothing but count: bulk, one event per call, at a fixed rate (the
//! runtime's own limit on the real runtime), and the baseline: the official
//! Python Dapr SDK publishing to, and subscribing through, the same runtime.

use std::{
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

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
};
use todo_stack::{Runtime as RuntimeKind, Stack, StackOptions, Topic};
use todo_testing::RunningServer;

use crate::{
    Args,
    report::{percentile, round},
};

const TOPIC: &str = "bench";
/// The Python peers' topic (test-support/python).
const PYTHON_TOPIC: &str = "sdk-orders";
/// Partitions of the benchmark's topics, as the project's own topics have.
const PARTITIONS: u32 = 6;
const KEYS: usize = 64;

pub fn now_nanos() -> u64 {
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
        let sub = subscription("pubsub", TOPIC, &[], "/bench");
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

/// Sidecars for `app_id`, with the benchmark's topics and partitions.
fn sidecar_options(kind: RuntimeKind, app_id: &str) -> StackOptions {
    StackOptions {
        topics: [TOPIC, PYTHON_TOPIC]
            .into_iter()
            .map(|topic| Topic::new(topic, PARTITIONS))
            .collect(),
        ..StackOptions::external_apps(kind, &[app_id])
    }
}

/// A no-op subscriber behind its own sidecar(s) on `kind`, and a publisher.
pub struct Setup {
    sink: Arc<Sink>,
    publisher: Publisher,
    pub sidecars: Stack,
    _app: RunningServer,
}

impl Setup {
    pub async fn start(kind: RuntimeKind, bulk: bool) -> anyhow::Result<Self> {
        let plan = sidecar_options(kind, "sink").plan()?;
        let sink = Arc::new(Sink {
            bulk,
            received: AtomicUsize::new(0),
            latencies_ms: Mutex::new(Vec::new()),
        });
        let mut base = base_routes(&app::SERVICE_NAMES)?;
        app::add_routes(&mut base.routes, sink.clone(), None);
        let server = GrpcApp::bind(([127, 0, 0, 1], plan.app("sink")?.ports.app).into(), base).await?;
        let app = RunningServer::spawn(server.local_addr(), |stop| server.run_until_stopped(stop));
        let sidecars = plan.start().await?;
        let publisher = Publisher::connect_lazy(&DaprConfig {
            grpc_endpoint: sidecars.sidecar_endpoint("sink"),
            api_token: None,
            app_api_token: None,
            pubsub_name: "pubsub".into(),
        })?;
        let setup = Self {
            sink,
            publisher,
            sidecars,
            _app: app,
        };
        setup.warm_up().await?;
        Ok(setup)
    }

    /// One event through, so the consumer group has joined and every
    /// connection is open before anything is timed.
    async fn warm_up(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let warm = 2 * KEYS;
        for n in 0..warm {
            self.publisher.publish(TOPIC, &event(n)).await?;
        }
        self.wait_for(warm, started).await?;
        self.reset();
        Ok(())
    }

    fn reset(&self) {
        self.sink.received.store(0, Ordering::Relaxed);
        self.sink.latencies_ms.lock().unwrap().clear();
    }

    async fn wait_for(&self, total: usize, started: Instant) -> anyhow::Result<Duration> {
        let deadline = started + Duration::from_secs(180);
        while self.sink.received.load(Ordering::Relaxed) < total {
            anyhow::ensure!(
                Instant::now() < deadline,
                "deliveries stalled at {} of {total}\n{}",
                self.sink.received.load(Ordering::Relaxed),
                self.sidecars.logs()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(started.elapsed())
    }

    fn section(&self, total: usize, elapsed: Duration) -> Value {
        let mut latencies = self.sink.latencies_ms.lock().unwrap().clone();
        json!({
            "events": total,
            "seconds": round(elapsed.as_secs_f64()),
            "events_per_s": round(total as f64 / elapsed.as_secs_f64()),
            "p50_ms": round(percentile(&mut latencies, 50.0)),
            "p95_ms": round(percentile(&mut latencies, 95.0)),
            "p99_ms": round(percentile(&mut latencies, 99.0)),
        })
    }

    /// BulkPublishEvent (batches of 100, 8 publishers) → OnBulkTopicEvent.
    pub async fn bulk(&self, args: &Args) -> anyhow::Result<Value> {
        let total = args.scale(200_000, 40_000);
        let publishers = 8;
        let started = Instant::now();
        let mut handles = Vec::new();
        for p in 0..publishers {
            let publisher = self.publisher.clone();
            handles.push(tokio::spawn(async move {
                let mut n = p;
                while n < total {
                    let batch: Vec<_> = (0..100)
                        .map(|i| n + i * publishers)
                        .filter(|m| *m < total)
                        .map(event)
                        .collect();
                    n += 100 * publishers;
                    publisher.publish_bulk(TOPIC, &batch).await?;
                }
                anyhow::Ok(())
            }));
        }
        for handle in handles {
            handle.await??;
        }
        let published = started.elapsed();
        let elapsed = self.wait_for(total, started).await?;
        Ok(with_publish_rate(self.section(total, elapsed), total, published))
    }

    /// One PublishEvent per event (32 concurrent) → one OnTopicEvent per event.
    pub async fn unary(&self, total: usize) -> anyhow::Result<Value> {
        self.reset();
        let workers = 32;
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..workers {
            let publisher = self.publisher.clone();
            let next = next.clone();
            handles.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return anyhow::Ok(());
                    }
                    publisher.publish(TOPIC, &event(n)).await?;
                }
            }));
        }
        for handle in handles {
            handle.await??;
        }
        let published = started.elapsed();
        let elapsed = self.wait_for(total, started).await?;
        Ok(with_publish_rate(self.section(total, elapsed), total, published))
    }

    /// One PublishEvent per event at `rate` per second for `seconds`, on
    /// schedule whether or not earlier calls were answered: the latency of
    /// the runtime alone at the rate the stack is measured at.
    pub async fn at_rate(&self, rate: f64, seconds: f64) -> anyhow::Result<Value> {
        self.reset();
        let total = (rate * seconds) as usize;
        let started = Instant::now();
        let errors = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(total);
        for n in 0..total {
            tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / rate)).into()).await;
            let publisher = self.publisher.clone();
            let errors = errors.clone();
            handles.push(tokio::spawn(async move {
                if publisher.publish(TOPIC, &event(n)).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for handle in handles {
            handle.await?;
        }
        let published = started.elapsed();
        let errors = errors.load(Ordering::Relaxed);
        let elapsed = self.wait_for(total - errors, started).await?;
        let mut section = with_publish_rate(self.section(total - errors, elapsed), total - errors, published);
        section["offered_rps"] = json!(rate);
        section["errors"] = json!(errors);
        Ok(section)
    }
}

/// How fast the publish calls alone were answered: which side of the
/// runtime a slow phase waited on.
fn with_publish_rate(mut section: Value, published: usize, elapsed: Duration) -> Value {
    section["published_per_s"] = json!(round(published as f64 / elapsed.as_secs_f64()));
    section
}

pub fn event(n: usize) -> OutgoingEvent {
    // About the size of a TaskEvent with a short title.
    let data = format!(r#"{{"sentNanos":{},"pad":"{}"}}"#, now_nanos(), "x".repeat(100)).into_bytes();
    OutgoingEvent {
        event_id: format!("e{n}-{}", uuid::Uuid::new_v4().simple()),
        event_type: "bench.event".into(),
        partition_key: format!("user-{}", n % KEYS),
        data,
        content_type: ContentType::Json,
        traceparent: None,
    }
}

/// The same kind of workload through the official Python Dapr SDK:
/// `DaprClient.publish_event` (one call per event, as the SDK's client is
/// synchronous), received by a `dapr.ext.grpc.App` subscriber, through a
/// sidecar of `kind` of its own.
pub async fn python_baseline(args: &Args, kind: RuntimeKind) -> anyhow::Result<Value> {
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-support/python");
    let check = Command::new(&args.python)
        .args(["-c", "import dapr.clients, dapr.ext.grpc"])
        .status()?;
    anyhow::ensure!(
        check.success(),
        "{} lacks dapr[grpc] (run scripts/python-peers.sh)",
        args.python
    );
    let plan = sidecar_options(kind, "pyapp").plan()?;
    let app = plan.app("pyapp")?.ports;
    let received = plan.dir().join("received.jsonl");
    let mut subscriber = Command::new(&args.python)
        .arg(scripts.join("subscriber.py"))
        .arg(app.app.to_string())
        .arg(&received)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    supervisor::wait_for_port("python subscriber", app.app, Duration::from_secs(30)).await?;
    let _sidecars = plan.start().await?;

    let publish = |first: usize, count: usize| {
        let python = args.python.clone();
        let script = scripts.join("publisher.py");
        async move {
            let output = tokio::task::spawn_blocking(move || {
                Command::new(python)
                    .arg(script)
                    .arg(count.to_string())
                    .arg(KEYS.to_string())
                    .arg(first.to_string())
                    .env("DAPR_GRPC_PORT", app.dapr_grpc.to_string())
                    .env("DAPR_HTTP_PORT", app.dapr_http.to_string())
                    .output()
            })
            .await??;
            anyhow::ensure!(
                output.status.success(),
                "python publisher failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            anyhow::Ok(())
        }
    };
    let delivered = || {
        std::fs::read_to_string(&received)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    };
    let wait_for = |total: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let lines = delivered();
            if lines >= total {
                return anyhow::Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "python subscriber got {lines} of {total}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // As for our own publisher: the group joined and connections open first.
    let warm = 2 * KEYS;
    publish(0, warm).await?;
    wait_for(warm).await?;

    let total = args.scale(3_000, 600);
    let started = Instant::now();
    publish(warm, total).await?;
    wait_for(warm + total).await?;
    let elapsed = started.elapsed();
    let _ = subscriber.kill();
    let _ = subscriber.wait();
    Ok(json!({
        "events": total,
        "seconds": round(elapsed.as_secs_f64()),
        "events_per_s": round(total as f64 / elapsed.as_secs_f64()),
        "what": format!("Python Dapr SDK 1.19: DaprClient.publish_event (one call per event, {KEYS} keys) to {kind}, dapr.ext.grpc.App subscriber"),
    }))
}
