//! reminder-service as daprd drives it: task events in (OnTopicEvent), jobs
//! scheduled and deleted on a recording sidecar, fired jobs (OnJobEvent and
//! its Alpha1 twin) published as reminders.

use chrono::{DateTime, Duration, Utc};
use prost::Message;
use reminder_service::{config::Config, startup::Application};
use todo_core::{
    config::ServerConfig,
    dapr::runtime::{
        JobEventRequest, app_callback_alpha_client::AppCallbackAlphaClient, app_callback_client::AppCallbackClient,
        topic_event_response::TopicEventResponseStatus,
    },
    events::encode_json,
    proto::v1::{ReminderEvent, ReminderKind, Task, TaskEvent},
    timestamps,
};
use todo_testing::{ApiLevel, FakeSidecar, RunningServer, dapr_config, delivery};
use tonic::transport::Channel;

struct TestApp {
    sidecar: FakeSidecar,
    callback: AppCallbackClient<Channel>,
    alpha: AppCallbackAlphaClient<Channel>,
    _server: RunningServer,
}

async fn spawn(level: ApiLevel) -> TestApp {
    let sidecar = FakeSidecar::start(level).await;
    let config = Config {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        dapr: dapr_config(&sidecar, None),
    };
    let app = Application::build(config).await.unwrap();
    let server = RunningServer::spawn(app.local_addr(), |stop| app.run_until_stopped(stop));
    let channel = server.channel().await;
    TestApp {
        callback: AppCallbackClient::new(channel.clone()),
        alpha: AppCallbackAlphaClient::new(channel),
        sidecar,
        _server: server,
    }
}

const TASK_ID: &str = "6a0f8f3e-4f7e-4b8a-9a51-1d2c3b4a5f60";

/// Each event made here is the task's next version, as task-api's are.
fn task_event(event_type: &str, due: Option<DateTime<Utc>>, completed: bool) -> TaskEvent {
    static VERSION: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
    let version = VERSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TaskEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: event_type.into(),
        user_id: "alice".into(),
        task: Some(Task {
            id: TASK_ID.into(),
            user_id: "alice".into(),
            title: "Pay rent".into(),
            completed,
            due_at: due.map(timestamps::to_proto),
            version,
            ..Task::default()
        }),
        task_version: version,
        ..TaskEvent::default()
    }
}

impl TestApp {
    async fn deliver(&mut self, event: &TaskEvent) -> i32 {
        self.callback
            .on_topic_event(delivery(
                "task-events",
                &event.event_type,
                event.encode_to_vec(),
                "application/protobuf",
            ))
            .await
            .unwrap()
            .into_inner()
            .status
    }
}

fn job_name() -> String {
    format!("reminder-{TASK_ID}")
}

/// The task's job: its first trigger, and (schedule, repeats) after it.
fn job_of(app: &TestApp) -> Option<(DateTime<Utc>, String, u32)> {
    app.sidecar.jobs().get(&job_name()).map(|job| {
        (
            DateTime::parse_from_rfc3339(&job.due_time).unwrap().with_timezone(&Utc),
            job.schedule.clone(),
            job.repeats,
        )
    })
}

/// Fires at `first`, and again 23 hours later.
fn both_reminders(first: DateTime<Utc>) -> Option<(DateTime<Utc>, String, u32)> {
    Some((first, "@every 82800000ms".into(), 2))
}

#[tokio::test]
async fn jobs_follow_the_due_date_and_go_away_on_completion() {
    let mut app = spawn(ApiLevel::Stable).await;
    let due = timestamps::now() + Duration::hours(48);
    let success = TopicEventResponseStatus::Success as i32;

    assert_eq!(
        app.deliver(&task_event("task.created", Some(due), false)).await,
        success
    );
    assert_eq!(job_of(&app), both_reminders(due - Duration::hours(24)));
    assert!(app.sidecar.jobs().values().all(|job| job.method == "ScheduleJob"));

    // Moved to five hours ahead: the 24 h reminder would be in the past.
    let moved = timestamps::now() + Duration::hours(5);
    assert_eq!(
        app.deliver(&task_event("task.updated", Some(moved), false)).await,
        success
    );
    assert_eq!(job_of(&app), Some((moved - Duration::hours(1), String::new(), 0)));

    // A duplicate delivery changes nothing.
    assert_eq!(
        app.deliver(&task_event("task.updated", Some(moved), false)).await,
        success
    );
    assert_eq!(app.sidecar.jobs().len(), 1);

    assert_eq!(
        app.deliver(&task_event("task.completed", Some(moved), true)).await,
        success
    );
    assert!(app.sidecar.jobs().is_empty());
    // Reopened: the reminder comes back; deleted: gone again.
    assert_eq!(
        app.deliver(&task_event("task.updated", Some(moved), false)).await,
        success
    );
    assert_eq!(app.sidecar.jobs().len(), 1);
    assert_eq!(
        app.deliver(&task_event("task.deleted", Some(moved), false)).await,
        success
    );
    assert!(app.sidecar.jobs().is_empty());
}

