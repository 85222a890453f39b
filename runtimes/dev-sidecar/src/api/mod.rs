//! What dev-sidecar serves.
//!
//! - [`dapr_api`]: the Dapr gRPC API, one endpoint per app (publish, bulk
//!   publish, jobs, metadata; stable and Alpha1 names).
//! - [`http`]: Dapr's HTTP health endpoints per app, and the read-only
//!   inspection surface (topics, offsets, lag, dead letters, jobs).

pub mod dapr_api;
pub mod http;
