//! The Dapr Jobs API: jobs that the sidecar's scheduler fires back into the
//! app that scheduled them (`OnJobEvent`), once or a given number of times
//! at a fixed interval.
//!
//! The stable names (`ScheduleJob`, `DeleteJob`) are tried first; a runtime
//! that answers UNIMPLEMENTED gets the `…Alpha1` names from then on.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, SecondsFormat, Utc};
use prost_types::Any;
use tonic::{Code, Status};

use super::{
    common::{JobFailurePolicy, JobFailurePolicyConstant, job_failure_policy::Policy},
    publisher::SidecarClient,
    runtime::{DeleteJobRequest, GetJobRequest, Job, ScheduleJobRequest},
};

/// How long the Scheduler keeps trying a job whose trigger failed (the app
/// down or restarting, or its publish failing): every
/// [`RETRY_INTERVAL_SECS`] for an hour. daprd's default, three tries a
/// second apart and then the one-shot job is gone, would lose a reminder
/// that comes due while reminder-service restarts; an hour covers a
/// restart, a redeploy or a broker outage, and a reminder later than that
/// is past the due date it warns about.
pub const RETRY_INTERVAL_SECS: i64 = 5;
pub const MAX_TRIGGER_RETRIES: u32 = 720;

/// The failure policy every job is scheduled with.
pub fn failure_policy() -> JobFailurePolicy {
    JobFailurePolicy {
        policy: Some(Policy::Constant(JobFailurePolicyConstant {
            interval: Some(prost_types::Duration {
                seconds: RETRY_INTERVAL_SECS,
                nanos: 0,
            }),
            max_retries: Some(MAX_TRIGGER_RETRIES),
        })),
    }
}

/// A job that fires `times` times in all, `every` apart from its due time.
///
/// The Scheduler counts each trigger from the previous one's scheduled
/// time, not from when it was delivered: a first trigger retried for an
/// hour does not move the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    pub every: chrono::Duration,
    pub times: u32,
}

impl Repeat {
    /// The schedule as the Jobs API takes it: `@every` and a Go duration
    /// (whole milliseconds, which both runtimes read exactly).
    pub fn schedule(&self) -> String {
        format!("@every {}ms", self.every.num_milliseconds())
    }
}

/// Schedules and deletes jobs through the sidecar.
#[derive(Debug, Clone)]
pub struct Jobs {
    sidecar: SidecarClient,
    alpha1_only: Arc<AtomicBool>,
}

impl Jobs {
    pub fn new(sidecar: SidecarClient) -> Self {
        Self {
            sidecar,
            alpha1_only: Arc::default(),
        }
    }

    /// Schedules (or, with the same name, replaces) a job that fires once at `due`.
    pub async fn schedule_once(
        &self,
        name: &str,
        due: DateTime<Utc>,
        data: Any,
        traceparent: Option<&str>,
    ) -> Result<(), Status> {
        self.schedule(name, due, None, data, traceparent).await
    }

    /// Schedules (or replaces) a job that fires first at `due`, then as
    /// `repeat` says. Replacing a job starts its count again.
    pub async fn schedule(
        &self,
        name: &str,
        due: DateTime<Utc>,
        repeat: Option<Repeat>,
        data: Any,
        traceparent: Option<&str>,
    ) -> Result<(), Status> {
        let message = ScheduleJobRequest {
            job: Some(Job {
                name: name.to_owned(),
                schedule: repeat.map(|repeat| repeat.schedule()),
                repeats: repeat.map(|repeat| repeat.times),
                due_time: Some(due.to_rfc3339_opts(SecondsFormat::Micros, true)),
                ttl: None,
                data: Some(data),
                failure_policy: Some(failure_policy()),
            }),
            overwrite: true,
        };
        let mut client = self.sidecar.client();
        if !self.alpha1_only.load(Ordering::Relaxed) {
            match client
                .schedule_job(self.sidecar.request(message.clone(), traceparent))
                .await
            {
                Err(status) if status.code() == Code::Unimplemented => self.fall_back(),
                other => return other.map(|_| ()),
            }
        }
        #[allow(deprecated)]
        client
            .schedule_job_alpha1(self.sidecar.request(message, traceparent))
            .await
            .map(|_| ())
    }

    /// Deletes a job; a job that does not exist (fired, or never scheduled)
    /// counts as deleted.
    pub async fn delete(&self, name: &str, traceparent: Option<&str>) -> Result<(), Status> {
        let message = DeleteJobRequest { name: name.to_owned() };
        let mut client = self.sidecar.client();
        let result = if self.alpha1_only.load(Ordering::Relaxed) {
            #[allow(deprecated)]
            client
                .delete_job_alpha1(self.sidecar.request(message, traceparent))
                .await
        } else {
            match client
                .delete_job(self.sidecar.request(message.clone(), traceparent))
                .await
            {
                Err(status) if status.code() == Code::Unimplemented => {
                    self.fall_back();
                    #[allow(deprecated)]
                    client
                        .delete_job_alpha1(self.sidecar.request(message, traceparent))
                        .await
                }
                other => other,
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound || is_missing_job(&status) => Ok(()),
            Err(status) => Err(status),
        }
    }

    /// The data of job `name`, or None when there is no such job (it
    /// fired for the last time, was deleted, or never existed).
    pub async fn get(&self, name: &str) -> Result<Option<Any>, Status> {
        let message = GetJobRequest { name: name.to_owned() };
        let mut client = self.sidecar.client();
        let result = if self.alpha1_only.load(Ordering::Relaxed) {
            #[allow(deprecated)]
            client.get_job_alpha1(self.sidecar.request(message, None)).await
        } else {
            match client.get_job(self.sidecar.request(message.clone(), None)).await {
                Err(status) if status.code() == Code::Unimplemented => {
                    self.fall_back();
                    #[allow(deprecated)]
                    client.get_job_alpha1(self.sidecar.request(message, None)).await
                }
                other => other,
            }
        };
        match result {
            Ok(response) => Ok(response.into_inner().job.and_then(|job| job.data)),
            Err(status) if status.code() == Code::NotFound || is_missing_job(&status) => Ok(None),
            Err(status) => Err(status),
        }
    }

    fn fall_back(&self) {
        if !self.alpha1_only.swap(true, Ordering::Relaxed) {
            tracing::info!("sidecar lacks the stable Jobs API; using the Alpha1 names");
        }
    }
}

/// daprd reports a missing job with an error message rather than NOT_FOUND
/// in some versions.
fn is_missing_job(status: &Status) -> bool {
    let message = status.message().to_ascii_lowercase();
    message.contains("not found") || message.contains("does not exist")
}
