//! A browser-style gRPC-Web client (HTTP/1.1) reaches every kind of RPC,
//! server streaming included, on the same port.

mod support;

use std::time::Duration;

use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use support::TestApp;
use todo_core::proto::v1::{
    CreateTaskRequest, GetTaskRequest, WatchTasksRequest, task_service_client::TaskServiceClient,
};
use todo_testing::tokens;
use tonic::Request;
use tonic_web::GrpcWebClientLayer;

fn authed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let token = tokens::hs256(support::JWT_SECRET, "alice", 60);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn grpc_web_client_calls_unary_and_streaming_rpcs() {
    let app = TestApp::spawn().await;
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let service = tower::ServiceBuilder::new()
        .layer(GrpcWebClientLayer::new())
        .service(http1);
    let mut client = TaskServiceClient::with_origin(service, format!("http://{}", app.addr).parse().unwrap());

    let created = client
        .create_task(authed(CreateTaskRequest {
            title: "from the browser".into(),
            ..Default::default()
        }))
        .await
        .expect("gRPC-Web unary call")
        .into_inner()
        .task
        .unwrap();
    let fetched = client
        .get_task(authed(GetTaskRequest { id: created.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(fetched.title, "from the browser");

    let unauthenticated = client
        .get_task(GetTaskRequest { id: created.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);

    // The stream opens over gRPC-Web and delivers a live event.
    let mut stream = client
        .watch_tasks(authed(WatchTasksRequest {}))
        .await
        .expect("gRPC-Web server stream")
        .into_inner();
    let recorded = app.sidecar.wait_for(1, Duration::from_secs(10)).await;
    app.app_callback()
        .await
        .on_topic_event(TestApp::delivery(
            "task-events",
            &recorded[0].event_type,
            recorded[0].data.clone(),
            &recorded[0].content_type,
        ))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("event within 5 s")
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    assert_eq!(event.task.unwrap().id, created.id);
    app.stop().await;
}
