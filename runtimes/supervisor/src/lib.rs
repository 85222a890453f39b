//! The one process supervisor of the local runtimes, the tests and the
//! developer tools.
//!
//! A [`Proc`] is started from a [`Spec`] kept so it can be started again;
//! its output goes to a log file, to the terminal prefixed with its name, or
//! nowhere. It dies with the process that started it (parent-death signal),
//! so a test that panics or a launcher that is killed leaves nothing
//! behind, and it runs in a process group of its own, so Ctrl-C in a
//! terminal reaches only the launcher, which then stops everything in
//! order. [`keep_running`] brings back whatever exits, as an orchestrator
//! would.
//!
//! - [`ports`]: free loopback ports, and waiting until one accepts.

pub mod ports;

use std::{
    fs::OpenOptions,
    future::Future,
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub use ports::{free_port, free_ports, wait_for_port};
pub use rustix::process::Signal;

/// What can go wrong starting a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {path} for {name}'s output: {source}")]
    Output {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no free loopback port: {0}")]
    NoFreePort(std::io::Error),
    #[error("{what} did not listen on 127.0.0.1:{port} within {timeout:?}")]
    NotListening { what: String, port: u16, timeout: Duration },
}

/// Where a process's output goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// Appended to this file (tests: quiet unless something fails).
    File(PathBuf),
    /// Each line printed with this prefix (the launchers).
    Prefixed(String),
    /// Discarded.
    Null,
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

    /// Sets `key` (a later value for the same key wins).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(existing, _)| existing != key);
        self.env.push((key.to_owned(), value.into()));
        self
    }
}

/// A running (or stopped) process.
pub struct Proc {
    pub spec: Spec,
    child: Option<Child>,
}

impl Proc {
    pub fn start(spec: Spec) -> Result<Self, ProcessError> {
        let mut proc = Self { spec, child: None };
        proc.spawn()?;
        Ok(proc)
    }

    fn spawn(&mut self) -> Result<(), ProcessError> {
        let spec = &self.spec;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(dir) = &spec.dir {
            command.current_dir(dir);
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        match &spec.output {
            Output::File(path) => {
                let open = || OpenOptions::new().create(true).append(true).open(path);
                let error = |source| ProcessError::Output {
                    name: spec.name.clone(),
                    path: path.clone(),
                    source,
                };
                command.stdout(open().map_err(error)?).stderr(open().map_err(error)?);
            }
            Output::Prefixed(_) => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Output::Null => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        // SAFETY: the closure runs in the forked child before exec and only
        // makes one prctl system call, which is async-signal-safe.
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            name: spec.name.clone(),
            program: spec.program.clone(),
            source,
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

    /// The exit code if the process has exited on its own (reaps it).
    pub fn exited(&mut self) -> Option<Option<i32>> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.code()),
            _ => None,
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
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid().and_then(|pid| rustix::process::Pid::from_raw(pid as i32)) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// Starts it again with the same command (after [`Self::kill`] or an exit).
    pub fn restart(&mut self) -> Result<(), ProcessError> {
        self.kill();
        self.spawn()
    }

    /// SIGTERM, then SIGKILL if it is still there after `grace`. Returns
    /// the exit code when it exited on its own terms. Waits without
    /// blocking the runtime, so servers in the same process (a test's OTLP
    /// receiver, say) keep answering while it stops.
    pub async fn stop(&mut self, grace: Duration) -> Option<i32> {
        self.signal(Signal::TERM);
        self.exit_or_kill(Instant::now() + grace).await
    }

    /// Waits for the process to exit (after a SIGTERM, say) until
    /// `deadline`, then SIGKILL. Returns the exit code when it exited on
    /// its own terms.
    pub async fn exit_or_kill(&mut self, deadline: Instant) -> Option<i32> {
        let mut child = self.child.take()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    /// The last `lines` lines of its log file (empty for other outputs).
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

/// Stops `procs` together: SIGTERM to all, then each gets until `grace`
/// from now before SIGKILL. Their exit codes, in order.
pub async fn stop_all(procs: &mut [&mut Proc], grace: Duration) -> Vec<Option<i32>> {
    for proc in procs.iter() {
        proc.signal(Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    let mut codes = Vec::new();
    for proc in procs.iter_mut() {
        codes.push(proc.exit_or_kill(deadline).await);
    }
    codes
}

/// Brings back any of `procs` that exits, until `stop` completes; `say`
/// tells what happened.
pub async fn keep_running(mut procs: Vec<&mut Proc>, stop: impl Future<Output = ()>, say: impl Fn(&str)) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {
                for proc in procs.iter_mut() {
                    if proc.child.is_some() && !proc.is_running() {
                        say(&format!("{} exited; starting it again", proc.spec.name));
                        if let Err(err) = proc.restart() {
                            say(&format!("cannot restart {}: {err}", proc.spec.name));
                        }
                    }
                }
            }
        }
    }
}
