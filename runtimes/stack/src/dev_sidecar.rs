//! The dev-sidecar runtime: one dev-sidecar process serving every app's
//! Dapr API from a run file written for the plan.

use std::fmt::Write as _;

use supervisor::{Proc, Spec};

use crate::{
    error::StackError,
    plan::{Plan, Tokens, binaries_beside_this_program},
};

/// Starts dev-sidecar for every app of `plan`; returns once it listens.
pub(crate) async fn start(plan: &Plan, tokens: &Tokens, otlp: Option<&str>) -> Result<Proc, StackError> {
    let run_file = plan.dir().join("run.yaml");
    let mut text = String::from("version: 1\ncommon:\n  appProtocol: grpc\napps:\n");
    for app in &plan.apps {
        let _ = write!(
            text,
            "  - appID: {}\n    appPort: {}\n    daprGRPCPort: {}\n    daprHTTPPort: {}\n",
            app.app_id, app.ports.app, app.ports.dapr_grpc, app.ports.dapr_http
        );
    }
    std::fs::write(&run_file, text).map_err(StackError::file(&run_file))?;
    let binary = plan
        .options
        .bin_dir
        .clone()
        .unwrap_or_else(binaries_beside_this_program)
        .join("dev-sidecar");
    if !binary.is_file() {
        return Err(StackError::NotBuilt {
            what: "dev-sidecar".into(),
            path: binary,
        });
    }
    let mut spec = Spec::new("dev-sidecar", binary, plan.output("dev-sidecar", 0)).args([
        "--run-file".to_owned(),
        run_file.display().to_string(),
        "--data-dir".to_owned(),
        plan.dir().join("sidecar").display().to_string(),
        "--admin-port".to_owned(),
        plan.infra.admin.to_string(),
    ]);
    if let Some(retries) = plan.options.retries {
        spec = spec.args([
            "--max-retries".to_owned(),
            retries.max_retries.to_string(),
            "--retry-initial-ms".to_owned(),
            retries.interval_ms.to_string(),
            "--retry-max-ms".to_owned(),
            retries.interval_ms.to_string(),
        ]);
    }
    if let Some(partitions) = plan.options.topics.iter().map(|topic| topic.partitions).max() {
        spec = spec.args(["--partitions".to_owned(), partitions.to_string()]);
    }
    if let Some(level) = plan.quiet_logs() {
        spec = spec.env("RUST_LOG", level);
    }
    for (key, value) in &plan.options.env {
        spec = spec.env(key, value.clone());
    }
    if let Some(endpoint) = otlp {
        spec = spec.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    if let Some(token) = &tokens.app {
        spec = spec.env("APP_API_TOKEN", token.clone());
    }
    if let Some(token) = &tokens.api {
        spec = spec.env("DAPR_API_TOKEN", token.clone());
    }
    let proc = Proc::start(spec)?;
    wait_listening(plan).await?;
    Ok(proc)
}

/// Waits until dev-sidecar serves every app's Dapr API.
pub(crate) async fn wait_listening(plan: &Plan) -> Result<(), StackError> {
    for app in &plan.apps {
        supervisor::wait_for_port("dev-sidecar", app.ports.dapr_grpc, std::time::Duration::from_secs(30)).await?;
    }
    Ok(())
}

/// GET `path_and_query` on dev-sidecar's inspection surface.
pub(crate) async fn admin_get(port: u16, path_and_query: &str) -> Result<serde_json::Value, StackError> {
    todo_testing::http::get_json(port, path_and_query)
        .await
        .map_err(|err| StackError::Inspect {
            what: format!("dev-sidecar {path_and_query}"),
            detail: err.to_string(),
        })
}
