//! Faults while task mutations flow, on each runtime: each consumer and
//! each sidecar killed with SIGKILL and started again, task-api killed
//! between commit and publish, PostgreSQL crashed; on daprd also the Kafka
//! broker, the Scheduler, and a rolling restart of two task-api replicas.
//! Afterwards every mutation the API acknowledged has exactly one effect in
//! every consumer (audit record in per-user order, next occurrence,
//! notification), the audit chains verify, and no dead-letter topic holds
//! anything (`system_tests::workload`).

use std::time::{Duration, Instant};

use system_tests::{
    Runtime, runtime_tests,
    soak::Soak,
    workload::{Committed, Failure, REMINDER_SLACK, Workload, connection_lost, unavailable_only},
};
use todo_stack::{Stack, StackOptions, plan::SECOND_TASK_API};

runtime_tests! {
    dev_sidecar: [
        each_consumer_killed_mid_stream,
        each_sidecar_killed_mid_stream,
        task_api_killed_between_commit_and_publish,
        a_postgres_outage_fails_rpcs_fast_and_loses_nothing,
        #[ignore = "long-running: `just soak`"]
        soak,
    ],
    daprd: [
        each_consumer_killed_mid_stream,
        each_sidecar_killed_mid_stream,
        task_api_killed_between_commit_and_publish,
        a_postgres_outage_fails_rpcs_fast_and_loses_nothing,
        the_broker_killed_mid_stream,
        the_scheduler_killed_while_reminders_are_pending,
        a_rolling_restart_of_two_task_apis_mid_retry,
        #[ignore = "long-running: `just soak SECONDS dapr`"]
        soak,
    ],
}

const USERS: [&str; 3] = ["ann", "ben", "cat"];
/// One round of mutations per user this often.
const PACE: Duration = Duration::from_millis(200);
/// The pause between two faults in a row.
const BETWEEN_FAULTS: Duration = Duration::from_millis(1500);
const CATCH_UP: Duration = Duration::from_secs(120);

async fn check_everything_once(stack: &Stack, committed: &Committed) {
    committed.verify_with_no_dead_letters(stack, CATCH_UP).await;
}

/// The consumers, the services whose crash loses nothing the API answered.
const CONSUMERS: [&str; 4] = [
    "audit-service",
    "recurring-service",
    "reminder-service",
    "notification-service",
];

