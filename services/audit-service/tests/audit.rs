//! audit-service as daprd and users drive it: every event appended once to
//! its user's chain, listed with filters and pages, and a tampered chain
//! detected.

use audit_service::{config::Config, startup::Application};
use prost::Message;
use prost_types::Timestamp;
use sqlx::Connection;
use todo_core::{
    config::ServerConfig,
    dapr::runtime::{app_callback_client::AppCallbackClient, topic_event_response::TopicEventResponseStatus},
    events::encode_json,
    proto::v1::{
        AuditRecord, ListAuditRecordsRequest, Task, TaskEvent, TaskOccurrenceRequested, VerifyAuditChainRequest,
        VerifyAuditChainResponse, audit_service_client::AuditServiceClient,
    },
};
use todo_testing::{
    ApiLevel, FakeSidecar, RunningServer, TestDatabase, auth_config, dapr_config, database_config, delivery, tokens,
};
use tonic::{Code, Request, transport::Channel};

const SECRET: &str = "audit-test-secret";
const SUCCESS: i32 = TopicEventResponseStatus::Success as i32;

struct TestApp {
    callback: AppCallbackClient<Channel>,
    channel: Channel,
    database: TestDatabase,
    _server: RunningServer,
    _sidecar: FakeSidecar,
}

async fn spawn() -> TestApp {
    spawn_keyed(None).await
}

async fn spawn_keyed(chain_key: Option<&str>) -> TestApp {
    let database = TestDatabase::create().await;
    let sidecar = FakeSidecar::start(ApiLevel::Stable).await;
    let config = Config {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        dapr: dapr_config(&sidecar, None),
        database: database_config(&database.url),
        auth: auth_config(SECRET),
        chain_key: chain_key.map(|key| secrecy::SecretString::from(key.to_owned())),
    };
    let app = Application::build(config).await.unwrap();
    let server = RunningServer::spawn(app.local_addr(), |stop| app.run_until_stopped(stop));
    let channel = server.channel().await;
    TestApp {
        callback: AppCallbackClient::new(channel.clone()),
        channel,
        database,
        _server: server,
        _sidecar: sidecar,
    }
}

fn task_event(user: &str, task_id: &str, event_type: &str, at: i64) -> TaskEvent {
    TaskEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: event_type.into(),
        occurred_at: Some(Timestamp { seconds: at, nanos: 0 }),
        user_id: user.into(),
        task: Some(Task {
            id: task_id.into(),
            user_id: user.into(),
            title: "audited".into(),
            ..Task::default()
        }),
        ..TaskEvent::default()
    }
}

