//! Test support for the workspace's tests and tools; never a dependency of
//! a service (services take it as a dev-dependency only).
//!
//! - [`postgres`]: a database per test: on the server `DATABASE_URL` names,
//!   or on a throw-away cluster started from the installed PostgreSQL
//!   binaries.
//! - [`fake_sidecar`]: a Dapr publish API that records what it receives and
//!   can play a sidecar that is down.
//! - [`http`]: a GET on loopback (dev-sidecar's inspection surface).
//! - [`tokens`]: signed JWTs for test users and the development tools.
//! - [`in_process`]: an `Application` running in the test process.
//! - [`recorder`]: an AppCallback app that records deliveries and jobs and
//!   answers as scripted, for the sidecar conformance tests.
//! - [`process`]: start a service binary on free ports, wait until it
//!   reports SERVING, stop it with SIGTERM.
//!
//! The whole system on a runtime is `todo-stack`; the scenarios that run
//! on it are the `system-tests` crate.

pub mod fake_sidecar;
pub mod http;
pub mod in_process;
pub mod postgres;
pub mod process;
pub mod recorder;
pub mod tokens;

pub use fake_sidecar::{ApiLevel, FakeSidecar, RecordedEvent, RecordedJob};
pub use in_process::{RunningServer, auth_config, dapr_config, database_config, delivery};
pub use postgres::TestDatabase;

/// A `JWT_SECRET` for service processes under test: long enough that a
/// service accepts it without `DEV_MODE`, as a deployment would.
pub const TEST_JWT_SECRET: &str = "a-test-secret-long-enough-for-production";

/// A CreateTaskRequest as large as task-api's validation allows: four-byte
/// characters throughout (200 of title, 4,000 of description, 20 tags of
/// 50), about 22 kB in an event's JSON. `tag` makes titles distinct.
pub fn largest_task_request(tag: usize) -> todo_core::proto::v1::CreateTaskRequest {
    let emoji = |count: usize| "\u{1F600}".repeat(count);
    todo_core::proto::v1::CreateTaskRequest {
        title: format!("{tag:03}{}", emoji(197)),
        description: emoji(4_000),
        tags: (0..20).map(|t| format!("{}{t:02}", emoji(48))).collect(),
        ..Default::default()
    }
}
pub use process::{ServiceProcess, free_port, free_ports};

/// A tracing subscriber that prints only when `TEST_LOG` is set, so test
/// output stays quiet by default. Safe to call from every test.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug")))
            .with_test_writer()
            .try_init();
    }
}
