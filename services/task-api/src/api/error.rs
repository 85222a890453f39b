//! Operation errors as gRPC statuses: the status-code policy in one place.

use tonic::Status;

use crate::operations::OperationError;

impl From<OperationError> for Status {
    fn from(err: OperationError) -> Self {
        match err {
            OperationError::Invalid(invalid) => Status::invalid_argument(invalid.to_string()),
            // Also for another user's task: its existence is not revealed.
            OperationError::NotFound => Status::not_found("task not found"),
            OperationError::VersionMismatch { .. } => Status::aborted(err.to_string()),
            OperationError::Database(db) => database_status(&db),
        }
    }
}

/// Transient database trouble is UNAVAILABLE (the client may retry);
/// anything else is INTERNAL, logged here with its cause.
pub fn database_status(err: &sqlx::Error) -> Status {
    if is_transient(err) {
        tracing::warn!(error = %err, "database unavailable");
        Status::unavailable("database unavailable, try again")
    } else {
        tracing::error!(error = %err, "database error");
        Status::internal("internal error")
    }
}

/// Errors that go away when the database comes back.
pub fn is_transient(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    ) || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| {
        // Class 08 (connection), 53 (resources), 57P (shutdown), 40001/40P01 (retryable conflicts).
        code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") || code == "40001" || code == "40P01"
    }))
}
