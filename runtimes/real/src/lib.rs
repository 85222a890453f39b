//! The real runtime of the system as plain local processes: a Kafka broker
//! (KRaft, one node), the Dapr Scheduler, Jaeger and one daprd per app,
//! from the binaries `runtimes/real/install.sh` built. `just dev-dapr` runs the
//! stack on it; tests use it to run the same checks on daprd as on
//! dev-sidecar.
//!
//! - [`install`]: where the installed binaries are.
//! - [`process`]: one supervised process (log file or prefixed output,
//!   parent-death signal, restart).
//! - [`kafka`], [`scheduler`], [`jaeger`], [`daprd`]: each component.
//! - [`resources`]: daprd's resources, rendered from dapr/components/.
//! - [`sidecars`]: sidecars for in-test apps on either runtime.
//! - [`http`]: GETs on loopback (health, Jaeger's query API).

pub mod daprd;
pub mod http;
pub mod install;
pub mod jaeger;
pub mod kafka;
pub mod process;
pub mod resources;
pub mod scheduler;
pub mod sidecars;
pub mod stack;

pub use sidecars::{RuntimeKind, SidecarOptions, Sidecars};
