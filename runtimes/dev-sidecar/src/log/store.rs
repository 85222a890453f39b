//! The redb-backed log.
//!
//! Tables: `events` keyed by (topic, partition, offset); `offsets` keyed by
//! (consumer group, topic, partition) holding the next offset to deliver;
//! `jobs` keyed by (app id, job name); `topics` holding each topic's
//! partition count, fixed when the topic is first written.
//!
//! Appends are durable before the publisher hears "accepted": one writer
//! thread takes whatever requests are waiting, writes them in one
//! transaction and commits once (group commit), so many concurrent
//! publishers share each fsync. Offset commits ride along without forcing a
//! sync of their own: losing one in a crash only means a redelivery, which
//! every consumer handles — the same trade Kafka consumers make.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    thread,
};

use prost::Message;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{
    record::{StoredEvent, StoredJob},
    retention::{self, Entry, Retention},
};

const EVENTS: TableDefinition<(&str, u32, u64), &[u8]> = TableDefinition::new("events");
const OFFSETS: TableDefinition<(&str, &str, u32), u64> = TableDefinition::new("offsets");
const JOBS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("jobs");
const TOPICS: TableDefinition<&str, u32> = TableDefinition::new("topics");

/// Requests taken into one transaction at most.
const MAX_GROUP: usize = 256;
/// redb's page cache. Its default (1 GiB) let dev-sidecar's memory grow with
/// the log; the hot part is the heads of the partitions, which fit easily.
const CACHE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log storage: {0}")]
    Storage(String),
    #[error("the log is shutting down")]
    Closed,
}

fn storage(err: impl std::fmt::Display) -> LogError {
    LogError::Storage(err.to_string())
}

enum Write {
    Append {
        events: Vec<StoredEvent>,
        reply: oneshot::Sender<Result<Vec<(u32, u64)>, LogError>>,
    },
    Commit {
        group: String,
        topic: String,
        partition: u32,
        next: u64,
    },
    PutJob {
        job: StoredJob,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    DeleteJob {
        app_id: String,
        name: String,
        reply: oneshot::Sender<Result<bool, LogError>>,
    },
    /// A trigger of `fired` is done: the job moves on to its next trigger
    /// or goes, unless it was rescheduled or deleted meanwhile.
    FinishTrigger {
        fired: StoredJob,
        reply: oneshot::Sender<Result<bool, LogError>>,
    },
    /// Deletes each (topic, partition)'s events below the offset.
    Trim {
        cuts: Vec<(String, u32, u64)>,
        reply: oneshot::Sender<Result<u64, LogError>>,
    },
}

/// Position of every partition: the next offset to be written.
type Heads = HashMap<(String, u32), u64>;

/// A consumer group's position: (group, topic, partition) → next offset.
pub type GroupOffset = ((String, String, u32), u64);

/// A handle on the log; cheap to clone.
#[derive(Clone)]
pub struct Log {
    db: Arc<Database>,
    writes: mpsc::UnboundedSender<Write>,
    heads: Arc<Mutex<Heads>>,
    partitions: u32,
    round_robin: Arc<std::sync::atomic::AtomicU32>,
    /// Woken after every append, so caught-up consumers look again.
    appended: Arc<Notify>,
}

impl Log {
    /// Opens (or creates) the log in `dir`. New topics get `partitions` partitions.
    pub fn open(dir: &Path, partitions: u32) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        let db = Arc::new(open_database(&dir.join("log.redb"))?);
        {
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(EVENTS).map_err(storage)?;
            txn.open_table(OFFSETS).map_err(storage)?;
            txn.open_table(JOBS).map_err(storage)?;
            txn.open_table(TOPICS).map_err(storage)?;
            txn.commit().map_err(storage)?;
        }
        let heads = Arc::new(Mutex::new(load_heads(&db)?));
        let appended = Arc::new(Notify::new());
        let (writes, queue) = mpsc::unbounded_channel();
        let writer = Writer {
            db: db.clone(),
            heads: heads.clone(),
            appended: appended.clone(),
            partitions: partitions.max(1),
        };
        thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(storage)?;
        Ok(Self {
            db,
            writes,
            heads,
            partitions: partitions.max(1),
            round_robin: Arc::default(),
            appended,
        })
    }

