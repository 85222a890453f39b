//! One conformance suite, two runtimes: every Dapr interaction the services
//! use, driven the same way through dev-sidecar and through daprd + Kafka +
//! the Scheduler, with the same outcome expected from both.
//!
//! Each test runs one group of checks on one runtime against one stack
//! (starting Kafka and a daprd per app is the slow part), each check on
//! topics of its own.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use system_tests::{Runtime, runtime_tests};
use todo_core::{
    config::DaprConfig,
    dapr::{
        app::{self, DeliveredEvent, EventHandler},
        callback::{Outcome, subscription, with_bulk},
        jobs::{Jobs, Repeat},
        publisher::{OutgoingEvent, Publisher, SidecarClient},
        runtime::{GetJobRequest, PublishEventRequest, TopicSubscription, dapr_client::DaprClient},
    },
    events::{self, ContentType},
    proto::v1::{Task, TaskEvent},
    server::{GrpcApp, base_routes},
};
use todo_stack::{Stack, StackOptions, Topic, plan::Tokens};
use todo_testing::{RunningServer, recorder::Recorder};

runtime_tests! {
    dev_sidecar: [pubsub, big_bulk_batches, encodings, tokens, jobs, repeating_jobs, delivery_concurrency],
    daprd: [pubsub, big_bulk_batches, encodings, tokens, jobs, repeating_jobs, delivery_concurrency],
}

const APP: &str = "conformance";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn dapr_config(sidecars: &Stack, token: Option<&str>) -> DaprConfig {
    DaprConfig {
        grpc_endpoint: sidecars.sidecar_endpoint(APP),
        api_token: token.map(Into::into),
        app_api_token: None,
        pubsub_name: "pubsub".into(),
    }
}

fn json_event(id: &str, user: &str, body: &str) -> OutgoingEvent {
    OutgoingEvent {
        event_id: id.into(),
        event_type: "order.placed".into(),
        partition_key: user.into(),
        data: body.as_bytes().to_vec(),
        content_type: ContentType::Json,
        traceparent: Some(TRACEPARENT.into()),
    }
}

/// Subscriptions to `topic` (bulk or not) and to its dead-letter topic.
fn subscribed(topic: &str, bulk: bool) -> Vec<TopicSubscription> {
    let main = subscription("pubsub", topic, &[], "/events");
    let main = if bulk { with_bulk(main, 50, 100) } else { main };
    vec![
        main,
        subscription("pubsub", &events::topics::dead_letter(topic), &[], "/dead-letters"),
    ]
}

async fn eventually(what: &str, sidecars: &Stack, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{}: timed out after {timeout:?} waiting until {what}\n{}",
            sidecars.runtime,
            sidecars.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|err| panic!("not JSON ({err}): {}", String::from_utf8_lossy(bytes)))
}

// ---------------------------------------------------------------- pub/sub

