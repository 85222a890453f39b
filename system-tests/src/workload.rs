//! A steady stream of task mutations for fault tests and the soak, and the
//! check afterwards that every consumer turned each acknowledged mutation
//! into exactly one effect, in per-user order.
//!
//! Each user has its own writer, doing one round of mutations after another:
//! a plain task; a daily recurring task, completed at once (one next
//! occurrence expected); and every third round a task due a little over an
//! hour ahead (one "due in 1 hour" notification expected shortly after). A
//! call that fails is retried as a careful client would: the same
//! `request_id` for a create, so a create that committed before its answer
//! was lost is not made twice.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tonic::{Code, Response, Status};

use todo_core::{
    events::topics,
    proto::v1::{
        AuditRecord, CompleteTaskRequest, CreateTaskRequest, Frequency, ListAuditRecordsRequest,
        ListNotificationsRequest, ListTasksRequest, Notification, Recurrence, Task, VerifyAuditChainRequest,
        audit_service_client::AuditServiceClient, notification_service_client::NotificationServiceClient,
        task_service_client::TaskServiceClient,
    },
    timestamps,
};
use todo_stack::{Authed, Stack, StackClients};

/// How far past the 1-hour mark the due-soon tasks are due: their 1-hour
/// reminder comes due this long after the task is created (one delayed by
/// a fault fires late, within reminder-service's grace, not never).
pub const REMINDER_SLACK: Duration = Duration::from_secs(12);
/// How long one call is retried before the workload gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(90);
const OCCURRENCE_COMMAND: &str = "task.occurrence.requested";

/// Which failed calls a writer retries, for faults that leave task-api up:
/// UNAVAILABLE only (its database or a dependency away), nothing else.
pub fn unavailable_only(code: Code) -> bool {
    code == Code::Unavailable
}

/// For faults that take task-api (or its connection) away: a call can also
/// break mid-flight.
pub fn connection_lost(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled)
}

/// Writers running in the background.
pub struct Workload {
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<UserLog>>,
}

/// What the API acknowledged for one user.
#[derive(Debug, Default, Clone)]
pub struct UserLog {
    pub user: String,
    /// Task events acknowledged, in order: (event type, task id).
    pub events: Vec<(&'static str, String)>,
    /// Recurring tasks completed: each gets exactly one next occurrence.
    pub completed_recurring: Vec<String>,
    /// Tasks due a little over an hour ahead: each gets one notification.
    pub due_soon: Vec<String>,
    /// Calls that failed and were retried.
    pub failures: Vec<Failure>,
    /// When the last due-soon task was created.
    pub last_due_soon_at: Option<Instant>,
}

/// One call that failed and was retried.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    pub code: Code,
    pub started: Instant,
    pub took: Duration,
}

/// Everything every writer had acknowledged when the workload stopped.
#[derive(Debug, Default)]
pub struct Committed {
    pub users: Vec<UserLog>,
}

/// The effects found, all checked exactly once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    pub audit_records: usize,
    pub notifications: usize,
    pub occurrences: usize,
}

impl Workload {
    /// Starts one writer per user, each starting a round every `pace`.
    /// `retryable` says which failures a writer retries (anything else
    /// fails the test).
    pub fn start(stack: &StackClients, users: &[&str], pace: Duration, retryable: fn(Code) -> bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = users
            .iter()
            .map(|user| {
                let writer = Writer {
                    client: TaskServiceClient::new(stack.lazy_authed("task-api", user)),
                    log: UserLog {
                        user: (*user).to_owned(),
                        ..UserLog::default()
                    },
                    retryable,
                };
                tokio::spawn(writer.run(stop.clone(), pace))
            })
            .collect();
        Self { stop, writers }
    }

    /// Lets each writer finish its round, and returns what was acknowledged.
    pub async fn stop(self) -> Committed {
        self.stop.store(true, Ordering::Release);
        let mut users = Vec::new();
        for writer in self.writers {
            users.push(writer.await.expect("a writer panicked"));
        }
        Committed { users }
    }
}

struct Writer {
    client: TaskServiceClient<Authed>,
    log: UserLog,
    retryable: fn(Code) -> bool,
}

impl Writer {
    async fn run(mut self, stop: Arc<AtomicBool>, pace: Duration) -> UserLog {
        let mut round = 0usize;
        while !stop.load(Ordering::Acquire) {
            let started = Instant::now();
            self.round(round).await;
            round += 1;
            tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
        }
        self.log
    }

