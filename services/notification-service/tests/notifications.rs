//! notification-service as daprd and users drive it: reminders delivered
//! through OnTopicEvent (duplicates, both encodings, poison), recorded once,
//! delivered through a channel, listed per user.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use notification_service::{
    config::{Config, WebhookConfig},
    startup::Application,
};
use prost::Message;
use todo_core::{
    config::ServerConfig,
    dapr::runtime::{app_callback_client::AppCallbackClient, topic_event_response::TopicEventResponseStatus},
    events::encode_json,
    proto::v1::{
        ListNotificationsRequest, ReminderEvent, ReminderKind, notification_service_client::NotificationServiceClient,
    },
};
use todo_testing::{
    ApiLevel, FakeSidecar, RunningServer, TestDatabase, auth_config, dapr_config, database_config, delivery, tokens,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tonic::{Code, Request, transport::Channel};

const SECRET: &str = "notification-test-secret";

struct TestApp {
    callback: AppCallbackClient<Channel>,
    channel: Channel,
    _server: RunningServer,
    _sidecar: FakeSidecar,
    _database: TestDatabase,
}

async fn spawn(webhook: Option<WebhookConfig>) -> TestApp {
    let database = TestDatabase::create().await;
    let sidecar = FakeSidecar::start(ApiLevel::Stable).await;
    let config = Config {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        dapr: dapr_config(&sidecar, None),
        database: database_config(&database.url),
        auth: auth_config(SECRET),
        webhook,
    };
    let app = Application::build(config).await.unwrap();
    let server = RunningServer::spawn(app.local_addr(), |stop| app.run_until_stopped(stop));
    let channel = server.channel().await;
    TestApp {
        callback: AppCallbackClient::new(channel.clone()),
        channel,
        _server: server,
        _sidecar: sidecar,
        _database: database,
    }
}

fn reminder(user: &str, kind: ReminderKind) -> ReminderEvent {
    ReminderEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: "reminder.due_soon".into(),
        occurred_at: None,
        user_id: user.into(),
        task_id: uuid::Uuid::new_v4().to_string(),
        title: "Pay rent".into(),
        due_at: Some(prost_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 0,
        }),
        kind: kind as i32,
    }
}

impl TestApp {
    async fn deliver_encoded(&mut self, data: Vec<u8>, content_type: &str) -> i32 {
        self.callback
            .on_topic_event(delivery("reminders", "reminder.due_soon", data, content_type))
            .await
            .unwrap()
            .into_inner()
            .status
    }

    async fn deliver(&mut self, event: &ReminderEvent) -> i32 {
        self.deliver_encoded(event.encode_to_vec(), "application/protobuf")
            .await
    }

    async fn list(
        &self,
        user: &str,
        request: ListNotificationsRequest,
    ) -> Result<(Vec<String>, String), tonic::Status> {
        let mut request = Request::new(request);
        let token = tokens::hs256(SECRET, user, 60);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let response = NotificationServiceClient::new(self.channel.clone())
            .list_notifications(request)
            .await?
            .into_inner();
        Ok((
            response.notifications.into_iter().map(|n| n.message).collect(),
            response.next_page_token,
        ))
    }
}

const SUCCESS: i32 = TopicEventResponseStatus::Success as i32;

