//! Live task events for WatchTasks.
//!
//! Every replica subscribes to `task-events` and passes each event to its
//! own watchers through a broadcast channel; a watcher sees only its user's
//! events. One forwarding task per watcher moves its user's events from the
//! broadcast into the watcher's own buffer and never waits for the client:
//! a client that reads too slowly (or not at all) fills its buffer, which is
//! bounded in bytes, and its stream then ends with ABORTED rather than
//! silently skipping events (it re-lists and watches again). So a stuck
//! client holds at most its buffer, never the broadcast ring every user's
//! events pass through. Watchers are capped per user and per process. On
//! shutdown every forwarding task ends and every stream closes, so the
//! server can drain and exit.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use prost::Message;
use todo_core::proto::v1::{TaskEvent, WatchTasksResponse};
use todo_core::shutdown::CancellationToken;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tonic::Status;

/// Events the broadcast ring keeps for forwarding tasks that have not taken
/// them yet. The tasks never wait on a client, so they lag only when the
/// process is starved of CPU; then the watchers end with ABORTED.
const RING: usize = 1024;

/// How many watchers may be open, and how much each may hold for a slow
/// client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// Open streams per user (one per tab or device).
    pub per_user: usize,
    /// Open streams in this process.
    pub total: usize,
    /// Bytes of events (protobuf size) buffered for one watcher before it
    /// counts as too slow. `total` × this bounds the memory all watchers
    /// hold.
    pub buffer_bytes: usize,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self {
            per_user: 8,
            total: 512,
            // A few hundred typical events, four of the largest.
            buffer_bytes: 128 * 1024,
        }
    }
}

/// Why a new watcher was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchRefused {
    #[error("at most {0} WatchTasks streams per user are open at once; close one first")]
    PerUser(usize),
    #[error("this server has {0} WatchTasks streams open, its limit; try again later or another replica")]
    Total(usize),
    #[error("the server is shutting down")]
    Closed,
}

impl From<WatchRefused> for Status {
    fn from(refused: WatchRefused) -> Self {
        match refused {
            WatchRefused::Closed => Status::unavailable(refused.to_string()),
            _ => Status::resource_exhausted(refused.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct WatchHub {
    sender: broadcast::Sender<Arc<TaskEvent>>,
    closed: CancellationToken,
    limits: WatchLimits,
    open: Arc<Mutex<OpenWatchers>>,
}

#[derive(Default)]
struct OpenWatchers {
    total: usize,
    per_user: HashMap<String, usize>,
}

impl WatchHub {
    pub fn new(limits: WatchLimits) -> Self {
        Self {
            sender: broadcast::channel(RING).0,
            closed: CancellationToken::new(),
            limits,
            open: Arc::default(),
        }
    }

    /// Passes an event to the watchers (none is fine).
    pub fn publish(&self, event: TaskEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// Ends every open stream (at shutdown).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// The stream of `user_id`'s events from now on, until shutdown, or an
    /// error when `user_id` or this process has as many open as allowed.
    pub fn watch(&self, user_id: String) -> Result<WatchStream, WatchRefused> {
        if self.closed.is_cancelled() {
            return Err(WatchRefused::Closed);
        }
        let slot = self.take_slot(&user_id)?;
        let events = self.sender.subscribe();
        let buffered = Arc::new(AtomicUsize::new(0));
        let (out, items) = mpsc::unbounded_channel();
        tokio::spawn(forward(
            events,
            user_id,
            out,
            buffered.clone(),
            self.limits.buffer_bytes,
            self.closed.clone(),
        ));
        Ok(WatchStream {
            items,
            buffered,
            closed: self.closed.clone(),
            _slot: slot,
        })
    }

    fn take_slot(&self, user_id: &str) -> Result<Slot, WatchRefused> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.total >= self.limits.total {
            return Err(WatchRefused::Total(self.limits.total));
        }
        let mine = open.per_user.get(user_id).copied().unwrap_or(0);
        if mine >= self.limits.per_user {
            return Err(WatchRefused::PerUser(self.limits.per_user));
        }
        open.total += 1;
        open.per_user.insert(user_id.to_owned(), mine + 1);
        Ok(Slot {
            user_id: user_id.to_owned(),
            open: self.open.clone(),
        })
    }
}

/// One open watcher, counted until its stream is dropped.
struct Slot {
    user_id: String,
    open: Arc<Mutex<OpenWatchers>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_user.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                open.per_user.remove(&self.user_id);
            }
        }
    }
}

enum Item {
    Event { event: Arc<TaskEvent>, bytes: usize },
    End(Status),
}

/// Moves `user_id`'s events into the watcher's buffer until the client
/// goes, the buffer is full (then a last ABORTED), the ring left the task
/// behind (the same), or the hub closes. It never waits on the client.
async fn forward(
    mut events: broadcast::Receiver<Arc<TaskEvent>>,
    user_id: String,
    out: mpsc::UnboundedSender<Item>,
    buffered: Arc<AtomicUsize>,
    limit: usize,
    closed: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            () = closed.cancelled() => return,
            () = out.closed() => return,
            received = events.recv() => received,
        };
        let item = match received {
            Ok(event) if event.user_id == user_id => {
                let bytes = event.encoded_len();
                if buffered.fetch_add(bytes, Ordering::AcqRel) + bytes > limit {
                    Item::End(Status::aborted(format!(
                        "watcher reads too slowly: more than {limit} bytes of events are waiting; \
                         list again and re-watch"
                    )))
                } else {
                    Item::Event { event, bytes }
                }
            }
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(missed)) => Item::End(Status::aborted(format!(
                "watcher fell behind by {missed} events; list again and re-watch"
            ))),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let end = matches!(item, Item::End(_));
        if out.send(item).is_err() || end {
            return;
        }
    }
}

