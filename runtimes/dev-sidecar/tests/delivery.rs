//! Delivery as daprd does it: CloudEvents, order per partition, retries,
//! dead letters, and nothing lost across restarts.

mod support;

use std::time::Duration;

use support::{Recorder, Stack, eventually, serve_app, serve_app_with_token};
use todo_core::{
    dapr::{callback::Outcome, publisher::OutgoingEvent},
    events::ContentType,
};

fn event(id: &str, user: &str, event_type: &str) -> OutgoingEvent {
    OutgoingEvent {
        event_id: id.into(),
        event_type: event_type.into(),
        partition_key: user.into(),
        data: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        content_type: ContentType::Json,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

#[tokio::test]
async fn events_arrive_as_cloudevents_in_order_per_user() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&["orders"], false);
    let _app = serve_app(recorder.clone(), stack.app_port).await;
    let _sidecar = stack.sidecar(&[]).await;
    let publisher = stack.publisher();

    let users = ["alice", "bob", "carol"];
    let mut expected: Vec<String> = Vec::new();
    for n in 0..30 {
        let user = users[n % 3];
        let id = format!("{user}-{n}");
        if n % 2 == 0 {
            publisher
                .publish("orders", &event(&id, user, "order.placed"))
                .await
                .unwrap();
        } else {
            publisher
                .publish_bulk("orders", &[event(&id, user, "order.placed")])
                .await
                .unwrap();
        }
        expected.push(id);
    }
    eventually("30 deliveries", Duration::from_secs(10), || {
        recorder.received().len() >= 30
    })
    .await;
    let received = recorder.received();
    assert_eq!(received.len(), 30, "each event exactly once");
    for user in users {
        let got: Vec<_> = received
            .iter()
            .filter(|e| e.id.starts_with(user))
            .map(|e| e.id.clone())
            .collect();
        let want: Vec<_> = expected.iter().filter(|id| id.starts_with(user)).cloned().collect();
        assert_eq!(got, want, "{user}'s events in publish order");
    }
    let first = received.iter().find(|e| e.id == "alice-0").unwrap();
    assert_eq!(first.event_type, "order.placed");
    assert_eq!(first.topic, "orders");
    assert_eq!(first.content_type, "application/json");
    assert_eq!(first.path, "/events");
    assert_eq!(first.data, b"{\"id\":\"alice-0\"}");
    assert_eq!(
        first.traceparent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );

    let mut lag = serde_json::Value::Null;
    for _ in 0..100 {
        lag = stack.inspect("/lag").await;
        if lag["total"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lag["total"], 0, "{lag}");
}

#[tokio::test]
async fn retry_redelivers_and_drop_or_exhaustion_dead_letters_without_blocking() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&["orders"], false);
    recorder.script("flaky", &[Outcome::Retry, Outcome::Retry]);
    recorder.script("poison", &[Outcome::Drop]);
    recorder.script("hopeless", &[Outcome::Retry; 10]);
    let _app = serve_app(recorder.clone(), stack.app_port).await;
    let _sidecar = stack.sidecar(&["--max-retries", "2"]).await;
    let publisher = stack.publisher();
    for id in ["flaky", "poison", "hopeless", "after"] {
        publisher
            .publish("orders", &event(id, "alice", "order.placed"))
            .await
            .unwrap();
    }
    eventually("the event behind the failures arrives", Duration::from_secs(10), || {
        recorder.received_ids().contains(&"after".to_owned())
    })
    .await;
    let ids = recorder.received_ids();
    assert_eq!(
        ids.iter().filter(|id| *id == "flaky").count(),
        3,
        "two RETRYs, then SUCCESS"
    );
    assert_eq!(
        ids.iter().filter(|id| *id == "poison").count(),
        1,
        "DROP is never redelivered"
    );
    assert_eq!(
        ids.iter().filter(|id| *id == "hopeless").count(),
        3,
        "first try plus two retries"
    );

    let letters = stack.inspect("/dead-letters?topic=orders-dlq").await;
    let letters = letters.as_array().unwrap();
    let summary: Vec<_> = letters
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), l["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(summary.len(), 2, "{letters:?}");
    assert_eq!(summary[0].0, "poison");
    assert!(summary[0].1.contains("DROP"));
    assert_eq!(summary[1].0, "hopeless");
    assert!(summary[1].1.contains("retries exhausted"));
    assert_eq!(letters[0]["original_topic"], "orders");
    assert_eq!(letters[0]["failed_app"], "recorder");
    assert_eq!(letters[0]["data"], "{\"id\":\"poison\"}");
}

