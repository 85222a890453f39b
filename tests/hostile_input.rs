//! Property tests over hostile input: whatever bytes or text arrive, the
//! decoders, the content-type detection, page tokens and token verification
//! answer with an error, never a panic.

use std::time::Duration;

use proptest::prelude::*;
use todo_core::{
    auth::JwtVerifier,
    config::AuthConfig,
    events::{ContentType, decode},
    pagination,
    proto::v1::{ReminderEvent, TaskEvent, TaskOccurrenceRequested},
};

fn verifier() -> JwtVerifier {
    JwtVerifier::from_config(&AuthConfig {
        jwt_secret: Some("secret".into()),
        jwks_file: None,
        jwks_url: None,
        jwks_refresh: Duration::from_secs(300),
        issuer: Some("issuer".into()),
        audience: Some("aud".into()),
        leeway_secs: 0,
        development: false,
        rate_limit: Default::default(),
    })
    .unwrap()
}

/// JSON-ish text: braces, quotes and field names the decoders know.
fn jsonish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(":".to_owned()),
            Just(",".to_owned()),
            Just("\"eventId\"".to_owned()),
            Just("\"task\"".to_owned()),
            Just("\"dueAt\"".to_owned()),
            Just("\"priority\"".to_owned()),
            Just("\"PRIORITY_HIGH\"".to_owned()),
            Just("\"9999-12-31T23:59:59Z\"".to_owned()),
            Just("1e400".to_owned()),
            Just("-0".to_owned()),
            Just("null".to_owned()),
            "\"[^\"]{0,8}\"",
            "[0-9]{1,20}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn protobuf_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<TaskEvent>(ContentType::Protobuf, &bytes);
        let _ = decode::<ReminderEvent>(ContentType::Protobuf, &bytes);
        let _ = decode::<TaskOccurrenceRequested>(ContentType::Protobuf, &bytes);
    }

    #[test]
    fn json_decoders_never_panic(text in jsonish(), raw in proptest::collection::vec(any::<u8>(), 0..256)) {
        for input in [text.as_bytes(), raw.as_slice()] {
            let _ = decode::<TaskEvent>(ContentType::Json, input);
            let _ = decode::<ReminderEvent>(ContentType::Json, input);
            let _ = decode::<TaskOccurrenceRequested>(ContentType::Json, input);
        }
    }

    #[test]
    fn content_type_detection_never_panics(mime in ".{0,64}", data in proptest::collection::vec(any::<u8>(), 0..16)) {
        let _ = ContentType::detect(&mime, &data);
    }

    #[test]
    fn page_tokens_never_panic(token in ".{0,200}") {
        let _ = pagination::decode::<(i64, String)>(&token);
    }

    #[test]
    fn token_verification_never_panics(token in "[A-Za-z0-9_.=-]{0,300}") {
        prop_assert!(verifier().verify(&token).is_err());
    }
}
