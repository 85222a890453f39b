//! One process of the real runtime: started with its output going to a
//! log file or, prefixed with its name, to the terminal; killed with the
//! process that started it (parent-death signal), so a test that panics or
//! a launcher that is killed leaves nothing behind; restartable on the same
//! command, for fault tests and for the launcher's supervision.

use std::{
    fs::OpenOptions,
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Where a process's output goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// Appended to this file (tests: quiet unless something fails).
    File(PathBuf),
    /// Each line printed with this prefix (the launcher).
    Prefixed(String),
}

/// How to start a process, kept so it can be started again.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
    pub output: Output,
}

impl Spec {
    pub fn new(name: &str, program: impl Into<PathBuf>, output: Output) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            output,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }
}

/// A running (or stopped) process of the stack.
pub struct Proc {
    pub spec: Spec,
    child: Option<Child>,
}

impl Proc {
    pub fn start(spec: Spec) -> std::io::Result<Self> {
        let mut proc = Self { spec, child: None };
        proc.spawn()?;
        Ok(proc)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let spec = &self.spec;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(dir) = &spec.dir {
            command.current_dir(dir);
        }
        // A process group of its own: Ctrl-C in the terminal reaches only
        // the launcher, which then stops the stack in order (apps before
        // their sidecars, sidecars before Kafka and Jaeger).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        match &spec.output {
            Output::File(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                command.stdout(file.try_clone()?).stderr(file);
            }
            Output::Prefixed(_) => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        // SAFETY: the closure runs in the forked child before exec and only
        // makes one prctl system call, which is async-signal-safe.
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().map_err(|err| {
            std::io::Error::new(
                err.kind(),
                format!("cannot start {} ({}): {err}", spec.name, spec.program.display()),
            )
        })?;
        if let Output::Prefixed(prefix) = &spec.output {
            if let Some(stdout) = child.stdout.take() {
                forward(stdout, prefix.clone());
            }
            if let Some(stderr) = child.stderr.take() {
                forward(stderr, prefix.clone());
            }
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// kill -9, as a crash would, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (SIGSTOP / SIGCONT freeze and thaw it).
    pub fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pid) = self.pid().and_then(|pid| rustix::process::Pid::from_raw(pid as i32)) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// Starts it again with the same command (after [`Self::kill`] or an exit).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.spawn()
    }

    /// SIGTERM, then SIGKILL if it is still there after `grace`. Returns
    /// the exit code when it exited on its own terms.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    /// The last `lines` lines of its log file (empty for prefixed output).
    pub fn log_tail(&self, lines: usize) -> String {
        let Output::File(path) = &self.spec.output else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn forward(stream: impl Read + Send + 'static, prefix: String) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            println!("{prefix}{line}");
        }
    });
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub async fn wait_for_port(what: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on port {port} within {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
