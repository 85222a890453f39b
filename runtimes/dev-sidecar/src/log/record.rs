//! Stored records, encoded with prost (compact, and it can grow fields).

use std::collections::HashMap;

/// A published event as its CloudEvent envelope, the way daprd builds it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredEvent {
    /// CloudEvent `id` (`cloudevent.id` metadata, else a new UUID).
    #[prost(string, tag = "1")]
    pub id: String,
    /// CloudEvent `source`: the publishing app id.
    #[prost(string, tag = "2")]
    pub source: String,
    /// CloudEvent `type` (`cloudevent.type`, else `com.dapr.event.sent`).
    #[prost(string, tag = "3")]
    pub event_type: String,
    #[prost(string, tag = "4")]
    pub spec_version: String,
    #[prost(string, tag = "5")]
    pub data_content_type: String,
    #[prost(bytes = "vec", tag = "6")]
    pub data: Vec<u8>,
    #[prost(string, tag = "7")]
    pub topic: String,
    #[prost(string, tag = "8")]
    pub pubsub_name: String,
    /// W3C trace context of the publish call.
    #[prost(string, tag = "9")]
    pub traceparent: String,
    #[prost(string, tag = "10")]
    pub partition_key: String,
    /// When the sidecar accepted it (ms since the epoch).
    #[prost(int64, tag = "11")]
    pub published_at_ms: i64,
    /// Other `cloudevent.*` metadata, as CloudEvent extensions.
    #[prost(map = "string, string", tag = "12")]
    pub extensions: HashMap<String, String>,
    /// Dead letters only: why, from which topic, by which app.
    #[prost(string, tag = "13")]
    pub dead_letter_reason: String,
    #[prost(string, tag = "14")]
    pub original_topic: String,
    #[prost(string, tag = "15")]
    pub failed_app: String,
}

/// A job waiting for its next trigger.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredJob {
    #[prost(string, tag = "1")]
    pub app_id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    /// When it fires next (ms since the epoch).
    #[prost(int64, tag = "3")]
    pub due_ms: i64,
    /// The due time as the app gave it.
    #[prost(string, tag = "4")]
    pub due_time: String,
    #[prost(message, optional, tag = "5")]
    pub data: Option<prost_types::Any>,
    #[prost(string, tag = "6")]
    pub traceparent: String,
    /// What to do when a trigger fails (None: daprd's default).
    #[prost(message, optional, tag = "7")]
    pub failure_policy: Option<todo_core::dapr::common::JobFailurePolicy>,
    /// The schedule as the app gave it (`@every …`); empty for a one-shot job.
    #[prost(string, tag = "8")]
    pub schedule: String,
    /// Time between triggers (ms); 0 for a one-shot job.
    #[prost(int64, tag = "9")]
    pub every_ms: i64,
    /// How many triggers in all; 0 with a schedule: for ever.
    #[prost(uint32, tag = "10")]
    pub repeats: u32,
    /// How many triggers are behind it.
    #[prost(uint32, tag = "11")]
    pub triggered: u32,
}

impl StoredJob {
    /// The job as it stands after the trigger due at `due_ms` is done
    /// (delivered, or given up by its failure policy): due again one
    /// interval after that trigger's scheduled time, as the Scheduler
    /// counts, or nothing once its repeats are used up.
    pub fn after_trigger(&self) -> Option<StoredJob> {
        let triggered = self.triggered + 1;
        let more = self.every_ms > 0 && (self.repeats == 0 || triggered < self.repeats);
        more.then(|| StoredJob {
            due_ms: self.due_ms.saturating_add(self.every_ms),
            triggered,
            ..self.clone()
        })
    }
}
