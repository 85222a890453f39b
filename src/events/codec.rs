//! Encoding and decoding of event envelopes by content type.

use std::sync::OnceLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

/// How an event's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// Binary protobuf: `application/protobuf` (also `application/x-protobuf`).
    Protobuf,
    /// The proto3 JSON mapping: `application/json` or `application/*+json`.
    Json,
}

impl ContentType {
    /// Reads a MIME type as Dapr delivers it (`data_content_type`). Parameters
    /// such as `; charset=utf-8` are ignored. An empty type (or daprd's
    /// `text/plain` for one) means the publisher did not say; JSON starts
    /// with `{`, protobuf almost never does (it would be field 15 of wire
    /// type 3, a deprecated group).
    pub fn detect(mime: &str, data: &[u8]) -> Result<Self, DecodeError> {
        let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/protobuf" | "application/x-protobuf" | "application/octet-stream" => Ok(Self::Protobuf),
            "application/json" | "text/json" => Ok(Self::Json),
            json if json.starts_with("application/") && json.ends_with("+json") => Ok(Self::Json),
            // daprd records `text/plain` for a publish without a content type.
            "" | "text/plain" if data.trim_ascii_start().starts_with(b"{") => Ok(Self::Json),
            "" => Ok(Self::Protobuf),
            _ => Err(DecodeError::UnsupportedContentType(mime.to_owned())),
        }
    }

    /// The MIME type to declare when publishing.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Protobuf => "application/protobuf",
            Self::Json => "application/json",
        }
    }
}

/// An event that cannot be decoded: poison, to be dropped (dead-lettered),
/// never retried.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content type {0:?}: expected application/protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("invalid protobuf {message}: {source}")]
    Protobuf {
        message: &'static str,
        source: prost::DecodeError,
    },
    #[error("invalid proto3 JSON for {message}: {source}")]
    Json {
        message: &'static str,
        source: serde_json::Error,
    },
}

/// Decodes `data` as message `M` in the given encoding. Unknown fields are
/// tolerated in both encodings, so older consumers read newer events.
pub fn decode<M>(content_type: ContentType, data: &[u8]) -> Result<M, DecodeError>
where
    M: Message + Name + Default,
{
    match content_type {
        ContentType::Protobuf => M::decode(data).map_err(|source| DecodeError::Protobuf {
            message: M::NAME,
            source,
        }),
        ContentType::Json => decode_json(data),
    }
}

fn decode_json<M>(data: &[u8]) -> Result<M, DecodeError>
where
    M: Message + Name + Default,
{
    let descriptor = descriptor_pool()
        .get_message_by_name(&M::full_name())
        .expect("every generated message is in the descriptor set");
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let dynamic = DynamicMessage::deserialize_with_options(descriptor, &mut deserializer, &options)
        .and_then(|dynamic| deserializer.end().map(|()| dynamic))
        .map_err(|source| DecodeError::Json {
            message: M::NAME,
            source,
        })?;
    // Both sides share one descriptor, so transcoding cannot fail on a
    // message the JSON decoder accepted; report it as poison if it ever does.
    dynamic.transcode_to::<M>().map_err(|source| DecodeError::Protobuf {
        message: M::NAME,
        source,
    })
}

/// A message the proto3 JSON mapping cannot represent (a timestamp outside
/// 0001-01-01..9999-12-31, say): refused with an error, never a panic.
#[derive(Debug, thiserror::Error)]
#[error("{message} has no proto3 JSON form: {source}")]
pub struct EncodeError {
    message: &'static str,
    source: serde_json::Error,
}

/// Encodes `message` in the proto3 JSON mapping (lowerCamelCase names, enums
/// by name, defaults omitted).
pub fn encode_json<M>(message: &M) -> Result<Vec<u8>, EncodeError>
where
    M: Message + Name,
{
    let descriptor = descriptor_pool()
        .get_message_by_name(&M::full_name())
        .expect("every generated message is in the descriptor set");
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message re-decodes with its own descriptor");
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    dynamic
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .map_err(|source| EncodeError {
            message: M::NAME,
            source,
        })?;
    Ok(out)
}

fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).expect("build.rs writes a valid descriptor set")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{Priority, Task, TaskEvent};

    fn sample_event() -> TaskEvent {
        TaskEvent {
            event_id: "0190f1a2-0000-7000-8000-000000000001".into(),
            event_type: "task.created".into(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            user_id: "alice".into(),
            task: Some(Task {
                id: "t1".into(),
                title: "Pay rent".into(),
                priority: Priority::High as i32,
                tags: vec!["home".into()],
                version: 3,
                ..Task::default()
            }),
            changed_fields: vec!["title".into()],
            task_version: 3,
        }
    }

    #[test]
    fn protobuf_and_json_round_trip_to_the_same_event() {
        let event = sample_event();
        let from_protobuf: TaskEvent = decode(ContentType::Protobuf, &event.encode_to_vec()).unwrap();
        assert_eq!(from_protobuf, event);
        let json = encode_json(&event).unwrap();
        let from_json: TaskEvent = decode(ContentType::Json, &json).unwrap();
        assert_eq!(from_json, event);
    }

    #[test]
    fn hand_written_json_with_unknown_fields_decodes() {
        let json = br#"{
            "eventId": "e1", "event_type": "task.completed", "userId": "bob",
            "occurredAt": "2026-01-31T09:00:00Z",
            "task": {"id": "t9", "priority": "PRIORITY_LOW", "version": "2"},
            "addedInAFutureVersion": {"x": 1}
        }"#;
        let event: TaskEvent = decode(ContentType::Json, json).unwrap();
        assert_eq!(event.event_type, "task.completed");
        assert_eq!(event.user_id, "bob");
        let task = event.task.unwrap();
        assert_eq!(task.priority, Priority::Low as i32);
        assert_eq!(task.version, 2);
        assert_eq!(event.occurred_at.unwrap().seconds, 1_769_850_000);
    }

    #[test]
    fn a_timestamp_past_the_year_9999_is_an_encode_error_not_a_panic() {
        let event = TaskEvent {
            task: Some(Task {
                due_at: Some(prost_types::Timestamp {
                    seconds: 253_402_300_800,
                    nanos: 0,
                }),
                ..Task::default()
            }),
            ..TaskEvent::default()
        };
        let err = encode_json(&event).unwrap_err();
        assert!(err.to_string().contains("TaskEvent"), "{err}");
    }

    #[test]
    fn malformed_input_is_a_decode_error_not_a_panic() {
        assert!(decode::<TaskEvent>(ContentType::Json, b"{\"eventId\": 5}").is_err());
        assert!(decode::<TaskEvent>(ContentType::Json, b"{} trailing").is_err());
        assert!(decode::<TaskEvent>(ContentType::Json, b"\xff\xfe").is_err());
        assert!(decode::<TaskEvent>(ContentType::Protobuf, &[0x0a, 0xff]).is_err());
    }

    #[test]
    fn content_type_detection() {
        assert_eq!(
            ContentType::detect("application/json; charset=utf-8", b"").unwrap(),
            ContentType::Json
        );
        assert_eq!(
            ContentType::detect("application/cloudevents+json", b"").unwrap(),
            ContentType::Json
        );
        assert_eq!(
            ContentType::detect("application/protobuf", b"{").unwrap(),
            ContentType::Protobuf
        );
        assert_eq!(ContentType::detect("", b"  {\"a\":1}").unwrap(), ContentType::Json);
        assert_eq!(ContentType::detect("", &[0x0a, 0x01]).unwrap(), ContentType::Protobuf);
        assert_eq!(
            ContentType::detect("text/plain", b"{\"a\":1}").unwrap(),
            ContentType::Json
        );
        assert!(ContentType::detect("text/plain", b"hello").is_err());
        assert!(ContentType::detect("text/xml", b"<a/>").is_err());
    }
}
