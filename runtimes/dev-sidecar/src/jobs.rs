//! The durable jobs scheduler: jobs stored in the log's `jobs` table, fired
//! into the app that scheduled them through `OnJobEvent` (`OnJobEventAlpha1`
//! for older apps), once at their due time or, with an `@every` schedule,
//! again each interval after it for as many repeats as they ask. Jobs that
//! came due while the sidecar was down fire as soon as it is back.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use todo_core::{
    dapr::{
        common::{JobFailurePolicy, job_failure_policy::Policy},
        runtime::JobEventRequest,
    },
    shutdown::CancellationToken,
};
use tokio::sync::Notify;
use tonic::Code;

use crate::{
    apps::AppClients,
    log::{Log, StoredJob},
};

/// When a trigger fails (the app answers an error or cannot be reached), a
/// job follows its failure policy, as the Dapr Scheduler does: without one,
/// daprd's default of three retries a second apart, then the job is gone.
fn retry_plan(policy: Option<&JobFailurePolicy>) -> (Duration, Option<u32>) {
    const DEFAULT: (Duration, Option<u32>) = (Duration::from_secs(1), Some(3));
    match policy.and_then(|policy| policy.policy.as_ref()) {
        None => DEFAULT,
        Some(Policy::Drop(_)) => (Duration::ZERO, Some(0)),
        Some(Policy::Constant(constant)) => {
            let interval = constant
                .interval
                .and_then(|interval| Duration::try_from(interval).ok())
                .unwrap_or(Duration::from_secs(1));
            (interval, constant.max_retries)
        }
    }
}

/// Reads a Dapr `dueTime`: an RFC 3339 instant, or a Go duration from now
/// (`90s`, `1h30m`, `250ms`).
pub fn parse_due_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let after = parse_go_duration(text).map_err(|err| format!("dueTime is not RFC 3339, nor a duration: {err}"))?;
    now.checked_add_signed(after)
        .ok_or_else(|| format!("dueTime {text:?} is too far away"))
}

/// Reads a job's `schedule` of the one form dev-sidecar runs, `@every`
/// and a Go duration (the Scheduler also takes six-field cron lines and
/// `@daily`-style descriptors); the interval between triggers.
pub fn parse_schedule(text: &str) -> Result<chrono::Duration, ScheduleError> {
    let every = text
        .trim()
        .strip_prefix("@every ")
        .ok_or_else(|| ScheduleError::Unsupported(text.to_owned()))?;
    let interval = parse_go_duration(every).map_err(|err| ScheduleError::Invalid(format!("schedule {err}")))?;
    if interval <= chrono::Duration::zero() {
        return Err(ScheduleError::Invalid(format!(
            "schedule {text:?}: the interval must be positive"
        )));
    }
    Ok(interval)
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("dev-sidecar runs `@every <duration>` schedules only, not {0:?}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

/// A Go `time.ParseDuration` string of non-negative parts (`1h30m`, `1.5s`).
fn parse_go_duration(text: &str) -> Result<chrono::Duration, String> {
    let mut total_nanos: i128 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!("{text:?} is empty"));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a duration such as 90s or 1h30m"))?;
        let unit_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("{text:?}: unknown unit {unit:?}")),
        };
        total_nanos += (number * nanos_per) as i128;
        rest = next;
    }
    i64::try_from(total_nanos)
        .map(chrono::Duration::nanoseconds)
        .map_err(|_| format!("{text:?} is too far away"))
}

type JobKey = (String, String);

/// Tells the scheduler which jobs changed (scheduled, rescheduled, deleted
/// or fired); it re-reads just those from the store, which stays the truth.
#[derive(Clone, Default)]
pub struct JobsSignal(Arc<Changes>);

#[derive(Default)]
struct Changes {
    pending: Mutex<Vec<JobKey>>,
    wake: Notify,
}

impl JobsSignal {
    pub fn changed(&self, app_id: &str, name: &str) {
        self.0
            .pending
            .lock()
            .expect("lock")
            .push((app_id.to_owned(), name.to_owned()));
        self.0.wake.notify_one();
    }

