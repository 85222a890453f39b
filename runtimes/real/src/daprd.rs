//! One daprd per app, standalone: Dapr API on loopback, the app reached
//! over gRPC on loopback, components from a resources folder, jobs through
//! the Scheduler.

use std::{path::PathBuf, time::Duration};

use crate::{RuntimeError, http, install::Installed};
use supervisor::{Output, Proc, Spec};

/// The ports of one app's sidecar.
#[derive(Debug, Clone, Copy)]
pub struct DaprdPorts {
    pub grpc: u16,
    pub http: u16,
    pub internal_grpc: u16,
}

#[derive(Debug, Clone)]
pub struct DaprdOptions {
    pub app_id: String,
    /// The app's gRPC port; None for a sidecar without an app (publish only).
    pub app_port: Option<u16>,
    pub ports: DaprdPorts,
    pub resources: PathBuf,
    pub config: PathBuf,
    pub scheduler: String,
    /// `APP_API_TOKEN`: daprd sends it to the app as `dapr-api-token`.
    pub app_api_token: Option<String>,
    /// `DAPR_API_TOKEN`: daprd requires it from the app.
    pub dapr_api_token: Option<String>,
    /// daprd's app health check (AppCallbackHealthCheck for gRPC apps).
    pub app_health_check: bool,
    pub log_level: String,
    /// `POD_NAME`: standalone daprd fills `{podName}` in component
    /// metadata from it (and refuses to start without it).
    pub pod_name: String,
}

pub struct Daprd {
    pub proc: Proc,
    pub options: DaprdOptions,
}

impl Daprd {
    /// Starts daprd; with `wait`, until `/v1.0/healthz` answers (which,
    /// with an app port, also means the app listens).
    pub async fn start(
        installed: &Installed,
        options: DaprdOptions,
        output: Output,
        wait: bool,
    ) -> Result<Self, RuntimeError> {
        let mut spec = Spec::new(&format!("daprd {}", options.app_id), &installed.daprd, output)
            .args(args(&options))
            // Host IP detection fails on a loopback-only machine.
            .env("DAPR_HOST_IP", "127.0.0.1")
            .env("POD_NAME", options.pod_name.clone());
        if let Some(token) = &options.app_api_token {
            spec = spec.env("APP_API_TOKEN", token.clone());
        }
        if let Some(token) = &options.dapr_api_token {
            spec = spec.env("DAPR_API_TOKEN", token.clone());
        }
        let daprd = Self {
            proc: Proc::start(spec)?,
            options,
        };
        if wait {
            daprd.wait_until_healthy(Duration::from_secs(60)).await?;
        }
        Ok(daprd)
    }

    pub async fn wait_until_healthy(&self, timeout: Duration) -> Result<(), RuntimeError> {
        let url = format!("http://127.0.0.1:{}/v1.0/healthz", self.options.ports.http);
        http::wait_until_ok(&format!("daprd {}", self.options.app_id), &url, timeout, || {
            self.proc.log_tail(40)
        })
        .await
    }

    /// The Dapr gRPC API, as a URL.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.options.ports.grpc)
    }

    /// kill -9 daprd and start it again on the same ports.
    pub async fn crash_and_restart(&mut self) -> Result<(), RuntimeError> {
        self.proc.kill();
        self.proc.restart()?;
        self.wait_until_healthy(Duration::from_secs(60)).await
    }
}

fn args(options: &DaprdOptions) -> Vec<String> {
    let mut args: Vec<String> = [
        "--app-id",
        &options.app_id,
        "--app-protocol",
        "grpc",
        "--app-channel-address",
        "127.0.0.1",
        "--dapr-listen-addresses",
        "127.0.0.1",
        "--dapr-grpc-port",
        &options.ports.grpc.to_string(),
        "--dapr-http-port",
        &options.ports.http.to_string(),
        "--dapr-internal-grpc-port",
        &options.ports.internal_grpc.to_string(),
        "--resources-path",
        &options.resources.display().to_string(),
        "--config",
        &options.config.display().to_string(),
        "--scheduler-host-address",
        &options.scheduler,
        "--enable-metrics=false",
        "--log-level",
        &options.log_level,
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    if let Some(port) = options.app_port {
        args.extend(["--app-port".to_owned(), port.to_string()]);
    }
    if options.app_health_check {
        args.extend(
            [
                "--enable-app-health-check",
                "--app-health-probe-interval",
                "1",
                "--app-health-threshold",
                "3",
            ]
            .map(str::to_owned),
        );
    }
    args
}
