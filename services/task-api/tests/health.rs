//! The binary starts, reports SERVING, offers reflection, and exits cleanly
//! on SIGTERM.

use std::time::Duration;

use todo_testing::{ServiceProcess, TestDatabase};

#[tokio::test]
async fn serves_health_and_reflection_and_stops_on_sigterm() {
    let database = TestDatabase::create().await;
    let env = [
        ("APP_API_TOKEN", "health-test-app-token"),
        ("DATABASE_URL", database.url.as_str()),
        ("JWT_SECRET", todo_testing::TEST_JWT_SECRET),
    ];
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
    let env = [
        ("APP_API_TOKEN", "health-test-app-token"),
        ("DATABASE_URL", database.url.as_str()),
        ("JWT_SECRET", todo_testing::TEST_JWT_SECRET),
    ];
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

/// The transport's limits as a client sees them: HTTP/2 caps the streams
/// one connection may open (tonic leaves it unbounded unless told).
#[tokio::test]
async fn one_connection_may_open_a_bounded_number_of_streams() {
    let database = TestDatabase::create().await;
    let env = [
        ("APP_API_TOKEN", "health-test-app-token"),
        ("DATABASE_URL", database.url.as_str()),
        ("JWT_SECRET", todo_testing::TEST_JWT_SECRET),
    ];
    let process = ServiceProcess::start("task-api", env!("CARGO_BIN_EXE_task-api"), "APP_PORT", &env).await;
    let tcp = tokio::net::TcpStream::connect(process.addr).await.expect("connect");
    let (client, mut connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
    let mut client = client.ready().await.expect("ready");
    // One call, so the server's SETTINGS have surely arrived.
    let request = http::Request::post(format!("http://{}/grpc.health.v1.Health/Check", process.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).expect("send");
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .expect("send the empty HealthCheckRequest");
    let response = tokio::select! {
        response = response => response.expect("a response"),
        _ = &mut connection => panic!("the connection ended"),
    };
    assert_eq!(response.status(), 200);
    assert_eq!(
        connection.max_concurrent_send_streams(),
        todo_core::server::MAX_STREAMS_PER_CONNECTION as usize
    );
    drop(client);
    let exit_code = process.terminate(Duration::from_secs(10)).await;
    assert_eq!(exit_code, Some(0));
}
