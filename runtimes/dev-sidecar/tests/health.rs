//! The binary starts from a run file, reports SERVING on each app's Dapr
//! endpoint, offers reflection of the Dapr API, and exits cleanly on SIGTERM.

use std::time::Duration;

use todo_testing::{ServiceProcess, free_port};

#[tokio::test]
async fn serves_health_and_reflection_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let grpc_port = free_port();
    let run_file = dir.path().join("dev.yaml");
    std::fs::write(
        &run_file,
        format!(
            "version: 1\napps:\n  - appID: probe\n    appPort: {}\n    daprGRPCPort: {grpc_port}\n    daprHTTPPort: {}\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let admin_port = free_port().to_string();
    let data_dir = dir.path().join("data");
    let env = [
        ("DEV_SIDECAR_RUN_FILE", run_file.to_str().unwrap()),
        ("DEV_SIDECAR_DATA_DIR", data_dir.to_str().unwrap()),
        ("DEV_SIDECAR_ADMIN_PORT", admin_port.as_str()),
    ];
    let process = ServiceProcess::start_on("dev-sidecar", env!("CARGO_BIN_EXE_dev-sidecar"), grpc_port, &env).await;

    let services = process.reflected_services().await;
    assert!(services.contains(&"grpc.health.v1.Health".to_owned()), "{services:?}");
    assert!(
        services.contains(&"dapr.proto.runtime.v1.Dapr".to_owned()),
        "{services:?}"
    );

    let exit_code = process.terminate(Duration::from_secs(10)).await;
    assert_eq!(exit_code, Some(0), "graceful shutdown exits with 0");
}
