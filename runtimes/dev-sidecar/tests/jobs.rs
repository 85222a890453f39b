//! The jobs scheduler: jobs fire into the app that scheduled them, can be
//! replaced and deleted, and survive a restart.

mod support;

use std::time::Duration;

use chrono::Utc;
use support::{Recorder, Stack, eventually, serve_app};
use todo_core::dapr::{
    jobs::Repeat,
    runtime::{GetJobRequest, Job, ScheduleJobRequest},
};

fn data(text: &str) -> prost_types::Any {
    prost_types::Any {
        type_url: "type.googleapis.com/test.Text".into(),
        value: text.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn a_job_fires_once_at_its_due_time_with_its_data() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&[], false);
    let _app = serve_app(recorder.clone(), stack.app_port).await;
    let _sidecar = stack.sidecar(&[]).await;
    let jobs = stack.jobs();
    let due = Utc::now() + chrono::Duration::milliseconds(400);
    jobs.schedule_once("remind-1", due, data("first"), None).await.unwrap();
    // Replaced before it fires: only the new data arrives.
    jobs.schedule_once("remind-1", due, data("second"), None).await.unwrap();
    jobs.schedule_once("cancelled", due, data("never"), None).await.unwrap();
    jobs.delete("cancelled", None).await.unwrap();
    assert!(recorder.jobs().is_empty(), "not before its time");

    eventually("the job fires", Duration::from_secs(5), || !recorder.jobs().is_empty()).await;
    let fired_at = Utc::now();
    assert!(fired_at >= due, "fired early");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fired = recorder.jobs();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].name, "remind-1");
    assert_eq!(fired[0].data.as_ref().unwrap().value, b"second");
    let pending = stack.inspect("/jobs").await;
    assert!(pending.as_array().unwrap().is_empty(), "{pending}");
}

#[tokio::test]
async fn jobs_that_came_due_while_the_sidecar_was_down_fire_after_restart() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&[], false);
    let _app = serve_app(recorder.clone(), stack.app_port).await;
    let sidecar = stack.sidecar(&[]).await;
    stack
        .jobs()
        .schedule_once(
            "later",
            Utc::now() + chrono::Duration::milliseconds(500),
            data("kept"),
            None,
        )
        .await
        .unwrap();
    drop(sidecar);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(recorder.jobs().is_empty());

    let _sidecar = stack.sidecar(&[]).await;
    eventually("the overdue job fires", Duration::from_secs(5), || {
        !recorder.jobs().is_empty()
    })
    .await;
    assert_eq!(recorder.jobs()[0].data.as_ref().unwrap().value, b"kept");
}

#[tokio::test]
async fn bad_job_requests_are_refused_clearly() {
    let stack = Stack::new();
    let _sidecar = stack.sidecar(&[]).await;
    let jobs = stack.jobs();
    let past = Utc::now() - chrono::Duration::seconds(1);
    // A past due time fires at once; an empty name is refused.
    jobs.schedule_once("past", past, data("x"), None).await.unwrap();
    let err = jobs.schedule_once("", past, data("x"), None).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // Schedules other than `@every`, which daprd would run, are refused as
    // not implemented here, not taken and dropped.
    let sidecar = stack.sidecar_client();
    let schedule = |schedule: &str| ScheduleJobRequest {
        job: Some(Job {
            name: "repeating".into(),
            schedule: Some(schedule.into()),
            repeats: Some(2),
            data: Some(data("x")),
            ..Job::default()
        }),
        overwrite: true,
    };
    for (text, code) in [
        ("0 30 * * * *", tonic::Code::Unimplemented),
        ("@daily", tonic::Code::Unimplemented),
        ("@every 0s", tonic::Code::InvalidArgument),
        ("@every 1d", tonic::Code::InvalidArgument),
    ] {
        let err = sidecar
            .client()
            .schedule_job(sidecar.request(schedule(text), None))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{text}: {err:?}");
    }
}

#[tokio::test]
async fn a_repeating_job_keeps_its_count_across_a_restart() {
    let stack = Stack::new();
    let recorder = Recorder::on_topics(&[], false);
    let _app = serve_app(recorder.clone(), stack.app_port).await;
    let sidecar = stack.sidecar(&[]).await;
    let every = chrono::Duration::milliseconds(700);
    stack
        .jobs()
        .schedule(
            "thrice",
            Utc::now() + chrono::Duration::milliseconds(200),
            Some(Repeat { every, times: 3 }),
            data("each"),
            None,
        )
        .await
        .unwrap();
    eventually("the first trigger", Duration::from_secs(5), || {
        !recorder.jobs().is_empty()
    })
    .await;
    // Stopped between triggers, once the first is recorded as done.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = stack.sidecar_client();
    let job = client
        .client()
        .get_job(client.request(GetJobRequest { name: "thrice".into() }, None))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(
        (job.schedule.as_deref(), job.repeats),
        (Some("@every 700ms"), Some(3)),
        "GetJob shows the schedule as given"
    );
    drop(sidecar);
    // Down while the second comes due: it fires after the restart.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let _sidecar = stack.sidecar(&[]).await;
    eventually("the other two triggers", Duration::from_secs(10), || {
        recorder.jobs().len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        recorder.jobs().len(),
        3,
        "three triggers in all, one of them before the restart"
    );
    let pending = stack.inspect("/jobs").await;
    assert!(pending.as_array().unwrap().is_empty(), "gone after the last: {pending}");
}
