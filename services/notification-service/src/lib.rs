//! notification-service: turns each `reminder.due_soon` into a notification,
//! recorded once (schema `notifications`, unique event id in the same
//! transaction as the delivery) and delivered through a channel; serves
//! `todo.v1.NotificationService.ListNotifications` to the authenticated user.
//!
//! - [`config`]: the environment it reads.
//! - [`channel`]: where notifications go: a structured log line, or a webhook.
//! - [`store`]: SQL for `notifications`.
//! - [`handler`]: what it does with each delivered reminder.
//! - [`api`]: the ListNotifications RPC.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod api;
pub mod channel;
pub mod config;
pub mod handler;
pub mod startup;
pub mod store;