#[tokio::test]
async fn a_fired_job_publishes_one_reminder_identity_even_when_it_fires_twice() {
    let mut app = spawn(ApiLevel::Stable).await;
    // Only the 1-hour reminder is ahead.
    let due = timestamps::now() + Duration::minutes(90);
    app.deliver(&task_event("task.created", Some(due), false)).await;
    let job = app.sidecar.jobs().remove(&job_name()).unwrap();
    let fired = JobEventRequest {
        name: job.name.clone(),
        data: job.data.clone(),
        method: format!("job/{}", job.name),
        content_type: String::new(),
        http_extension: None,
    };
    app.callback.on_job_event(fired.clone()).await.unwrap();
    // Older runtimes call the Alpha1 name; it must behave the same.
    #[allow(deprecated)]
    app.alpha.on_job_event_alpha1(fired).await.unwrap();

    let published = app.sidecar.events();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].topic, "reminders");
    assert_eq!(published[0].event_type, "reminder.due_soon");
    assert_eq!(published[0].partition_key, "alice");
    assert_eq!(
        published[0].event_id, published[1].event_id,
        "deterministic reminder id"
    );
    assert_eq!(published[0].content_type, "application/json", "the wire format");
    let reminder: ReminderEvent = published[0].decode().unwrap();
    assert_eq!(reminder.kind, ReminderKind::ReminderKind1hBefore as i32);
    assert_eq!(reminder.task_id, TASK_ID);
    assert_eq!(reminder.title, "Pay rent");
    assert_eq!(reminder.due_at, Some(timestamps::to_proto(due)));
}

#[tokio::test]
async fn older_runtimes_get_the_alpha1_jobs_api() {
    let mut app = spawn(ApiLevel::Alpha1Only).await;
    let due = timestamps::now() + Duration::hours(48);
    let status = app.deliver(&task_event("task.created", Some(due), false)).await;
    assert_eq!(status, TopicEventResponseStatus::Success as i32);
    let jobs = app.sidecar.jobs();
    assert_eq!(jobs.len(), 1);
    assert!(jobs.values().all(|job| job.method == "ScheduleJobAlpha1"));
    app.deliver(&task_event("task.deleted", Some(due), false)).await;
    assert!(app.sidecar.jobs().is_empty());
}

#[tokio::test]
async fn poison_is_dropped_outages_retried_and_json_accepted() {
    let mut app = spawn(ApiLevel::Stable).await;
    let due = timestamps::now() + Duration::hours(48);
    let drop = TopicEventResponseStatus::Drop as i32;
    let garbage = delivery("task-events", "task.created", vec![0xde, 0xad], "application/protobuf");
    assert_eq!(
        app.callback.on_topic_event(garbage).await.unwrap().into_inner().status,
        drop
    );
    let mut no_task = task_event("task.created", Some(due), false);
    no_task.task = None;
    assert_eq!(app.deliver(&no_task).await, drop);

    let json = delivery(
        "task-events",
        "task.created",
        encode_json(&task_event("task.created", Some(due), false)).unwrap(),
        "application/json",
    );
    let status = app.callback.on_topic_event(json).await.unwrap().into_inner().status;
    assert_eq!(status, TopicEventResponseStatus::Success as i32);
    assert_eq!(app.sidecar.jobs().len(), 1);

    app.sidecar.set_available(false);
    assert_eq!(
        app.deliver(&task_event("task.updated", Some(due), false)).await,
        TopicEventResponseStatus::Retry as i32
    );
    // A job that fires while the sidecar is down fails, so the scheduler retries it.
    let job = app.sidecar.jobs().remove(&job_name()).unwrap();
    let fired = JobEventRequest {
        name: job.name,
        data: job.data,
        ..Default::default()
    };
    assert!(app.callback.on_job_event(fired).await.is_err());
    // A job without usable data is acknowledged, not retried forever.
    let empty = JobEventRequest {
        name: "reminder-bogus".into(),
        ..Default::default()
    };
    assert!(app.callback.on_job_event(empty).await.is_ok());
}

