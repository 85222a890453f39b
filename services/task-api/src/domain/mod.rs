//! The task domain, free of gRPC and SQL: what a task is, what makes input
//! valid, and how an update changes a task.
//!
//! - [`task`]: [`task::TaskRecord`], a stored task, and its proto form.
//! - [`validation`]: limits and checks; every error names the field.
//! - [`update`]: applying an `UpdateTaskRequest` field mask to a task.

pub mod task;
pub mod update;
pub mod validation;
