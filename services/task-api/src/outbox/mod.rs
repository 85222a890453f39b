//! Getting committed events to the sidecar.
//!
//! - [`relay`]: the loop that publishes outbox rows in commit order and
//!   deletes them once the sidecar accepted them.

pub mod relay;
