//! Live task events for WatchTasks.
//!
//! Every replica subscribes to `task-events` and passes each event to its
//! own watchers through a broadcast channel; a watcher sees only its user's
//! events. A watcher that falls too far behind is ended with ABORTED rather
//! than silently skipping events; it re-lists and watches again. On
//! shutdown every stream ends, so the server can drain and exit.

use std::sync::Arc;

use todo_core::proto::v1::{TaskEvent, WatchTasksResponse};
use todo_core::shutdown::CancellationToken;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Events buffered per watcher before it counts as too slow.
const BUFFER: usize = 4096;

#[derive(Clone)]
pub struct WatchHub {
    sender: broadcast::Sender<Arc<TaskEvent>>,
    closed: CancellationToken,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            closed: CancellationToken::new(),
        }
    }
}

impl WatchHub {
    /// Passes an event to the watchers (none is fine).
    pub fn publish(&self, event: TaskEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// Ends every open stream (at shutdown).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// The stream of `user_id`'s events from now on, until shutdown. A
    /// forwarding task filters for the user; it ends when the client goes
    /// away or the hub closes.
    pub fn watch(&self, user_id: String) -> ReceiverStream<Result<WatchTasksResponse, Status>> {
        let mut events = self.sender.subscribe();
        let closed = self.closed.clone();
        let (out, stream) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    () = closed.cancelled() => return,
                    () = out.closed() => return,
                    item = events.recv() => item,
                };
                let message = match item {
                    Ok(event) if event.user_id == user_id => Ok(WatchTasksResponse {
                        event: Some((*event).clone()),
                    }),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => Err(Status::aborted(format!(
                        "watcher fell behind by {missed} events; list again and re-watch"
                    ))),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let stop = message.is_err();
                if out.send(message).await.is_err() || stop {
                    return;
                }
            }
        });
        ReceiverStream::new(stream)
    }
}