    fn take(&self) -> Vec<JobKey> {
        std::mem::take(&mut *self.0.pending.lock().expect("lock"))
    }
}

/// How far ahead the in-memory timetable holds jobs. Jobs due later stay
/// only on disk: reminder-service keeps a job for every task with a due
/// date, and a timetable of all of them (a quarter of a million after the
/// full bench) cost about 100 MB. Every half horizon the table is read
/// once for what comes due next.
const HORIZON_MS: i64 = 10 * 60 * 1000;

/// The stored jobs due before `loaded_until`, by due time, kept in memory so
/// that a change costs a lookup, not a scan of all jobs. A job is either
/// here or due at or after `loaded_until`; [`Self::refill`] moves that
/// bound on before it is reached.
struct Timetable {
    by_due: BTreeSet<(i64, JobKey)>,
    due_of: HashMap<JobKey, i64>,
    loaded_until: i64,
    next_refill: i64,
}

impl Default for Timetable {
    fn default() -> Self {
        Self {
            by_due: BTreeSet::new(),
            due_of: HashMap::new(),
            // Nothing loaded yet: the first refill reads the table.
            loaded_until: i64::MIN,
            next_refill: i64::MIN,
        }
    }
}

impl Timetable {
    /// A job was stored or rescheduled: kept if it is due within what is
    /// loaded, else left to the refill that reaches it.
    fn set(&mut self, key: JobKey, due_ms: i64) {
        self.remove(&key);
        if due_ms < self.loaded_until {
            self.due_of.insert(key.clone(), due_ms);
            self.by_due.insert((due_ms, key));
        }
    }

    fn remove(&mut self, key: &JobKey) {
        if let Some(old) = self.due_of.remove(key) {
            self.by_due.remove(&(old, key.clone()));
        }
    }

    /// When the next refill is due: half a horizon before the loaded part
    /// runs out, or sooner after a failed one.
    fn refill_at(&self) -> i64 {
        self.next_refill
    }

    /// After a failed refill: try again at `at`, keeping what is loaded
    /// (every job due before the old bound is still here).
    fn retry_refill_at(&mut self, at: i64) {
        self.next_refill = at;
    }

    /// Replaces what is loaded with `jobs`, every stored job due before
    /// `until`, read after every change already applied here.
    fn refill(&mut self, jobs: Vec<StoredJob>, until: i64) {
        self.by_due.clear();
        self.due_of.clear();
        self.loaded_until = until;
        self.next_refill = until.saturating_sub(HORIZON_MS / 2);
        for job in jobs {
            self.set((job.app_id, job.name), job.due_ms);
        }
    }

    /// Takes out every job due at `now`.
    fn pop_due(&mut self, now_ms: i64) -> Vec<JobKey> {
        let mut due = Vec::new();
        while let Some(first) = self.by_due.first() {
            if first.0 > now_ms {
                break;
            }
            let (_, key) = self.by_due.pop_first().expect("not empty");
            self.due_of.remove(&key);
            due.push(key);
        }
        due
    }

    fn first_due(&self) -> Option<i64> {
        self.by_due.first().map(|(due, _)| *due)
    }

    /// When to look again: the next job, or the next refill.
    fn next_wake(&self) -> i64 {
        self.first_due().unwrap_or(i64::MAX).min(self.refill_at())
    }
}

