//! Faults while task mutations are flowing, through the real binaries:
//! afterwards every mutation the API acknowledged has exactly one effect in
//! every consumer (audit record in per-user order, next occurrence,
//! notification), nothing was dead-lettered, and the audit chains verify.
//! The workload and its checks live in `todo_testing::workload`.

use std::time::{Duration, Instant};

use todo_testing::{
    TestStack,
    soak::Soak,
    workload::{Committed, Failure, Workload, connection_lost, unavailable_only},
};

fn sidecar() -> String {
    real_runtime::sidecars::dev_sidecar_binary().display().to_string()
}

const USERS: [&str; 3] = ["ann", "ben", "cat"];
/// One round of mutations per user this often.
const PACE: Duration = Duration::from_millis(150);
const CATCH_UP: Duration = Duration::from_secs(90);

async fn check_everything_once(stack: &TestStack, committed: &Committed) {
    committed.verify_with_no_dead_letters(stack, stack, CATCH_UP).await;
}

#[tokio::test]
async fn each_consumer_killed_mid_stream_loses_and_duplicates_nothing() {
    let stack = TestStack::start(&sidecar(), &[]).await;
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    for service in [
        "audit-service",
        "recurring-service",
        "reminder-service",
        "notification-service",
    ] {
        tokio::time::sleep(Duration::from_millis(800)).await;
        stack.crash_app(service).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    stack.stop().await;
}

#[tokio::test]
async fn the_sidecar_killed_mid_stream_loses_and_duplicates_nothing() {
    let mut stack = TestStack::start(&sidecar(), &[]).await;
    let workload = Workload::start(&stack, &USERS, PACE, connection_lost);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Its apps go down with it (parent-death signal) and come back with it.
    stack.crash_and_restart_sidecar().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    stack.stop().await;
}

#[tokio::test]
async fn task_api_killed_between_commit_and_publish_loses_nothing() {
    let stack = TestStack::start(&sidecar(), &[]).await;
    let workload = Workload::start(&stack, &USERS, PACE, connection_lost);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A hung sidecar: task-api keeps committing, its relay cannot publish.
    stack.freeze_sidecar();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let unpublished = stack.database.scalar("SELECT count(*) FROM tasks.outbox").await;
    stack.kill_app("task-api");
    stack.thaw_sidecar();
    assert!(unpublished > 0, "mutations were committed but not yet published");
    stack.wait_until_restarted("task-api").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    assert_eq!(
        stack.database.scalar("SELECT count(*) FROM tasks.outbox").await,
        0,
        "the restarted task-api drained its outbox"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_postgres_outage_fails_rpcs_fast_and_loses_nothing() {
    let stack = TestStack::start(&sidecar(), &[]).await;
    if !stack.database.owns_server() {
        eprintln!("skipped: the DATABASE_URL server is not this test's to stop");
        return;
    }
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let crashed = Instant::now();
    stack.database.crash_server();
    // Consumers answer RETRY meanwhile (audit and notification store in
    // PostgreSQL; task-api creates occurrences there).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarting = Instant::now();
    stack.database.restart_server();
    eprintln!("PostgreSQL was down for {:?}", crashed.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let committed = workload.stop().await;

    // A call on a connection the crash broke fails at once; the first
    // call that needs a new connection waits out the connection timeout,
    // and that tells task-api the server is gone. From then until it is
    // back, calls fail at once (a probe now and then waits at most half a
    // second). What happens while the server finishes starting up is not
    // an outage any more: those calls are only checked for losing nothing.
    let failures: Vec<Failure> = committed.failures().copied().collect();
    let slow = |failure: &Failure| failure.took > Duration::from_secs(1);
    let detected = failures
        .iter()
        .filter(|failure| slow(failure))
        .map(|failure| failure.started + failure.took)
        .filter(|ended| *ended >= crashed)
        .min()
        .unwrap_or(crashed);
    let while_known_down: Vec<Failure> = failures
        .iter()
        .copied()
        .filter(|failure| failure.started >= detected && failure.started < restarting)
        .collect();
    assert!(
        while_known_down.len() >= 3 * USERS.len(),
        "calls failed and were retried during the outage (detected after {:?}): {failures:?}",
        detected - crashed
    );
    let waited: Vec<_> = while_known_down.iter().filter(|failure| slow(failure)).collect();
    assert!(waited.is_empty(), "calls fail fast during an outage: {waited:?}");
    check_everything_once(&stack, &committed).await;
    stack.stop().await;
}

/// `just soak [SECONDS]`: every fault above in turn, over and over, under a
/// steady stream from more users, then the same exactly-once check
/// (`todo_testing::soak`, the same on daprd). Prints the figures and
/// writes them to `target/soak/report-dev-sidecar.json`.
#[tokio::test]
#[ignore = "long-running: `just soak`"]
async fn soak() {
    let mut stack = TestStack::start(&sidecar(), &[]).await;
    Soak::from_env().run(&mut stack, Duration::from_secs(120)).await;
    stack.stop().await;
}