async fn each_consumer_killed_mid_stream(runtime: Runtime) {
    let mut stack = system_tests::start_services(runtime).await;
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    for service in CONSUMERS {
        tokio::time::sleep(BETWEEN_FAULTS).await;
        stack.crash_app(service).await.expect("crash and restart");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    system_tests::stop(stack).await;
}

/// Each app's sidecar killed in turn: each daprd, or dev-sidecar (which
/// serves every app) once per app. The apps stay up and reconnect.
async fn each_sidecar_killed_mid_stream(runtime: Runtime) {
    let mut stack = system_tests::start_services(runtime).await;
    let workload = Workload::start(&stack, &USERS, PACE, connection_lost);
    for service in CONSUMERS.into_iter().chain(["task-api"]) {
        tokio::time::sleep(BETWEEN_FAULTS).await;
        stack.crash_sidecar(service).await.expect("crash and restart");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    system_tests::stop(stack).await;
}

async fn task_api_killed_between_commit_and_publish(runtime: Runtime) {
    let mut stack = system_tests::start_services(runtime).await;
    let workload = Workload::start(&stack, &USERS, PACE, connection_lost);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A hung sidecar: task-api keeps committing, its relay cannot publish.
    stack.freeze_sidecar("task-api").expect("freeze");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let database = stack.database.as_ref().expect("the services' database");
    let unpublished = database.scalar("SELECT count(*) FROM tasks.outbox").await;
    stack.kill_app("task-api").expect("kill");
    stack.thaw_sidecar("task-api").expect("thaw");
    assert!(unpublished > 0, "mutations were committed but not yet published");
    stack.start_app("task-api").await.expect("start task-api again");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    let database = stack.database.as_ref().expect("the services' database");
    assert_eq!(
        database.scalar("SELECT count(*) FROM tasks.outbox").await,
        0,
        "the restarted task-api drained its outbox"
    );
    system_tests::stop(stack).await;
}

async fn a_postgres_outage_fails_rpcs_fast_and_loses_nothing(runtime: Runtime) {
    let stack = system_tests::start_services(runtime).await;
    let Some(database) = stack.database.as_ref().filter(|database| database.owns_server()) else {
        eprintln!("skipped: the DATABASE_URL server is not this test's to stop");
        return;
    };
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let crashed = Instant::now();
    database.crash_server();
    // Consumers answer RETRY meanwhile (audit and notification store in
    // PostgreSQL; task-api creates occurrences there); the sidecar
    // redelivers under its policy and nothing reaches a dead-letter topic.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarting = Instant::now();
    database.restart_server();
    eprintln!("PostgreSQL was down for {:?}", crashed.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
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
    system_tests::stop(stack).await;
}

/// The broker goes away while task events are published and consumed and
/// while reminders come due: task-api's relay keeps its rows, consumers
/// resume from their committed offsets, and reminder-service answers its
/// job triggers with an error while its publishes fail, so the Scheduler
/// tries them again (every 5 s) until the broker is back.
async fn the_broker_killed_mid_stream(runtime: Runtime) {
    let mut stack = system_tests::start_services(runtime).await;
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    // The first reminders come due REMINDER_SLACK after the start: the
    // outage begins just after them.
    tokio::time::sleep(REMINDER_SLACK + Duration::from_secs(1)).await;
    // Kafka down for 4 s, started again on the same log.
    stack
        .crash_broker(Duration::from_secs(4))
        .await
        .expect("crash and restart the broker");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    system_tests::stop(stack).await;
}

/// The Scheduler killed while reminders are pending. Restarted after a
/// kill -9 it waits out its old leadership lease (20 s, fixed in
/// go-etcd-cron) before it serves anything, so for about 25 s ScheduleJob
/// calls fail (reminder-service answers RETRY and daprd redelivers the task
/// events) and nothing triggers. Then the jobs that came due meanwhile
/// fire at once, each exactly once, and reminders that were scheduled late
/// fire at once too (within reminder-service's 10-minute grace).
async fn the_scheduler_killed_while_reminders_are_pending(runtime: Runtime) {
    let mut stack = system_tests::start_services(runtime).await;
    let workload = Workload::start(&stack, &USERS, PACE, unavailable_only);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Down for 3 s while reminders are pending: every one of them still
    // fires, once.
    stack
        .crash_scheduler(Duration::from_secs(3))
        .await
        .expect("crash and restart the Scheduler");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed = workload.stop().await;
    check_everything_once(&stack, &committed).await;
    system_tests::stop(stack).await;
}

/// Two task-api replicas in one consumer group; PostgreSQL goes away so
/// that task-api's deliveries (the occurrence commands) are being retried,
/// and meanwhile each replica in turn is replaced as Kubernetes does it:
/// the group rebalances mid-retry and the other replica's daprd takes the
/// partitions over from the last committed offset.
async fn a_rolling_restart_of_two_task_apis_mid_retry(runtime: Runtime) {
    let mut stack = system_tests::start(StackOptions {
        second_task_api: true,
        ..StackOptions::services(runtime)
    })
    .await;
    if !stack.database.as_ref().is_some_and(|database| database.owns_server()) {
        eprintln!("skipped: the DATABASE_URL server is not this test's to stop");
        return;
    }
    let workload = Workload::start(&stack, &USERS, PACE, connection_lost);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for instance in [SECOND_TASK_API, "task-api"] {
        let database = stack.database.as_ref().expect("the services' database");
        database.crash_server();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stack.terminate(instance).await.expect("terminate");
        let database = stack.database.as_ref().expect("the services' database");
        database.restart_server();
        stack.start_terminated(instance).await.expect("start again");
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
    system_tests::stop(stack).await;
}

/// `just soak [SECONDS] [sidecar|dapr]`: every fault the stack knows in
/// turn, over and over, under a steady stream from more users, then the
/// same exactly-once check (`system_tests::soak`). Writes
/// `target/soak/report-<runtime>.json`.
async fn soak(runtime: Runtime) {
    let mut stack = system_tests::start_services(runtime).await;
    Soak::from_env().run(&mut stack, Duration::from_secs(180)).await;
    system_tests::stop(stack).await;
}
