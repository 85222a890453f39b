//! recurring-service: on `task.completed` of a recurring task, asks task-api
//! for the next occurrence (`task.occurrence.requested` on `task-commands`)
//! with a deterministic task id. Stateless: the completed task carries
//! everything needed, and the deterministic id makes repeats harmless.
//!
//! - [`config`]: the environment it reads.
//! - [`recurrence`]: the date arithmetic (daily, weekly, monthly with
//!   month-end clamping; end date and count).
//! - [`occurrence`]: the command for the next occurrence of a completed task.
//! - [`handler`]: what it does with each delivered event.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod config;
pub mod handler;
pub mod occurrence;
pub mod recurrence;
pub mod startup;