    async fn round(&mut self, round: usize) {
        let user = self.log.user.clone();
        let plain = self
            .create(CreateTaskRequest {
                title: format!("{user} plain {round}"),
                ..CreateTaskRequest::default()
            })
            .await;
        self.log.events.push(("task.created", plain.id));

        let recurring = self
            .create(CreateTaskRequest {
                title: format!("{user} daily {round}"),
                due_at: Some(timestamps::to_proto(timestamps::now() + chrono::Duration::days(2))),
                recurrence: Some(Recurrence {
                    frequency: Frequency::Daily as i32,
                    interval: 1,
                    ..Recurrence::default()
                }),
                ..CreateTaskRequest::default()
            })
            .await;
        self.log.events.push(("task.created", recurring.id.clone()));
        let (client, id) = (self.client.clone(), recurring.id.clone());
        // Completing a completed task changes nothing, so a retry after a
        // lost answer is harmless.
        self.call(move || {
            let (mut client, id) = (client.clone(), id.clone());
            async move {
                client
                    .complete_task(CompleteTaskRequest {
                        id,
                        expected_version: 0,
                    })
                    .await
            }
        })
        .await;
        self.log.events.push(("task.completed", recurring.id.clone()));
        self.log.completed_recurring.push(recurring.id);

        if round.is_multiple_of(3) {
            let lead = chrono::Duration::hours(1) + chrono::Duration::from_std(REMINDER_SLACK).expect("small");
            let due_soon = self
                .create(CreateTaskRequest {
                    title: format!("{user} due soon {round}"),
                    due_at: Some(timestamps::to_proto(timestamps::now() + lead)),
                    ..CreateTaskRequest::default()
                })
                .await;
            self.log.events.push(("task.created", due_soon.id.clone()));
            self.log.due_soon.push(due_soon.id);
            self.log.last_due_soon_at = Some(Instant::now());
        }
    }

    /// CreateTask, retried with the same request id until it is acknowledged.
    async fn create(&mut self, mut request: CreateTaskRequest) -> Task {
        request.request_id = uuid::Uuid::new_v4().to_string();
        let client = self.client.clone();
        let response = self
            .call(move || {
                let mut client = client.clone();
                let request = request.clone();
                async move { client.create_task(request).await }
            })
            .await;
        response.task.expect("CreateTask answers with the task")
    }

