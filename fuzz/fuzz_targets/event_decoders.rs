//! Any bytes under any content type: the event decoders answer Ok or Err,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use todo_core::{
    events::{ContentType, decode},
    proto::v1::{ReminderEvent, TaskEvent, TaskOccurrenceRequested},
};

const CONTENT_TYPES: [&str; 7] = [
    "application/protobuf",
    "application/x-protobuf",
    "application/json",
    "application/json; charset=utf-8",
    "application/cloudevents+json",
    "text/plain",
    "",
];

fn decode_all(content_type: ContentType, data: &[u8]) {
    let _ = decode::<TaskEvent>(content_type, data);
    let _ = decode::<ReminderEvent>(content_type, data);
    let _ = decode::<TaskOccurrenceRequested>(content_type, data);
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let mime = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    if let Ok(content_type) = ContentType::detect(mime, data) {
        decode_all(content_type, data);
    }
    decode_all(ContentType::Protobuf, data);
    decode_all(ContentType::Json, data);
});
