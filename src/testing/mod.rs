//! Test support shared by every crate's tests (feature `testing`).
//!
//! - [`postgres`]: a database per test: on the server `DATABASE_URL` names,
//!   or on a throw-away cluster started from the installed PostgreSQL
//!   binaries.
//! - [`process`]: start a service binary on free ports, wait until it
//!   reports SERVING, stop it with SIGTERM.

pub mod postgres;
pub mod process;

pub use postgres::TestDatabase;
pub use process::{ServiceProcess, free_port};
