//! Starting and stopping the apps themselves (`--run-apps`), so one
//! process runs the whole local stack. Each app gets the environment daprd
//! would give it, and its output is prefixed with its app id.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::run_file::App;

const COLOURS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];

/// The running apps.
pub struct Processes {
    children: Vec<(String, Child)>,
}

impl Processes {
    /// Starts every app with a command. `extra_env` overrides the run file.
    pub fn start(
        apps: &[App],
        extra_env: &BTreeMap<String, String>,
        tokens: &BTreeMap<&'static str, String>,
    ) -> Result<Self, String> {
        let mut children = Vec::new();
        for (index, app) in apps.iter().enumerate() {
            let Some((program, args)) = app.command.split_first() else {
                tracing::info!(app = %app.app_id, "no command in the run file; not started");
                continue;
            };
            let mut command = Command::new(app.dir.join(program));
            command
                .args(args)
                .current_dir(&app.dir)
                .envs(&app.env)
                .envs(extra_env)
                .envs(tokens.iter().map(|(k, v)| (*k, v.as_str())))
                .env("APP_ID", &app.app_id)
                .env("APP_PORT", app.app_port.to_string())
                .env("APP_HOST", "127.0.0.1")
                .env("DAPR_GRPC_PORT", app.grpc_port.to_string())
                .env("DAPR_HTTP_PORT", app.http_port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            // If dev-sidecar dies without stopping its apps (kill -9, a
            // crash), the kernel sends them SIGTERM, so no orphan keeps a port.
            // SAFETY: the closure runs in the forked child before exec and only
            // makes one prctl system call, which is async-signal-safe; it
            // touches no memory shared with the parent.
            #[cfg(target_os = "linux")]
            unsafe {
                command.pre_exec(|| {
                    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
                        .map_err(std::io::Error::from)
                });
            }
            let mut child = command.spawn().map_err(|err| {
                format!(
                    "cannot start {} ({}): {err}",
                    app.app_id,
                    app.dir.join(program).display()
                )
            })?;
            let colour = COLOURS[index % COLOURS.len()];
            let prefix = format!("\x1b[{colour}m{:<20}|\x1b[0m ", app.app_id);
            if let Some(stdout) = child.stdout.take() {
                tokio::spawn(forward(BufReader::new(stdout), prefix.clone()));
            }
            if let Some(stderr) = child.stderr.take() {
                tokio::spawn(forward(BufReader::new(stderr), prefix));
            }
            tracing::info!(app = %app.app_id, pid = child.id(), "app started");
            children.push((app.app_id.clone(), child));
        }
        Ok(Self { children })
    }

    /// SIGTERM to every app, then SIGKILL for any still running after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        for (app_id, child) in &self.children {
            if let Some(pid) = child.id().and_then(|pid| rustix::process::Pid::from_raw(pid as i32)) {
                tracing::info!(app = %app_id, "stopping");
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        for (app_id, child) in &mut self.children {
            match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(Ok(status)) => tracing::info!(app = %app_id, %status, "app exited"),
                _ => {
                    tracing::warn!(app = %app_id, "did not stop in time; killing");
                    let _ = child.kill().await;
                }
            }
        }
    }
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(reader: BufReader<R>, prefix: String) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{prefix}{line}");
    }
}
