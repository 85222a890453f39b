//! audit-service: stores every event of `task-events` and `task-commands`
//! in an append-only log, chained by hash per user (schema `audit`), and
//! serves `todo.v1.AuditService`: list a user's records and verify the chain.
//!
//! - [`config`]: the environment it reads.
//! - [`chain`]: the record hash and chain verification (pure).
//! - [`store`]: SQL for `audit_records`: append under a per-user lock, list, scan.
//! - [`handler`]: what it does with each delivered event.
//! - [`api`]: ListAuditRecords and VerifyAuditChain.
//! - [`startup`]: [`startup::Application`], built once and run until SIGTERM.

pub mod api;
pub mod chain;
pub mod config;
pub mod handler;
pub mod startup;
pub mod store;
