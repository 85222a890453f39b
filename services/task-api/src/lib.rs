//! task-api: the producer.
//!
//! Owns tasks (schema `tasks`): serves `todo.v1.TaskService` over gRPC and
//! gRPC-Web, writes each change and its event to the outbox in one
//! transaction, and relays the outbox to the `task-events` topic through the
//! Dapr sidecar. Consumes `task-commands` (next occurrences) and
//! `task-events` (for WatchTasks).
//!
//! - [`config`]: the environment it reads.
//! - [`domain`]: tasks, validation, field-mask updates (no I/O).
//! - [`store`]: SQL for tasks, the outbox and page tokens.
//! - [`operations`]: each use case as one transaction (task + outbox row).
//! - [`outbox`]: the relay that publishes committed events.
//! - [`watch`]: live events for WatchTasks.
//! - [`api`]: TaskService, the AppCallback handler, status mapping.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod api;
pub mod config;
pub mod domain;
pub mod operations;
pub mod outbox;
pub mod startup;
pub mod store;
pub mod watch;
