//! What task-api does with deliveries: occurrence commands from
//! `task-commands` (idempotent), and `task-events` feeding WatchTasks.

mod support;

use std::time::Duration;

use prost::Message;
use prost_types::Timestamp;
use support::{TestApp, create, new_task};
use todo_core::{
    dapr::runtime::topic_event_response::TopicEventResponseStatus,
    events::encode_json,
    proto::v1::{
        DeleteTaskRequest, Frequency, ListTasksRequest, Recurrence, Task, TaskOccurrenceRequested, WatchTasksRequest,
    },
};
use tokio_stream::StreamExt;

fn occurrence(user: &str, series: &str) -> TaskOccurrenceRequested {
    let task_id = uuid::Uuid::new_v5(&uuid::Uuid::parse_str(series).unwrap(), b"2033-05-18T03:33:20Z");
    TaskOccurrenceRequested {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: "task.occurrence.requested".into(),
        occurred_at: None,
        user_id: user.into(),
        series_id: series.into(),
        previous_task_id: series.into(),
        task_id: task_id.to_string(),
        task: Some(Task {
            title: "water plants".into(),
            due_at: Some(Timestamp {
                seconds: 2_000_000_000,
                nanos: 0,
            }),
            recurrence: Some(Recurrence {
                frequency: Frequency::Daily as i32,
                interval: 2,
                ..Default::default()
            }),
            ..Default::default()
        }),
        occurrence_number: 2,
    }
}

