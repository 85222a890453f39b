//! What every AppCallback server shares.
//!
//! A handler says what happened to an event with an [`Outcome`]; daprd (and
//! dev-sidecar) act on the status: SUCCESS commits the offset, RETRY
//! redelivers with backoff and dead-letters when retries run out, DROP
//! dead-letters at once. A business outcome is never a gRPC error: an error
//! status is treated like RETRY by daprd and would hide poison behind retries.

use secrecy::{ExposeSecret, SecretString};
use tonic::{Status, metadata::MetadataMap};

use super::{
    API_TOKEN_HEADER,
    runtime::{
        BulkSubscribeConfig, TopicEventResponse, TopicRoutes, TopicRule, TopicSubscription,
        topic_event_response::TopicEventResponseStatus,
    },
};
use crate::events::topics;

/// What a handler did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done, including duplicates and event types this service ignores.
    Success,
    /// Transient failure (database or sidecar unavailable): deliver again.
    Retry,
    /// Poison (undecodable or invalid): never deliver again; dead-letter it.
    Drop,
}

impl Outcome {
    pub fn status(self) -> TopicEventResponseStatus {
        match self {
            Self::Success => TopicEventResponseStatus::Success,
            Self::Retry => TopicEventResponseStatus::Retry,
            Self::Drop => TopicEventResponseStatus::Drop,
        }
    }
}

impl From<Outcome> for TopicEventResponse {
    fn from(outcome: Outcome) -> Self {
        Self {
            status: outcome.status() as i32,
        }
    }
}

/// Refuses AppCallback calls that lack the app API token, when one is
/// configured (`APP_API_TOKEN`); daprd sends it as `dapr-api-token`.
///
/// Checked per call rather than as an interceptor on the whole service:
/// daprd asks for `ListTopicSubscriptions` and `ListInputBindings` without
/// the token (and never asks again once refused), so those two, and the
/// health check, are open; everything that delivers data is not.
#[derive(Clone)]
pub struct AppTokenCheck {
    expected: Option<SecretString>,
}

impl AppTokenCheck {
    pub fn new(expected: Option<SecretString>) -> Self {
        Self { expected }
    }

    /// Ok when no token is configured or `metadata` carries the right one.
    pub fn verify(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let presented = metadata
            .get(API_TOKEN_HEADER)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(presented, expected.expose_secret().as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("missing or wrong dapr-api-token"))
        }
    }
}

/// Compares without an early exit, so response timing does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A subscription to `topic` on `pubsub_name`, with routing rules on
/// `event.type` (in order, first match wins), a default route for every other
/// type, and the topic's dead-letter topic, so a failing event is never
/// retried forever.
pub fn subscription(pubsub_name: &str, topic: &str, rules: &[(&str, &str)], default_route: &str) -> TopicSubscription {
    TopicSubscription {
        pubsub_name: pubsub_name.to_owned(),
        topic: topic.to_owned(),
        metadata: Default::default(),
        routes: Some(TopicRoutes {
            rules: rules
                .iter()
                .map(|(event_type, path)| TopicRule {
                    r#match: format!("event.type == \"{event_type}\""),
                    path: (*path).to_owned(),
                })
                .collect(),
            default: default_route.to_owned(),
        }),
        dead_letter_topic: topics::dead_letter(topic),
        bulk_subscribe: None,
    }
}

/// The most events one bulk delivery carries. daprd sends at most 4 MiB
/// to an app in one call (its `--max-body-size`), and refuses a larger
/// batch on every retry until it dead-letters all of it, other users'
/// events included. The largest task event validation allows is about
/// 22 kB in JSON (4,000 four-byte characters of description, 200 of title,
/// 20 tags of 50; control characters, which JSON would escape sixfold, are
/// refused), so 100 with their envelopes stay near half the limit.
pub const BULK_MAX_EVENTS: i32 = 100;
/// How long the runtime waits to fill a batch: short, so a lone event is
/// not held back.
pub const BULK_MAX_AWAIT_MS: i32 = 5;

/// Turns on bulk delivery (`OnBulkTopicEvent`) for a subscription; the
/// services pass [`BULK_MAX_EVENTS`] and [`BULK_MAX_AWAIT_MS`].
pub fn with_bulk(mut subscription: TopicSubscription, max_messages: i32, max_await_ms: i32) -> TopicSubscription {
    subscription.bulk_subscribe = Some(BulkSubscribeConfig {
        enabled: true,
        max_messages_count: max_messages,
        max_await_duration_ms: max_await_ms,
    });
    subscription
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_with(token: Option<&str>, expected: Option<&str>) -> Result<(), Status> {
        let mut metadata = MetadataMap::new();
        if let Some(token) = token {
            metadata.insert(API_TOKEN_HEADER, token.parse().unwrap());
        }
        AppTokenCheck::new(expected.map(SecretString::from)).verify(&metadata)
    }

    #[test]
    fn token_is_checked_only_when_configured() {
        assert!(call_with(None, None).is_ok());
        assert!(call_with(Some("anything"), None).is_ok());
        assert!(call_with(Some("s3cret"), Some("s3cret")).is_ok());
        let missing = call_with(None, Some("s3cret")).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(call_with(Some("s3cre"), Some("s3cret")).is_err());
        assert!(call_with(Some("s3creT"), Some("s3cret")).is_err());
    }

    #[test]
    fn outcomes_map_to_dapr_statuses() {
        assert_eq!(TopicEventResponse::from(Outcome::Success).status, 0);
        assert_eq!(TopicEventResponse::from(Outcome::Retry).status, 1);
        assert_eq!(TopicEventResponse::from(Outcome::Drop).status, 2);
    }

    #[test]
    fn subscriptions_always_dead_letter() {
        let sub = subscription("pubsub", "task-events", &[("task.completed", "/completed")], "/ignore");
        assert_eq!(sub.dead_letter_topic, "task-events-dlq");
        let routes = sub.routes.unwrap();
        assert_eq!(routes.rules[0].r#match, "event.type == \"task.completed\"");
        assert_eq!(routes.default, "/ignore");
    }
}