    /// Appends events durably, in order; returns each one's (partition, offset).
    pub async fn append(&self, events: Vec<StoredEvent>) -> Result<Vec<(u32, u64)>, LogError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Write::Append { events, reply })
            .map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// Records that `group` has handled `topic`/`partition` up to `next`.
    pub fn commit(&self, group: &str, topic: &str, partition: u32, next: u64) {
        let _ = self.writes.send(Write::Commit {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
            next,
        });
    }

    /// The next offset `group` should get from `topic`/`partition`.
    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<u64, LogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(OFFSETS).map_err(storage)?;
        Ok(table
            .get((group, topic, partition))
            .map_err(storage)?
            .map_or(0, |value| value.value()))
    }

    /// Up to `max` events of `topic`/`partition` from offset `from`.
    pub fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, LogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(EVENTS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table
            .range((topic, partition, from)..(topic, partition, u64::MAX))
            .map_err(storage)?
            .take(max)
        {
            let (key, value) = entry.map_err(storage)?;
            let event = StoredEvent::decode(value.value()).map_err(storage)?;
            out.push((key.value().2, event));
        }
        Ok(out)
    }

    /// How many partitions `topic` has (fixed once the topic exists).
    pub fn partitions_of(&self, topic: &str) -> u32 {
        let heads = self.heads.lock().expect("heads lock");
        let existing = heads.keys().filter(|(t, _)| t == topic).count() as u32;
        if existing > 0 { existing } else { self.partitions }
    }

    /// The partition an event with `key` goes to: the same key always goes
    /// to the same partition (FNV-1a); events without a key spread out.
    pub fn partition_for(&self, topic: &str, key: &str) -> u32 {
        let partitions = self.partitions_of(topic);
        if key.is_empty() {
            return self.round_robin.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % partitions;
        }
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
        });
        (hash % u64::from(partitions)) as u32
    }

    /// Next offset to be written, per (topic, partition).
    pub fn heads(&self) -> Heads {
        self.heads.lock().expect("heads lock").clone()
    }

    /// Committed offsets of every consumer group: (group, topic, partition) → next.
    pub fn all_offsets(&self) -> Result<Vec<GroupOffset>, LogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(OFFSETS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (key, value) = entry.map_err(storage)?;
            let (group, topic, partition) = key.value();
            out.push(((group.to_owned(), topic.to_owned(), partition), value.value()));
        }
        Ok(out)
    }

    /// Waits until something is appended (or a moment passes).
    pub async fn appended(&self) {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), self.appended.notified()).await;
    }

    /// Applies `retention` to every partition (see [`retention`]); returns
    /// how many events went. The plan is made in a read transaction, so
    /// publishers wait only for the deletes.
    pub async fn trim(&self, retention: Retention) -> Result<u64, LogError> {
        let db = self.db.clone();
        let heads = self.heads();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let cuts = tokio::task::spawn_blocking(move || plan_cuts(&db, &heads, retention, now_ms))
            .await
            .map_err(storage)??;
        if cuts.is_empty() {
            return Ok(0);
        }
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Write::Trim { cuts, reply })
            .map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    pub async fn put_job(&self, job: StoredJob) -> Result<(), LogError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Write::PutJob { job, reply })
            .map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// Deletes a job; false when there was none. Deleting a job that is not
    /// there is common (a task completed with no reminders due) and needs
    /// no durable write.
    pub async fn delete_job(&self, app_id: &str, name: &str) -> Result<bool, LogError> {
        if self.job(app_id, name)?.is_none() {
            return Ok(false);
        }
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Write::DeleteJob {
                app_id: app_id.to_owned(),
                name: name.to_owned(),
                reply,
            })
            .map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// A trigger of `fired` (as read before it fired) is done: the job is
    /// due again one interval later or, its repeats used up, deleted; in
    /// the writer, so that a ScheduleJob or DeleteJob that came meanwhile
    /// wins. False when it had changed.
    pub async fn finish_trigger(&self, fired: StoredJob) -> Result<bool, LogError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Write::FinishTrigger { fired, reply })
            .map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    pub fn job(&self, app_id: &str, name: &str) -> Result<Option<StoredJob>, LogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(JOBS).map_err(storage)?;
        table
            .get((app_id, name))
            .map_err(storage)?
            .map(|value| StoredJob::decode(value.value()).map_err(storage))
            .transpose()
    }

    /// Every job due before `before_ms`, without its data: what the
    /// scheduler keeps in memory, read without holding the rest.
    pub fn jobs_due_before(&self, before_ms: i64) -> Result<Vec<StoredJob>, LogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(JOBS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (_, value) = entry.map_err(storage)?;
            let job = StoredJob::decode(value.value()).map_err(storage)?;
            if job.due_ms < before_ms {
                out.push(StoredJob {
                    data: None,
                    due_time: String::new(),
                    ..job
                });
            }
        }
        Ok(out)
    }

    pub fn jobs(&self) -> Result<Vec<StoredJob>, LogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(JOBS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (_, value) = entry.map_err(storage)?;
            out.push(StoredJob::decode(value.value()).map_err(storage)?);
        }
        Ok(out)
    }
}

