//! End to end, on every runtime: the five service binaries through
//! dev-sidecar, and through daprd + Kafka + the Scheduler, and the system
//! deployed on a Kubernetes cluster, checked from where a user stands (the
//! public APIs, dead-letter topics, jobs).

use std::time::Duration;

use chrono::Utc;
use prost::Message;
use todo_core::{
    dapr::{
        publisher::{OutgoingEvent, Publisher},
        runtime::topic_event_response::TopicEventResponseStatus,
    },
    events::ContentType,
    proto::v1::{
        CompleteTaskRequest, CreateTaskRequest, DeleteTaskRequest, Frequency, GetTaskRequest, ListAuditRecordsRequest,
        ListNotificationsRequest, ListTasksRequest, Recurrence, Task, UpdateTaskRequest, VerifyAuditChainRequest,
        WatchTasksRequest,
    },
    timestamps,
};

use system_tests::{Runtime, runtime_tests};
use todo_stack::eventually;
use todo_testing::delivery;

runtime_tests! {
    dev_sidecar: [recurrence_audit_and_watch, reminders, poison, the_largest_events],
    daprd: [recurrence_audit_and_watch, reminders, poison, the_largest_events],
    cluster: [recurrence_audit_and_watch, reminders, poison],
}

/// The main user's name: not printable ASCII, as identity providers issue
/// them. It is the Kafka record key, which daprd hands to single-delivery
/// subscribers as a gRPC header.
const ALICE: &str = "alicé";

fn due_in(duration: chrono::Duration) -> Option<prost_types::Timestamp> {
    Some(timestamps::to_proto(timestamps::now() + duration))
}