/// A WatchTasks response stream: the watcher's buffer, read by the server
/// as the client's flow control allows. Dropping it (the client went away)
/// frees the watcher's slot.
pub struct WatchStream {
    items: mpsc::UnboundedReceiver<Item>,
    buffered: Arc<AtomicUsize>,
    closed: CancellationToken,
    _slot: Slot,
}

impl Stream for WatchStream {
    type Item = Result<WatchTasksResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // At shutdown the stream ends even with events still buffered; the
        // forwarding task's exit wakes this poll.
        if self.closed.is_cancelled() {
            return Poll::Ready(None);
        }
        match self.items.poll_recv(cx) {
            Poll::Ready(Some(Item::Event { event, bytes })) => {
                self.buffered.fetch_sub(bytes, Ordering::AcqRel);
                Poll::Ready(Some(Ok(WatchTasksResponse {
                    event: Some((*event).clone()),
                })))
            }
            Poll::Ready(Some(Item::End(status))) => Poll::Ready(Some(Err(status))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn event(user: &str, title: &str) -> TaskEvent {
        TaskEvent {
            user_id: user.into(),
            event_type: "task.created".into(),
            task: Some(todo_core::proto::v1::Task {
                title: title.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn watchers_are_capped_per_user_and_in_total_and_freed_when_dropped() {
        let hub = WatchHub::new(WatchLimits {
            per_user: 2,
            total: 3,
            buffer_bytes: 1024,
        });
        let first = hub.watch("alice".into()).unwrap();
        let _second = hub.watch("alice".into()).unwrap();
        assert_eq!(hub.watch("alice".into()).err(), Some(WatchRefused::PerUser(2)));
        let _bob = hub.watch("bob".into()).unwrap();
        assert_eq!(hub.watch("carol".into()).err(), Some(WatchRefused::Total(3)));
        drop(first);
        assert!(hub.watch("alice".into()).is_ok());
    }

    #[tokio::test]
    async fn a_reader_that_does_not_keep_up_is_ended_once_its_buffer_is_full() {
        let hub = WatchHub::new(WatchLimits {
            per_user: 8,
            total: 8,
            buffer_bytes: 4096,
        });
        let mut slow = hub.watch("alice".into()).unwrap();
        let mut other = hub.watch("bob".into()).unwrap();
        let title = "x".repeat(150);
        for _ in 0..100 {
            hub.publish(event("alice", &title));
            hub.publish(event("bob", "b"));
        }
        // Bob's watcher gets all of his, whatever alice's does.
        for _ in 0..100 {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), other.next()).await;
            assert!(next.unwrap().unwrap().is_ok());
        }
        let mut received = 0;
        let ended = loop {
            match slow.next().await {
                Some(Ok(_)) => received += 1,
                Some(Err(status)) => break status,
                None => panic!("the stream ended without saying why"),
            }
        };
        assert_eq!(ended.code(), tonic::Code::Aborted);
        assert!(
            (10..30).contains(&received),
            "about 4 KiB of 160-byte events: {received}"
        );
        assert!(slow.next().await.is_none());
    }

    #[tokio::test]
    async fn closing_the_hub_ends_every_stream_at_once() {
        let hub = WatchHub::new(WatchLimits::default());
        let mut stream = hub.watch("alice".into()).unwrap();
        hub.publish(event("alice", "buffered"));
        tokio::task::yield_now().await;
        hub.close();
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await;
        assert!(end.unwrap().is_none(), "ends without draining the buffer");
        assert_eq!(hub.watch("alice".into()).err(), Some(WatchRefused::Closed));
    }
}