fn authed<T>(user: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let token = tokens::hs256(SECRET, user, 60);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

impl TestApp {
    async fn deliver(&mut self, topic: &str, event_type: &str, data: Vec<u8>, content_type: &str) -> i32 {
        self.callback
            .on_topic_event(delivery(topic, event_type, data, content_type))
            .await
            .unwrap()
            .into_inner()
            .status
    }

    async fn deliver_task_event(&mut self, event: &TaskEvent) -> i32 {
        self.deliver(
            "task-events",
            &event.event_type,
            event.encode_to_vec(),
            "application/protobuf",
        )
        .await
    }

    fn client(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    async fn records(&self, user: &str, request: ListAuditRecordsRequest) -> (Vec<AuditRecord>, String) {
        let response = self
            .client()
            .list_audit_records(authed(user, request))
            .await
            .unwrap()
            .into_inner();
        (response.records, response.next_page_token)
    }

    async fn verify(&self, user: &str) -> VerifyAuditChainResponse {
        self.client()
            .verify_audit_chain(authed(user, VerifyAuditChainRequest {}))
            .await
            .unwrap()
            .into_inner()
    }

    async fn superuser_sql(&self, sql: &str) {
        let mut conn = sqlx::PgConnection::connect(&self.database.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

#[tokio::test]
async fn every_event_is_recorded_once_in_order_and_the_chain_verifies() {
    let mut app = spawn().await;
    let task = uuid::Uuid::new_v4().to_string();
    let created = task_event("alice", &task, "task.created", 1_800_000_000);
    let updated = task_event("alice", &task, "task.updated", 1_800_000_100);
    let completed = task_event("alice", &task, "task.completed", 1_800_000_200);
    assert_eq!(app.deliver_task_event(&created).await, SUCCESS);
    assert_eq!(
        app.deliver_task_event(&created).await,
        SUCCESS,
        "duplicate acknowledged"
    );
    assert_eq!(
        app.deliver(
            "task-events",
            "task.updated",
            encode_json(&updated).unwrap(),
            "application/json"
        )
        .await,
        SUCCESS
    );
    assert_eq!(app.deliver_task_event(&completed).await, SUCCESS);
    let command = TaskOccurrenceRequested {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: "task.occurrence.requested".into(),
        user_id: "alice".into(),
        series_id: task.clone(),
        task_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    assert_eq!(
        app.deliver(
            "task-commands",
            "task.occurrence.requested",
            command.encode_to_vec(),
            "application/protobuf"
        )
        .await,
        SUCCESS
    );
    assert_eq!(
        app.deliver_task_event(&task_event("bob", &task, "task.created", 1_800_000_000))
            .await,
        SUCCESS
    );

    let (records, next) = app.records("alice", ListAuditRecordsRequest::default()).await;
    assert!(next.is_empty());
    let summary: Vec<_> = records.iter().map(|r| (r.sequence, r.event_type.as_str())).collect();
    assert_eq!(
        summary,
        [
            (1, "task.created"),
            (2, "task.updated"),
            (3, "task.completed"),
            (4, "task.occurrence.requested")
        ]
    );
    assert_eq!(records[0].previous_hash, vec![0u8; 32]);
    assert_eq!(records[1].previous_hash, records[0].hash);
    // The JSON-delivered event is stored in its protobuf encoding.
    assert_eq!(TaskEvent::decode(records[1].payload.as_slice()).unwrap(), updated);

    let verdict = app.verify("alice").await;
    assert!(verdict.valid, "{verdict:?}");
    assert_eq!(verdict.records_checked, 4);
    let (bobs, _) = app.records("bob", ListAuditRecordsRequest::default()).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].sequence, 1, "each user has their own chain");
}

#[tokio::test]
async fn listing_filters_by_task_and_time_and_pages() {
    let mut app = spawn().await;
    let (a, b) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    for n in 0..6 {
        let task = if n % 2 == 0 { &a } else { &b };
        app.deliver_task_event(&task_event("alice", task, "task.updated", 1_800_000_000 + n * 60))
            .await;
    }
    let (only_a, _) = app
        .records(
            "alice",
            ListAuditRecordsRequest {
                task_id: a.clone(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(only_a.iter().map(|r| r.sequence).collect::<Vec<_>>(), [1, 3, 5]);
    let (window, _) = app
        .records(
            "alice",
            ListAuditRecordsRequest {
                occurred_after: Some(Timestamp {
                    seconds: 1_800_000_060,
                    nanos: 0,
                }),
                occurred_before: Some(Timestamp {
                    seconds: 1_800_000_180,
                    nanos: 0,
                }),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(window.iter().map(|r| r.sequence).collect::<Vec<_>>(), [2, 3]);

    let (first, token) = app
        .records(
            "alice",
            ListAuditRecordsRequest {
                page_size: 4,
                ..Default::default()
            },
        )
        .await;
    let (rest, end) = app
        .records(
            "alice",
            ListAuditRecordsRequest {
                page_size: 4,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
    assert!(end.is_empty());
    let all: Vec<_> = first.iter().chain(&rest).map(|r| r.sequence).collect();
    assert_eq!(all, [1, 2, 3, 4, 5, 6]);
    let wrong = app
        .client()
        .list_audit_records(authed(
            "alice",
            ListAuditRecordsRequest {
                page_size: 4,
                page_token: token,
                task_id: a,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    let nul = app
        .client()
        .list_audit_records(authed(
            "alice",
            ListAuditRecordsRequest {
                task_id: "a\0".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        nul.code(),
        Code::InvalidArgument,
        "PostgreSQL's text cannot hold NUL: {nul:?}"
    );
    let anonymous = app
        .client()
        .list_audit_records(ListAuditRecordsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_records() {
    let mut app = spawn().await;
    let task = uuid::Uuid::new_v4().to_string();
    app.deliver_task_event(&task_event("alice", &task, "task.created", 1_800_000_000))
        .await;
    let mut conn = sqlx::PgConnection::connect(&app.database.url).await.unwrap();
    for sql in [
        "UPDATE audit.audit_records SET event_type = 'forged'",
        "DELETE FROM audit.audit_records",
        "TRUNCATE audit.audit_records",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn verification_finds_a_changed_or_removed_record() {
    let mut app = spawn().await;
    let task = uuid::Uuid::new_v4().to_string();
    for n in 0..4 {
        app.deliver_task_event(&task_event("alice", &task, "task.updated", 1_800_000_000 + n))
            .await;
    }
    // Someone with superuser rights edits history behind the service's back.
    app.superuser_sql(
        "ALTER TABLE audit.audit_records DISABLE TRIGGER USER; \
         UPDATE audit.audit_records SET payload = '\\x00' WHERE sequence = 3; \
         ALTER TABLE audit.audit_records ENABLE TRIGGER USER;",
    )
    .await;
    let verdict = app.verify("alice").await;
    assert!(!verdict.valid);
    assert_eq!(verdict.first_invalid_sequence, 3);
    assert!(verdict.reason.contains("changed"), "{}", verdict.reason);

    app.superuser_sql(
        "ALTER TABLE audit.audit_records DISABLE TRIGGER USER; \
         DELETE FROM audit.audit_records WHERE sequence = 2; \
         ALTER TABLE audit.audit_records ENABLE TRIGGER USER;",
    )
    .await;
    let verdict = app.verify("alice").await;
    assert!(!verdict.valid);
    assert_eq!(verdict.first_invalid_sequence, 2);
    assert!(verdict.reason.contains("missing"), "{}", verdict.reason);
}

#[tokio::test]
async fn concurrent_deliveries_for_one_user_keep_one_unbroken_chain() {
    let app = spawn().await;
    let task = uuid::Uuid::new_v4().to_string();
    let mut handles = Vec::new();
    for n in 0..24 {
        let mut callback = app.callback.clone();
        let event = task_event("alice", &task, "task.updated", 1_800_000_000 + n);
        handles.push(tokio::spawn(async move {
            callback
                .on_topic_event(delivery(
                    "task-events",
                    "task.updated",
                    event.encode_to_vec(),
                    "application/protobuf",
                ))
                .await
                .unwrap()
                .into_inner()
                .status
        }));
    }
    for handle in handles {
        assert_eq!(handle.await.unwrap(), SUCCESS);
    }
    let verdict = app.verify("alice").await;
    assert!(verdict.valid, "{verdict:?}");
    assert_eq!(verdict.records_checked, 24);
}

/// Deliveries in flight at once are each appended; when the database
/// refuses one record, the others are still appended and only that
/// delivery is asked again.
#[tokio::test]
async fn concurrent_deliveries_are_each_appended_and_a_refused_one_fails_alone() {
    let app = spawn().await;
    app.superuser_sql(
        "CREATE FUNCTION audit.refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.task_id = 'refused' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_marked BEFORE INSERT ON audit.audit_records \
         FOR EACH ROW EXECUTE FUNCTION audit.refuse_marked();",
    )
    .await;
    // Hold the table so that every delivery is in flight at once.
    let mut holder = sqlx::PgConnection::connect(&app.database.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE audit.audit_records IN EXCLUSIVE MODE;")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut handles = Vec::new();
    for n in 0..12 {
        let mut callback = app.callback.clone();
        let task = if n == 7 {
            "refused".to_owned()
        } else {
            format!("task-{n}")
        };
        let event = task_event(&format!("user-{n}"), &task, "task.created", 1_800_000_000 + n);
        handles.push(tokio::spawn(async move {
            let status = callback
                .on_topic_event(delivery(
                    "task-events",
                    "task.created",
                    event.encode_to_vec(),
                    "application/protobuf",
                ))
                .await
                .unwrap()
                .into_inner()
                .status;
            (n, status)
        }));
        // The first one alone, in its waiting transaction; the rest after it.
        if n == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    for handle in handles {
        let (n, status) = handle.await.unwrap();
        let expected = if n == 7 {
            TopicEventResponseStatus::Retry as i32
        } else {
            SUCCESS
        };
        assert_eq!(status, expected, "delivery {n}");
    }
    for n in (0..12).filter(|n| *n != 7) {
        let (records, _) = app
            .records(&format!("user-{n}"), ListAuditRecordsRequest::default())
            .await;
        assert_eq!(records.len(), 1, "user-{n}");
    }
}

#[tokio::test]
async fn poison_is_dropped() {
    let mut app = spawn().await;
    let drop = TopicEventResponseStatus::Drop as i32;
    assert_eq!(
        app.deliver("task-events", "task.created", vec![0xff, 0x01], "application/protobuf")
            .await,
        drop
    );
    let mut bad_id = task_event("alice", "t", "task.created", 1);
    bad_id.event_id = "nope".into();
    assert_eq!(app.deliver_task_event(&bad_id).await, drop);
    let mut no_task = task_event("alice", "t", "task.created", 1);
    no_task.task = None;
    assert_eq!(app.deliver_task_event(&no_task).await, drop);
    // Valid protobuf, but text PostgreSQL cannot store.
    let nul = task_event("alice", "t", "task.\0created", 1);
    assert_eq!(app.deliver_task_event(&nul).await, drop);
    let nul_task = task_event("alice", "t\0", "task.created", 1);
    assert_eq!(app.deliver_task_event(&nul_task).await, drop);
    assert_eq!(
        app.deliver("somewhere-else", "x", vec![1], "application/protobuf")
            .await,
        SUCCESS,
        "topics it does not audit are acknowledged"
    );
    let (records, _) = app.records("alice", ListAuditRecordsRequest::default()).await;
    assert!(records.is_empty());
}

#[tokio::test]
async fn oversized_requests_are_refused_before_decoding() {
    let mut app = spawn().await;
    // A query is a few filters and a page token: 64 KiB is plenty.
    let huge_query = ListAuditRecordsRequest {
        page_token: "x".repeat(100 * 1024),
        ..ListAuditRecordsRequest::default()
    };
    let status = app
        .client()
        .list_audit_records(authed("alice", huge_query))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // A deliverable event may be large, but not over daprd's 4 MiB body limit.
    let status = app
        .callback
        .on_topic_event(delivery(
            "task-events",
            "task.created",
            vec![0; 5 * 1024 * 1024],
            "application/protobuf",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Still serving.
    let event = task_event("alice", "t", "task.created", 1);
    assert_eq!(app.deliver_task_event(&event).await, SUCCESS);
}

#[tokio::test]
async fn a_bulk_delivery_is_one_append_in_order_with_duplicates_and_poison_answered_per_entry() {
    use todo_core::dapr::runtime::{
        TopicEventBulkRequest, TopicEventBulkRequestEntry, TopicEventCeRequest, topic_event_bulk_request_entry::Event,
    };
    let mut app = spawn().await;
    let first = task_event("alice", "t1", "task.created", 1);
    let for_bob = task_event("bob", "t2", "task.created", 2);
    let second = task_event("alice", "t1", "task.completed", 3);
    let entry = |id: &str, data: Vec<u8>| TopicEventBulkRequestEntry {
        entry_id: id.into(),
        content_type: "application/protobuf".into(),
        metadata: Default::default(),
        event: Some(Event::CloudEvent(TopicEventCeRequest {
            id: format!("ce-{id}"),
            r#type: "task.event".into(),
            data_content_type: "application/protobuf".into(),
            data,
            ..TopicEventCeRequest::default()
        })),
    };
    let request = TopicEventBulkRequest {
        topic: "task-events".into(),
        entries: vec![
            entry("1", first.encode_to_vec()),
            entry("2", for_bob.encode_to_vec()),
            entry("3", vec![0xff, 0x01]),
            entry("4", second.encode_to_vec()),
            entry("5", first.encode_to_vec()),
        ],
        ..TopicEventBulkRequest::default()
    };
    let statuses: Vec<(String, i32)> = app
        .callback
        .on_bulk_topic_event(request)
        .await
        .unwrap()
        .into_inner()
        .statuses
        .into_iter()
        .map(|s| (s.entry_id, s.status))
        .collect();
    let drop = TopicEventResponseStatus::Drop as i32;
    assert_eq!(
        statuses,
        [
            ("1".into(), SUCCESS),
            ("2".into(), SUCCESS),
            ("3".into(), drop),
            ("4".into(), SUCCESS),
            ("5".into(), SUCCESS)
        ],
        "poison dropped, the duplicate acknowledged"
    );
    let (alice, _) = app.records("alice", ListAuditRecordsRequest::default()).await;
    let types: Vec<(i64, &str)> = alice.iter().map(|r| (r.sequence, r.event_type.as_str())).collect();
    assert_eq!(types, [(1, "task.created"), (2, "task.completed")]);
    let (bob, _) = app.records("bob", ListAuditRecordsRequest::default()).await;
    assert_eq!(bob.len(), 1);
    assert!(app.verify("alice").await.valid);
    // The same batch again changes nothing.
    let again = app.deliver_task_event(&second).await;
    assert_eq!(again, SUCCESS);
    assert_eq!(
        app.records("alice", ListAuditRecordsRequest::default()).await.0.len(),
        2
    );
}

/// A stored record's columns, as an attacker reads them.
type StoredRecord = (
    i64,
    uuid::Uuid,
    String,
    String,
    String,
    chrono::DateTime<chrono::Utc>,
    Vec<u8>,
    Vec<u8>,
);

/// With `AUDIT_CHAIN_KEY`, someone with full database access who rewrites a
/// record and recomputes the chain from it (the algorithm is public) is
/// still found: the chain is an HMAC under a key the database never holds.
#[tokio::test]
async fn a_keyed_chain_finds_a_rewrite_that_recomputes_the_hashes() {
    let mut app = spawn_keyed(Some("a key the database never sees, 32+ bytes")).await;
    let task = uuid::Uuid::new_v4().to_string();
    for n in 0..3 {
        app.deliver_task_event(&task_event("alice", &task, "task.updated", 1_800_000_000 + n))
            .await;
    }
    assert!(app.verify("alice").await.valid);
    // The attacker rewrites record 2 and every hash from it on, as the
    // unkeyed chain computes them.
    let mut conn = sqlx::PgConnection::connect(&app.database.url).await.unwrap();
    let rows: Vec<StoredRecord> = sqlx::query_as(
        "SELECT sequence, event_id, event_type, task_id, user_id, occurred_at, payload, previous_hash \
             FROM audit.audit_records WHERE user_id = 'alice' ORDER BY sequence",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut previous = rows[0].7.clone();
    let mut statements = vec!["ALTER TABLE audit.audit_records DISABLE TRIGGER USER".to_owned()];
    for (sequence, event_id, event_type, task_id, user_id, occurred_at, payload, _) in &rows {
        let payload = if *sequence == 2 {
            b"{}".to_vec()
        } else {
            payload.clone()
        };
        let fields = audit_service::chain::RecordFields {
            sequence: *sequence,
            event_id: *event_id,
            event_type,
            task_id,
            user_id,
            occurred_at: *occurred_at,
            payload: &payload,
        };
        let hash = audit_service::chain::Chain::default().record_hash(&previous, &fields);
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        statements.push(format!(
            "UPDATE audit.audit_records SET payload = '\\x{}', previous_hash = '\\x{}', hash = '\\x{}' \
             WHERE user_id = 'alice' AND sequence = {sequence}",
            hex(&payload),
            hex(&previous),
            hex(&hash)
        ));
        previous = hash.to_vec();
    }
    statements.push("ALTER TABLE audit.audit_records ENABLE TRIGGER USER".to_owned());
    app.superuser_sql(&statements.join("; ")).await;
    let verdict = app.verify("alice").await;
    assert!(!verdict.valid, "a recomputed chain must not verify under the key");
    assert_eq!(verdict.first_invalid_sequence, 1);
}

/// Between full verifications a call verifies only what was appended since
/// the last one, and still finds a change in it.
#[tokio::test]
async fn a_repeated_verification_checks_every_new_record() {
    let mut app = spawn().await;
    let task = uuid::Uuid::new_v4().to_string();
    for n in 0..3 {
        app.deliver_task_event(&task_event("alice", &task, "task.updated", 1_800_000_000 + n))
            .await;
    }
    assert_eq!(app.verify("alice").await.records_checked, 3);
    for n in 3..5 {
        app.deliver_task_event(&task_event("alice", &task, "task.updated", 1_800_000_000 + n))
            .await;
    }
    let verdict = app.verify("alice").await;
    assert!(verdict.valid);
    assert_eq!(verdict.records_checked, 5, "the whole chain is vouched for");
    app.superuser_sql(
        "ALTER TABLE audit.audit_records DISABLE TRIGGER USER; \
         UPDATE audit.audit_records SET payload = '\\x00' WHERE sequence = 5; \
         ALTER TABLE audit.audit_records ENABLE TRIGGER USER;",
    )
    .await;
    let verdict = app.verify("alice").await;
    assert!(!verdict.valid);
    assert_eq!(verdict.first_invalid_sequence, 5);
}