    async fn call<T, F, Fut>(&mut self, mut attempt: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let first = Instant::now();
        loop {
            let started = Instant::now();
            match attempt().await {
                Ok(response) => return response.into_inner(),
                Err(status) => {
                    assert!(
                        (self.retryable)(status.code()),
                        "{}: a call failed with {status:?}",
                        self.log.user
                    );
                    self.log.failures.push(Failure {
                        code: status.code(),
                        started,
                        took: started.elapsed(),
                    });
                    assert!(
                        first.elapsed() < GIVE_UP_AFTER,
                        "{}: a call kept failing for {GIVE_UP_AFTER:?}: {status:?}",
                        self.log.user
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Committed {
    /// Mutations acknowledged, over all users.
    pub fn mutations(&self) -> usize {
        self.users.iter().map(|user| user.events.len()).sum()
    }

    pub fn failures(&self) -> impl Iterator<Item = &Failure> {
        self.users.iter().flat_map(|user| &user.failures)
    }

    /// The check every fault test and the soak end with: [`Self::verify`],
    /// the workload did each kind of thing, and no dead-letter topic holds
    /// anything.
    pub async fn verify_with_no_dead_letters(&self, stack: &Stack, timeout: Duration) -> Effects {
        let effects = self.verify(stack, timeout).await;
        assert!(
            self.mutations() > 0 && effects.notifications > 0 && effects.occurrences > 0,
            "the workload made mutations, notifications and occurrences: {effects:?}"
        );
        for topic in topics::ALL {
            let dead = stack
                .dead_letters(&topics::dead_letter(topic))
                .await
                .expect("read the dead-letter topics");
            assert!(dead.is_empty(), "nothing dead-lettered on {topic}: {dead:?}");
        }
        eprintln!(
            "{} mutations acknowledged, {} retried calls; effects: {effects:?}",
            self.mutations(),
            self.failures().count()
        );
        effects
    }

    /// Waits (up to `timeout` per user) until the consumers have caught up,
    /// then checks that every acknowledged mutation has exactly one effect in
    /// each of them: audit records in acknowledgement order with a chain
    /// that verifies, one next occurrence per completed recurring task, one
    /// notification per due-soon task, and nothing more.
    pub async fn verify(&self, stack: &Stack, timeout: Duration) -> Effects {
        let mut effects = Effects::default();
        if let Some(last) = self.users.iter().filter_map(|user| user.last_due_soon_at).max() {
            // The last reminders come due REMINDER_SLACK after their task.
            tokio::time::sleep_until((last + REMINDER_SLACK).into()).await;
        }
        for user in &self.users {
            let found = user.verify(stack, timeout).await;
            effects.audit_records += found.audit_records;
            effects.notifications += found.notifications;
            effects.occurrences += found.occurrences;
        }
        effects
    }
}

impl UserLog {
    async fn verify(&self, stack: &Stack, timeout: Duration) -> Effects {
        let name = &self.user;
        let acknowledged: BTreeSet<&str> = self.events.iter().map(|(_, id)| id.as_str()).collect();
        let expected_audit = self.events.len() + 2 * self.completed_recurring.len();
        let expected_notifications = self.due_soon.len();
        let expected_tasks = acknowledged.len() + self.completed_recurring.len();

        // Wait until every effect is there (or more: duplicates fail below).
        let deadline = Instant::now() + timeout;
        loop {
            let found = (
                audit_records(stack, name).await.map(|v| v.len()),
                notifications(stack, name).await.map(|v| v.len()),
                tasks(stack, name).await.map(|v| v.len()),
            );
            if let (Ok(audit), Ok(notifications), Ok(tasks)) = &found
                && *audit >= expected_audit
                && *notifications >= expected_notifications
                && *tasks >= expected_tasks
            {
                break;
            }
            if Instant::now() >= deadline {
                let lag = stack.lag().await;
                panic!(
                    "{name}: effects missing after {timeout:?}: expected {expected_audit} audit records, \
                     {expected_notifications} notifications, {expected_tasks} tasks; found {found:?}; \
                     consumer lag: {lag:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A duplicate delivered late must show up too.
        tokio::time::sleep(Duration::from_secs(1)).await;

        let audit = audit_records(stack, name).await.expect("list audit records");
        let acknowledged_order: Vec<(&str, &str)> = audit
            .iter()
            .filter(|record| record.event_type != OCCURRENCE_COMMAND && acknowledged.contains(record.task_id.as_str()))
            .map(|record| (record.event_type.as_str(), record.task_id.as_str()))
            .collect();
        let expected_order: Vec<(&str, &str)> = self.events.iter().map(|(kind, id)| (*kind, id.as_str())).collect();
        assert_eq!(
            acknowledged_order, expected_order,
            "{name}: each acknowledged mutation audited once, in order"
        );
        let commands = audit.iter().filter(|r| r.event_type == OCCURRENCE_COMMAND).count();
        assert_eq!(
            commands,
            self.completed_recurring.len(),
            "{name}: one occurrence command per completion"
        );
        let occurrence_events: Vec<&AuditRecord> = audit
            .iter()
            .filter(|r| r.event_type != OCCURRENCE_COMMAND && !acknowledged.contains(r.task_id.as_str()))
            .collect();
        assert!(
            occurrence_events.iter().all(|r| r.event_type == "task.created"),
            "{name}: nobody touched the occurrences: {occurrence_events:?}"
        );
        assert_eq!(
            occurrence_events.len(),
            self.completed_recurring.len(),
            "{name}: one created occurrence per completion"
        );
        assert_eq!(audit.len(), expected_audit, "{name}: no other audit records");
        let verdict = AuditServiceClient::new(stack.lazy_authed("audit-service", name))
            .verify_audit_chain(VerifyAuditChainRequest {})
            .await
            .expect("verify the chain")
            .into_inner();
        assert!(verdict.valid, "{name}: the audit chain verifies: {verdict:?}");

        let tasks = tasks(stack, name).await.expect("list tasks");
        let mut next_per_series = BTreeMap::<&str, usize>::new();
        for task in tasks.iter().filter(|t| !acknowledged.contains(t.id.as_str())) {
            *next_per_series.entry(task.series_id.as_str()).or_default() += 1;
        }
        for id in &self.completed_recurring {
            assert_eq!(
                next_per_series.get(id.as_str()),
                Some(&1),
                "{name}: exactly one next occurrence of {id}"
            );
        }
        assert_eq!(tasks.len(), expected_tasks, "{name}: no other tasks");

        let notifications = notifications(stack, name).await.expect("list notifications");
        let mut per_task = BTreeMap::<&str, usize>::new();
        for notification in &notifications {
            *per_task.entry(notification.task_id.as_str()).or_default() += 1;
        }
        for id in &self.due_soon {
            assert_eq!(
                per_task.get(id.as_str()),
                Some(&1),
                "{name}: exactly one notification for {id}"
            );
        }
        assert_eq!(
            notifications.len(),
            expected_notifications,
            "{name}: no other notifications"
        );

        Effects {
            audit_records: audit.len(),
            notifications: notifications.len(),
            occurrences: self.completed_recurring.len(),
        }
    }
}

async fn audit_records(stack: &StackClients, user: &str) -> Result<Vec<AuditRecord>, Status> {
    let client = AuditServiceClient::new(stack.lazy_authed("audit-service", user));
    all_pages(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_audit_records(ListAuditRecordsRequest {
                    page_size: 500,
                    page_token,
                    ..ListAuditRecordsRequest::default()
                })
                .await?
                .into_inner();
            Ok((page.records, page.next_page_token))
        }
    })
    .await
}

async fn notifications(stack: &StackClients, user: &str) -> Result<Vec<Notification>, Status> {
    let client = NotificationServiceClient::new(stack.lazy_authed("notification-service", user));
    all_pages(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_notifications(ListNotificationsRequest {
                    page_size: 500,
                    page_token,
                    ..ListNotificationsRequest::default()
                })
                .await?
                .into_inner();
            Ok((page.notifications, page.next_page_token))
        }
    })
    .await
}

async fn tasks(stack: &StackClients, user: &str) -> Result<Vec<Task>, Status> {
    let client = TaskServiceClient::new(stack.lazy_authed("task-api", user));
    all_pages(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_tasks(ListTasksRequest {
                    page_size: 500,
                    page_token,
                    ..ListTasksRequest::default()
                })
                .await?
                .into_inner();
            Ok((page.tasks, page.next_page_token))
        }
    })
    .await
}

/// Follows page tokens to the end.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, Status>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = page(token).await?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}
