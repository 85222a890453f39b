//! The binary starts, reports SERVING, offers reflection, and exits cleanly
//! on SIGTERM.

use std::time::Duration;

use todo_testing::ServiceProcess;

#[tokio::test]
async fn serves_health_and_reflection_and_stops_on_sigterm() {
    let env = [("DAPR_GRPC_PORT", "1"), ("APP_API_TOKEN", "health-test-app-token")];
    let process = ServiceProcess::start(
        "reminder-service",
        env!("CARGO_BIN_EXE_reminder-service"),
        "APP_PORT",
        &env,
    )
    .await;

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
