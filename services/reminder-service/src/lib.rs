//! reminder-service: schedules, moves and cancels due-date reminders with the
//! Dapr Jobs API, and publishes `reminder.due_soon` to `reminders` when a job
//! fires. No polling, no tables.
//!
//! - [`config`]: the environment it reads.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod config;
pub mod startup;
