//! audit-service: stores every task event in an append-only, hash-chained
//! log per user (schema `audit`) and serves `todo.v1.AuditService`.
//!
//! - [`config`]: the environment it reads.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod config;
pub mod startup;
