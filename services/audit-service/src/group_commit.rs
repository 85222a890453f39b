//! Group commit: the deliveries that arrive while a transaction is in
//! flight are appended together in the next one.
//!
//! daprd's Kafka component (and dev-sidecar, like it) hands an app one
//! bulk batch at a time across all its partitions and topics, so with the
//! bulk subscription each group is one batch. Deliveries that do arrive
//! together (single deliveries, one per partition at a time, or a runtime
//! that overlaps bulk calls) share a transaction instead of queueing for
//! one each. A user's events stay in order because the runtime delivers a
//! partition's next event only after this one is answered.

use todo_core::db::Database;
use tokio::sync::{mpsc, oneshot};

use crate::store::{self, NewRecord};

/// Records per transaction at most.
const MAX_GROUP_RECORDS: usize = 500;

struct Pending {
    records: Vec<NewRecord>,
    appended: oneshot::Sender<sqlx::Result<Vec<bool>>>,
}

/// Why records were not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the group committer has stopped")]
    Stopped,
}

/// Handle to the task that appends groups; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommit {
    /// Starts the committer; it stops once every handle is dropped.
    pub fn start(db: Database) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(db, waiting));
        Self { queue }
    }

    /// Appends `records` in order, in one transaction with whatever else is
    /// waiting; for each, false when it was already in the log (see
    /// [`store::append_all`]).
    pub async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<bool>, AppendError> {
        let (appended, answer) = oneshot::channel();
        self.queue
            .send(Pending { records, appended })
            .map_err(|_| AppendError::Stopped)?;
        Ok(answer.await.map_err(|_| AppendError::Stopped)??)
    }
}

async fn run(db: Database, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = waiting.recv().await {
        let mut group = vec![first];
        let mut records = group[0].records.len();
        while records < MAX_GROUP_RECORDS {
            match waiting.try_recv() {
                Ok(next) => {
                    records += next.records.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        append_group(&db, group).await;
    }
}

/// One transaction for the whole group; if it fails, each delivery again
/// on its own, so that a record the database refuses fails only its own
/// delivery.
async fn append_group(db: &Database, group: Vec<Pending>) {
    let mut lengths = Vec::with_capacity(group.len());
    let mut answers = Vec::with_capacity(group.len());
    let mut all = Vec::new();
    for pending in group {
        lengths.push(pending.records.len());
        all.extend(pending.records);
        answers.push(pending.appended);
    }
    match store::append_all(db, &all).await {
        Ok(appended) => {
            let mut appended = appended.into_iter();
            for (answer, length) in answers.into_iter().zip(lengths) {
                let _ = answer.send(Ok(appended.by_ref().take(length).collect()));
            }
        }
        Err(err) if answers.len() == 1 => {
            let _ = answers.pop().expect("one").send(Err(err));
        }
        Err(err) => {
            tracing::debug!(error = %err, deliveries = answers.len(), "group append failed; appending one by one");
            let mut all = all.into_iter();
            for (answer, length) in answers.into_iter().zip(lengths) {
                let records: Vec<NewRecord> = all.by_ref().take(length).collect();
                let _ = answer.send(store::append_all(db, &records).await);
            }
        }
    }
}
