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
    let process = ServiceProcess::start("audit-service", env!("CARGO_BIN_EXE_audit-service"), "APP_PORT", &env).await;

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
