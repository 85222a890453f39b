//! task-api: the producer.
//!
//! Owns tasks (schema `tasks`): serves `todo.v1.TaskService` over gRPC and
//! gRPC-Web, writes each change and its event to the outbox in one
//! transaction, and relays the outbox to the `task-events` topic through the
//! Dapr sidecar.
//!
//! - [`config`]: the environment it reads.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod config;
pub mod startup;
