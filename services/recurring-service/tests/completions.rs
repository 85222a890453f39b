//! recurring-service as daprd drives it: OnTopicEvent over gRPC, the next
//! occurrence published to a recording sidecar.

use prost::Message;
use recurring_service::{config::Config, startup::Application};
use todo_core::{
    config::ServerConfig,
    dapr::runtime::{
        TopicEventRequest, app_callback_client::AppCallbackClient, topic_event_response::TopicEventResponseStatus,
    },
    events::encode_json,
    proto::v1::{Frequency, Recurrence, Task, TaskEvent, TaskOccurrenceRequested},
};
use todo_testing::{ApiLevel, FakeSidecar, RunningServer, dapr_config};
use tonic::{Code, Request, transport::Channel};

struct TestApp {
    sidecar: FakeSidecar,
    callback: AppCallbackClient<Channel>,
    server: RunningServer,
}

async fn spawn(app_api_token: Option<&str>) -> TestApp {
    let sidecar = FakeSidecar::start(ApiLevel::Stable).await;
    let config = Config {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        dapr: dapr_config(&sidecar, app_api_token),
    };
    let app = Application::build(config).await.unwrap();
    let server = RunningServer::spawn(app.local_addr(), |stop| app.run_until_stopped(stop));
    TestApp {
        callback: AppCallbackClient::new(server.channel().await),
        sidecar,
        server,
    }
}

fn completed_daily() -> TaskEvent {
    let id = uuid::Uuid::new_v4().to_string();
    TaskEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: "task.completed".into(),
        user_id: "alice".into(),
        task: Some(Task {
            id: id.clone(),
            user_id: "alice".into(),
            title: "water plants".into(),
            completed: true,
            due_at: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            recurrence: Some(Recurrence {
                frequency: Frequency::Daily as i32,
                interval: 1,
                ..Default::default()
            }),
            series_id: id,
            occurrence_number: 1,
            ..Task::default()
        }),
        ..TaskEvent::default()
    }
}

fn delivery(event_type: &str, data: Vec<u8>, content_type: &str) -> TopicEventRequest {
    todo_testing::delivery("task-events", event_type, data, content_type)
}

async fn status(app: &mut TestApp, request: TopicEventRequest) -> i32 {
    app.callback.on_topic_event(request).await.unwrap().into_inner().status
}

#[tokio::test]
async fn a_completion_delivered_twice_asks_for_the_same_occurrence() {
    let mut app = spawn(None).await;
    let event = completed_daily();
    assert_eq!(
        status(
            &mut app,
            delivery("task.completed", event.encode_to_vec(), "application/protobuf")
        )
        .await,
        TopicEventResponseStatus::Success as i32
    );
    assert_eq!(
        status(
            &mut app,
            delivery("task.completed", encode_json(&event).unwrap(), "application/json")
        )
        .await,
        TopicEventResponseStatus::Success as i32
    );
    let published = app.sidecar.events();
    assert_eq!(published.len(), 2);
    let mut commands: Vec<TaskOccurrenceRequested> = published
        .iter()
        .map(|raw| raw.decode::<TaskOccurrenceRequested>().unwrap())
        .collect();
    // Identical but for when each was issued.
    commands[1].occurred_at = commands[0].occurred_at;
    assert_eq!(commands[0], commands[1]);
    assert_eq!(published[0].topic, "task-commands");
    assert_eq!(published[0].event_type, "task.occurrence.requested");
    assert_eq!(published[0].partition_key, "alice");
    assert_eq!(published[0].event_id, published[1].event_id, "deterministic event id");
    let next = commands[0].task.as_ref().unwrap();
    assert_eq!(next.due_at.as_ref().unwrap().seconds, 1_800_000_000 + 86_400);
    assert_eq!(commands[0].previous_task_id, event.task.unwrap().id);
}

#[tokio::test]
async fn other_types_are_acknowledged_poison_dropped_and_outages_retried() {
    let mut app = spawn(None).await;
    let event = completed_daily();
    assert_eq!(
        status(
            &mut app,
            delivery("task.updated", event.encode_to_vec(), "application/protobuf")
        )
        .await,
        TopicEventResponseStatus::Success as i32
    );
    assert_eq!(
        status(
            &mut app,
            delivery("task.completed", b"{broken".to_vec(), "application/json")
        )
        .await,
        TopicEventResponseStatus::Drop as i32
    );
    let mut no_due = event.clone();
    no_due.task.as_mut().unwrap().due_at = None;
    assert_eq!(
        status(
            &mut app,
            delivery("task.completed", no_due.encode_to_vec(), "application/protobuf")
        )
        .await,
        TopicEventResponseStatus::Drop as i32
    );
    let mut one_off = event.clone();
    one_off.task.as_mut().unwrap().recurrence = None;
    assert_eq!(
        status(
            &mut app,
            delivery("task.completed", one_off.encode_to_vec(), "application/protobuf")
        )
        .await,
        TopicEventResponseStatus::Success as i32
    );
    assert!(app.sidecar.events().is_empty());

    app.sidecar.set_available(false);
    assert_eq!(
        status(
            &mut app,
            delivery("task.completed", event.encode_to_vec(), "application/protobuf")
        )
        .await,
        TopicEventResponseStatus::Retry as i32
    );
}

#[tokio::test]
async fn subscriptions_route_completions_and_dead_letter() {
    let mut app = spawn(None).await;
    let subscriptions = app
        .callback
        .list_topic_subscriptions(())
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].topic, "task-events");
    assert_eq!(subscriptions[0].dead_letter_topic, "task-events-dlq");
    let rules = &subscriptions[0].routes.as_ref().unwrap().rules;
    assert_eq!(rules[0].r#match, "event.type == \"task.completed\"");
}

#[tokio::test]
async fn callbacks_need_the_app_api_token_when_configured() {
    let mut app = spawn(Some("app-secret")).await;
    // daprd asks for the subscriptions, and probes the app's health,
    // without the token: both stay open.
    let subscriptions = app.callback.list_topic_subscriptions(()).await.unwrap().into_inner();
    assert_eq!(subscriptions.subscriptions.len(), 1);
    let channel = app.server.channel().await;
    todo_core::dapr::runtime::app_callback_health_check_client::AppCallbackHealthCheckClient::new(channel)
        .health_check(())
        .await
        .expect("daprd's app health check is served, without the token");
    let mut request = Request::new(delivery(
        "task.completed",
        completed_daily().encode_to_vec(),
        "application/protobuf",
    ));
    request
        .metadata_mut()
        .insert("dapr-api-token", "wrong".parse().unwrap());
    assert_eq!(
        app.callback.on_topic_event(request).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut request = Request::new(());
    request
        .metadata_mut()
        .insert("dapr-api-token", "app-secret".parse().unwrap());
    assert!(app.callback.list_topic_subscriptions(request).await.is_ok());
    assert!(app.sidecar.events().is_empty());
}
