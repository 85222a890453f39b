//! reminder-service: keeps one Dapr job per open task with a future due
//! date, firing 24 h and 1 h before it, moves it when the due date moves,
//! deletes it when the task is completed or deleted, and publishes
//! `reminder.due_soon` to `reminders` when one fires. No polling, no tables:
//! the scheduler holds the state, and deterministic job names make every
//! change an overwrite.
//!
//! - [`config`]: the environment it reads.
//! - [`plan`]: which jobs a task event asks for (pure).
//! - [`handler`]: task events in, jobs scheduled; jobs fired, reminders out.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod config;
pub mod handler;
pub mod plan;
pub mod startup;
