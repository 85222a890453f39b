//! Live task events for WatchTasks.
//!
//! Every replica subscribes to `task-events` and passes each event to its
//! own watchers through a broadcast channel; a watcher sees only its user's
//! events. A watcher that falls too far behind is ended with ABORTED rather
//! than silently skipping events; it re-lists and watches again.

use std::sync::Arc;

use todo_core::proto::v1::{TaskEvent, WatchTasksResponse};
use tokio::sync::broadcast;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::Status;

/// Events buffered per watcher before it counts as too slow.
const BUFFER: usize = 4096;

#[derive(Clone)]
pub struct WatchHub {
    sender: broadcast::Sender<Arc<TaskEvent>>,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
        }
    }
}

impl WatchHub {
    /// Passes an event to the watchers (none is fine).
    pub fn publish(&self, event: TaskEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// The stream of `user_id`'s events from now on.
    pub fn watch(&self, user_id: String) -> impl Stream<Item = Result<WatchTasksResponse, Status>> + Send + 'static {
        BroadcastStream::new(self.sender.subscribe()).filter_map(move |item| match item {
            Ok(event) if event.user_id == user_id => Some(Ok(WatchTasksResponse {
                event: Some((*event).clone()),
            })),
            Ok(_) => None,
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
                Some(Err(Status::aborted(format!(
                    "watcher fell behind by {missed} events; list again and re-watch"
                ))))
            }
        })
    }
}
