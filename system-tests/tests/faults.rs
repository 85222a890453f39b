//! Faults on the real runtime while task mutations flow: each daprd, each
//! consumer, the Kafka broker and the Scheduler killed with SIGKILL and
//! started again. Afterwards every mutation the API acknowledged has exactly
//! one effect in every consumer (audit record in per-user order, next
//! occurrence, notification), the audit chains verify, and no dead-letter
//! topic holds anything. The workload and its checks are
//! `todo_testing::workload`, the same as on dev-sidecar.

use std::time::Duration;

use real_runtime::stack::{RealStack, RealStackOptions, SECOND_TASK_API};
use todo_testing::{
    soak::Soak,
    workload::{Committed, REMINDER_SLACK, Workload, connection_lost, unavailable_only},
};

const USERS: [&str; 3] = ["ann", "ben", "cat"];
const PACE: Duration = Duration::from_millis(200);
const CATCH_UP: Duration = Duration::from_secs(120);

async fn check_everything_once(stack: &RealStack, committed: &Committed) {
    committed.verify_with_no_dead_letters(stack, stack, CATCH_UP).await;
}

#[tokio::test]
async fn each_daprd_killed_mid_stream_on_daprd() {
    let mut stack = RealStack::start(RealStackOptions::default()).await;
    let workload = Workload::start(&stack, &USERS, PACE, connection_lost);
    for service in [
        "audit-service",
        "recurring-service",
        "reminder-service",
        "notification-service",
        "task-api",
    ] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stack.crash_sidecar(service).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    stack.stop();
}

#[tokio::test]
async fn each_consumer_killed_while_its_daprd_stays_up_on_daprd() {
    let mut stack = RealStack::start(RealStackOptions::default()).await;
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    for service in [
        "audit-service",
        "recurring-service",
        "reminder-service",
        "notification-service",
    ] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stack.crash_app(service).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    stack.stop();
}

/// The broker goes away while task events are published and consumed and
/// while reminders come due: task-api's relay keeps its rows, consumers
/// resume from their committed offsets, and reminder-service answers its
/// job triggers with an error while its publishes fail, so the Scheduler
/// tries them again (every 5 s) until the broker is back.
#[tokio::test]
async fn the_broker_killed_mid_stream_on_daprd() {
    let mut stack = RealStack::start(RealStackOptions::default()).await;
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    // The first reminders come due REMINDER_SLACK after the start: the
    // outage begins just after them.
    tokio::time::sleep(REMINDER_SLACK + Duration::from_secs(1)).await;
    // Kafka down for 4 s, started again on the same log.
    stack
        .kafka
        .crash_and_restart(Duration::from_secs(4))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    stack.stop();
}

/// The Scheduler killed while reminders are pending. Restarted after a
/// kill -9 it waits out its old leadership lease (20 s, fixed in
/// go-etcd-cron) before it serves anything, so for about 25 s ScheduleJob
/// calls fail (reminder-service answers RETRY and daprd redelivers the task
/// events) and nothing triggers. Then the jobs that came due meanwhile
/// fire at once, each exactly once, and reminders that were scheduled late
/// fire at once too (within reminder-service's 10-minute grace).
#[tokio::test]
async fn the_scheduler_killed_while_reminders_are_pending_on_daprd() {
    let mut stack = RealStack::start(RealStackOptions::default()).await;
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Down for 3 s while reminders are pending: every one of them still
    // fires, once.
    stack
        .scheduler
        .crash_and_restart(Duration::from_secs(3))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    stack.stop();
}

#[tokio::test]
async fn task_api_killed_between_commit_and_publish_on_daprd() {
    let mut stack = RealStack::start(RealStackOptions::default()).await;
    let workload = Workload::start(&stack, &USERS, PACE, connection_lost);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A hung daprd: task-api keeps committing, its relay cannot publish.
    stack.freeze_sidecar("task-api");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let unpublished = stack.database.scalar("SELECT count(*) FROM tasks.outbox").await;
    stack.kill_app("task-api");
    stack.thaw_sidecar("task-api");
    assert!(unpublished > 0, "mutations were committed but not yet published");
    stack.start_app("task-api").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    assert_eq!(
        stack.database.scalar("SELECT count(*) FROM tasks.outbox").await,
        0,
        "the restarted task-api drained its outbox"
    );
    stack.stop();
}

#[tokio::test]
async fn a_postgres_outage_mid_stream_on_daprd() {
    let stack = RealStack::start(RealStackOptions::default()).await;
    if !stack.database.owns_server() {
        eprintln!("skipped: the DATABASE_URL server is not this test's to stop");
        return;
    }
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Consumers answer RETRY meanwhile; daprd redelivers under the
    // Resiliency policy, and nothing reaches a dead-letter topic.
    stack.database.crash_server();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stack.database.restart_server();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed = workload.stop().await;
    assert!(
        committed.failures().count() > 0,
        "calls failed during the outage and were retried"
    );
    check_everything_once(&stack, &committed).await;
    stack.stop();
}

/// Two task-api replicas in one consumer group; PostgreSQL goes away so
/// that task-api's deliveries (the occurrence commands) are being retried,
/// and meanwhile each replica in turn is replaced as Kubernetes does it:
/// the group rebalances mid-retry and the other replica's daprd takes the
/// partitions over from the last committed offset.
#[tokio::test]
async fn a_rolling_restart_of_two_task_apis_mid_retry_on_daprd() {
    let mut stack = RealStack::start(RealStackOptions {
        second_task_api: true,
        ..RealStackOptions::default()
    })
    .await;
    if !stack.database.owns_server() {
        eprintln!("skipped: the DATABASE_URL server is not this test's to stop");
        return;
    }
    let workload = Workload::start(&stack, &USERS, PACE, connection_lost);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for instance in [SECOND_TASK_API, "task-api"] {
        stack.database.crash_server();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stack.terminate(instance);
        stack.database.restart_server();
        stack.start_terminated(instance).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let committed = workload.stop().await;
    let retried = [SECOND_TASK_API, "task-api"]
        .iter()
        .filter(|instance| {
            stack
                .sidecar_log(instance)
                .contains("retriable error while publishing a subscribed message to topic task-commands")
        })
        .count();
    assert!(
        retried > 0,
        "task-api's deliveries were being retried during the restarts"
    );
    check_everything_once(&stack, &committed).await;
    stack.stop();
}

/// `just soak [SECONDS] dapr`: every fault above in turn, over and over,
/// then the same exactly-once check (`todo_testing::soak`, as on
/// dev-sidecar). Writes `target/soak/report-daprd.json`.
#[tokio::test]
#[ignore = "long-running: `just soak SECONDS dapr`"]
async fn soak_on_daprd() {
    let mut stack = RealStack::start(RealStackOptions::default()).await;
    Soak::from_env().run(&mut stack, Duration::from_secs(180)).await;
    stack.stop();
}
