//! The durable jobs scheduler: one-shot jobs stored in the log's `jobs`
//! table, fired into the app that scheduled them through `OnJobEvent`
//! (`OnJobEventAlpha1` for older apps). Jobs that came due while the sidecar
//! was down fire as soon as it is back.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use todo_core::{dapr::runtime::JobEventRequest, shutdown::CancellationToken};
use tokio::sync::Notify;
use tonic::Code;

use crate::{
    apps::AppClients,
    log::{Log, StoredJob},
};

/// Attempts per firing before the job is given up (Dapr's default policy:
/// a few retries a second apart). An app that cannot be reached at all does
/// not use attempts up: the job waits for it.
const ATTEMPTS: u32 = 3;
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Reads a Dapr `dueTime`: an RFC 3339 instant, or a Go duration from now
/// (`90s`, `1h30m`, `250ms`).
pub fn parse_due_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let mut total_nanos: i128 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("dueTime is empty".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("dueTime {text:?}: expected RFC 3339 or a duration"))?;
        let unit_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("dueTime {text:?}: unknown unit {unit:?}")),
        };
        total_nanos += (number * nanos_per) as i128;
        rest = next;
    }
    let nanos = i64::try_from(total_nanos).map_err(|_| format!("dueTime {text:?} is too far away"))?;
    now.checked_add_signed(chrono::Duration::nanoseconds(nanos))
        .ok_or_else(|| format!("dueTime {text:?} is too far away"))
}

/// Wakes the scheduler when jobs change.
#[derive(Clone, Default)]
pub struct JobsSignal(Arc<Notify>);

impl JobsSignal {
    pub fn changed(&self) {
        self.0.notify_one();
    }
}

pub struct Scheduler {
    pub log: Log,
    pub apps: AppClients,
    pub signal: JobsSignal,
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        let in_flight: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
        loop {
            let jobs = match self.log.jobs() {
                Ok(jobs) => jobs,
                Err(err) => {
                    tracing::error!(error = %err, "reading jobs failed");
                    Vec::new()
                }
            };
            let now = Utc::now().timestamp_millis();
            let mut next_due: Option<i64> = None;
            for job in jobs {
                let key = (job.app_id.clone(), job.name.clone());
                if in_flight.lock().expect("lock").contains(&key) {
                    continue;
                }
                if job.due_ms <= now {
                    in_flight.lock().expect("lock").insert(key.clone());
                    let fire = Fire {
                        log: self.log.clone(),
                        apps: self.apps.clone(),
                        in_flight: in_flight.clone(),
                        signal: self.signal.clone(),
                    };
                    tokio::spawn(fire.run(job, key, shutdown.clone()));
                } else {
                    next_due = Some(next_due.map_or(job.due_ms, |due| due.min(job.due_ms)));
                }
            }
            let wait = next_due.map_or(Duration::from_secs(3600), |due| {
                Duration::from_millis(u64::try_from(due - now).unwrap_or(0))
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.signal.0.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

struct Fire {
    log: Log,
    apps: AppClients,
    in_flight: Arc<Mutex<HashSet<(String, String)>>>,
    signal: JobsSignal,
}

impl Fire {
    async fn run(self, job: StoredJob, key: (String, String), shutdown: CancellationToken) {
        let request = JobEventRequest {
            name: job.name.clone(),
            data: job.data.clone(),
            method: format!("job/{}", job.name),
            content_type: String::new(),
            http_extension: None,
        };
        let mut attempts = 0;
        let mut wait_for_app = Duration::from_millis(200);
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
                Err(status)
                    if matches!(status.code(), Code::Unavailable | Code::Unknown) && is_connect_error(&status) =>
                {
                    tracing::debug!(app = %job.app_id, job = %job.name, "app unreachable; job waits");
                    tokio::time::sleep(wait_for_app).await;
                    wait_for_app = (wait_for_app * 2).min(Duration::from_secs(5));
                }
                Err(status) => {
                    attempts += 1;
                    tracing::warn!(app = %job.app_id, job = %job.name, attempt = attempts, error = %status, "job callback failed");
                    if attempts >= ATTEMPTS {
                        break false;
                    }
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
            }
        };
        if !delivered {
            tracing::warn!(app = %job.app_id, job = %job.name, "job given up after {ATTEMPTS} attempts");
        }
        // Remove it unless it was rescheduled while firing.
        match self.log.job(&job.app_id, &job.name) {
            Ok(Some(current)) if current.due_ms == job.due_ms && current.data == job.data => {
                let _ = self.log.delete_job(&job.app_id, &job.name).await;
            }
            _ => {}
        }
        self.in_flight.lock().expect("lock").remove(&key);
        self.signal.changed();
    }
}

/// True when the app could not be reached at all, or its connection broke
/// mid-call (as opposed to answering with an error). Apps never answer a
/// business outcome with UNAVAILABLE, so that code always means "not there".
pub fn is_connect_error(status: &tonic::Status) -> bool {
    if status.code() == Code::Unavailable {
        return true;
    }
    let text = format!("{status:?}").to_ascii_lowercase();
    status.code() == Code::Unknown
        && [
            "connect",
            "transport",
            "refused",
            "broken pipe",
            "reset",
            "h2 protocol",
            "closed",
        ]
        .iter()
        .any(|needle| text.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
