//! Any bytes as an AppCallback delivery, single or bulk: turned into
//! delivered events, their trace context followed and their payload
//! decoded, as every consumer does before its own logic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use todo_core::{
    dapr::{
        app::DeliveredEvent,
        runtime::{TopicEventBulkRequest, TopicEventRequest},
    },
    events::{ContentType, decode},
    proto::v1::{ReminderEvent, TaskEvent},
    telemetry,
};

fn consume(event: DeliveredEvent) {
    let span = tracing::info_span!("fuzz");
    telemetry::set_parent(&span, event.traceparent.as_deref());
    if let Ok(content_type) = ContentType::detect(&event.content_type, &event.data) {
        let _ = decode::<TaskEvent>(content_type, &event.data);
        let _ = decode::<ReminderEvent>(content_type, &event.data);
    }
}

fuzz_target!(|input: &[u8]| {
    if let Ok(request) = TopicEventRequest::decode(input) {
        consume(DeliveredEvent::from(request));
    }
    if let Ok(bulk) = TopicEventBulkRequest::decode(input) {
        for entry in bulk.entries {
            if let Some(event) = DeliveredEvent::from_bulk_entry(&bulk.topic, &bulk.path, entry) {
                consume(event);
            }
        }
    }
});