pub struct Scheduler {
    pub log: Log,
    pub apps: AppClients,
    pub signal: JobsSignal,
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        let in_flight: Arc<Mutex<HashSet<JobKey>>> = Arc::default();
        let mut timetable = Timetable::default();
        loop {
            let now = Utc::now().timestamp_millis();
            if now >= timetable.refill_at() {
                // Before the signals: a change after this read is signalled
                // after it, and applied next.
                let until = now + HORIZON_MS;
                match self.log.jobs_due_before(until) {
                    Ok(jobs) => timetable.refill(jobs, until),
                    Err(err) => {
                        // What is loaded still fires; the read is tried again in a second.
                        tracing::error!(error = %err, "reading jobs failed");
                        timetable.retry_refill_at(now + 1000);
                    }
                }
            }
            for key in self.signal.take() {
                match self.log.job(&key.0, &key.1) {
                    Ok(Some(job)) => timetable.set(key, job.due_ms),
                    Ok(None) => timetable.remove(&key),
                    Err(err) => tracing::error!(error = %err, "reading a job failed"),
                }
            }
            let now = Utc::now().timestamp_millis();
            for key in timetable.pop_due(now) {
                // Firing already: when it is done, it signals a change and
                // the job is read again (it may have been rescheduled).
                if !in_flight.lock().expect("lock").insert(key.clone()) {
                    continue;
                }
                let job = match self.log.job(&key.0, &key.1) {
                    Ok(Some(job)) => job,
                    _ => {
                        in_flight.lock().expect("lock").remove(&key);
                        continue;
                    }
                };
                let fire = Fire {
                    log: self.log.clone(),
                    apps: self.apps.clone(),
                    in_flight: in_flight.clone(),
                    signal: self.signal.clone(),
                };
                tokio::spawn(fire.run(job, key, shutdown.clone()));
            }
            let wait = Duration::from_millis(u64::try_from(timetable.next_wake() - now).unwrap_or(0));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.signal.0.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

struct Fire {
    log: Log,
    apps: AppClients,
    in_flight: Arc<Mutex<HashSet<JobKey>>>,
    signal: JobsSignal,
}

impl Fire {
    async fn run(self, job: StoredJob, key: JobKey, shutdown: CancellationToken) {
        let request = JobEventRequest {
            name: job.name.clone(),
            data: job.data.clone(),
            method: format!("job/{}", job.name),
            content_type: String::new(),
            http_extension: None,
        };
        let (interval, max_retries) = retry_plan(job.failure_policy.as_ref());
        let mut retries = 0;
        let delivered = loop {
            if shutdown.is_cancelled() {
                // Still stored: it fires after the restart.
                self.in_flight.lock().expect("lock").remove(&key);
                return;
            }
            match self
                .apps
                .on_job_event(&job.app_id, request.clone(), &job.traceparent)
                .await
            {
                Ok(()) => break true,
                // The Scheduler takes NOT_FOUND from the app as done.
                Err(status) if status.code() == Code::NotFound => break true,
                Err(status) => {
                    tracing::warn!(app = %job.app_id, job = %job.name, retries, error = %status, "job trigger failed");
                    if max_retries.is_some_and(|max| retries >= max) {
                        break false;
                    }
                    retries += 1;
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        };
        if !delivered {
            tracing::warn!(app = %job.app_id, job = %job.name, "trigger given up: its failure policy ran out");
        }
        // On to its next trigger, or gone; unless it was rescheduled while firing.
        if let Err(err) = self.log.finish_trigger(job).await {
            tracing::error!(app = %key.0, job = %key.1, error = %err, "recording a trigger failed; it fires again");
        }
        self.in_flight.lock().expect("lock").remove(&key);
        self.signal.changed(&key.0, &key.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> JobKey {
        ("app".into(), name.into())
    }

    fn stored(name: &str, due_ms: i64) -> StoredJob {
        StoredJob {
            app_id: "app".into(),
            name: name.into(),
            due_ms,
            ..StoredJob::default()
        }
    }

    #[test]
    fn the_timetable_fires_in_due_order_and_follows_reschedules() {
        let mut timetable = Timetable::default();
        timetable.refill(Vec::new(), HORIZON_MS);
        timetable.set(key("late"), 300);
        timetable.set(key("early"), 100);
        timetable.set(key("moved"), 50);
        timetable.set(key("moved"), 200);
        timetable.set(key("gone"), 150);
        timetable.remove(&key("gone"));
        assert_eq!(timetable.first_due(), Some(100));
        assert_eq!(timetable.pop_due(99), Vec::<JobKey>::new());
        assert_eq!(timetable.pop_due(250), vec![key("early"), key("moved")]);
        assert_eq!(timetable.first_due(), Some(300));
        assert_eq!(timetable.pop_due(1_000), vec![key("late")]);
        assert_eq!(timetable.first_due(), None);
    }

    #[test]
    fn jobs_beyond_the_horizon_wait_on_disk_for_the_refill_that_reaches_them() {
        let mut timetable = Timetable::default();
        assert_eq!(timetable.refill_at(), i64::MIN, "the first pass reads the table");
        timetable.refill(vec![stored("soon", 1_000)], HORIZON_MS);
        timetable.set(key("far"), 3 * HORIZON_MS);
        timetable.set(key("soon-moved-far"), 2_000);
        timetable.set(key("soon-moved-far"), 5 * HORIZON_MS);
        assert_eq!(
            timetable.due_of.len(),
            1,
            "only what comes due within the horizon is in memory"
        );
        assert_eq!(timetable.next_wake(), 1_000);
        assert_eq!(timetable.pop_due(1_000), vec![key("soon")]);
        // Nothing loaded is due: wake for the refill, half a horizon early.
        assert_eq!(timetable.next_wake(), HORIZON_MS / 2);
        // A refill that failed is tried again soon, keeping what is loaded.
        timetable.retry_refill_at(2_000);
        assert_eq!(timetable.next_wake(), 2_000);
        // The refill reads what the store holds by then.
        timetable.refill(vec![stored("far", 3 * HORIZON_MS)], 3 * HORIZON_MS + 1);
        assert_eq!(timetable.pop_due(3 * HORIZON_MS), vec![key("far")]);
    }

    #[test]
    fn due_times_in_both_formats() {
        let now = DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_due_time("2027-01-02T03:04:05.5Z", now).unwrap().to_rfc3339(),
            "2027-01-02T03:04:05.500+00:00"
        );
        assert_eq!(
            parse_due_time("1h30m", now).unwrap(),
            now + chrono::Duration::minutes(90)
        );
        assert_eq!(
            parse_due_time("250ms", now).unwrap(),
            now + chrono::Duration::milliseconds(250)
        );
        assert_eq!(
            parse_due_time("1.5s", now).unwrap(),
            now + chrono::Duration::milliseconds(1500)
        );
        assert!(parse_due_time("tomorrow", now).is_err());
        assert!(parse_due_time("5d", now).is_err());
        assert!(parse_due_time("", now).is_err());
        assert!(parse_due_time("99999999999999h", now).is_err());
    }

    #[test]
    fn schedules_of_the_every_form() {
        assert_eq!(parse_schedule("@every 23h"), Ok(chrono::Duration::hours(23)));
        assert_eq!(parse_schedule("@every 82800000ms"), Ok(chrono::Duration::hours(23)));
        assert!(matches!(
            parse_schedule("0 30 * * * *"),
            Err(ScheduleError::Unsupported(_))
        ));
        assert!(matches!(parse_schedule("@daily"), Err(ScheduleError::Unsupported(_))));
        assert!(matches!(parse_schedule("@every 0s"), Err(ScheduleError::Invalid(_))));
        assert!(matches!(parse_schedule("@every 1d"), Err(ScheduleError::Invalid(_))));
    }

    #[test]
    fn a_repeating_job_counts_each_trigger_from_the_last_ones_scheduled_time() {
        let job = StoredJob {
            due_ms: 1_000,
            every_ms: 500,
            repeats: 3,
            ..stored("twice-more", 1_000)
        };
        let second = job.after_trigger().unwrap();
        assert_eq!((second.due_ms, second.triggered), (1_500, 1));
        let third = second.after_trigger().unwrap();
        assert_eq!((third.due_ms, third.triggered), (2_000, 2));
        assert_eq!(third.after_trigger(), None, "three triggers in all");
        assert_eq!(stored("once", 1_000).after_trigger(), None);
        let forever = StoredJob {
            every_ms: 10,
            ..stored("forever", 0)
        };
        assert_eq!(forever.after_trigger().unwrap().due_ms, 10);
    }
}