#[tokio::test]
async fn a_bulk_delivery_leaves_each_task_with_the_jobs_of_its_latest_event() {
    use todo_core::dapr::runtime::{
        TopicEventBulkRequest, TopicEventBulkRequestEntry, TopicEventCeRequest, topic_event_bulk_request_entry::Event,
    };
    let app = spawn(ApiLevel::Stable).await;
    let due = timestamps::now() + Duration::hours(48);
    let moved = due + Duration::hours(24);
    let entry = |id: &str, event: &TaskEvent| TopicEventBulkRequestEntry {
        entry_id: id.into(),
        content_type: "application/protobuf".into(),
        metadata: Default::default(),
        event: Some(Event::CloudEvent(TopicEventCeRequest {
            id: event.event_id.clone(),
            r#type: event.event_type.clone(),
            data_content_type: "application/protobuf".into(),
            data: event.encode_to_vec(),
            ..TopicEventCeRequest::default()
        })),
    };
    let mut other = task_event("task.created", Some(due), false);
    let other_id = "0c7d2b8e-1111-4222-8333-444455556666";
    other.task.as_mut().unwrap().id = other_id.into();
    let mut poison = entry("4", &task_event("task.created", Some(due), false));
    if let Some(Event::CloudEvent(ce)) = poison.event.as_mut() {
        ce.data = vec![0xff, 0x01];
    }
    let request = TopicEventBulkRequest {
        topic: "task-events".into(),
        entries: vec![
            entry("1", &task_event("task.created", Some(due), false)),
            entry("2", &other),
            entry("3", &task_event("task.updated", Some(moved), false)),
            poison,
        ],
        ..TopicEventBulkRequest::default()
    };
    let statuses: Vec<i32> = app
        .callback
        .clone()
        .on_bulk_topic_event(request)
        .await
        .unwrap()
        .into_inner()
        .statuses
        .into_iter()
        .map(|s| s.status)
        .collect();
    let (success, drop) = (
        TopicEventResponseStatus::Success as i32,
        TopicEventResponseStatus::Drop as i32,
    );
    assert_eq!(statuses, [success, success, success, drop]);
    // The moved due date won for the first task; the other has its own job.
    assert_eq!(job_of(&app), both_reminders(moved - Duration::hours(24)));
    assert_eq!(app.sidecar.jobs().len(), 2);
    assert!(app.sidecar.jobs().contains_key(&format!("reminder-{other_id}")));
}

/// An older event of the task, delivered again after a newer one (a
/// redelivery, or `just replay` of a dead letter), changes nothing: it
/// neither moves the reminder back nor removes it.
#[tokio::test]
async fn an_older_event_delivered_later_changes_nothing() {
    let mut app = spawn(ApiLevel::Stable).await;
    let success = TopicEventResponseStatus::Success as i32;
    let old_due = timestamps::now() + Duration::hours(48);
    let stale_update = task_event("task.updated", Some(old_due), false);
    let stale_completion = task_event("task.completed", Some(old_due), true);
    let new_due = timestamps::now() + Duration::hours(5);
    let latest = task_event("task.updated", Some(new_due), false);
    assert_eq!(app.deliver(&latest).await, success);
    let expected = Some((new_due - Duration::hours(1), String::new(), 0));
    assert_eq!(job_of(&app), expected);

    assert_eq!(app.deliver(&stale_update).await, success);
    assert_eq!(job_of(&app), expected, "an older due date does not come back");
    assert_eq!(app.deliver(&stale_completion).await, success);
    assert_eq!(
        job_of(&app),
        expected,
        "an older completion does not remove the reminder"
    );
}
