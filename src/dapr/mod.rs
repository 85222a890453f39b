//! Glue to the Dapr sidecar, over gRPC only.
//!
//! - [`publisher`]: publishes events through the Dapr API (`PublishEvent`,
//!   `BulkPublishEvent` with the `Alpha1` fallback older runtimes need).
//! - [`app`]: one `AppCallback` (and `AppCallbackAlpha`) implementation
//!   over a service's [`app::EventHandler`].
//! - [`jobs`]: the Jobs API (`ScheduleJob`/`DeleteJob`, Alpha1 fallback).
//! - [`raw`]: serving a few methods of a big gRPC service by path.
//! - [`callback`]: what every AppCallback server shares: the app API token
//!   check, subscriptions with routes and a dead-letter topic, and the
//!   mapping from a handler's outcome to SUCCESS / RETRY / DROP.
//!
//! The protocol types are the `dapr` crate's generated ones, re-exported as
//! [`runtime`] and [`common`], never hand-copied.

pub mod app;
pub mod callback;
pub mod jobs;
pub mod publisher;
pub mod raw;

pub use dapr::dapr::proto::{common::v1 as common, runtime::v1 as runtime};

/// Metadata header carrying the Dapr API token, both directions.
pub const API_TOKEN_HEADER: &str = "dapr-api-token";