async fn pubsub(kind: Runtime) {
    let plan = system_tests::plan(StackOptions::external_apps(kind, &[APP]));
    let mut subscriptions = Vec::new();
    for (topic, bulk) in [
        ("single", false),
        ("bulk", true),
        ("retry", false),
        ("bulk-outcomes", true),
    ] {
        subscriptions.extend(subscribed(topic, bulk));
    }
    // Rules without a default route: other event types match nothing.
    subscriptions.push(subscription("pubsub", "routes", &[("order.placed", "/orders")], ""));
    subscriptions.push(subscription("pubsub", "routes-dlq", &[], "/dead-letters"));
    let app = Recorder::new(subscriptions);
    let _server = app.serve(plan.app(APP).expect("planned").ports.app, None).await;
    let sidecars = system_tests::start_plan(plan).await;
    let publisher = Publisher::connect_lazy(&dapr_config(&sidecars, None)).unwrap();

    // JSON travels intact on the single and the bulk path, as a CloudEvent
    // with the publisher's id, type and trace; per user in publish order.
    let body = r#"{"text":"héllo <b>&</b>","n":3,"nested":{"list":[1,2]}}"#;
    for n in 0..6 {
        let user = ["alice", "bob"][n % 2];
        publisher
            .publish("single", &json_event(&format!("s{n}"), user, body))
            .await
            .unwrap();
    }
    let batch: Vec<OutgoingEvent> = (0..6)
        .map(|n| json_event(&format!("b{n}"), ["alice", "bob"][n % 2], body))
        .collect();
    publisher.publish_bulk("bulk", &batch).await.unwrap();
    eventually(
        "six single and six bulk deliveries",
        &sidecars,
        Duration::from_secs(30),
        || app.on_topic("single").len() >= 6 && app.on_topic("bulk").len() >= 6,
    )
    .await;
    for topic in ["single", "bulk"] {
        let received = app.on_topic(topic);
        assert_eq!(received.len(), 6, "{kind}: each event once on {topic}");
        for user_ids in [[0, 2, 4], [1, 3, 5]] {
            let prefix = &topic[..1];
            let want: Vec<String> = user_ids.iter().map(|n| format!("{prefix}{n}")).collect();
            let got: Vec<String> = received
                .iter()
                .map(|event| event.id.clone())
                .filter(|id| want.contains(id))
                .collect();
            assert_eq!(got, want, "{kind}: per-user order on {topic}");
        }
        for event in &received {
            assert_eq!(event.event_type, "order.placed", "{kind}");
            assert_eq!(event.topic, topic, "{kind}");
            assert_eq!(event.content_type, "application/json", "{kind}");
            assert_eq!(json(&event.data), json(body.as_bytes()), "{kind}: data on {topic}");
            let traceparent = event.traceparent.as_deref().unwrap_or_default();
            assert!(
                traceparent.contains(TRACE_ID),
                "{kind}: the delivery continues the publisher's trace, got {traceparent:?}"
            );
        }
    }

    // The services' own events (proto3 JSON) decode to what was published,
    // on both paths.
    let task_event = TaskEvent {
        event_id: "0190f1a2-0000-7000-8000-00000000000a".into(),
        event_type: "task.created".into(),
        user_id: "carol".into(),
        task: Some(Task {
            id: "t1".into(),
            user_id: "carol".into(),
            title: "Pay <rent> & more".into(),
            tags: vec!["home".into()],
            version: 9_007_199_254_740_993,
            ..Task::default()
        }),
        changed_fields: vec!["title".into()],
        task_version: 9_007_199_254_740_993,
        ..TaskEvent::default()
    };
    let wire = OutgoingEvent::from_message("te-1", "task.created", "carol", &task_event, None).unwrap();
    publisher.publish("single", &wire).await.unwrap();
    publisher
        .publish_bulk(
            "bulk",
            &[OutgoingEvent {
                event_id: "te-2".into(),
                ..wire.clone()
            }],
        )
        .await
        .unwrap();
    eventually("the task events", &sidecars, Duration::from_secs(30), || {
        app.ids_on("single").contains(&"te-1".to_owned()) && app.ids_on("bulk").contains(&"te-2".to_owned())
    })
    .await;
    for (topic, id) in [("single", "te-1"), ("bulk", "te-2")] {
        let event = app.on_topic(topic).into_iter().find(|e| e.id == id).unwrap();
        let content_type = ContentType::detect(&event.content_type, &event.data).unwrap();
        let decoded: TaskEvent = events::decode(content_type, &event.data).unwrap();
        assert_eq!(decoded, task_event, "{kind}: the task event on {topic}");
    }

    // RETRY twice, then SUCCESS: delivered three times, never dead-lettered;
    // the user's next event waits behind it.
    app.script("r1", &[Outcome::Retry, Outcome::Retry]);
    publisher
        .publish("retry", &json_event("r1", "dave", r#"{"n":1}"#))
        .await
        .unwrap();
    publisher
        .publish("retry", &json_event("r2", "dave", r#"{"n":2}"#))
        .await
        .unwrap();
    // DROP: dead-lettered at once, intact.
    app.script("r3", &[Outcome::Drop]);
    publisher
        .publish("retry", &json_event("r3", "erin", r#"{"n":3}"#))
        .await
        .unwrap();
    // RETRY forever: dead-lettered when the retries run out.
    app.script("r4", &[Outcome::Retry; 10]);
    publisher
        .publish("retry", &json_event("r4", "frank", r#"{"n":4}"#))
        .await
        .unwrap();
    eventually(
        "r3 and r4 reach the dead-letter topic",
        &sidecars,
        Duration::from_secs(60),
        || {
            let dead = app.ids_on("retry-dlq");
            dead.contains(&"r3".to_owned()) && dead.contains(&"r4".to_owned())
        },
    )
    .await;
    eventually("r2 is delivered", &sidecars, Duration::from_secs(30), || {
        app.ids_on("retry").contains(&"r2".to_owned())
    })
    .await;
    let ids = app.ids_on("retry");
    let count = |id: &str| ids.iter().filter(|got| *got == id).count();
    assert_eq!(count("r1"), 3, "{kind}: two retries, then success: {ids:?}");
    let dave: Vec<&String> = ids.iter().filter(|id| *id == "r1" || *id == "r2").collect();
    assert_eq!(dave, ["r1", "r1", "r1", "r2"], "{kind}: r2 waits behind r1");
    assert_eq!(count("r3"), 1, "{kind}: DROP is not retried");
    assert_eq!(
        count("r4") as u32,
        sidecars.plan.options.retries.expect("short retries").max_retries + 1,
        "{kind}: one delivery plus max_retries redeliveries: {ids:?}"
    );
    let dead = app.on_topic("retry-dlq");
    assert_eq!(
        dead.len(),
        2,
        "{kind}: only r3 and r4 are dead letters: {:?}",
        app.ids_on("retry-dlq")
    );
    let r3 = dead.iter().find(|e| e.id == "r3").unwrap();
    assert_eq!(
        json(&r3.data),
        serde_json::json!({"n": 3}),
        "{kind}: the dead letter is intact"
    );
    assert_eq!(r3.event_type, "order.placed", "{kind}");

    // Bulk: each entry's own outcome counts. SUCCESS once, RETRY once then
    // SUCCESS, DROP dead-lettered alone.
    app.script("k2", &[Outcome::Retry]);
    app.script("k3", &[Outcome::Drop]);
    let entries: Vec<OutgoingEvent> = (1..=3)
        .map(|n| json_event(&format!("k{n}"), &format!("user-k{n}"), r#"{"k":true}"#))
        .collect();
    publisher.publish_bulk("bulk-outcomes", &entries).await.unwrap();
    eventually(
        "k2 is redelivered and k3 dead-lettered",
        &sidecars,
        Duration::from_secs(30),
        || {
            app.ids_on("bulk-outcomes").iter().filter(|id| *id == "k2").count() == 2
                && app.ids_on("bulk-outcomes-dlq") == ["k3"]
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids = app.ids_on("bulk-outcomes");
    let count = |id: &str| ids.iter().filter(|got| *got == id).count();
    assert_eq!(
        (count("k1"), count("k2"), count("k3")),
        (1, 2, 1),
        "{kind}: only the entry answered RETRY is sent again: {ids:?}"
    );
    assert_eq!(app.ids_on("bulk-outcomes-dlq"), ["k3"], "{kind}");

    // An event that no rule matches, on a subscription without a default
    // route, is not delivered: it goes to the dead-letter topic.
    publisher
        .publish(
            "routes",
            &OutgoingEvent {
                event_type: "order.cancelled".into(),
                ..json_event("u1", "gina", r#"{"u":1}"#)
            },
        )
        .await
        .unwrap();
    publisher
        .publish("routes", &json_event("u2", "gina", r#"{"u":2}"#))
        .await
        .unwrap();
    eventually(
        "u2 is delivered and u1 dead-lettered",
        &sidecars,
        Duration::from_secs(30),
        || app.ids_on("routes") == ["u2"] && app.ids_on("routes-dlq") == ["u1"],
    )
    .await;
    let routed = &app.on_topic("routes")[0];
    assert_eq!(routed.path, "/orders", "{kind}: the rule's path");
}

// ---------------------------------------------------------------- big batches

/// A bulk batch of hundreds of traced events reaches the app: daprd sends
/// two trace headers per entry, which a server with hyper's default 16 KiB
/// header list refuses past about 90 entries, and daprd then retries the
/// same batch for ever.
async fn big_bulk_batches(kind: Runtime) {
    const EVENTS: usize = 300;
    let plan = system_tests::plan(StackOptions::external_apps(kind, &[APP]));
    let app = Recorder::new(vec![with_bulk(
        subscription("pubsub", "big-bulk", &[], "/events"),
        EVENTS as i32,
        1000,
    )]);
    let _server = app.serve(plan.app(APP).expect("planned").ports.app, None).await;
    let sidecars = system_tests::start_plan(plan).await;
    let publisher = Publisher::connect_lazy(&dapr_config(&sidecars, None)).unwrap();
    // One user, so one partition and batches as large as the backlog.
    let events: Vec<OutgoingEvent> = (0..EVENTS)
        .map(|n| json_event(&format!("big{n}"), "frank", r#"{"n":1}"#))
        .collect();
    for chunk in events.chunks(100) {
        publisher.publish_bulk("big-bulk", chunk).await.unwrap();
    }
    eventually(
        "every event of the big batches",
        &sidecars,
        Duration::from_secs(60),
        || {
            app.ids_on("big-bulk")
                .into_iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                == EVENTS
        },
    )
    .await;
}

// ---------------------------------------------------------------- encodings

/// What happens to each encoding a publisher might choose: JSON and text
/// pass both paths; octet-stream only the single one; protobuf neither.
/// This is why the services publish proto3 JSON (docs/wire-format.md).
async fn encodings(kind: Runtime) {
    let plan = system_tests::plan(StackOptions::external_apps(kind, &[APP]));
    let mut subscriptions = subscribed("enc-single", false);
    subscriptions.extend(subscribed("enc-bulk", true));
    let app = Recorder::new(subscriptions);
    let _server = app.serve(plan.app(APP).expect("planned").ports.app, None).await;
    let sidecars = system_tests::start_plan(plan).await;
    let channel = tonic::transport::Channel::from_shared(sidecars.sidecar_endpoint(APP))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut dapr = DaprClient::new(channel);
    let cases: [(&str, &str, &[u8]); 4] = [
        ("json", "application/json", br#"{"a":1}"#),
        ("text", "text/plain", b"plain words"),
        ("binary", "application/octet-stream", &[0x0a, 0x02, 0xff, 0x00]),
        ("protobuf", "application/protobuf", &[0x0a, 0x02, 0x68, 0x69]),
    ];
    for topic in ["enc-single", "enc-bulk"] {
        for (name, content_type, data) in cases {
            dapr.publish_event(PublishEventRequest {
                pubsub_name: "pubsub".into(),
                topic: topic.into(),
                data: data.to_vec(),
                data_content_type: content_type.into(),
                metadata: [
                    ("cloudevent.id".to_owned(), format!("{topic}-{name}")),
                    ("partitionKey".to_owned(), "enc".to_owned()),
                ]
                .into(),
            })
            .await
            .unwrap();
        }
    }
    eventually("every encoding delivered", &sidecars, Duration::from_secs(30), || {
        app.on_topic("enc-single").len() >= 4 && app.on_topic("enc-bulk").len() >= 4
    })
    .await;
    let data = |topic: &str, name: &str| {
        app.on_topic(topic)
            .into_iter()
            .find(|event| event.id == format!("{topic}-{name}"))
            .unwrap_or_else(|| panic!("{kind}: {topic}-{name} not delivered"))
            .data
    };
    for topic in ["enc-single", "enc-bulk"] {
        assert_eq!(
            json(&data(topic, "json")),
            serde_json::json!({"a": 1}),
            "{kind}: JSON on {topic}"
        );
        assert_eq!(data(topic, "text"), b"plain words", "{kind}: text on {topic}");
        assert!(
            data(topic, "protobuf").is_empty(),
            "{kind}: protobuf arrives empty on {topic}"
        );
    }
    assert_eq!(
        data("enc-single", "binary"),
        [0x0a, 0x02, 0xff, 0x00],
        "{kind}: octet-stream, single"
    );
    assert!(
        data("enc-bulk", "binary").is_empty(),
        "{kind}: octet-stream arrives empty in bulk"
    );
}

// ---------------------------------------------------------------- tokens

/// With both tokens on: the app still gets its subscriptions (asked without
/// the token) and deliveries carry the token; callers without the sidecar's
/// token are refused.
async fn tokens(kind: Runtime) {
    const APP_TOKEN: &str = "app-token-s3cret";
    const API_TOKEN: &str = "api-token-s3cret";
    let plan = system_tests::plan(StackOptions {
        tokens: Tokens {
            app: Some(APP_TOKEN.into()),
            api: Some(API_TOKEN.into()),
        },
        ..StackOptions::external_apps(kind, &[APP])
    });
    let app = Recorder::new(subscribed("guarded", false));
    let _server = app
        .serve(plan.app(APP).expect("planned").ports.app, Some(APP_TOKEN))
        .await;
    let sidecars = system_tests::start_plan(plan).await;
    // dev-sidecar asks the app in the background once its API is up; daprd
    // before it reports healthy.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut subscriptions = sidecars.metadata_subscriptions(APP).await;
    while subscriptions != Some(2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        subscriptions = sidecars.metadata_subscriptions(APP).await;
    }
    assert_eq!(
        subscriptions,
        Some(2),
        "{kind}: subscribed although the app demands the token"
    );
    let anonymous = Publisher::connect_lazy(&dapr_config(&sidecars, None)).unwrap();
    let refused = anonymous
        .publish("guarded", &json_event("t0", "hank", "{}"))
        .await
        .unwrap_err();
    match refused {
        todo_core::dapr::publisher::PublishError::Sidecar(status) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{kind}: {status}")
        }
        other => panic!("{kind}: {other}"),
    }
    let publisher = Publisher::connect_lazy(&dapr_config(&sidecars, Some(API_TOKEN))).unwrap();
    publisher
        .publish("guarded", &json_event("t1", "hank", r#"{"t":1}"#))
        .await
        .unwrap();
    eventually(
        "the delivery with the token",
        &sidecars,
        Duration::from_secs(30),
        || app.ids_on("guarded") == ["t1"],
    )
    .await;
}

// ---------------------------------------------------------------- jobs

fn any(text: &str) -> prost_types::Any {
    prost_types::Any {
        type_url: "type.googleapis.com/todo.v1.ReminderJob".into(),
        value: text.as_bytes().to_vec(),
    }
}

/// Jobs fire once at their due time into the app that scheduled them, with
/// their data; an overwritten job fires with the new data, a deleted one
/// never; a trigger the app fails is retried by the job's failure policy,
/// and a job that comes due while the app is down fires once it is back.
async fn jobs(kind: Runtime) {
    let plan = system_tests::plan(StackOptions::external_apps(kind, &[APP]));
    let app = Recorder::new(Vec::new());
    let port = plan.app(APP).expect("planned").ports.app;
    let server = app.serve(port, None).await;
    let sidecars = system_tests::start_plan(plan).await;
    let jobs = Jobs::new(SidecarClient::connect_lazy(&dapr_config(&sidecars, None)).unwrap());
    let soon = || chrono::Utc::now() + chrono::Duration::seconds(2);

    jobs.schedule_once("replaced", soon(), any("first"), None)
        .await
        .unwrap();
    jobs.schedule_once("replaced", soon(), any("second"), None)
        .await
        .unwrap();
    jobs.schedule_once("cancelled", soon(), any("never"), None)
        .await
        .unwrap();
    jobs.delete("cancelled", None).await.unwrap();
    jobs.delete("never-existed", None).await.unwrap();
    // The app fails the first two triggers: the policy tries again.
    app.fail_jobs(2);
    eventually("the replaced job fires", &sidecars, Duration::from_secs(40), || {
        !app.jobs().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fired = app.jobs();
    assert_eq!(fired.len(), 1, "{kind}: one job fired once: {fired:?}");
    assert_eq!(fired[0].name, "replaced", "{kind}");
    let data = fired[0].data.clone().expect("job data");
    assert_eq!(data.value, b"second", "{kind}: the overwriting job's data");
    assert_eq!(data.type_url, "type.googleapis.com/todo.v1.ReminderJob", "{kind}");

    // Due while the app is down: fires after it comes back.
    jobs.schedule_once("while-down", soon(), any("later"), None)
        .await
        .unwrap();
    drop(server);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let _server = app.serve(port, None).await;
    eventually(
        "the job that came due while the app was down fires",
        &sidecars,
        Duration::from_secs(40),
        || app.jobs().iter().any(|job| job.name == "while-down"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let while_down = app.jobs().into_iter().filter(|job| job.name == "while-down").count();
    assert_eq!(while_down, 1, "{kind}: exactly once");
}

/// A job with a due time, an `@every` schedule and two repeats (how
/// reminder-service fires a task's 24-hour and 1-hour reminders) fires
/// twice with the same data: at its due time, and one interval after that
/// time even when the first trigger had to be retried; then it is gone.
async fn repeating_jobs(kind: Runtime) {
    let plan = system_tests::plan(StackOptions::external_apps(kind, &[APP]));
    let app = Recorder::new(Vec::new());
    let _server = app.serve(plan.app(APP).expect("planned").ports.app, None).await;
    let sidecars = system_tests::start_plan(plan).await;
    let sidecar = SidecarClient::connect_lazy(&dapr_config(&sidecars, None)).unwrap();
    let jobs = Jobs::new(sidecar.clone());
    let first = chrono::Utc::now() + chrono::Duration::seconds(2);
    let every = chrono::Duration::seconds(12);
    // The first trigger fails once; the failure policy tries it again 5 s later.
    app.fail_jobs(1);
    jobs.schedule("twice", first, Some(Repeat { every, times: 2 }), any("both"), None)
        .await
        .unwrap();
    eventually("both triggers", &sidecars, Duration::from_secs(60), || {
        app.jobs().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let arrivals = app.job_arrivals();
    assert_eq!(arrivals.len(), 2, "{kind}: two triggers in all: {arrivals:?}");
    assert!(
        app.jobs()
            .iter()
            .all(|job| job.data.as_ref().map(|data| data.value.as_slice()) == Some(b"both")),
        "{kind}: the same data both times"
    );
    let (retried, second) = (arrivals[0].1, arrivals[1].1);
    let slack = chrono::Duration::milliseconds(500);
    assert!(
        retried >= first + chrono::Duration::seconds(5) - slack,
        "{kind}: the first was retried: {arrivals:?}"
    );
    assert!(
        second >= first + every - slack,
        "{kind}: the second not before its time: {arrivals:?}"
    );
    assert!(
        second < retried + every - chrono::Duration::seconds(2),
        "{kind}: the second counts from the first's scheduled time, not its retry: {arrivals:?}"
    );
    let gone = sidecar
        .client()
        .get_job(sidecar.request(GetJobRequest { name: "twice".into() }, None))
        .await
        .expect_err("the job is gone after its last trigger");
    assert!(gone.message().contains("not found"), "{kind}: {gone:?}");
}

// ---------------------------------------------------------------- delivery concurrency

/// Counts how many deliveries of each kind are in the app at once.
#[derive(Default)]
struct Overlap {
    bulk_in_flight: AtomicUsize,
    bulk_most: AtomicUsize,
    single_in_flight: AtomicUsize,
    single_most: AtomicUsize,
    received: AtomicUsize,
}

const OVERLAP_BULK_TOPICS: [&str; 2] = ["overlap-bulk-a", "overlap-bulk-b"];
const OVERLAP_SINGLE_TOPIC: &str = "overlap-single";
/// Long enough that deliveries which can overlap do.
const OVERLAP_HANDLING: Duration = Duration::from_millis(40);

impl Overlap {
    async fn handle(&self, in_flight: &AtomicUsize, most: &AtomicUsize, events: usize) {
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(OVERLAP_HANDLING).await;
        in_flight.fetch_sub(1, Ordering::SeqCst);
        self.received.fetch_add(events, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl EventHandler for Overlap {
    fn subscriptions(&self) -> Vec<TopicSubscription> {
        let mut subscriptions: Vec<TopicSubscription> = OVERLAP_BULK_TOPICS
            .iter()
            .map(|topic| with_bulk(subscription("pubsub", topic, &[], "/bulk"), 5, 5))
            .collect();
        subscriptions.push(subscription("pubsub", OVERLAP_SINGLE_TOPIC, &[], "/single"));
        subscriptions
    }

    async fn on_event(&self, _event: DeliveredEvent) -> Outcome {
        self.handle(&self.single_in_flight, &self.single_most, 1).await;
        Outcome::Success
    }

    async fn on_batch(&self, events: &[DeliveredEvent]) -> Option<Vec<Outcome>> {
        self.handle(&self.bulk_in_flight, &self.bulk_most, events.len()).await;
        Some(vec![Outcome::Success; events.len()])
    }
}

/// How many deliveries an app gets at once: single deliveries of different
/// partitions overlap, while bulk batches come one at a time per app and
/// pub/sub component, across partitions and topics (daprd's Kafka
/// component holds one lock over its bulk flushes). A consumer that
/// subscribes in bulk must be fast per batch: every other batch waits.
async fn delivery_concurrency(kind: Runtime) {
    const USERS: usize = 12;
    const PER_TOPIC: usize = 60;
    let topics: Vec<&str> = OVERLAP_BULK_TOPICS.into_iter().chain([OVERLAP_SINGLE_TOPIC]).collect();
    let plan = system_tests::plan(StackOptions {
        topics: topics.iter().map(|topic| Topic::new(topic, 6)).collect(),
        ..StackOptions::external_apps(kind, &[APP])
    });
    let app = Arc::new(Overlap::default());
    let mut base = base_routes(&app::SERVICE_NAMES).unwrap();
    app::add_routes(&mut base.routes, app.clone(), None);
    let server = GrpcApp::bind(([127, 0, 0, 1], plan.app(APP).expect("planned").ports.app).into(), base)
        .await
        .unwrap();
    let _server = RunningServer::spawn(server.local_addr(), |stop| server.run_until_stopped(stop));
    let sidecars = system_tests::start_plan(plan).await;
    let publisher = Publisher::connect_lazy(&dapr_config(&sidecars, None)).unwrap();
    for topic in &topics {
        let events: Vec<OutgoingEvent> = (0..PER_TOPIC)
            .map(|n| json_event(&format!("{topic}-{n}"), &format!("user{}", n % USERS), r#"{"n":1}"#))
            .collect();
        publisher.publish_bulk(topic, &events).await.unwrap();
    }
    eventually("every event delivered", &sidecars, Duration::from_secs(90), || {
        app.received.load(Ordering::SeqCst) >= topics.len() * PER_TOPIC
    })
    .await;
    assert_eq!(
        app.bulk_most.load(Ordering::SeqCst),
        1,
        "{kind}: bulk batches of different partitions and topics overlapped"
    );
    assert!(
        app.single_most.load(Ordering::SeqCst) >= 2,
        "{kind}: single deliveries of different partitions never overlapped"
    );
}
