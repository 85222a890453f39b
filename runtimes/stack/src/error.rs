//! What can go wrong starting or driving a stack.

use std::path::PathBuf;

use crate::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    RunFile(#[from] dev_sidecar::run_file::RunFileError),
    #[error(transparent)]
    Runtime(#[from] real_runtime::RuntimeError),
    #[error(transparent)]
    Process(#[from] supervisor::ProcessError),
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error(
        "port {port} ({what}) is already in use: is another `just dev` or `just dev-dapr` running? (docs/troubleshooting.md)"
    )]
    PortInUse { port: u16, what: String },
    #[error("{what} is not built: {} is missing (run `cargo build --workspace`)", path.display())]
    NotBuilt { what: String, path: PathBuf },
    #[error("the run file has no app {0}")]
    UnknownApp(String),
    #[error("{what} is not part of a stack on {runtime}")]
    NotOnThisRuntime { what: String, runtime: Runtime },
    #[error("{what} did not happen within {seconds} s\n{logs}")]
    Timeout {
        what: String,
        seconds: u64,
        /// The tail of every process's log.
        logs: String,
    },
    #[error("{what}: {detail}")]
    Inspect { what: String, detail: String },
    #[error("these did not exit cleanly: {0:?}")]
    UncleanExit(Vec<(String, Option<i32>)>),
}

impl StackError {
    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::File { path, source }
    }
}