/// Opens the database file, waiting briefly if a previous instance in this
/// process (a restart in tests) has not let go of it yet.
fn open_database(path: &Path) -> Result<Database, LogError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if std::time::Instant::now() < deadline => {
                thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => return Err(storage(err)),
        }
    }
}

/// Where to cut each partition that some consumer group reads: below the
/// lowest offset any of the topic's groups still needs, within retention.
fn plan_cuts(
    db: &Database,
    heads: &Heads,
    retention: Retention,
    now_ms: i64,
) -> Result<Vec<(String, u32, u64)>, LogError> {
    let txn = db.begin_read().map_err(storage)?;
    let offsets = txn.open_table(OFFSETS).map_err(storage)?;
    let events = txn.open_table(EVENTS).map_err(storage)?;
    let mut committed = HashMap::<(String, u32), Vec<(String, u64)>>::new();
    let mut groups = HashMap::<String, std::collections::BTreeSet<String>>::new();
    for entry in offsets.iter().map_err(storage)? {
        let (key, next) = entry.map_err(storage)?;
        let (group, topic, partition) = key.value();
        groups.entry(topic.to_owned()).or_default().insert(group.to_owned());
        committed
            .entry((topic.to_owned(), partition))
            .or_default()
            .push((group.to_owned(), next.value()));
    }
    let mut cuts = Vec::new();
    for (topic, partition) in heads.keys() {
        // A topic no group reads (a dead-letter topic) is kept whole.
        let Some(readers) = groups.get(topic) else { continue };
        let done = committed.get(&(topic.clone(), *partition));
        // A group that has not committed on this partition needs all of it.
        let floor = readers
            .iter()
            .map(|group| {
                done.and_then(|done| done.iter().find(|(g, _)| g == group))
                    .map_or(0, |(_, next)| *next)
            })
            .min()
            .unwrap_or(0);
        let mut entries = Vec::new();
        for entry in events
            .range((topic.as_str(), *partition, 0)..(topic.as_str(), *partition, u64::MAX))
            .map_err(storage)?
        {
            let (key, value) = entry.map_err(storage)?;
            let offset = key.value().2;
            let bytes = value.value().len() as u64;
            // Only committed events can go, so only theirs ages matter.
            let published_at_ms = if offset < floor {
                StoredEvent::decode(value.value()).map_err(storage)?.published_at_ms
            } else {
                i64::MAX
            };
            entries.push(Entry {
                offset,
                bytes,
                published_at_ms,
            });
        }
        if let Some(below) = retention::cut(&entries, floor, retention, now_ms) {
            cuts.push((topic.clone(), *partition, below));
        }
    }
    Ok(cuts)
}

