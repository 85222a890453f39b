//! A scripted subscriber app and dev-sidecar, both in the test process.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use dev_sidecar::{config::Config, startup::Application};
use todo_core::{
    config::DaprConfig,
    dapr::{
        jobs::Jobs,
        publisher::{Publisher, SidecarClient},
    },
};
use todo_testing::{RunningServer, free_ports};

pub use todo_testing::recorder::Recorder;

/// Runs `recorder` as an app on `port`.
pub async fn serve_app(recorder: Arc<Recorder>, port: u16) -> RunningServer {
    serve_app_with_token(recorder, port, None).await
}

/// Runs `recorder` as an app that requires `app_api_token` on callbacks.
pub async fn serve_app_with_token(recorder: Arc<Recorder>, port: u16, app_api_token: Option<&str>) -> RunningServer {
    recorder.serve(port, app_api_token).await
}

/// Ports and files of one app's local stack.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub app_port: u16,
    pub grpc_port: u16,
    pub admin_port: u16,
}

impl Stack {
    pub fn new() -> Self {
        todo_testing::init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let [app_port, grpc_port, admin_port] = free_ports(3)[..] else {
            unreachable!()
        };
        let stack = Self {
            app_port,
            grpc_port,
            admin_port,
            dir,
        };
        std::fs::write(
            stack.run_file(),
            format!(
                "version: 1\napps:\n  - appID: recorder\n    appPort: {}\n    daprGRPCPort: {}\n",
                stack.app_port, stack.grpc_port
            ),
        )
        .unwrap();
        stack
    }

    pub fn run_file(&self) -> PathBuf {
        self.dir.path().join("dev.yaml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts dev-sidecar for this stack with extra flags.
    pub async fn sidecar(&self, flags: &[&str]) -> RunningServer {
        self.sidecar_for("recorder", flags).await
    }

    /// Starts dev-sidecar for a run file whose app is `app_id`.
    pub async fn sidecar_for(&self, app_id: &str, flags: &[&str]) -> RunningServer {
        let mut args = vec![
            "dev-sidecar".to_owned(),
            "--run-file".into(),
            path(&self.run_file()),
            "--data-dir".into(),
            path(&self.data_dir()),
            "--admin-port".into(),
            self.admin_port.to_string(),
            "--retry-initial-ms".into(),
            "20".into(),
            "--retry-max-ms".into(),
            "100".into(),
        ];
        args.extend(flags.iter().map(|flag| (*flag).to_owned()));
        let config = Config::parse_from(args);
        let app = Application::build(config).await.expect("dev-sidecar builds");
        let addr = app.endpoints()[app_id];
        RunningServer::spawn(addr, |stop| app.run_until_stopped(stop))
    }

    pub fn dapr_config(&self) -> DaprConfig {
        DaprConfig {
            grpc_endpoint: format!("http://127.0.0.1:{}", self.grpc_port),
            api_token: None,
            app_api_token: None,
            pubsub_name: "pubsub".into(),
        }
    }

    pub fn publisher(&self) -> Publisher {
        Publisher::connect_lazy(&self.dapr_config()).unwrap()
    }

    /// A client of the sidecar's Dapr API, for calls the helpers lack.
    pub fn sidecar_client(&self) -> SidecarClient {
        SidecarClient::connect_lazy(&self.dapr_config()).unwrap()
    }

    pub fn jobs(&self) -> Jobs {
        Jobs::new(self.sidecar_client())
    }

    /// GET on the inspection surface, as JSON.
    pub async fn inspect(&self, path_and_query: &str) -> serde_json::Value {
        todo_testing::http::get_json(self.admin_port, path_and_query)
            .await
            .unwrap_or_else(|err| panic!("{path_and_query}: {err}"))
    }
}

fn path(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// Polls `check` until it holds; panics after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
