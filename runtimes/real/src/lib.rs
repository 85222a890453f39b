//! The real runtime of the system as plain local processes: a Kafka broker
//! (KRaft, one node), the Dapr Scheduler, Jaeger and one daprd per app,
//! from the binaries `runtimes/real/install.sh` built. The stack
//! (`todo-stack`) puts them together; each module here starts one of them.
//!
//! - [`install`]: where the installed binaries are.
//! - [`kafka`], [`scheduler`], [`jaeger`], [`daprd`]: each component.
//! - [`resources`]: daprd's resources, rendered from dapr/components/.
//! - [`http`]: GETs on loopback (health, Jaeger's query API).
//! - [`error`]: what can go wrong, typed.

pub mod daprd;
pub mod error;
pub mod http;
pub mod install;
pub mod jaeger;
pub mod kafka;
pub mod resources;
pub mod scheduler;

pub use error::RuntimeError;
pub use install::Installed;
