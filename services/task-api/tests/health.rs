//! The binary starts, reports SERVING, offers reflection, and exits cleanly
//! on SIGTERM.

use std::time::Duration;

use todo_testing::{ServiceProcess, TestDatabase};

#[tokio::test]
async fn serves_health_and_reflection_and_stops_on_sigterm() {
    let database = TestDatabase::create().await;
    let env = [("DATABASE_URL", database.url.as_str()), ("JWT_SECRET", "test-secret")];
    let process = ServiceProcess::start("task-api", env!("CARGO_BIN_EXE_task-api"), "APP_PORT", &env).await;

    let services = process.reflected_services().await;
    assert!(services.contains(&"grpc.health.v1.Health".to_owned()), "{services:?}");
    // daprd (and grpcurl, for hand-injected events) reach the callbacks.
    assert!(
        services.contains(&"dapr.proto.runtime.v1.AppCallback".to_owned()),
        "{services:?}"
    );

    let exit_code = process.terminate(Duration::from_secs(10)).await;
    assert_eq!(exit_code, Some(0), "graceful shutdown exits with 0");
}

/// A client that goes silent with its connection open (a frozen process,
/// a network partition) does not hold the shutdown until the
/// orchestrator's SIGKILL: the server waits for it only as long as its
/// drain time, then closes what is left and exits cleanly.
#[tokio::test]
async fn a_silent_client_does_not_hold_the_shutdown() {
    use tokio::io::AsyncWriteExt;
    let database = TestDatabase::create().await;
    let env = [("DATABASE_URL", database.url.as_str()), ("JWT_SECRET", "test-secret")];
    let process = ServiceProcess::start("task-api", env!("CARGO_BIN_EXE_task-api"), "APP_PORT", &env).await;
    // An HTTP/2 connection: the preface and an empty SETTINGS frame, then
    // nothing more, not even an acknowledgement of what the server sends.
    let mut silent = tokio::net::TcpStream::connect(process.addr).await.expect("connect");
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("the preface");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let exit_code = process
        .terminate(todo_core::server::DRAIN_LIMIT + Duration::from_secs(5))
        .await;
    assert_eq!(exit_code, Some(0), "graceful shutdown exits with 0");
    drop(silent);
}