async fn recurrence_audit_and_watch(runtime: Runtime) {
    let stack = system_tests::start_services(runtime).await;
    let mut alice = stack.tasks(ALICE).await;
    let mut watch = stack
        .tasks(ALICE)
        .await
        .watch_tasks(WatchTasksRequest {})
        .await
        .unwrap()
        .into_inner();

    let first = alice
        .create_task(CreateTaskRequest {
            title: "water the plants".into(),
            due_at: due_in(chrono::Duration::days(1)),
            recurrence: Some(Recurrence {
                frequency: Frequency::Daily as i32,
                interval: 1,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();

    // WatchTasks streams the change made by another client, live.
    let streamed = tokio::time::timeout(Duration::from_secs(15), watch.message())
        .await
        .expect("a live event")
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    assert_eq!(streamed.event_type, "task.created");
    assert_eq!(streamed.task.unwrap().id, first.id);

    alice
        .complete_task(CompleteTaskRequest {
            id: first.id.clone(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let next = eventually("the next occurrence appears", Duration::from_secs(20), || {
        let mut client = alice.clone();
        let first_id = first.id.clone();
        async move {
            let tasks = client
                .list_tasks(ListTasksRequest::default())
                .await
                .ok()?
                .into_inner()
                .tasks;
            tasks.into_iter().find(|task| task.id != first_id)
        }
    })
    .await;
    assert_eq!(next.series_id, first.id);
    assert_eq!(next.occurrence_number, 2);
    assert_eq!(
        next.due_at.unwrap().seconds,
        first.due_at.unwrap().seconds + 86_400,
        "one day later"
    );

    // The completion delivered again (as a redelivery would) asks for the
    // same occurrence, which task-api creates only once.
    let completed = todo_core::proto::v1::TaskEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: "task.completed".into(),
        user_id: stack.user(ALICE),
        task: Some(Task {
            completed: true,
            ..first.clone()
        }),
        ..Default::default()
    };
    let status = stack
        .app_callback("recurring-service")
        .await
        .on_topic_event(delivery(
            "task-events",
            "task.completed",
            completed.encode_to_vec(),
            "application/protobuf",
        ))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, TopicEventResponseStatus::Success as i32);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks = alice
        .list_tasks(ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 2, "exactly one next occurrence: {tasks:?}");

    // The audit log holds every event in order, and the chain verifies.
    let mut audit = stack.audit(ALICE).await;
    let types = eventually("the audit trail is complete", Duration::from_secs(20), || {
        let mut audit = audit.clone();
        async move {
            let records = audit
                .list_audit_records(ListAuditRecordsRequest::default())
                .await
                .ok()?
                .into_inner()
                .records;
            let types: Vec<String> = records.into_iter().map(|r| r.event_type).collect();
            (types.len() >= 4).then_some(types)
        }
    })
    .await;
    // Order is per topic and user (the partition key); the command travels on
    // `task-commands`, so it may be audited before or after the completion
    // that caused it. The task events themselves keep their commit order.
    let commands: Vec<&String> = types.iter().filter(|t| *t == "task.occurrence.requested").collect();
    assert_eq!(commands.len(), 1, "the command once: {types:?}");
    let task_events: Vec<&String> = types.iter().filter(|t| *t != "task.occurrence.requested").collect();
    assert_eq!(
        task_events,
        ["task.created", "task.completed", "task.created"],
        "created, completed, the occurrence — once each, in order"
    );
    let verdict = audit
        .verify_audit_chain(VerifyAuditChainRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.valid, "{verdict:?}");

    // Bob sees none of it.
    let mut bob = stack.tasks("bob").await;
    assert!(
        bob.list_tasks(ListTasksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tasks
            .is_empty()
    );
    let not_found = bob.get_task(GetTaskRequest { id: first.id.clone() }).await.unwrap_err();
    assert_eq!(not_found.code(), tonic::Code::NotFound);
    let bobs_audit = stack
        .audit("bob")
        .await
        .list_audit_records(ListAuditRecordsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(bobs_audit.is_empty());
    system_tests::stop(stack).await;
}

/// Reminders fire once, follow the due date, and never come for finished
/// tasks.
async fn reminders(runtime: Runtime) {
    let stack = system_tests::start_services(runtime).await;
    let mut alice = stack.tasks(ALICE).await;
    let soon = chrono::Duration::hours(1) + chrono::Duration::seconds(3);
    let create = |title: &str, due: Option<prost_types::Timestamp>| CreateTaskRequest {
        title: title.into(),
        due_at: due,
        ..Default::default()
    };

    // Due in an hour and three seconds: its 1-hour reminder comes in ~3 s.
    let reminded = alice
        .create_task(create("pay rent", due_in(soon)))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    // Same timing, but completed / deleted before the reminder time.
    let done = alice
        .create_task(create("done early", due_in(soon)))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let deleted = alice
        .create_task(create("deleted", due_in(soon)))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    // Due in a day and three seconds: its 24-hour reminder comes in ~3 s,
    // and the same job stays to fire the 1-hour one 23 hours later.
    let tomorrow = alice
        .create_task(create(
            "tomorrow",
            due_in(chrono::Duration::hours(24) + chrono::Duration::seconds(3)),
        ))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    // Due in two days, then moved to an hour and three seconds from now.
    let moved = alice
        .create_task(create("moved", due_in(chrono::Duration::days(2))))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    alice
        .complete_task(CompleteTaskRequest {
            id: done.id.clone(),
            expected_version: 0,
        })
        .await
        .unwrap();
    alice
        .delete_task(DeleteTaskRequest {
            id: deleted.id.clone(),
            expected_version: 0,
        })
        .await
        .unwrap();
    alice
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                id: moved.id.clone(),
                due_at: due_in(soon),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["due_at".into()],
            }),
            expected_version: 0,
        })
        .await
        .unwrap();

    let mut notifications = stack.notifications(ALICE).await;
    let listed = eventually("the three reminders arrive", Duration::from_secs(30), || {
        let mut client = notifications.clone();
        async move {
            let list = client
                .list_notifications(ListNotificationsRequest::default())
                .await
                .ok()?
                .into_inner()
                .notifications;
            (list.len() >= 3).then_some(list)
        }
    })
    .await;
    // Give any wrong reminder time to show up too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed_again = notifications
        .list_notifications(ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notifications;
    assert_eq!(listed_again.len(), listed.len(), "each reminder exactly once");
    let mut tasks: Vec<&str> = listed_again.iter().map(|n| n.task_id.as_str()).collect();
    tasks.sort();
    let mut expected = vec![reminded.id.as_str(), moved.id.as_str(), tomorrow.id.as_str()];
    expected.sort();
    assert_eq!(tasks, expected, "never for the completed or the deleted task");
    for note in &listed_again {
        let lead = if note.task_id == tomorrow.id {
            "24 hours"
        } else {
            "1 hour"
        };
        assert!(note.message.starts_with(&format!("Due in {lead}")), "{note:?}");
    }
    let moved_note = listed_again.iter().find(|n| n.task_id == moved.id).unwrap();
    assert!(
        timestamps::from_proto(moved_note.due_at.as_ref().unwrap()).unwrap() < Utc::now() + chrono::Duration::hours(2),
        "the reminder follows the moved due date"
    );
    // The moved task's earlier reminder job was replaced, not left behind,
    // and the others are gone after their trigger (where the runtime can
    // list its jobs): only tomorrow's waits for its 1-hour trigger.
    if let Some(pending) = stack.pending_jobs().await {
        assert_eq!(pending, 1, "no stale reminder jobs");
    }
    let bob = stack
        .notifications("bob")
        .await
        .list_notifications(ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notifications;
    assert!(bob.is_empty());
    system_tests::stop(stack).await;
}

/// A poison event is dead-lettered by every consumer while the flow
/// continues behind it; replayed (`just replay`, where the runtime keeps
/// dead letters in Kafka), it is poison again and nothing else changes.
async fn poison(runtime: Runtime) {
    let stack = system_tests::start_services(runtime).await;
    // Its own id: a deployed system keeps every earlier run's letters.
    let poison_id = format!("poison-{}", uuid::Uuid::new_v4());
    let publisher = Publisher::connect_lazy(&todo_core::config::DaprConfig {
        grpc_endpoint: stack.sidecar_endpoint("task-api"),
        api_token: stack.api_token().map(Into::into),
        app_api_token: None,
        pubsub_name: "pubsub".into(),
    })
    .unwrap();
    publisher
        .publish(
            "task-events",
            &OutgoingEvent {
                event_id: poison_id.clone(),
                event_type: "task.completed".into(),
                partition_key: stack.user(ALICE),
                data: b"{ this is not an event".to_vec(),
                content_type: ContentType::Json,
                traceparent: None,
            },
        )
        .await
        .unwrap();
    // Alice's next change is behind the poison in the same partition.
    let mut alice = stack.tasks(ALICE).await;
    let task = alice
        .create_task(CreateTaskRequest {
            title: "after the poison".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut audit = stack.audit(ALICE).await;
    eventually("the later event is audited", Duration::from_secs(20), || {
        let mut audit = audit.clone();
        let id = task.id.clone();
        async move {
            let records = audit
                .list_audit_records(ListAuditRecordsRequest::default())
                .await
                .ok()?
                .into_inner()
                .records;
            records.iter().any(|r| r.task_id == id).then_some(())
        }
    })
    .await;
    // Every consumer group of task-events refuses it (dev-sidecar records
    // which); none blocks on it. Each task-api instance consumes in a group
    // of its own, for WatchTasks.
    let groups = 3 + stack.instances("task-api").await.unwrap();
    let letters = eventually("dead letters", Duration::from_secs(60), || async {
        let letters = stack.dead_letters("task-events-dlq").await.ok()?;
        let poison: Vec<_> = letters.into_iter().filter(|letter| letter.id == poison_id).collect();
        (poison.len() >= groups).then_some(poison)
    })
    .await;
    assert_eq!(letters.len(), groups, "{letters:?}");
    let mut apps: Vec<&str> = letters.iter().filter_map(|l| l.failed_app.as_deref()).collect();
    apps.sort();
    if !apps.is_empty() {
        assert_eq!(
            apps,
            ["audit-service", "recurring-service", "reminder-service", "task-api"]
        );
    }
    let verdict = audit
        .verify_audit_chain(VerifyAuditChainRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.valid);
    // Replaying dead letters (`just replay`) sends them through again: the
    // poison is still poison, dead-lettered once more by each consumer, and
    // nothing else changes.
    if let Some(kafka) = stack.kafka() {
        let replayed = kafka.replay("task-events-dlq", &[poison_id.as_str()]).unwrap();
        assert_eq!(replayed, 1, "once per event, not once per consumer that gave up on it");
        eventually(
            "the replayed poison is dead-lettered again",
            Duration::from_secs(60),
            || async {
                let letters = stack.dead_letters("task-events-dlq").await.ok()?;
                (letters.iter().filter(|letter| letter.id == poison_id).count() >= 2 * groups).then_some(())
            },
        )
        .await;
    }
    system_tests::stop(stack).await;
}

/// A backlog of the largest events validation allows, delivered in bulk once
/// a consumer is back: every batch must be one the runtime can send and the
/// consumer accepts (daprd sends at most 4 MiB in one call), or the runtime
/// retries it and then dead-letters all of it, other users' events too.
async fn the_largest_events(runtime: Runtime) {
    let mut stack = system_tests::start_services(runtime).await;
    let mut alice = stack.tasks(ALICE).await;
    stack.kill_app("audit-service").expect("stop audit-service");
    // Twice a full batch; four-byte characters everywhere (about 22 kB of
    // JSON each, 4.4 MB for 200).
    let count = 200;
    for n in 0..count {
        alice.create_task(todo_testing::largest_task_request(n)).await.unwrap();
    }
    stack
        .start_app("audit-service")
        .await
        .expect("start audit-service again");
    let mut audit = stack.audit(ALICE).await;
    eventually("every large event is audited", Duration::from_secs(180), || {
        let mut audit = audit.clone();
        async move {
            let mut seen = 0;
            let mut page_token = String::new();
            loop {
                let page = audit
                    .list_audit_records(ListAuditRecordsRequest {
                        // 500 records of 22 kB would be 11 MB, past the
                        // 4 MiB a client takes: the server cuts pages by
                        // bytes too.
                        page_size: 500,
                        page_token,
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                seen += page.records.len();
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            (seen >= count).then_some(())
        }
    })
    .await;
    let verdict = audit
        .verify_audit_chain(VerifyAuditChainRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.valid, "{verdict:?}");
    // The same for the tasks themselves.
    let (mut listed, mut page_token) = (0, String::new());
    loop {
        let page = alice
            .list_tasks(ListTasksRequest {
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await
            .expect("a page of the largest tasks reaches the client")
            .into_inner();
        listed += page.tasks.len();
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(listed, count);
    system_tests::stop(stack).await;
}
