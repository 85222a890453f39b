//! What an app receives as `data`, by content type, on each delivery path:
//! daprd's rules, so an encoding that real daprd would mangle is mangled
//! here too instead of passing in development and failing in production.
//!
//! daprd stores the published bytes in the CloudEvent JSON: JSON as JSON
//! (re-serialized with sorted keys; invalid JSON becomes a JSON string),
//! `application/octet-stream` as `data_base64`, anything else as a string.
//! On delivery it hands the app `data` only for JSON, text and XML types,
//! and decodes `data_base64` on the single path only: a bulk subscriber
//! gets nothing for octet-stream, and nobody gets anything for other types
//! (`application/protobuf` included).

/// Which AppCallback method carries the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Single,
    Bulk,
}

/// The content type daprd records when the publisher gives none.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain";

/// The `data` daprd would deliver for `data` published as `content_type`.
pub fn delivered(content_type: &str, data: &[u8], path: Path) -> Vec<u8> {
    match Kind::of(content_type) {
        Kind::Json => match serde_json::from_slice::<serde_json::Value>(data) {
            // serde_json's map is ordered by key, as Go's encoder writes it.
            Ok(value) => serde_json::to_vec(&value).unwrap_or_default(),
            Err(_) => serde_json::to_vec(&String::from_utf8_lossy(data)).unwrap_or_default(),
        },
        Kind::Text => data.to_vec(),
        Kind::Binary => match path {
            Path::Single => data.to_vec(),
            Path::Bulk => Vec::new(),
        },
        Kind::Other => Vec::new(),
    }
}

enum Kind {
    Json,
    Text,
    Binary,
    Other,
}

impl Kind {
    fn of(content_type: &str) -> Self {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
            Self::Json
        } else if essence.starts_with("text/") || essence == "application/xml" || essence.ends_with("+xml") {
            Self::Text
        } else if essence == "application/octet-stream" {
            Self::Binary
        } else {
            Self::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_survives_both_paths_as_json() {
        let data = br#"{"b": 1, "a": "x"}"#;
        for path in [Path::Single, Path::Bulk] {
            assert_eq!(delivered("application/json", data, path), br#"{"a":"x","b":1}"#);
        }
        assert_eq!(
            delivered("application/json", b"not json", Path::Single),
            br#""not json""#
        );
    }

    #[test]
    fn binary_survives_only_the_single_path_and_protobuf_neither() {
        let bytes = [0x0a, 0x02, 0xff, 0x00];
        assert_eq!(delivered("application/octet-stream", &bytes, Path::Single), bytes);
        assert!(delivered("application/octet-stream", &bytes, Path::Bulk).is_empty());
        assert!(delivered("application/protobuf", &bytes, Path::Single).is_empty());
        assert!(delivered("application/protobuf", &bytes, Path::Bulk).is_empty());
        assert_eq!(delivered("text/plain", b"hi", Path::Bulk), b"hi");
    }
}