fn load_heads(db: &Database) -> Result<Heads, LogError> {
    let txn = db.begin_read().map_err(storage)?;
    let topics = txn.open_table(TOPICS).map_err(storage)?;
    let events = txn.open_table(EVENTS).map_err(storage)?;
    let mut heads = HashMap::new();
    for entry in topics.iter().map_err(storage)? {
        let (topic, partitions) = entry.map_err(storage)?;
        let topic = topic.value().to_owned();
        for partition in 0..partitions.value() {
            let last = events
                .range((topic.as_str(), partition, 0)..(topic.as_str(), partition, u64::MAX))
                .map_err(storage)?
                .next_back()
                .transpose()
                .map_err(storage)?
                .map(|(key, _)| key.value().2 + 1)
                .unwrap_or(0);
            heads.insert((topic.clone(), partition), last);
        }
    }
    Ok(heads)
}

struct Writer {
    db: Arc<Database>,
    heads: Arc<Mutex<Heads>>,
    appended: Arc<Notify>,
    partitions: u32,
}

impl Writer {
    fn run(self, mut queue: mpsc::UnboundedReceiver<Write>) {
        while let Some(first) = queue.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            self.write_group(group);
        }
    }

    fn write_group(&self, group: Vec<Write>) {
        // Offset commits and trims need no sync: one lost in a crash is
        // redone (a redelivery, or the next trim).
        let durable = group
            .iter()
            .any(|write| !matches!(write, Write::Commit { .. } | Write::Trim { .. }));
        let mut heads = self.heads.lock().expect("heads lock").clone();
        let result = (|| -> Result<Vec<Option<WriteOutcome>>, LogError> {
            let mut txn = self.db.begin_write().map_err(storage)?;
            if !durable {
                txn.set_durability(Durability::None).map_err(storage)?;
            }
            let mut outcomes = Vec::with_capacity(group.len());
            {
                let mut events = txn.open_table(EVENTS).map_err(storage)?;
                let mut offsets = txn.open_table(OFFSETS).map_err(storage)?;
                let mut jobs = txn.open_table(JOBS).map_err(storage)?;
                let mut topics = txn.open_table(TOPICS).map_err(storage)?;
                for write in &group {
                    outcomes.push(match write {
                        Write::Append { events: batch, .. } => {
                            let mut positions = Vec::with_capacity(batch.len());
                            for event in batch {
                                if topics.get(event.topic.as_str()).map_err(storage)?.is_none() {
                                    topics.insert(event.topic.as_str(), self.partitions).map_err(storage)?;
                                    for partition in 0..self.partitions {
                                        heads.entry((event.topic.clone(), partition)).or_insert(0);
                                    }
                                }
                                let partition = event_partition(event);
                                let head = heads.entry((event.topic.clone(), partition)).or_insert(0);
                                events
                                    .insert(
                                        (event.topic.as_str(), partition, *head),
                                        event.encode_to_vec().as_slice(),
                                    )
                                    .map_err(storage)?;
                                positions.push((partition, *head));
                                *head += 1;
                            }
                            Some(WriteOutcome::Appended(positions))
                        }
                        Write::Commit {
                            group,
                            topic,
                            partition,
                            next,
                        } => {
                            offsets
                                .insert((group.as_str(), topic.as_str(), *partition), *next)
                                .map_err(storage)?;
                            None
                        }
                        Write::PutJob { job, .. } => {
                            jobs.insert((job.app_id.as_str(), job.name.as_str()), job.encode_to_vec().as_slice())
                                .map_err(storage)?;
                            Some(WriteOutcome::Done)
                        }
                        Write::Trim { cuts, .. } => {
                            let mut removed = 0;
                            for (topic, partition, below) in cuts {
                                events
                                    .retain_in(
                                        (topic.as_str(), *partition, 0)..(topic.as_str(), *partition, *below),
                                        |_, _| {
                                            removed += 1;
                                            false
                                        },
                                    )
                                    .map_err(storage)?;
                            }
                            Some(WriteOutcome::Trimmed(removed))
                        }
                        Write::DeleteJob { app_id, name, .. } => {
                            let existed = jobs
                                .remove((app_id.as_str(), name.as_str()))
                                .map_err(storage)?
                                .is_some();
                            Some(WriteOutcome::Changed(existed))
                        }
                        Write::FinishTrigger { fired, .. } => {
                            let key = (fired.app_id.as_str(), fired.name.as_str());
                            let current = jobs
                                .get(key)
                                .map_err(storage)?
                                .map(|value| StoredJob::decode(value.value()))
                                .transpose()
                                .map_err(storage)?;
                            let unchanged = current.as_ref() == Some(fired);
                            if unchanged {
                                match fired.after_trigger() {
                                    Some(next) => jobs.insert(key, next.encode_to_vec().as_slice()).map(|_| ()),
                                    None => jobs.remove(key).map(|_| ()),
                                }
                                .map_err(storage)?;
                            }
                            Some(WriteOutcome::Changed(unchanged))
                        }
                    });
                }
            }
            txn.commit().map_err(storage)?;
            Ok(outcomes)
        })();
        match result {
            Ok(outcomes) => {
                *self.heads.lock().expect("heads lock") = heads;
                for (write, outcome) in group.into_iter().zip(outcomes) {
                    match (write, outcome) {
                        (Write::Append { reply, .. }, Some(WriteOutcome::Appended(positions))) => {
                            let _ = reply.send(Ok(positions));
                        }
                        (Write::PutJob { reply, .. }, _) => {
                            let _ = reply.send(Ok(()));
                        }
                        (
                            Write::DeleteJob { reply, .. } | Write::FinishTrigger { reply, .. },
                            Some(WriteOutcome::Changed(existed)),
                        ) => {
                            let _ = reply.send(Ok(existed));
                        }
                        (Write::Trim { reply, .. }, Some(WriteOutcome::Trimmed(removed))) => {
                            let _ = reply.send(Ok(removed));
                        }
                        _ => {}
                    }
                }
                self.appended.notify_waiters();
            }
            Err(err) => {
                tracing::error!(error = %err, "log write failed");
                for write in group {
                    match write {
                        Write::Append { reply, .. } => {
                            let _ = reply.send(Err(LogError::Storage(err.to_string())));
                        }
                        Write::PutJob { reply, .. } => {
                            let _ = reply.send(Err(LogError::Storage(err.to_string())));
                        }
                        Write::DeleteJob { reply, .. } | Write::FinishTrigger { reply, .. } => {
                            let _ = reply.send(Err(LogError::Storage(err.to_string())));
                        }
                        Write::Trim { reply, .. } => {
                            let _ = reply.send(Err(LogError::Storage(err.to_string())));
                        }
                        Write::Commit { .. } => {}
                    }
                }
            }
        }
    }
}

