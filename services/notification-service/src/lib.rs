//! notification-service: records and delivers each reminder exactly once in
//! effect (schema `notifications`, dedupe on event id) and serves
//! `todo.v1.NotificationService`.
//!
//! - [`config`]: the environment it reads.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod config;
pub mod startup;
