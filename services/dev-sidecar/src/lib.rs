//! dev-sidecar: a local runtime that speaks the Dapr gRPC protocol, so the
//! services run and are tested without daprd and Kafka.
//!
//! - [`config`]: the environment it reads.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod config;
pub mod startup;
