//! `just demo`: a short, readable tour of the event flow against a running
//! `just dev`: a recurring task completed and its next occurrence appearing,
//! a reminder arriving as a notification, and the verified audit trail.
//! It fails when any of them does not happen, so the in-cluster check
//! (scripts/test-cluster.sh) runs it against the deployed system too.

use std::time::{Duration, Instant};

use clap::Parser;
use prost_types::Timestamp;
use todo_core::{
    auth::jwt,
    proto::v1::{
        CompleteTaskRequest, CreateTaskRequest, Frequency, ListAuditRecordsRequest, ListNotificationsRequest,
        ListTasksRequest, Recurrence, VerifyAuditChainRequest, audit_service_client::AuditServiceClient,
        notification_service_client::NotificationServiceClient, task_service_client::TaskServiceClient,
    },
    timestamps,
};
use tonic::{Request, transport::Channel};

/// Walk through the event flow of a running local stack.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    task_api: String,
    #[arg(long, default_value = "http://127.0.0.1:50054")]
    notifications: String,
    #[arg(long, default_value = "http://127.0.0.1:50055")]
    audit: String,
    /// User to act as; a fresh one per run by default.
    #[arg(long)]
    user: Option<String>,
    #[arg(long, env = "JWT_SECRET", default_value = jwt::DEV_SECRET)]
    secret: String,
}

fn step(title: &str) {
    println!("\n\x1b[1;34m== {title}\x1b[0m");
}

fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    request
}

fn in_from_now(duration: chrono::Duration) -> Option<Timestamp> {
    Some(timestamps::to_proto(timestamps::now() + duration))
}

async fn connect(url: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(url.to_owned())?
        .connect()
        .await
        .map_err(|err| anyhow::anyhow!("cannot reach {url} ({err}); is `just dev` running?"))
}

/// Polls until `check` yields something or `timeout` passes, printing dots.
async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> anyhow::Result<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    use std::io::Write;
    let started = Instant::now();
    loop {
        if let Some(found) = check().await? {
            println!();
            return Ok((found, started.elapsed()));
        }
        if started.elapsed() > timeout {
            anyhow::bail!("gave up after {timeout:?}");
        }
        print!(".");
        std::io::stdout().flush().ok();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let user = args
        .user
        .unwrap_or_else(|| format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let token = todo_testing::tokens::hs256(&args.secret, &user, 3600);
    let mut tasks = TaskServiceClient::new(connect(&args.task_api).await?);
    let notifications = NotificationServiceClient::new(connect(&args.notifications).await?);
    let mut audit = AuditServiceClient::new(connect(&args.audit).await?);
    println!("acting as user \x1b[1m{user}\x1b[0m");

    step("1. A recurring task: complete it, and the next occurrence appears");
    let first = tasks
        .create_task(authed(
            &token,
            CreateTaskRequest {
                title: "Water the plants".into(),
                due_at: in_from_now(chrono::Duration::minutes(2)),
                recurrence: Some(Recurrence {
                    frequency: Frequency::Daily as i32,
                    interval: 1,
                    ..Default::default()
                }),
                tags: vec!["home".into()],
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .task
        .expect("task");
    println!("created  \"{}\" (daily), id {}", first.title, first.id);
    tasks
        .complete_task(authed(
            &token,
            CompleteTaskRequest {
                id: first.id.clone(),
                expected_version: 0,
            },
        ))
        .await?;
    println!("completed it → task.completed → recurring-service → task.occurrence.requested → task-api");
    print!("waiting for the next occurrence ");
    let (next, took) = wait_for(Duration::from_secs(30), || {
        let mut tasks = tasks.clone();
        let request = authed(&token, ListTasksRequest::default());
        let first_id = first.id.clone();
        async move {
            let list = tasks.list_tasks(request).await?.into_inner().tasks;
            Ok(list.into_iter().find(|task| task.id != first_id))
        }
    })
    .await?;
    let due = next.due_at.as_ref().and_then(|ts| timestamps::from_proto(ts).ok());
    println!(
        "appeared after {:.1} s: occurrence {} of the series, due {}",
        took.as_secs_f64(),
        next.occurrence_number,
        due.map(|d| d.to_rfc3339()).unwrap_or_default()
    );

    step("2. A reminder: due in an hour and 15 s, so the 1-hour reminder fires in 15 s");
    let reminded = tasks
        .create_task(authed(
            &token,
            CreateTaskRequest {
                title: "Call the bank".into(),
                due_at: in_from_now(chrono::Duration::hours(1) + chrono::Duration::seconds(15)),
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .task
        .expect("task");
    println!(
        "created  \"{}\" → reminder-service scheduled one Dapr job for it (the 24 h reminder is already past, so only the 1 h one)",
        reminded.title
    );
    print!("waiting for the notification ");
    let (note, took) = wait_for(Duration::from_secs(60), || {
        let mut notifications = notifications.clone();
        let request = authed(&token, ListNotificationsRequest::default());
        async move {
            Ok(notifications
                .list_notifications(request)
                .await?
                .into_inner()
                .notifications
                .into_iter()
                .next())
        }
    })
    .await?;
    println!(
        "arrived after {:.1} s: \"{}\" (via {})",
        took.as_secs_f64(),
        note.message,
        note.channel
    );

    step("3. The audit trail, hash-chained per user");
    let records = audit
        .list_audit_records(authed(&token, ListAuditRecordsRequest::default()))
        .await?
        .into_inner()
        .records;
    for record in &records {
        let hash: String = record.hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
        println!(
            "  #{:<2} {:<27} task {}  hash {}…",
            record.sequence, record.event_type, record.task_id, hash
        );
    }
    let verdict = audit
        .verify_audit_chain(authed(&token, VerifyAuditChainRequest {}))
        .await?
        .into_inner();
    if verdict.valid {
        println!(
            "VerifyAuditChain: \x1b[32mvalid\x1b[0m ({} records checked)",
            verdict.records_checked
        );
    } else {
        anyhow::bail!(
            "VerifyAuditChain: broken at #{}: {}",
            verdict.first_invalid_sequence,
            verdict.reason
        );
    }
    println!("\nDone. `just lag` and `just dlq` show the sidecar's side of it.");
    Ok(())
}
