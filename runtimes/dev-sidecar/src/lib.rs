//! dev-sidecar: a local runtime that speaks the Dapr gRPC protocol, so the
//! services run and are tested without daprd and Kafka. A development tool,
//! not a production broker.
//!
//! - [`config`]: flags and environment.
//! - [`run_file`]: the Dapr multi-app run file (`dapr/dev.yaml`).
//! - [`log`]: the embedded, durable, partitioned log (redb) with consumer
//!   offsets and jobs.
//! - [`cloudevent`]: wrapping published data the way daprd does.
//! - [`payload`]: what `data` an app receives, by content type and path.
//! - [`api`]: the Dapr gRPC API per app; HTTP health and inspection.
//! - [`apps`]: calling the apps' AppCallback (with Alpha1 fallbacks).
//! - [`delivery`]: subscriptions, routing, ordered delivery, retries, dead letters.
//! - [`jobs`]: the durable one-shot jobs scheduler.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod api;
pub mod apps;
pub mod cloudevent;
pub mod config;
pub mod delivery;
pub mod jobs;
pub mod log;
pub mod payload;
pub mod run_file;
pub mod startup;
