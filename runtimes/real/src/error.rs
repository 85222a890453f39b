//! What can go wrong starting or driving the real runtime's processes.

use std::{path::PathBuf, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
    #[error(transparent)]
    Process(#[from] supervisor::ProcessError),
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Yaml {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("cannot run {program}: {source}")]
    Run { program: String, source: std::io::Error },
    #[error("{what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("{what} not ready within {timeout:?}: {detail}\n{log}")]
    NotReady {
        what: String,
        timeout: Duration,
        detail: String,
        /// The tail of the process's log, to see why.
        log: String,
    },
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error("unexpected answer from {what}: {detail}")]
    Answer { what: String, detail: String },
}

impl RuntimeError {
    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::File { path, source }
    }
}
