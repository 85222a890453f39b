//! Every TaskService RPC needs a valid bearer token.

mod support;

use support::TestApp;
use todo_core::proto::v1::{CreateTaskRequest, GetTaskRequest, ListTasksRequest, WatchTasksRequest};
use todo_testing::tokens;
use tonic::Code;

#[tokio::test]
async fn missing_malformed_or_wrongly_signed_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let cases = [
        None,
        Some("not-a-jwt".to_owned()),
        Some(tokens::hs256("some-other-secret", "alice", 60)),
        Some(tokens::hs256(support::JWT_SECRET, "alice", 0).replace('.', ".x")),
    ];
    for token in cases {
        let mut client = app.client_with_token(token.clone()).await;
        let create = client
            .create_task(CreateTaskRequest {
                title: "x".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(create.code(), Code::Unauthenticated, "{token:?}");
        let list = client.list_tasks(ListTasksRequest::default()).await.unwrap_err();
        assert_eq!(list.code(), Code::Unauthenticated);
        let get = client
            .get_task(GetTaskRequest {
                id: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(get.code(), Code::Unauthenticated);
        let watch = client.watch_tasks(WatchTasksRequest {}).await.unwrap_err();
        assert_eq!(watch.code(), Code::Unauthenticated);
    }
    // Health stays open for probes.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    app.stop().await;
}

/// One user's flood is refused at the door, with the time to wait; another
/// user's calls go on (the default limit: 200 at once, 100 a second).
#[tokio::test]
async fn a_user_past_the_rate_limit_is_refused_and_others_are_not() {
    let app = TestApp::spawn().await;
    let greedy = app.client("greedy").await;
    // Far more at once than the burst, however slowly each call runs.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..600 {
        let mut client = greedy.clone();
        // Refused by validation after the door: no database work.
        calls.spawn(async move { client.get_task(GetTaskRequest { id: "nope".into() }).await.unwrap_err() });
    }
    let mut refused = None;
    while let Some(status) = calls.join_next().await {
        let status = status.unwrap();
        match status.code() {
            Code::ResourceExhausted => refused = Some(status),
            code => assert_eq!(code, Code::InvalidArgument, "{status:?}"),
        }
    }
    let refused = refused.expect("600 calls at once pass a burst of 200");
    assert!(refused.message().contains("retry in"), "{}", refused.message());
    let mut other = app.client("other").await;
    other.list_tasks(ListTasksRequest::default()).await.unwrap();
    app.stop().await;
}
