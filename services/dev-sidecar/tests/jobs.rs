//! The jobs scheduler: jobs fire into the app that scheduled them, can be
//! replaced and deleted, and survive a restart.

mod support;

use std::time::Duration;

use chrono::Utc;
use support::{Recorder, Stack, eventually, serve_app};

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
}
