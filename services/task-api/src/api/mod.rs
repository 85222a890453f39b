//! The gRPC face of task-api.
//!
//! - [`task_service`]: `todo.v1.TaskService`, authenticated per call.
//! - [`error`]: the one place operation errors become gRPC statuses.
//! - [`callback`]: what the sidecar delivers: occurrence commands from
//!   `task-commands`, and `task-events` for WatchTasks.

pub mod callback;
pub mod error;
pub mod task_service;
