//! Which runtime the system runs on, as a value: tests are instantiated
//! per runtime, the launchers and the load test take one on the command
//! line.

use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// dev-sidecar: one process serving every app's Dapr API, with its own
    /// durable log and jobs scheduler. Needs nothing installed.
    DevSidecar,
    /// The runtime production uses: one daprd per app, Kafka, the Dapr
    /// Scheduler and Jaeger, as local processes.
    Daprd,
    /// The system as deployed on a Kubernetes cluster (`just deploy local`,
    /// or whatever cluster kubectl points at): daprd injected beside each
    /// pod, Kafka, the Scheduler and Jaeger in the cluster. A stack on it
    /// starts nothing: it reaches the deployment through port-forwards.
    Cluster,
}

impl Runtime {
    pub const ALL: [Runtime; 3] = [Runtime::DevSidecar, Runtime::Daprd, Runtime::Cluster];

    /// Its name in reports and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::DevSidecar => "dev-sidecar",
            Self::Daprd => "daprd",
            Self::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A runtime name that is none of the known ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown runtime {0:?}: one of sidecar (dev-sidecar), dapr (daprd), cluster")]
pub struct UnknownRuntime(String);

impl FromStr for Runtime {
    type Err = UnknownRuntime;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "sidecar" | "dev-sidecar" => Ok(Self::DevSidecar),
            "dapr" | "daprd" => Ok(Self::Daprd),
            "cluster" => Ok(Self::Cluster),
            other => Err(UnknownRuntime(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for runtime in Runtime::ALL {
            assert_eq!(runtime.name().parse::<Runtime>().unwrap(), runtime);
        }
        assert_eq!("dapr".parse::<Runtime>().unwrap(), Runtime::Daprd);
        assert!("kubernetes".parse::<Runtime>().is_err());
    }
}