#[tokio::test]
async fn bulk_subscriptions_get_batches_in_order() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&["orders"], true);
    recorder.script("b-3", &[Outcome::Drop]);
    let _app = serve_app(recorder.clone(), stack.app_port).await;
    let _sidecar = stack.sidecar(&["--partitions", "1"]).await;
    let batch: Vec<_> = (0..20)
        .map(|n| event(&format!("b-{n}"), "alice", "order.placed"))
        .collect();
    stack.publisher().publish_bulk("orders", &batch).await.unwrap();
    eventually("20 deliveries", Duration::from_secs(10), || {
        recorder.received().len() >= 20
    })
    .await;
    let ids = recorder.received_ids();
    let expected: Vec<_> = (0..20).map(|n| format!("b-{n}")).collect();
    assert_eq!(ids, expected);
    let mut letters = 0;
    for _ in 0..100 {
        letters = stack.inspect("/dead-letters").await.as_array().unwrap().len();
        if letters > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(letters, 1, "the dropped entry is dead-lettered");
}

#[tokio::test]
async fn nothing_accepted_is_lost_across_restarts_and_nothing_committed_comes_back() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&["orders"], false);

    // The app is down: events are accepted and wait.
    let sidecar = stack.sidecar(&[]).await;
    let publisher = stack.publisher();
    for n in 0..5 {
        publisher
            .publish("orders", &event(&format!("e{n}"), "alice", "order.placed"))
            .await
            .unwrap();
    }
    drop(sidecar);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let app = serve_app(recorder.clone(), stack.app_port).await;
    let sidecar = stack.sidecar(&[]).await;
    eventually("the five waiting events", Duration::from_secs(10), || {
        recorder.received().len() >= 5
    })
    .await;
    assert_eq!(recorder.received_ids(), ["e0", "e1", "e2", "e3", "e4"]);
    // Make the commits durable, then restart again: nothing is redelivered.
    publisher.publish("other", &event("x", "bob", "noise")).await.unwrap();
    drop(sidecar);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _sidecar = stack.sidecar(&[]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(recorder.received().len(), 5, "committed events are not delivered again");
    drop(app);
}

#[tokio::test]
async fn a_short_outage_of_the_app_is_ridden_out_by_retries() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&["orders"], false);
    let app = serve_app(recorder.clone(), stack.app_port).await;
    let _sidecar = stack.sidecar(&["--max-retries", "20"]).await;
    // Let it discover the subscriptions while the app is up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(app);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let publisher = stack.publisher();
    for n in 0..3 {
        publisher
            .publish("orders", &event(&format!("w{n}"), "alice", "order.placed"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let _app = serve_app(recorder.clone(), stack.app_port).await;
    eventually("all three after the app returns", Duration::from_secs(10), || {
        recorder.received().len() >= 3
    })
    .await;
    assert_eq!(recorder.received_ids(), ["w0", "w1", "w2"]);
    let letters = stack.inspect("/dead-letters").await;
    assert!(letters.as_array().unwrap().is_empty());
}

/// As on daprd: an app that cannot be reached is a failed delivery, so a
/// longer outage than the retry budget dead-letters (the policy in
/// dapr/components/resiliency.yaml sizes that budget).
#[tokio::test]
async fn an_app_that_stays_down_uses_up_the_retries_and_dead_letters() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&["orders"], false);
    let app = serve_app(recorder.clone(), stack.app_port).await;
    let _sidecar = stack.sidecar(&["--max-retries", "1"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(app);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stack
        .publisher()
        .publish("orders", &event("gone", "alice", "order.placed"))
        .await
        .unwrap();
    let mut letters = serde_json::Value::Null;
    for _ in 0..100 {
        letters = stack.inspect("/dead-letters?topic=orders-dlq").await;
        if letters.as_array().is_some_and(|list| !list.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(letters[0]["id"], "gone", "{letters}");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("retries exhausted"),
        "{letters}"
    );
}

#[tokio::test]
async fn api_tokens_are_required_from_callers_and_sent_to_apps() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&["orders"], false);
    // The app refuses callbacks without its token: deliveries only work if
    // the sidecar sends it.
    let _app = serve_app_with_token(recorder.clone(), stack.app_port, Some("app-secret")).await;
    let _sidecar = stack
        .sidecar(&["--dapr-api-token", "sidecar-secret", "--app-api-token", "app-secret"])
        .await;
    let anonymous = stack.publisher();
    let refused = anonymous
        .publish("orders", &event("x", "alice", "order.placed"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("dapr-api-token"), "{refused}");

    let mut config = stack.dapr_config();
    config.api_token = Some("sidecar-secret".into());
    let publisher = todo_core::dapr::publisher::Publisher::connect_lazy(&config).unwrap();
    publisher
        .publish("orders", &event("y", "alice", "order.placed"))
        .await
        .unwrap();
    eventually("delivered with the app token", Duration::from_secs(10), || {
        recorder.received_ids() == ["y"]
    })
    .await;
}
