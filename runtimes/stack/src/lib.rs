//! The whole system on a chosen runtime: PostgreSQL, the five services (or
//! apps a test serves itself) and their sidecars, either dev-sidecar or
//! daprd with Kafka, the Dapr Scheduler and Jaeger; or the system as
//! deployed on a Kubernetes cluster, reached as a user reaches it. One
//! description of the system, read from `dapr/dev.yaml`, and one way to
//! start it, used alike by the system tests, `just dev`, `just dev-dapr`
//! and the load test, so a green test proves the launcher a user runs.
//!
//! - [`runtime`]: which runtime, as a value.
//! - [`plan`]: what runs where: apps, ports, environment, state, output.
//! - [`stack`]: [`Stack`], the running system: start, faults, inspection,
//!   supervision, stop.
//! - [`clients`]: clients of a running stack's public APIs, as a user has.
//! - [`error`]: what can go wrong, typed.
//!
//! The runtime-specific parts are private: `dev_sidecar` and `real` each
//! start their runtime's processes for a plan; `cluster` reaches a
//! deployment.

pub mod clients;
mod cluster;
mod dev_sidecar;
pub mod error;
pub mod plan;
mod real;
pub mod runtime;
pub mod stack;

pub use clients::{AppToken, Authed, Bearer, StackClients, eventually};
pub use error::StackError;
pub use plan::{AppPlan, Apps, Database, Plan, Ports, StackOptions};
pub use real_runtime::kafka::Topic;
pub use runtime::Runtime;
pub use stack::{DeadLetter, Stack};
