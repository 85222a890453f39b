//! The outbox: nothing is lost while the sidecar is down, per-user order
//! holds, and every bulk API generation works.

mod support;

use std::time::Duration;

use sqlx::Connection;
use support::{TestApp, create, new_task};
use todo_core::proto::v1::CompleteTaskRequest;
use todo_testing::ApiLevel;

#[tokio::test]
async fn a_sidecar_that_is_down_delays_events_but_loses_none() {
    let app = TestApp::spawn().await;
    app.sidecar.set_available(false);
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;

    // RPCs succeed while the sidecar is down.
    let mut expected_alice = Vec::new();
    let mut expected_bob = Vec::new();
    for n in 0..10 {
        let a = create(&mut alice, new_task(&format!("a{n}"))).await;
        expected_alice.push(("task.created".to_owned(), a.id.clone()));
        if n % 3 == 0 {
            alice
                .complete_task(CompleteTaskRequest {
                    id: a.id.clone(),
                    expected_version: 0,
                })
                .await
                .unwrap();
            expected_alice.push(("task.completed".to_owned(), a.id));
        }
        let b = create(&mut bob, new_task(&format!("b{n}"))).await;
        expected_bob.push(("task.created".to_owned(), b.id));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.sidecar.events().is_empty(),
        "nothing can be published while the sidecar is down"
    );

    app.sidecar.set_available(true);
    let total = expected_alice.len() + expected_bob.len();
    let events = app.wait_for_events(total).await;
    assert_eq!(events.len(), total, "each event exactly once");
    let per_user = |user: &str| -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e.user_id == user)
            .map(|e| (e.event_type.clone(), e.task.as_ref().unwrap().id.clone()))
            .collect()
    };
    assert_eq!(per_user("alice"), expected_alice, "alice's events in commit order");
    assert_eq!(per_user("bob"), expected_bob, "bob's events in commit order");

    // The outbox is empty once everything is accepted.
    let mut conn = sqlx::PgConnection::connect(&app.database.url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks.outbox")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    app.stop().await;
}

/// daprd with Kafka can fail the first entries of a bulk publish and
/// accept later ones of the same partition (the leader came back mid-call):
/// publishing the rejected ones again afterwards would put a user's events
/// out of order, so the relay never sends two of one user's events in one
/// call.
#[tokio::test]
async fn a_bulk_publish_that_fails_in_part_keeps_each_users_order() {
    let app = TestApp::spawn().await;
    app.sidecar.set_available(false);
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    let mut expected_alice = Vec::new();
    let mut expected_bob = Vec::new();
    for n in 0..8 {
        expected_alice.push(create(&mut alice, new_task(&format!("a{n}"))).await.id);
        expected_bob.push(create(&mut bob, new_task(&format!("b{n}"))).await.id);
    }
    // The first entries the sidecar sees fail, everything after succeeds.
    app.sidecar.reject_bulk_entries(5);
    app.sidecar.set_available(true);
    let events = app.wait_for_events(expected_alice.len() + expected_bob.len()).await;
    let per_user = |user: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.user_id == user)
            .map(|e| e.task.as_ref().unwrap().id.clone())
            .collect()
    };
    assert_eq!(
        per_user("alice"),
        expected_alice,
        "alice's events once each, in commit order"
    );
    assert_eq!(per_user("bob"), expected_bob, "bob's events once each, in commit order");
    app.stop().await;
}