#[tokio::test]
async fn each_reminder_becomes_one_notification_for_its_user_only() {
    let mut app = spawn(None).await;
    let event = reminder("alice", ReminderKind::ReminderKind1hBefore);
    assert_eq!(app.deliver(&event).await, SUCCESS);
    assert_eq!(app.deliver(&event).await, SUCCESS, "a duplicate is acknowledged");
    assert_eq!(
        app.deliver_encoded(encode_json(&event).unwrap(), "application/json")
            .await,
        SUCCESS
    );

    let (alice, _) = app.list("alice", ListNotificationsRequest::default()).await.unwrap();
    assert_eq!(alice, ["Due in 1 hour: Pay rent"]);
    let (bob, _) = app.list("bob", ListNotificationsRequest::default()).await.unwrap();
    assert!(bob.is_empty());

    let unauthenticated = NotificationServiceClient::new(app.channel.clone())
        .list_notifications(ListNotificationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn listing_pages_newest_first_and_filters_by_task() {
    let mut app = spawn(None).await;
    let mut events = Vec::new();
    for n in 0..5 {
        let mut event = reminder("alice", ReminderKind::ReminderKind24hBefore);
        event.title = format!("task {n}");
        assert_eq!(app.deliver(&event).await, SUCCESS);
        events.push(event);
    }
    let (first, token) = app
        .list(
            "alice",
            ListNotificationsRequest {
                page_size: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (second, last) = app
        .list(
            "alice",
            ListNotificationsRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(last.is_empty());
    let all: Vec<_> = first.into_iter().chain(second).collect();
    let expected: Vec<_> = (0..5).rev().map(|n| format!("Due in 24 hours: task {n}")).collect();
    assert_eq!(all, expected);

    let (only, _) = app
        .list(
            "alice",
            ListNotificationsRequest {
                task_id: events[2].task_id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(only, ["Due in 24 hours: task 2"]);

    let mismatched = app
        .list(
            "alice",
            ListNotificationsRequest {
                page_size: 3,
                page_token: token,
                task_id: events[0].task_id.clone(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(mismatched.code(), Code::InvalidArgument);
    let too_big = app
        .list(
            "alice",
            ListNotificationsRequest {
                page_size: 100_000,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::InvalidArgument);
    // Input PostgreSQL cannot take is refused as such, not an internal
    // error: a NUL in the filter, a page token with a time before 4713 BC.
    let forged = todo_core::pagination::encode(&notification_service::store::Cursor {
        created_at: chrono::DateTime::from_timestamp(-200_000_000_000, 0).unwrap(),
        id: uuid::Uuid::new_v4(),
        task_id: None,
    });
    for request in [
        ListNotificationsRequest {
            task_id: "\0".into(),
            ..Default::default()
        },
        ListNotificationsRequest {
            page_token: forged,
            ..Default::default()
        },
    ] {
        let refused = app.list("alice", request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }
}

#[tokio::test]
async fn poison_is_dropped_and_other_types_acknowledged() {
    let mut app = spawn(None).await;
    let drop = TopicEventResponseStatus::Drop as i32;
    assert_eq!(
        app.deliver_encoded(b"{\"eventId\": 1}".to_vec(), "application/json")
            .await,
        drop
    );
    assert_eq!(app.deliver_encoded(vec![0xff; 3], "application/protobuf").await, drop);
    let mut bad_id = reminder("alice", ReminderKind::ReminderKind1hBefore);
    bad_id.event_id = "not-a-uuid".into();
    assert_eq!(app.deliver(&bad_id).await, drop);
    let mut no_kind = reminder("alice", ReminderKind::Unspecified);
    no_kind.kind = 0;
    assert_eq!(app.deliver(&no_kind).await, drop);
    let other = app
        .callback
        .on_topic_event(delivery(
            "reminders",
            "reminder.snoozed",
            vec![1, 2],
            "application/protobuf",
        ))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(other, SUCCESS);
    let (listed, _) = app.list("alice", ListNotificationsRequest::default()).await.unwrap();
    assert!(listed.is_empty());
}

/// A webhook receiver that answers `status` and keeps the bodies it got.
async fn webhook(status: Arc<Mutex<u16>>, bodies: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let status = *status.lock().unwrap();
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut read = 0;
                // Read headers and the whole body (Content-Length).
                loop {
                    let n = socket.read(&mut buffer[read..]).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                    if let Some(split) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if read >= split + 4 + length {
                            bodies
                                .lock()
                                .unwrap()
                                .push(text[split + 4..split + 4 + length].to_owned());
                            break;
                        }
                    }
                }
                let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/hooks/todo")
}

#[tokio::test]
async fn a_failing_webhook_records_nothing_and_asks_for_a_retry() {
    let status = Arc::new(Mutex::new(503));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let url = webhook(status.clone(), bodies.clone()).await;
    let mut app = spawn(Some(WebhookConfig {
        url,
        timeout: Duration::from_secs(2),
        attempts: 2,
    }))
    .await;
    let event = reminder("alice", ReminderKind::ReminderKind24hBefore);
    assert_eq!(app.deliver(&event).await, TopicEventResponseStatus::Retry as i32);
    assert_eq!(bodies.lock().unwrap().len(), 2, "retried within the call");
    let (listed, _) = app.list("alice", ListNotificationsRequest::default()).await.unwrap();
    assert!(listed.is_empty(), "nothing recorded when delivery failed");

    *status.lock().unwrap() = 204;
    assert_eq!(app.deliver(&event).await, SUCCESS);
    assert_eq!(app.deliver(&event).await, SUCCESS);
    let delivered = bodies.lock().unwrap().clone();
    assert_eq!(
        delivered.len(),
        3,
        "delivered once after the failures, not again for the duplicate"
    );
    let body: serde_json::Value = serde_json::from_str(&delivered[2]).unwrap();
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["kind"], "REMINDER_KIND_24H_BEFORE");
    let (listed, _) = app.list("alice", ListNotificationsRequest::default()).await.unwrap();
    assert_eq!(listed.len(), 1);

    // A refusal (4xx) is final: one attempt, nothing recorded, and DROP so
    // the sidecar dead-letters it at once instead of retrying for minutes.
    *status.lock().unwrap() = 400;
    let refused = reminder("alice", ReminderKind::ReminderKind1hBefore);
    assert_eq!(app.deliver(&refused).await, TopicEventResponseStatus::Drop as i32);
    assert_eq!(bodies.lock().unwrap().len(), 4, "not retried within the call");
    let (listed, _) = app.list("alice", ListNotificationsRequest::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "nothing recorded for the refused one");
}
