//! Starting and stopping the apps themselves (`--run-apps`), so one
//! process runs the whole local stack. Each app gets the environment daprd
//! would give it, its output is prefixed with its app id, and an app that
//! dies on its own (a crash, kill -9) is started again after a short pause,
//! as an orchestrator would.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use todo_core::shutdown::CancellationToken;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};

use crate::run_file::App;

const COLOURS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// The running apps, each under its own supervisor task.
pub struct Processes {
    stop: CancellationToken,
    supervisors: Vec<JoinHandle<()>>,
}

struct Launch {
    app: App,
    env: BTreeMap<String, String>,
    prefix: String,
}

impl Launch {
    fn spawn(&self) -> Result<Child, String> {
        let (program, args) = self
            .app
            .command
            .split_first()
            .expect("apps without a command are skipped");
        let mut command = Command::new(self.app.dir.join(program));
        command
            .args(args)
            .current_dir(&self.app.dir)
            .envs(&self.env)
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
                self.app.app_id,
                self.app.dir.join(program).display()
            )
        })?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward(BufReader::new(stdout), self.prefix.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward(BufReader::new(stderr), self.prefix.clone()));
        }
        tracing::info!(app = %self.app.app_id, pid = child.id(), "app started");
        Ok(child)
    }

    /// Keeps the app running until `stop`, then stops it: SIGTERM, and
    /// SIGKILL if it is still there after `grace`.
    async fn supervise(self, mut child: Child, stop: CancellationToken, grace: Duration) {
        loop {
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(app = %self.app.app_id, status = ?status.ok(), "app exited on its own; restarting");
                    tokio::select! {
                        () = tokio::time::sleep(RESTART_DELAY) => {}
                        () = stop.cancelled() => return,
                    }
                    match self.spawn() {
                        Ok(next) => child = next,
                        Err(err) => {
                            tracing::error!(app = %self.app.app_id, error = %err, "restart failed; giving up");
                            return;
                        }
                    }
                }
                () = stop.cancelled() => break,
            }
        }
        if let Some(pid) = child.id().and_then(|pid| rustix::process::Pid::from_raw(pid as i32)) {
            tracing::info!(app = %self.app.app_id, "stopping");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(status)) => tracing::info!(app = %self.app.app_id, %status, "app exited"),
            _ => {
                tracing::warn!(app = %self.app.app_id, "did not stop in time; killing");
                let _ = child.kill().await;
            }
        }
    }
}

impl Processes {
    /// Starts every app with a command. Environment, later wins: this
    /// process's, the run file's, `extra_env`, the tokens, then what daprd sets.
    pub fn start(
        apps: &[App],
        extra_env: &BTreeMap<String, String>,
        tokens: &BTreeMap<&'static str, String>,
        grace: Duration,
    ) -> Result<Self, String> {
        let stop = CancellationToken::new();
        let mut supervisors = Vec::new();
        for (index, app) in apps.iter().enumerate() {
            if app.command.is_empty() {
                tracing::info!(app = %app.app_id, "no command in the run file; not started");
                continue;
            }
            let mut env = app.env.clone();
            env.extend(extra_env.clone());
            env.extend(tokens.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            env.insert("APP_ID".into(), app.app_id.clone());
            env.insert("APP_PORT".into(), app.app_port.to_string());
            env.insert("APP_HOST".into(), "127.0.0.1".into());
            env.insert("DAPR_GRPC_PORT".into(), app.grpc_port.to_string());
            env.insert("DAPR_HTTP_PORT".into(), app.http_port.to_string());
            let colour = COLOURS[index % COLOURS.len()];
            let launch = Launch {
                app: app.clone(),
                env,
                prefix: format!("\x1b[{colour}m{:<20}|\x1b[0m ", app.app_id),
            };
            let child = launch.spawn()?;
            supervisors.push(tokio::spawn(launch.supervise(child, stop.clone(), grace)));
        }
        Ok(Self { stop, supervisors })
    }

    /// Stops every app and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        for supervisor in self.supervisors {
            let _ = supervisor.await;
        }
    }
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(reader: BufReader<R>, prefix: String) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{prefix}{line}");
    }
}
