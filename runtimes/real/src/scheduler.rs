//! The Dapr Scheduler (the Jobs API's backend) with its embedded etcd, on
//! loopback, its data in a folder of its own so jobs survive a restart.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use crate::{RuntimeError, http, install::Installed};
use supervisor::{Output, Proc, Spec};

#[derive(Debug, Clone, Copy)]
pub struct SchedulerPorts {
    /// The gRPC API daprd connects to (`--scheduler-host-address`).
    pub grpc: u16,
    pub healthz: u16,
    pub metrics: u16,
    pub etcd_client: u16,
    pub etcd_peer: u16,
}

pub struct Scheduler {
    pub proc: Proc,
    pub ports: SchedulerPorts,
}

impl Scheduler {
    pub async fn start(
        installed: &Installed,
        dir: &Path,
        ports: SchedulerPorts,
        output: Output,
    ) -> Result<Self, RuntimeError> {
        let data = dir.join("etcd");
        std::fs::create_dir_all(&data).map_err(RuntimeError::file(&data))?;
        // etcd refuses a data directory others can read.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).map_err(RuntimeError::file(&data))?;
        let id = "dapr-scheduler-server-0";
        let spec = Spec::new("scheduler", &installed.scheduler, output).args([
            "--listen-address".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            ports.grpc.to_string(),
            "--healthz-listen-address".to_owned(),
            "127.0.0.1".to_owned(),
            "--healthz-port".to_owned(),
            ports.healthz.to_string(),
            "--metrics-listen-address".to_owned(),
            "127.0.0.1".to_owned(),
            "--metrics-port".to_owned(),
            ports.metrics.to_string(),
            "--id".to_owned(),
            id.to_owned(),
            "--etcd-initial-cluster".to_owned(),
            format!("{id}=http://127.0.0.1:{}", ports.etcd_peer),
            "--etcd-data-dir".to_owned(),
            data.display().to_string(),
            "--etcd-client-port".to_owned(),
            ports.etcd_client.to_string(),
            "--etcd-client-listen-address".to_owned(),
            "127.0.0.1".to_owned(),
            "--log-level".to_owned(),
            "warn".to_owned(),
        ]);
        let mut scheduler = Self {
            proc: Proc::start(spec)?,
            ports,
        };
        scheduler.wait_until_ready().await?;
        Ok(scheduler)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.ports.grpc)
    }

    async fn wait_until_ready(&mut self) -> Result<(), RuntimeError> {
        let url = format!("http://127.0.0.1:{}/healthz", self.ports.healthz);
        http::wait_until_ok("the Dapr Scheduler", &url, Duration::from_secs(60), || {
            self.proc.log_tail(30)
        })
        .await
    }

    /// kill -9 the Scheduler and start it again on the same data.
    pub async fn crash_and_restart(&mut self, down_for: Duration) -> Result<(), RuntimeError> {
        self.proc.kill();
        tokio::time::sleep(down_for).await;
        self.proc.restart()?;
        self.wait_until_ready().await
    }
}
