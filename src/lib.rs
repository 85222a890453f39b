//! Shared library of the event-driven Todo backend.
//!
//! Every service binary under `services/` builds on these modules, each with
//! one job:
//!
//! - [`proto`]: Rust types generated from `proto/todo/v1` (messages, tonic
//!   clients and servers) and the descriptor set that reflection serves.
//! - [`events`]: event envelopes on the wire: protobuf or proto3 JSON chosen
//!   by content type, topic and event-type names.
//! - [`dapr`]: glue to the Dapr sidecar: a publisher over the Dapr gRPC API and
//!   the AppCallback helpers (token check, handler outcome → SUCCESS/RETRY/DROP).
//! - [`auth`]: JWT verification and the tonic interceptor that puts the caller's
//!   user id into each request.
//! - [`timestamps`]: checked conversions between protobuf and chrono times.
//! - [`telemetry`]: tracing subscriber set-up, with OpenTelemetry export when
//!   configured.
//! - [`config`]: typed configuration read from the environment, validated once.
//! - [`db`]: PostgreSQL pool options and embedded-migration runner.
//! - [`pagination`]: page sizes and opaque page tokens for list RPCs.
//! - [`server`]: what every gRPC server shares: health, reflection, shutdown.
//! - [`shutdown`]: the signal (SIGTERM / Ctrl-C) every task listens to.

pub mod auth;
pub mod config;
pub mod dapr;
pub mod db;
pub mod events;
pub mod pagination;
pub mod proto;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod timestamps;
