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
            OperationError::QuotaExceeded { .. } => Status::resource_exhausted(err.to_string()),
            OperationError::Database(db) => todo_core::db::status(&db),
        }
    }
}
