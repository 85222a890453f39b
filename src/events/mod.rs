//! Events on the wire: which topics exist, which event types travel on them,
//! and how an envelope is encoded and decoded.
//!
//! Producers publish the proto3 JSON mapping as `application/json`
//! ([`WIRE_FORMAT`]): it is the one encoding real daprd carries intact on
//! both single and bulk delivery (docs/wire-format.md says why). Consumers
//! accept JSON and binary protobuf, chosen by the content type Dapr
//! delivers, so a person can inject a readable event by hand.

mod codec;

pub use codec::{ContentType, DecodeError, EncodeError, decode, encode_json};

/// The encoding every producer here publishes.
pub const WIRE_FORMAT: ContentType = ContentType::Json;

/// `message` in [`WIRE_FORMAT`].
pub fn encode_wire<M>(message: &M) -> Result<Vec<u8>, EncodeError>
where
    M: prost::Message + prost::Name,
{
    encode_json(message)
}

/// Topic names (Kafka topics behind the `pubsub` component). Every topic is
/// keyed by user id.
pub mod topics {
    /// Every change to a task (`TaskEvent`).
    pub const TASK_EVENTS: &str = "task-events";
    /// Commands for task-api (`TaskOccurrenceRequested`).
    pub const TASK_COMMANDS: &str = "task-commands";
    /// Reminders that came due (`ReminderEvent`).
    pub const REMINDERS: &str = "reminders";
    /// Every topic of the system (each has a dead-letter topic besides).
    pub const ALL: [&str; 3] = [TASK_EVENTS, TASK_COMMANDS, REMINDERS];

    /// The dead-letter topic of `topic`: where poison and exhausted events go.
    pub fn dead_letter(topic: &str) -> String {
        format!("{topic}-dlq")
    }
}

/// Event type names: `TaskEvent.event_type`, the CloudEvent `type`, and what
/// subscriptions route on.
pub mod event_types {
    pub const TASK_CREATED: &str = "task.created";
    pub const TASK_UPDATED: &str = "task.updated";
    pub const TASK_COMPLETED: &str = "task.completed";
    pub const TASK_DELETED: &str = "task.deleted";
    pub const TASK_OCCURRENCE_REQUESTED: &str = "task.occurrence.requested";
    pub const REMINDER_DUE_SOON: &str = "reminder.due_soon";

    /// The four types a `TaskEvent` can have.
    pub const TASK_EVENT_TYPES: [&str; 4] = [TASK_CREATED, TASK_UPDATED, TASK_COMPLETED, TASK_DELETED];
}
