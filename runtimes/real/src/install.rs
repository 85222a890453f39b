//! Where `runtimes/real/install.sh` put the real runtime's binaries.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
};

/// This crate's folder, `runtimes/real/`: the install script, the pinned
/// versions and the Kafka and Jaeger configuration sit beside its sources.
pub fn runtime_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root.
pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the crate sits in runtimes/real/")
        .to_owned()
}

/// The installed binaries and jars, at the versions of `runtimes/versions.env`.
#[derive(Debug, Clone)]
pub struct Installed {
    pub dapr_version: String,
    pub daprd: PathBuf,
    pub scheduler: PathBuf,
    pub jaeger: PathBuf,
    pub kafka_version: String,
    pub kafka_libs: PathBuf,
    pub kafka_tool_classes: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot run runtimes/real/install.sh --print: {0}")]
    Script(std::io::Error),
    #[error("runtimes/real/install.sh --print did not say where {0} is")]
    Missing(&'static str),
    #[error("{what} is not installed at {path}: run `just install-runtime` (runtimes/real/install.sh) first")]
    NotInstalled { what: &'static str, path: PathBuf },
}

impl Installed {
    /// Asks `runtimes/real/install.sh --print` (which builds nothing) where things
    /// are, and checks they are there.
    pub fn locate() -> Result<Self, InstallError> {
        let output = Command::new(runtime_dir().join("install.sh"))
            .arg("--print")
            .output()
            .map_err(InstallError::Script)?;
        let text = String::from_utf8_lossy(&output.stdout);
        let values: HashMap<&str, &str> = text.lines().filter_map(|line| line.split_once('=')).collect();
        let get = |key: &'static str| {
            values
                .get(key)
                .map(|value| value.to_string())
                .ok_or(InstallError::Missing(key))
        };
        let installed = Self {
            dapr_version: get("DAPR_VERSION")?,
            daprd: get("DAPRD")?.into(),
            scheduler: get("SCHEDULER")?.into(),
            jaeger: get("JAEGER")?.into(),
            kafka_version: get("KAFKA_VERSION")?,
            kafka_libs: get("KAFKA_LIBS")?.into(),
            kafka_tool_classes: get("KAFKA_TOOL_CLASSES")?.into(),
        };
        for (what, path) in [
            ("daprd", &installed.daprd),
            ("the Dapr Scheduler", &installed.scheduler),
            ("Jaeger", &installed.jaeger),
            ("Kafka", &installed.kafka_libs),
            ("the Kafka tool", &installed.kafka_tool_classes),
        ] {
            if !path.exists() {
                return Err(InstallError::NotInstalled {
                    what,
                    path: path.clone(),
                });
            }
        }
        Ok(installed)
    }

    /// The Java class path of the broker and of `KafkaTool`.
    pub fn kafka_class_path(&self) -> String {
        format!("{}/*:{}", self.kafka_libs.display(), self.kafka_tool_classes.display())
    }
}
