//! TaskService RPCs: effects, events, validation, isolation, pagination,
//! field masks and optimistic concurrency.

mod support;

use prost_types::{FieldMask, Timestamp};
use support::{TestApp, create, new_task};
use todo_core::proto::v1::{
    CompleteTaskRequest, CreateTaskRequest, DeleteTaskRequest, Frequency, GetTaskRequest, ListTasksRequest, Priority,
    Recurrence, Task, TaskOrder, UpdateTaskRequest,
};
use tonic::Code;

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn create_get_complete_delete_each_publish_one_event() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;

    let created = create(
        &mut alice,
        CreateTaskRequest {
            title: "  Pay rent ".into(),
            description: "before the 1st".into(),
            priority: Priority::High as i32,
            due_at: ts(4_102_444_800),
            tags: vec!["home".into(), "money".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.title, "Pay rent");
    assert_eq!(created.user_id, "alice");
    assert_eq!(created.version, 1);
    assert!(!created.completed);

    let fetched = alice
        .get_task(GetTaskRequest { id: created.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(fetched, created);

    let completed = alice
        .complete_task(CompleteTaskRequest {
            id: created.id.clone(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(completed.completed && completed.completed_at.is_some());
    assert_eq!(completed.version, 2);
    // Completing again changes nothing and publishes nothing.
    let again = alice
        .complete_task(CompleteTaskRequest {
            id: created.id.clone(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(again.version, 2);

    alice
        .delete_task(DeleteTaskRequest {
            id: created.id.clone(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let gone = alice
        .get_task(GetTaskRequest { id: created.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    let events = app.wait_for_events(3).await;
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["task.created", "task.completed", "task.deleted"]);
    assert!(
        events
            .iter()
            .all(|e| e.user_id == "alice" && e.task.as_ref().unwrap().id == created.id)
    );
    assert_eq!(
        events[0].changed_fields,
        ["title", "description", "priority", "due_at", "tags"]
    );
    assert_eq!(events[1].changed_fields, ["completed"]);
    assert_eq!(events[1].task_version, 2);

    let recorded = app.sidecar.events();
    assert_eq!(recorded.len(), 3, "no event for the repeated completion");
    for (raw, event) in recorded.iter().zip(&events) {
        assert_eq!(raw.topic, "task-events");
        assert_eq!(raw.partition_key, "alice");
        assert_eq!(raw.event_id, event.event_id);
        assert_eq!(raw.event_type, event.event_type);
        assert_eq!(
            raw.content_type, "application/json",
            "proto3 JSON: what daprd carries intact"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn invalid_input_names_the_field() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let valid = || new_task("ok");
    let cases: Vec<(CreateTaskRequest, &str)> = vec![
        (new_task("   "), "title"),
        (new_task(&"x".repeat(201)), "title"),
        (
            CreateTaskRequest {
                description: "d".repeat(4001),
                ..valid()
            },
            "description",
        ),
        (
            CreateTaskRequest {
                tags: (0..21).map(|n| format!("t{n}")).collect(),
                ..valid()
            },
            "tags",
        ),
        (
            CreateTaskRequest {
                priority: 17,
                ..valid()
            },
            "priority",
        ),
        (
            CreateTaskRequest {
                recurrence: Some(Recurrence {
                    frequency: Frequency::Daily as i32,
                    interval: 1,
                    ..Default::default()
                }),
                ..valid()
            },
            "recurrence",
        ),
        (
            CreateTaskRequest {
                due_at: ts(1_900_000_000),
                recurrence: Some(Recurrence {
                    frequency: 9,
                    ..Default::default()
                }),
                ..valid()
            },
            "recurrence",
        ),
        (
            CreateTaskRequest {
                due_at: Some(Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                ..valid()
            },
            "due_at",
        ),
        (
            CreateTaskRequest {
                request_id: "not-a-uuid".into(),
                ..valid()
            },
            "request_id",
        ),
        // PostgreSQL's text cannot hold NUL: refused, not an internal error.
        (new_task("a\0b"), "title"),
        (
            CreateTaskRequest {
                description: "line\0".into(),
                ..valid()
            },
            "description",
        ),
        (
            CreateTaskRequest {
                tags: vec!["\0".into()],
                ..valid()
            },
            "tags",
        ),
    ];
    for (request, field) in cases {
        let status = alice.create_task(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "{field}: {}", status.message());
    }
    for (page_size, field) in [(501, "page_size"), (-1, "page_size")] {
        let status = alice
            .list_tasks(ListTasksRequest {
                page_size,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(field));
    }
    for request in [
        ListTasksRequest {
            query: "rent\0".into(),
            ..Default::default()
        },
        ListTasksRequest {
            tag: "\0".into(),
            ..Default::default()
        },
    ] {
        let status = alice.list_tasks(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let status = alice
        .list_tasks(ListTasksRequest {
            order_by: 42,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(status.message().starts_with("order_by"));
    let status = alice.get_task(GetTaskRequest { id: "nope".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("id"));

    let task = create(&mut alice, valid()).await;
    for (paths, message) in [
        (vec![], "update_mask"),
        (vec!["version"], "update_mask"),
        (vec!["colour"], "update_mask"),
    ] {
        let status = alice
            .update_task(UpdateTaskRequest {
                task: Some(task.clone()),
                update_mask: mask(&paths),
                expected_version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(message), "{}", status.message());
    }
    // Nothing invalid was stored or published.
    assert_eq!(app.wait_for_events(1).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn one_user_never_sees_or_changes_anothers_tasks() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    let task = create(&mut alice, new_task("alice's")).await;
    create(&mut bob, new_task("bob's")).await;

    assert_eq!(
        bob.get_task(GetTaskRequest { id: task.id.clone() })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let update = UpdateTaskRequest {
        task: Some(Task {
            id: task.id.clone(),
            title: "hijacked".into(),
            ..Default::default()
        }),
        update_mask: mask(&["title"]),
        expected_version: 0,
    };
    assert_eq!(bob.update_task(update).await.unwrap_err().code(), Code::NotFound);
    let complete = CompleteTaskRequest {
        id: task.id.clone(),
        expected_version: 0,
    };
    assert_eq!(bob.complete_task(complete).await.unwrap_err().code(), Code::NotFound);
    let delete = DeleteTaskRequest {
        id: task.id.clone(),
        expected_version: 0,
    };
    assert_eq!(bob.delete_task(delete).await.unwrap_err().code(), Code::NotFound);

    let bobs = bob
        .list_tasks(ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].title, "bob's");
    let unchanged = alice
        .get_task(GetTaskRequest { id: task.id })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(unchanged.title, "alice's");
    assert_eq!(unchanged.version, 1);
    app.stop().await;
}

#[tokio::test]
async fn list_filters_orders_and_pages_without_overlap() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let mut ids = Vec::new();
    for n in 0..7 {
        let task = create(
            &mut alice,
            CreateTaskRequest {
                title: format!("task {n}"),
                description: if n == 3 {
                    "Buy 100% organic_milk".into()
                } else {
                    String::new()
                },
                priority: if n % 2 == 0 { Priority::High } else { Priority::Low } as i32,
                due_at: if n < 5 { ts(2_000_000_000 + n * 3600) } else { None },
                tags: if n < 3 { vec!["home".into()] } else { vec![] },
                ..Default::default()
            },
        )
        .await;
        ids.push(task.id);
    }
    alice
        .complete_task(CompleteTaskRequest {
            id: ids[1].clone(),
            expected_version: 0,
        })
        .await
        .unwrap();

    // Newest first, three per page.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice
            .list_tasks(ListTasksRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.tasks.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, expected);

    // Earliest due first, undated last, across pages.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice
            .list_tasks(ListTasksRequest {
                page_size: 2,
                page_token: token.clone(),
                order_by: TaskOrder::DueAsc as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.tasks.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(&seen[..5], &ids[..5]);
    assert_eq!(seen.len(), 7);

    let titles = |request: ListTasksRequest| {
        let mut client = alice.clone();
        async move {
            let mut titles: Vec<String> = client
                .list_tasks(request)
                .await
                .unwrap()
                .into_inner()
                .tasks
                .into_iter()
                .map(|t| t.title)
                .collect();
            titles.sort();
            titles
        }
    };
    assert_eq!(
        titles(ListTasksRequest {
            tag: "home".into(),
            ..Default::default()
        })
        .await,
        ["task 0", "task 1", "task 2"]
    );
    assert_eq!(
        titles(ListTasksRequest {
            completed: Some(true),
            ..Default::default()
        })
        .await,
        ["task 1"]
    );
    assert_eq!(
        titles(ListTasksRequest {
            priority: Priority::Low as i32,
            completed: Some(false),
            ..Default::default()
        })
        .await,
        ["task 3", "task 5"]
    );
    assert_eq!(
        titles(ListTasksRequest {
            due_after: ts(2_000_000_000 + 3600),
            due_before: ts(2_000_000_000 + 3 * 3600),
            ..Default::default()
        })
        .await,
        ["task 1", "task 2"]
    );
    // Wildcards in the query match literally.
    assert_eq!(
        titles(ListTasksRequest {
            query: "100% ORGANIC_".into(),
            ..Default::default()
        })
        .await,
        ["task 3"]
    );
    assert!(
        titles(ListTasksRequest {
            query: "100%_".into(),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // A token only works with the filters it was issued for.
    let page = alice
        .list_tasks(ListTasksRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let status = alice
        .list_tasks(ListTasksRequest {
            page_size: 1,
            page_token: page.next_page_token,
            tag: "home".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("page_token"));
    app.stop().await;
}

#[tokio::test]
async fn update_changes_only_masked_fields_and_detects_races() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let task = create(
        &mut alice,
        CreateTaskRequest {
            title: "Old".into(),
            description: "keep".into(),
            tags: vec!["a".into()],
            ..Default::default()
        },
    )
    .await;

    let updated = alice
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                id: task.id.clone(),
                title: "New".into(),
                description: "would erase".into(),
                tags: vec![],
                ..Default::default()
            }),
            update_mask: mask(&["title"]),
            expected_version: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(updated.title, "New");
    assert_eq!(updated.description, "keep");
    assert_eq!(updated.tags, ["a"]);
    assert_eq!(updated.version, 2);

    // A writer that read version 1 loses the race.
    let stale = alice
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                id: task.id.clone(),
                title: "Stale".into(),
                ..Default::default()
            }),
            update_mask: mask(&["title"]),
            expected_version: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    // Reopen through UpdateTask after completing.
    alice
        .complete_task(CompleteTaskRequest {
            id: task.id.clone(),
            expected_version: 2,
        })
        .await
        .unwrap();
    let reopened = alice
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                id: task.id.clone(),
                completed: false,
                ..Default::default()
            }),
            update_mask: mask(&["completed"]),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(!reopened.completed);
    assert!(reopened.completed_at.is_none());

    // An update that changes nothing publishes nothing.
    alice
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                id: task.id.clone(),
                title: "New".into(),
                ..Default::default()
            }),
            update_mask: mask(&["title"]),
            expected_version: 0,
        })
        .await
        .unwrap();

    let events = app.wait_for_events(4).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.sidecar.events().len(), 4);
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.event_type.as_str(), e.changed_fields.join(",")))
        .collect();
    assert_eq!(
        summary,
        [
            ("task.created", "title,description,priority,tags".to_owned()),
            ("task.updated", "title".to_owned()),
            ("task.completed", "completed".to_owned()),
            ("task.updated", "completed".to_owned()),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_updates_with_the_same_version_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let task = create(&mut alice, new_task("race")).await;
    let mut attempts = Vec::new();
    for n in 0..8 {
        let mut client = alice.clone();
        let id = task.id.clone();
        attempts.push(tokio::spawn(async move {
            client
                .update_task(UpdateTaskRequest {
                    task: Some(Task {
                        id,
                        title: format!("writer {n}"),
                        ..Default::default()
                    }),
                    update_mask: mask(&["title"]),
                    expected_version: 1,
                })
                .await
        }));
    }
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::Aborted),
        }
    }
    assert_eq!(won, 1);
    app.stop().await;
}

#[tokio::test]
async fn retried_create_with_the_same_request_id_creates_once() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let request = CreateTaskRequest {
        title: "once".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let first = create(&mut alice, request.clone()).await;
    let second = create(&mut alice, request).await;
    assert_eq!(first.id, second.id);
    app.wait_for_events(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.sidecar.events().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn recurring_tasks_start_a_series() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let task = create(
        &mut alice,
        CreateTaskRequest {
            title: "stand-up".into(),
            due_at: ts(2_000_000_000),
            recurrence: Some(Recurrence {
                frequency: Frequency::Weekly as i32,
                interval: 0,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(task.series_id, task.id);
    assert_eq!(task.occurrence_number, 1);
    let recurrence = task.recurrence.unwrap();
    assert_eq!(recurrence.interval, 1, "0 reads as 1");
    assert_eq!(recurrence.frequency, Frequency::Weekly as i32);
    app.stop().await;
}

#[tokio::test]
async fn oversized_messages_are_refused_before_decoding() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let huge = CreateTaskRequest {
        title: "big".into(),
        description: "x".repeat(1024 * 1024),
        ..Default::default()
    };
    let status = alice.create_task(huge).await.unwrap_err();
    // RESOURCE_EXHAUSTED, as the gRPC status code guide asks (tonic itself
    // would say OUT_OF_RANGE).
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    // Under the limit but over the field's bound: the field is named.
    let long = CreateTaskRequest {
        title: "long".into(),
        description: "x".repeat(100 * 1024),
        ..Default::default()
    };
    let status = alice.create_task(long).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("description"));
    // The server is unharmed.
    create(&mut alice, new_task("still fine")).await;
    app.stop().await;
}

#[tokio::test]
async fn a_user_at_the_task_quota_is_refused_and_others_are_not() {
    let app = TestApp::spawn().await;
    let mut alice = app.client("alice").await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let first = create(
        &mut alice,
        CreateTaskRequest {
            request_id: request_id.clone(),
            ..new_task("first")
        },
    )
    .await;
    for n in 1..support::MAX_TASKS_PER_USER {
        create(&mut alice, new_task(&format!("t{n}"))).await;
    }
    let refused = alice.create_task(new_task("one too many")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("at most"), "{}", refused.message());
    // A retry of a create that happened is answered as before.
    let retried = create(
        &mut alice,
        CreateTaskRequest {
            request_id,
            ..new_task("first")
        },
    )
    .await;
    assert_eq!(retried.id, first.id);
    // Others are not affected; deleting one makes room.
    create(&mut app.client("bob").await, new_task("bob's")).await;
    alice
        .delete_task(DeleteTaskRequest {
            id: first.id,
            expected_version: 0,
        })
        .await
        .unwrap();
    create(&mut alice, new_task("room again")).await;
    app.stop().await;
}
