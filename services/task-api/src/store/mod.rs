//! SQL for the `tasks` schema; every function runs on a connection or
//! transaction the caller holds, so the caller decides what commits together.
//!
//! - [`listing`]: what a ListTasks query asks for (filters, order, cursor).
//! - [`tasks`]: rows of `tasks`.
//! - [`outbox`]: rows of `outbox`, written with the change, read by the relay.
//! - [`page_token`]: the opaque cursor of ListTasks.

pub mod listing;
pub mod outbox;
pub mod page_token;
pub mod tasks;