/// The partition was chosen by the publisher side (see `Log::partition_for`)
/// and travels in the record's extensions.
fn event_partition(event: &StoredEvent) -> u32 {
    event
        .extensions
        .get(PARTITION_EXTENSION)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Extension key carrying the partition an event was assigned.
pub const PARTITION_EXTENSION: &str = "devsidecarpartition";

enum WriteOutcome {
    Appended(Vec<(u32, u64)>),
    Done,
    /// Whether a job was there to delete, or still as it fired.
    Changed(bool),
    Trimmed(u64),
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn event(topic: &str, key: &str, log: &Log, id: &str) -> StoredEvent {
        let mut event = StoredEvent {
            id: id.into(),
            topic: topic.into(),
            partition_key: key.into(),
            ..Default::default()
        };
        event
            .extensions
            .insert(PARTITION_EXTENSION.into(), log.partition_for(topic, key).to_string());
        event
    }

    #[tokio::test]
    async fn appends_survive_a_reopen_and_keep_per_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 4).unwrap();
        let batch: Vec<_> = (0..10).map(|n| event("t", "alice", &log, &format!("e{n}"))).collect();
        let positions = log.append(batch).await.unwrap();
        let partition = positions[0].0;
        assert!(positions.iter().all(|(p, _)| *p == partition), "one key, one partition");
        assert_eq!(
            positions.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        log.commit("app|pubsub", "t", partition, 4);
        // A durable write after the commit makes the commit durable too.
        log.append(vec![event("other", "x", &log, "x")]).await.unwrap();
        drop(log);

        let reopened = Log::open(dir.path(), 4).unwrap();
        assert_eq!(reopened.committed("app|pubsub", "t", partition).unwrap(), 4);
        let rest = reopened.read("t", partition, 4, 100).unwrap();
        assert_eq!(rest.len(), 6);
        assert_eq!(rest[0].1.id, "e4");
        let more = reopened
            .append(vec![event("t", "alice", &reopened, "e10")])
            .await
            .unwrap();
        assert_eq!(more[0], (partition, 10), "offsets continue after a restart");
    }

    #[tokio::test]
    async fn trimming_keeps_what_any_group_still_needs_and_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 1).unwrap();
        let batch: Vec<_> = (0..100).map(|n| event("t", "alice", &log, &format!("e{n}"))).collect();
        log.append(batch).await.unwrap();
        let size = event("t", "alice", &log, "e100").encoded_len() as u64;
        // Two groups read the topic; the slower one is at 60.
        log.commit("fast|pubsub", "t", 0, 100);
        log.commit("slow|pubsub", "t", 0, 60);
        log.append(vec![event("t-dlq", "alice", &log, "dead")]).await.unwrap();
        // By size only (the test's events carry no publish time).
        let keep_ten = Retention {
            max_bytes: 10 * size,
            max_age: Duration::MAX,
        };
        assert_eq!(log.trim(keep_ten).await.unwrap(), 60, "only what both groups committed");
        let left = log.read("t", 0, 0, 1000).unwrap();
        assert_eq!(left.first().map(|(offset, _)| *offset), Some(60));
        assert_eq!(left.len(), 40);
        assert_eq!(
            log.read("t-dlq", 0, 0, 10).unwrap().len(),
            1,
            "a topic no group reads is kept"
        );

        log.commit("slow|pubsub", "t", 0, 100);
        log.append(vec![event("t", "alice", &log, "e100")]).await.unwrap();
        log.trim(keep_ten).await.unwrap();
        let left = log.read("t", 0, 0, 1000).unwrap();
        assert_eq!(left.len(), 10, "the newest within the size limit stay");
        assert_eq!(left.last().map(|(_, event)| event.id.as_str()), Some("e100"));
        drop(log);

        // Offsets go on from where they were after a restart.
        let reopened = Log::open(dir.path(), 1).unwrap();
        let next = reopened
            .append(vec![event("t", "alice", &reopened, "e101")])
            .await
            .unwrap();
        assert_eq!(next[0], (0, 101));
    }

    #[tokio::test]
    async fn concurrent_appends_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 2).unwrap();
        let mut handles = Vec::new();
        for n in 0..50 {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                let e = event("t", &format!("user{n}"), &log, &format!("e{n}"));
                log.append(vec![e]).await.unwrap()
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        let total: usize = (0..2).map(|p| log.read("t", p, 0, 1000).unwrap().len()).sum();
        assert_eq!(total, 50);
    }
}