#[tokio::test]
async fn a_duplicated_occurrence_command_creates_one_task() {
    let app = TestApp::spawn().await;
    let mut callback = app.app_callback().await;
    let series = uuid::Uuid::new_v4().to_string();
    let command = occurrence("alice", &series);

    // Delivered twice, once as protobuf and once as JSON.
    for (data, content_type) in [
        (command.encode_to_vec(), "application/protobuf"),
        (encode_json(&command).unwrap(), "application/json"),
    ] {
        let status = callback
            .on_topic_event(TestApp::delivery(
                "task-commands",
                "task.occurrence.requested",
                data,
                content_type,
            ))
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, TopicEventResponseStatus::Success as i32);
    }

    let mut alice = app.client("alice").await;
    let tasks = alice
        .list_tasks(ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(task.id, command.task_id);
    assert_eq!(task.series_id, series);
    assert_eq!(task.occurrence_number, 2);
    assert_eq!(task.recurrence.unwrap().interval, 2);

    let events = app.wait_for_events(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.sidecar.events().len(), 1, "one task.created for two commands");
    assert_eq!(events[0].event_type, "task.created");

    // The user deletes the occurrence; the command replayed from a dead
    // letter (or redelivered) does not bring it back.
    alice
        .delete_task(DeleteTaskRequest {
            id: command.task_id.clone(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let status = callback
        .on_topic_event(TestApp::delivery(
            "task-commands",
            "task.occurrence.requested",
            command.encode_to_vec(),
            "application/protobuf",
        ))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, TopicEventResponseStatus::Success as i32);
    let tasks = alice
        .list_tasks(ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert!(tasks.is_empty(), "a deleted occurrence stays deleted: {tasks:?}");
    app.stop().await;
}

#[tokio::test]
async fn poison_commands_are_dropped_and_unknown_types_acknowledged() {
    let app = TestApp::spawn().await;
    let mut callback = app.app_callback().await;
    let deliver = |data: Vec<u8>, event_type: &str, content_type: &str| {
        TestApp::delivery("task-commands", event_type, data, content_type)
    };
    let mut invalid = occurrence("alice", &uuid::Uuid::new_v4().to_string());
    invalid.task.as_mut().unwrap().title = String::new();
    let mut no_user = occurrence("", &uuid::Uuid::new_v4().to_string());
    no_user.user_id = String::new();
    for (request, expected) in [
        (
            deliver(b"{not json".to_vec(), "task.occurrence.requested", "application/json"),
            TopicEventResponseStatus::Drop,
        ),
        (
            deliver(vec![0xff, 0xff], "task.occurrence.requested", "application/protobuf"),
            TopicEventResponseStatus::Drop,
        ),
        (
            deliver(
                invalid.encode_to_vec(),
                "task.occurrence.requested",
                "application/protobuf",
            ),
            TopicEventResponseStatus::Drop,
        ),
        (
            deliver(
                no_user.encode_to_vec(),
                "task.occurrence.requested",
                "application/protobuf",
            ),
            TopicEventResponseStatus::Drop,
        ),
        (
            deliver(b"whatever".to_vec(), "task.something.new", "text/plain"),
            TopicEventResponseStatus::Success,
        ),
    ] {
        let status = callback.on_topic_event(request).await.unwrap().into_inner().status;
        assert_eq!(status, expected as i32);
    }
    let mut alice = app.client("alice").await;
    assert!(
        alice
            .list_tasks(ListTasksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tasks
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn watch_streams_the_callers_events_live_and_nobody_elses() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    let mut stream = alice.watch_tasks(WatchTasksRequest {}).await.unwrap().into_inner();

    // Changes made by another client of alice's, and by bob.
    let mut other_alice_client = app.client("alice").await;
    let task = create(&mut other_alice_client, new_task("seen live")).await;
    create(&mut bob, new_task("not for alice")).await;

    // The sidecar delivers task-events back to task-api, as Dapr would.
    let recorded = app.sidecar.wait_for(2, Duration::from_secs(10)).await;
    let mut callback = app.app_callback().await;
    for event in &recorded {
        callback
            .on_topic_event(TestApp::delivery(
                "task-events",
                &event.event_type,
                event.data.clone(),
                &event.content_type,
            ))
            .await
            .unwrap();
    }
    let received = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event arrives")
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    assert_eq!(received.event_type, "task.created");
    assert_eq!(received.task.unwrap().id, task.id);
    // Bob's event never reaches alice's stream.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err()
    );
    app.stop().await;
}

/// A delivery on `task-events` of a task event of `user`'s as large as
/// validation allows (a 4,000-character description of three-byte
/// characters: about 12 kB).
fn large_delivery(user: &str) -> todo_core::dapr::runtime::TopicEventRequest {
    let event = todo_core::proto::v1::TaskEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: "task.created".into(),
        user_id: user.into(),
        task: Some(Task {
            id: uuid::Uuid::new_v4().to_string(),
            title: "large".into(),
            description: "東".repeat(4_000),
            ..Default::default()
        }),
        ..Default::default()
    };
    TestApp::delivery(
        "task-events",
        "task.created",
        event.encode_to_vec(),
        "application/protobuf",
    )
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_ended_and_holds_no_one_up() {
    let app = TestApp::spawn().await;
    // A client that stops reading: its HTTP/2 window (64 KiB) fills, and
    // then task-api must keep the rest.
    let stuck_channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .http2_adaptive_window(false)
        .connect()
        .await
        .unwrap();
    let token = todo_testing::tokens::hs256(support::JWT_SECRET, "alice", 300);
    let mut stuck_client = todo_core::proto::v1::task_service_client::TaskServiceClient::with_interceptor(
        stuck_channel,
        support::Bearer(Some(token)),
    );
    let mut stuck = stuck_client
        .watch_tasks(WatchTasksRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut bob = app
        .client("bob")
        .await
        .watch_tasks(WatchTasksRequest {})
        .await
        .unwrap()
        .into_inner();

    let mut callback = app.app_callback().await;
    let sent = 60; // about 720 kB: far past the window and the watcher's buffer
    for _ in 0..sent {
        callback.on_topic_event(large_delivery("alice")).await.unwrap();
    }
    // Bob's events still flow, live.
    callback.on_topic_event(large_delivery("bob")).await.unwrap();
    let bobs = tokio::time::timeout(Duration::from_secs(5), bob.next()).await;
    assert!(bobs.expect("bob's event arrives").unwrap().is_ok());

    // When alice's client reads again, it finds what was buffered, then
    // learns it fell behind: task-api did not keep all 60 for it.
    let mut received = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), stuck.next()).await {
            Ok(Some(Ok(_))) => received += 1,
            Ok(Some(Err(status))) => break status,
            Ok(None) => panic!("ended without saying why after {received}"),
            Err(_) => panic!("still open after {received} of {sent} events: nothing ended the slow watcher"),
        }
    };
    assert_eq!(ended.code(), tonic::Code::Aborted, "{ended:?}");
    assert!(received < sent, "{received}");
    app.stop().await;
}

#[tokio::test]
async fn watchers_are_capped_per_user() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(alice.watch_tasks(WatchTasksRequest {}).await.unwrap().into_inner());
    }
    let refused = alice.watch_tasks(WatchTasksRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    // Another user is not affected; a closed stream frees its place.
    app.client("bob").await.watch_tasks(WatchTasksRequest {}).await.unwrap();
    open.pop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while alice.watch_tasks(WatchTasksRequest {}).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed stream frees its place"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