/// A busy user's backlog does not hold a quiet user's change back: each
/// relay round takes every pending user's oldest rows, at most a few of any
/// one user's, so the quiet user's event goes out in the first call.
/// (Rounds in commit order put it after the busy user's whole backlog.)
#[tokio::test]
async fn a_busy_users_backlog_does_not_hold_back_another_users_change() {
    let app = TestApp::spawn_with_batch_size(10).await;
    app.sidecar.set_available(false);
    let mut busy = app.client("busy").await;
    let mut quiet = app.client("quiet").await;
    let mut expected_busy = Vec::new();
    for n in 0..30 {
        expected_busy.push(create(&mut busy, new_task(&format!("b{n}"))).await.id);
    }
    let quiet_task = create(&mut quiet, new_task("mine")).await;
    app.sidecar.set_available(true);
    let events = app.wait_for_events(31).await;
    let position = events
        .iter()
        .position(|e| e.user_id == "quiet")
        .expect("the quiet user's event");
    assert_eq!(events[position].task.as_ref().unwrap().id, quiet_task.id);
    assert!(position < 2, "published in the first call, not after {position} others");
    let busy_order: Vec<String> = events
        .iter()
        .filter(|e| e.user_id == "busy")
        .map(|e| e.task.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(
        busy_order, expected_busy,
        "the busy user's events once each, in commit order"
    );
    app.stop().await;
}

#[tokio::test]
async fn older_runtimes_get_alpha1_or_unary_publishes() {
    for (bulk, method) in [
        (ApiLevel::Alpha1Only, "BulkPublishEventAlpha1"),
        (ApiLevel::None, "PublishEvent"),
    ] {
        let app = TestApp::spawn_with(bulk).await;
        let mut alice = app.client("alice").await;
        for n in 0..3 {
            create(&mut alice, new_task(&format!("t{n}"))).await;
        }
        let recorded = app.sidecar.wait_for(3, Duration::from_secs(10)).await;
        assert!(recorded.iter().all(|r| r.method == method), "{bulk:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn events_committed_before_a_restart_are_published_after_it() {
    let app = TestApp::spawn().await;
    app.sidecar.set_available(false);
    let mut alice = app.client("alice").await;
    let task = create(&mut alice, new_task("survives restart")).await;
    let database = app.stop_keeping_database().await;

    let restarted = TestApp::spawn_on(database, ApiLevel::Stable).await;
    let events = restarted.wait_for_events(1).await;
    assert_eq!(events[0].task.as_ref().unwrap().id, task.id);
    restarted.stop().await;
}

#[tokio::test]
async fn two_replicas_publish_every_event_exactly_once() {
    let first = TestApp::spawn().await;
    let url = first.database.url.clone();
    let second = TestApp::spawn_on(todo_testing::TestDatabase::existing(&url), ApiLevel::Stable).await;
    let mut via_first = first.client("alice").await;
    let mut via_second = second.client("alice").await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let client = if n % 2 == 0 { &mut via_first } else { &mut via_second };
        ids.push(create(client, new_task(&format!("t{n}"))).await.id);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen: Vec<String>;
    loop {
        seen = first
            .sidecar
            .events()
            .into_iter()
            .chain(second.sidecar.events())
            .map(|e| e.event_id)
            .collect();
        if seen.len() >= 20 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = first.sidecar.events().len() + second.sidecar.events().len();
    assert_eq!(total, 20, "one relay at a time: no event published twice");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20);
    second.stop().await;
    first.stop().await;
}

/// A standby relay waits for the lock on one connection: it does not open
/// a new one several times a second (each costs PostgreSQL a process).
#[tokio::test]
async fn a_standby_relay_holds_one_connection_instead_of_reconnecting() {
    let first = TestApp::spawn().await;
    let url = first.database.url.clone();
    let second = TestApp::spawn_on(todo_testing::TestDatabase::existing(&url), ApiLevel::Stable).await;
    let sessions = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()";
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = first.database.scalar(sessions).await;
    // The relays poll every 50 ms here: twenty times a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = first.database.scalar(sessions).await;
    assert!(after - before <= 2, "{} sessions opened in 2 s", after - before);
    // The standby still takes over when the leader goes.
    let _database = first.stop_keeping_database().await;
    let mut alice = second.client("alice").await;
    let task = create(&mut alice, new_task("after the leader left")).await;
    let events = second.wait_for_events(1).await;
    assert_eq!(events[0].task.as_ref().unwrap().id, task.id);
    second.stop().await;
}

/// After an outage, many users' largest events wait together: a round's
/// publish would be several times what the sidecar takes in one request
/// (4 MiB), refused whole and again for ever. It goes out in calls the
/// sidecar accepts, and the outbox drains.
#[tokio::test]
async fn a_backlog_of_the_largest_events_drains() {
    let app = TestApp::spawn().await;
    app.sidecar.set_available(false);
    let channel = app.channel().await;
    let users = 250;
    for n in 0..users {
        let token = todo_testing::tokens::hs256(support::JWT_SECRET, &format!("user-{n}"), 300);
        let mut client = todo_core::proto::v1::task_service_client::TaskServiceClient::with_interceptor(
            channel.clone(),
            support::Bearer(Some(token)),
        );
        create(&mut client, todo_testing::largest_task_request(n)).await;
    }
    app.sidecar.set_available(true);
    let events = app.sidecar.wait_for(users, Duration::from_secs(30)).await;
    assert_eq!(events.len(), users, "every large event published");
    app.stop().await;
}
