//! Wrapping published data in a CloudEvent the way daprd does.
//!
//! Metadata keys daprd honours: `cloudevent.id`, `cloudevent.type`,
//! `cloudevent.source`, `cloudevent.traceparent` and any other
//! `cloudevent.<name>` (kept as an extension), and `partitionKey` (the
//! Kafka key, which picks the partition).

use std::collections::HashMap;

use super::log::{StoredEvent, store::PARTITION_EXTENSION};
use crate::log::Log;

/// daprd's default CloudEvent type for published events.
pub const DEFAULT_TYPE: &str = "com.dapr.event.sent";
/// What daprd assumes when the publisher names no content type.
pub use crate::payload::DEFAULT_CONTENT_TYPE;

/// The envelope for one published event.
#[allow(clippy::too_many_arguments)]
pub fn wrap(
    log: &Log,
    app_id: &str,
    pubsub_name: &str,
    topic: &str,
    data: Vec<u8>,
    content_type: &str,
    metadata: &HashMap<String, String>,
    call_traceparent: Option<&str>,
) -> StoredEvent {
    let get = |key: &str| metadata.get(key).filter(|value| !value.is_empty()).cloned();
    let partition_key = get("partitionKey").unwrap_or_default();
    let mut extensions: HashMap<String, String> = metadata
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("cloudevent.")?;
            (!matches!(
                name,
                "id" | "type" | "source" | "traceparent" | "specversion" | "datacontenttype"
            ))
            .then(|| (name.to_owned(), value.clone()))
        })
        .collect();
    extensions.insert(
        PARTITION_EXTENSION.to_owned(),
        log.partition_for(topic, &partition_key).to_string(),
    );
    StoredEvent {
        id: get("cloudevent.id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        source: get("cloudevent.source").unwrap_or_else(|| app_id.to_owned()),
        event_type: get("cloudevent.type").unwrap_or_else(|| DEFAULT_TYPE.to_owned()),
        spec_version: "1.0".to_owned(),
        data_content_type: if content_type.is_empty() {
            DEFAULT_CONTENT_TYPE.to_owned()
        } else {
            content_type.to_owned()
        },
        data,
        topic: topic.to_owned(),
        pubsub_name: pubsub_name.to_owned(),
        traceparent: get("cloudevent.traceparent")
            .or_else(|| call_traceparent.map(str::to_owned))
            .unwrap_or_default(),
        partition_key,
        published_at_ms: chrono::Utc::now().timestamp_millis(),
        extensions,
        dead_letter_reason: String::new(),
        original_topic: String::new(),
        failed_app: String::new(),
    }
}

/// Records the sidecar's own hop: a span for the accepted event, child of
/// the publisher's context, whose context the CloudEvent then carries.
pub fn trace_accept(event: &mut StoredEvent) {
    let span = tracing::info_span!(
        "pubsub.accept",
        otel.name = %format!("{} publish", event.topic),
        otel.kind = "server",
        messaging.system = "dev-sidecar",
        messaging.destination.name = %event.topic,
        messaging.message.id = %event.id,
        messaging.message.type = %event.event_type,
    );
    todo_core::telemetry::set_parent(&span, Some(event.traceparent.as_str()));
    if let Some(traceparent) = todo_core::telemetry::traceparent_of(&span) {
        event.traceparent = traceparent;
    }
}

/// The same event bound for a dead-letter topic, with why it ended there.
pub fn dead_letter(log: &Log, event: &StoredEvent, dead_letter_topic: &str, app_id: &str, reason: &str) -> StoredEvent {
    let mut letter = event.clone();
    letter.original_topic = event.topic.clone();
    letter.topic = dead_letter_topic.to_owned();
    letter.failed_app = app_id.to_owned();
    letter.dead_letter_reason = reason.to_owned();
    letter.extensions.insert(
        PARTITION_EXTENSION.to_owned(),
        log.partition_for(dead_letter_topic, &event.partition_key).to_string(),
    );
    letter
}
