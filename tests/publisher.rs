//! The Dapr publisher against a recording sidecar: metadata, API token, trace
//! context, and the fallback chain BulkPublishEvent → Alpha1 → PublishEvent.

use std::time::Duration;

use todo_core::{
    config::DaprConfig,
    dapr::publisher::{OutgoingEvent, Publisher},
    events::ContentType,
};
use todo_testing::{ApiLevel, FakeSidecar};

fn event(n: u32, user: &str) -> OutgoingEvent {
    OutgoingEvent {
        event_id: format!("e{n}"),
        event_type: "task.created".into(),
        partition_key: user.into(),
        data: vec![n as u8],
        content_type: ContentType::Protobuf,
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    }
}

fn publisher(sidecar: &FakeSidecar, token: Option<&str>) -> Publisher {
    Publisher::connect_lazy(&DaprConfig {
        grpc_endpoint: sidecar.endpoint(),
        api_token: token.map(Into::into),
        app_api_token: None,
        pubsub_name: "pubsub".into(),
    })
    .unwrap()
}

#[tokio::test]
async fn bulk_publish_falls_back_and_keeps_order_and_metadata() {
    for (api, method) in [
        (ApiLevel::Stable, "BulkPublishEvent"),
        (ApiLevel::Alpha1Only, "BulkPublishEventAlpha1"),
        (ApiLevel::None, "PublishEvent"),
    ] {
        let sidecar = FakeSidecar::start(api).await;
        let publisher = publisher(&sidecar, Some("sidecar-token"));
        let batch: Vec<_> = (0..5)
            .map(|n| event(n, if n % 2 == 0 { "alice" } else { "bob" }))
            .collect();
        publisher.publish_bulk("task-events", &batch).await.unwrap();
        // A second batch goes straight to the API that worked.
        publisher
            .publish_bulk("task-events", &[event(5, "alice")])
            .await
            .unwrap();

        let seen = sidecar.wait_for(6, Duration::from_secs(5)).await;
        let ids: Vec<_> = seen.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4", "e5"], "{api:?}");
        for recorded in &seen {
            assert_eq!(recorded.method, method);
            assert_eq!(recorded.topic, "task-events");
            assert_eq!(recorded.event_type, "task.created");
            assert_eq!(recorded.content_type, "application/protobuf");
            assert_eq!(recorded.api_token.as_deref(), Some("sidecar-token"));
            assert!(
                recorded
                    .traceparent
                    .as_deref()
                    .unwrap()
                    .starts_with("00-0af7651916cd43dd")
            );
        }
        assert_eq!(seen[1].partition_key, "bob");
    }
}

#[tokio::test]
async fn a_sidecar_that_is_down_is_an_error_the_caller_can_retry() {
    let sidecar = FakeSidecar::start(ApiLevel::Stable).await;
    let publisher = publisher(&sidecar, None);
    sidecar.set_available(false);
    assert!(publisher.publish("task-events", &event(1, "alice")).await.is_err());
    assert!(
        publisher
            .publish_bulk("task-events", &[event(2, "alice")])
            .await
            .is_err()
    );
    sidecar.set_available(true);
    publisher.publish("task-events", &event(3, "alice")).await.unwrap();
    let seen = sidecar.events();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event_id, "e3");
    assert_eq!(seen[0].api_token, None);
}
