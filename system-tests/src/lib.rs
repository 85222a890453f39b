//! The system tests: the real binaries on each runtime, checked from where
//! a user stands. The scenarios are in `tests/`, one binary per kind
//! (conformance, e2e, faults, traces, soak); each scenario is one function
//! taking a [`Runtime`], instantiated per runtime by [`runtime_tests!`].
//!
//! - [`workload`]: a steady stream of task mutations under faults, and the
//!   check that every consumer turned each into exactly one effect.
//! - [`soak`]: the workload for a long while with every fault the stack
//!   can inject, and its report.

pub mod soak;
pub mod workload;

pub use todo_stack::Runtime;

/// Instantiates scenarios per runtime: for each `runtime: [scenarios]`, a
/// module named after the runtime holding one `#[tokio::test]` per
/// scenario, which calls `scenario(Runtime::…)`. Test names are
/// `<runtime>::<scenario>`, so the test runner's groups and filters go by
/// module path (`.config/nextest.toml`: everything under `daprd::` runs
/// one at a time; `cluster::` only in its own profile, against a deployed
/// system, by `just test-cluster`). Attributes before a scenario
/// (`#[ignore = "…"]`) are kept.
///
/// ```ignore
/// system_tests::runtime_tests! {
///     dev_sidecar: [recurrence, reminders],
///     daprd: [recurrence, reminders, #[ignore = "long"] soak],
/// }
/// ```
#[macro_export]
macro_rules! runtime_tests {
    ($($runtime:ident : [$($(#[$meta:meta])* $scenario:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $runtime {
                $(
                    $(#[$meta])*
                    #[tokio::test]
                    async fn $scenario() {
                        let runtime = $crate::runtime_named!($runtime);
                        let _one_at_a_time = $crate::one_at_a_time(runtime).await;
                        super::$scenario(runtime).await;
                    }
                )*
            }
        )*
    };
}

/// The [`Runtime`] a module of [`runtime_tests!`] is named after.
#[macro_export]
macro_rules! runtime_named {
    (dev_sidecar) => {
        $crate::Runtime::DevSidecar
    };
    (daprd) => {
        $crate::Runtime::Daprd
    };
    (cluster) => {
        $crate::Runtime::Cluster
    };
}

/// Holds the tests on the real runtime to one at a time within a test
/// binary, whatever runs them: each starts Kafka, the Scheduler and a daprd
/// per app (a JVM among seven to twelve processes), too much for two at
/// once on two cores. nextest runs each test in a process of its own and
/// serialises them by its `real-runtime` group instead; `cargo test` runs
/// a binary's tests on threads, and this lock orders them.
pub async fn one_at_a_time(runtime: Runtime) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    static DAPRD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    match runtime {
        Runtime::Daprd => Some(DAPRD.lock().await),
        Runtime::DevSidecar | Runtime::Cluster => None,
    }
}

/// The five services on `runtime`, as the system tests start them (a test
/// fixture: panics, with every process's log, when the stack cannot start).
pub async fn start_services(runtime: Runtime) -> todo_stack::Stack {
    start(todo_stack::StackOptions::services(runtime)).await
}

/// Starts a stack from `options` (a test fixture: panics when it cannot).
pub async fn start(options: todo_stack::StackOptions) -> todo_stack::Stack {
    start_plan(plan(options)).await
}

/// Stops `stack` and checks that every app and dev-sidecar exited cleanly.
pub async fn stop(stack: todo_stack::Stack) {
    stack.stop().await.unwrap_or_else(|err| panic!("{err}"));
}

/// Plans a stack from `options` without starting it, so a test can serve
/// its own apps on the planned ports first (a test fixture).
pub fn plan(options: todo_stack::StackOptions) -> todo_stack::Plan {
    todo_testing::init_tracing();
    options
        .plan()
        .unwrap_or_else(|err| panic!("the stack cannot be planned: {err}"))
}

/// Starts a planned stack (a test fixture: panics when it cannot).
pub async fn start_plan(plan: todo_stack::Plan) -> todo_stack::Stack {
    plan.start()
        .await
        .unwrap_or_else(|err| panic!("the stack did not start: {err}"))
}
