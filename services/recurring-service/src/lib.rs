//! recurring-service: on `task.completed` of a recurring task, asks task-api
//! for the next occurrence (`task.occurrence.requested` on `task-commands`)
//! with a deterministic task id. Stateless.
//!
//! - [`config`]: the environment it reads.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod config;
pub mod startup;
