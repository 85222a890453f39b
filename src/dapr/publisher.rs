//! Publishing events through the sidecar's Dapr gRPC API.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU8, Ordering},
};

use secrecy::ExposeSecret;
use tonic::{
    Code, Request, Status,
    metadata::AsciiMetadataValue,
    transport::{Channel, Endpoint},
};

use super::{
    API_TOKEN_HEADER,
    runtime::{BulkPublishRequest, BulkPublishRequestEntry, PublishEventRequest, dapr_client::DaprClient},
};
use crate::{config::DaprConfig, events::ContentType};

/// One event to publish.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    /// Becomes the CloudEvent `id`; consumers deduplicate on it.
    pub event_id: String,
    /// Becomes the CloudEvent `type`; subscriptions route on it.
    pub event_type: String,
    /// Kafka partition key: the user id, so each user's events stay in order.
    pub partition_key: String,
    pub data: Vec<u8>,
    pub content_type: ContentType,
    /// W3C trace context of the change that caused the event, if any.
    pub traceparent: Option<String>,
}

impl OutgoingEvent {
    /// `message` as an event in the wire format, keyed by `partition_key`;
    /// an error when the message has no wire form.
    pub fn from_message<M>(
        event_id: &str,
        event_type: &str,
        partition_key: &str,
        message: &M,
        traceparent: Option<String>,
    ) -> Result<Self, crate::events::EncodeError>
    where
        M: prost::Message + prost::Name,
    {
        Ok(Self {
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            partition_key: partition_key.to_owned(),
            data: crate::events::encode_wire(message)?,
            content_type: crate::events::WIRE_FORMAT,
            traceparent,
        })
    }

    /// About what the event adds to a publish request.
    fn encoded_size(&self) -> usize {
        const FRAMING: usize = 128;
        self.data.len()
            + self.event_id.len() * 2
            + self.event_type.len()
            + self.partition_key.len() * 3
            + self.traceparent.as_ref().map_or(0, String::len)
            + FRAMING
    }

    fn metadata(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::from([
            ("partitionKey".to_owned(), kafka_key(&self.partition_key)),
            ("cloudevent.id".to_owned(), self.event_id.clone()),
            ("cloudevent.type".to_owned(), self.event_type.clone()),
        ]);
        // Per event, so each entry of a bulk publish keeps its own trace.
        if let Some(traceparent) = &self.traceparent {
            metadata.insert("cloudevent.traceparent".to_owned(), traceparent.clone());
        }
        metadata
    }
}

/// `partition_key` as the Kafka record key: printable ASCII, the same for the
/// same key and different for different ones.
///
/// Why: daprd hands a record's key and headers (the `partitionKey` metadata
/// becomes one) to the app as gRPC headers on single deliveries, and gRPC
/// refuses a header value outside printable ASCII, so a user id such as
/// `josé` would fail every delivery of that user's events and stall the
/// partition behind it. Percent-encoding (of `%` too) keeps the mapping
/// one-to-one, so each user's events still share one partition, in order.
pub fn kafka_key(partition_key: &str) -> String {
    const NOT_PRINTABLE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'%');
    percent_encoding::utf8_percent_encode(partition_key, NOT_PRINTABLE).to_string()
}

/// The most one bulk publish call carries (events' data and metadata): a
/// quarter of the 4 MiB the sidecars take, so the request's framing never
/// tips it over.
pub const MAX_BULK_PUBLISH_BYTES: usize = 1 << 20;

/// `events` cut into runs, in order, each at most `limit` bytes (an event
/// larger than that alone in its run).
fn by_size(events: &[OutgoingEvent], limit: usize) -> Vec<&[OutgoingEvent]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, event) in events.iter().enumerate() {
        let size = event.encoded_size();
        if index > start && bytes + size > limit {
            runs.push(&events[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < events.len() {
        runs.push(&events[start..]);
    }
    runs
}

/// Why a publish did not happen. Either way the caller still holds the
/// event and must try again later; nothing is lost by failing here.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid Dapr endpoint {endpoint}: {source}")]
    InvalidEndpoint {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("DAPR_API_TOKEN is not a valid header value")]
    InvalidApiToken,
    #[error("sidecar refused or failed the publish: {0}")]
    Sidecar(#[from] Status),
    #[error("sidecar rejected {failed} of {total} events in the batch; first error: {first_error}")]
    PartialBatch {
        failed: usize,
        total: usize,
        first_error: String,
        /// Ids (`event_id`) of the entries that were not accepted.
        failed_ids: Vec<String>,
    },
}

/// A cheap-to-clone handle that publishes to one pub/sub component.
#[derive(Debug, Clone)]
pub struct Publisher {
    sidecar: SidecarClient,
    pubsub_name: String,
    bulk: std::sync::Arc<BulkSupport>,
}

/// Which bulk API the sidecar has, learned on first use so an older runtime
/// costs one extra round trip, once: stable `BulkPublishEvent`, then
/// `BulkPublishEventAlpha1`, then none (one `PublishEvent` per event).
#[derive(Debug, Default)]
struct BulkSupport(AtomicU8);

const BULK_STABLE: u8 = 0;
const BULK_ALPHA1: u8 = 1;
const BULK_NONE: u8 = 2;

/// The connection to the sidecar's Dapr API, with the API token every call
/// carries; shared by the publisher and the jobs client.
#[derive(Debug, Clone)]
pub struct SidecarClient {
    client: DaprClient<Channel>,
    api_token: Option<AsciiMetadataValue>,
}

/// How long connecting to the sidecar may take.
const SIDECAR_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long one call to the sidecar may take (the Resiliency spec gives the
/// sidecar 10 s to publish to the broker; this leaves it room to answer).
const SIDECAR_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

impl SidecarClient {
    /// Connects on first use, so a service starts even while its sidecar is
    /// still coming up.
    pub fn connect_lazy(config: &DaprConfig) -> Result<Self, PublishError> {
        let endpoint =
            Endpoint::from_shared(config.grpc_endpoint.clone()).map_err(|source| PublishError::InvalidEndpoint {
                endpoint: config.grpc_endpoint.clone(),
                source,
            })?;
        let api_token = config
            .api_token
            .as_ref()
            .map(|token| token.expose_secret().parse().map_err(|_| PublishError::InvalidApiToken))
            .transpose()?;
        // A sidecar that hangs (stopped, partitioned) must fail the call so
        // the caller's own retry loop takes over, not block it forever.
        let endpoint = endpoint
            .connect_timeout(SIDECAR_CONNECT_TIMEOUT)
            .timeout(SIDECAR_CALL_TIMEOUT);
        Ok(Self {
            client: DaprClient::new(endpoint.connect_lazy()),
            api_token,
        })
    }

    /// The generated Dapr client on this connection.
    pub fn client(&self) -> DaprClient<Channel> {
        self.client.clone()
    }

    /// A request carrying the API token and, when given, the trace context.
    pub fn request<T>(&self, message: T, traceparent: Option<&str>) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(token) = &self.api_token {
            metadata.insert(API_TOKEN_HEADER, token.clone());
        }
        if let Some(value) = traceparent.and_then(|tp| tp.parse().ok()) {
            metadata.insert("traceparent", value);
        }
        request
    }
}

impl Publisher {
    /// A publisher on its own lazy connection.
    pub fn connect_lazy(config: &DaprConfig) -> Result<Self, PublishError> {
        Ok(Self::new(SidecarClient::connect_lazy(config)?, &config.pubsub_name))
    }

    /// A publisher sharing `sidecar`'s connection.
    pub fn new(sidecar: SidecarClient, pubsub_name: &str) -> Self {
        Self {
            sidecar,
            pubsub_name: pubsub_name.to_owned(),
            bulk: Default::default(),
        }
    }

    fn request<T>(&self, message: T, traceparent: Option<&str>) -> Request<T> {
        self.sidecar.request(message, traceparent)
    }

    /// Publishes one event; returns once the sidecar (and so the broker)
    /// accepted it.
    pub async fn publish(&self, topic: &str, event: &OutgoingEvent) -> Result<(), PublishError> {
        let message = PublishEventRequest {
            pubsub_name: self.pubsub_name.clone(),
            topic: topic.to_owned(),
            data: event.data.clone(),
            data_content_type: event.content_type.mime().to_owned(),
            metadata: event.metadata(),
        };
        let request = self.request(message, event.traceparent.as_deref());
        self.sidecar.client().publish_event(request).await?;
        crate::telemetry::metrics::record_published(topic, 1);
        Ok(())
    }

    /// Publishes a batch to one topic, in calls of at most
    /// [`MAX_BULK_PUBLISH_BYTES`] (the sidecar refuses a request past its
    /// limit, 4 MiB on daprd and dev-sidecar, and a batch of large events
    /// refused whole would be refused again for ever). A call the sidecar
    /// still finds too large (RESOURCE_EXHAUSTED) goes again in halves. The
    /// calls go in order; when one fails, it and every later one are
    /// reported failed (`PartialBatch`, or the error itself when nothing
    /// was accepted), so the caller keeps exactly the events not yet out.
    pub async fn publish_bulk(&self, topic: &str, events: &[OutgoingEvent]) -> Result<(), PublishError> {
        let mut pending: std::collections::VecDeque<&[OutgoingEvent]> = by_size(events, MAX_BULK_PUBLISH_BYTES).into();
        let mut accepted = 0;
        while let Some(call) = pending.pop_front() {
            let failure = match self.publish_bulk_call(topic, call).await {
                Ok(()) => {
                    accepted += call.len();
                    continue;
                }
                Err(PublishError::Sidecar(status)) if status.code() == Code::ResourceExhausted && call.len() > 1 => {
                    let (first, second) = call.split_at(call.len() / 2);
                    pending.push_front(second);
                    pending.push_front(first);
                    continue;
                }
                Err(failure) => failure,
            };
            let later = pending
                .iter()
                .flat_map(|call| call.iter())
                .map(|event| event.event_id.clone());
            return Err(match failure {
                PublishError::PartialBatch {
                    first_error,
                    mut failed_ids,
                    ..
                } => {
                    failed_ids.extend(later);
                    PublishError::PartialBatch {
                        failed: failed_ids.len(),
                        total: events.len(),
                        first_error,
                        failed_ids,
                    }
                }
                failure if accepted == 0 => failure,
                failure => {
                    let failed_ids: Vec<String> =
                        call.iter().map(|event| event.event_id.clone()).chain(later).collect();
                    PublishError::PartialBatch {
                        failed: failed_ids.len(),
                        total: events.len(),
                        first_error: failure.to_string(),
                        failed_ids,
                    }
                }
            });
        }
        Ok(())
    }

    /// One bulk publish call. The batch's trace context is the first
    /// event's; each entry still carries its own id, type and key.
    // The Alpha1 name is deprecated but is all that older runtimes have.
    #[allow(deprecated)]
    async fn publish_bulk_call(&self, topic: &str, events: &[OutgoingEvent]) -> Result<(), PublishError> {
        if events.is_empty() {
            return Ok(());
        }
        let message = BulkPublishRequest {
            pubsub_name: self.pubsub_name.clone(),
            topic: topic.to_owned(),
            entries: events
                .iter()
                .map(|event| BulkPublishRequestEntry {
                    entry_id: event.event_id.clone(),
                    event: event.data.clone(),
                    content_type: event.content_type.mime().to_owned(),
                    metadata: event.metadata(),
                })
                .collect(),
            metadata: HashMap::new(),
        };
        let traceparent = events[0].traceparent.as_deref();
        let mut client = self.sidecar.client();
        let mut level = self.bulk.0.load(Ordering::Relaxed);
        let response = loop {
            let attempt = match level {
                BULK_STABLE => {
                    client
                        .bulk_publish_event(self.request(message.clone(), traceparent))
                        .await
                }
                BULK_ALPHA1 => {
                    client
                        .bulk_publish_event_alpha1(self.request(message.clone(), traceparent))
                        .await
                }
                _ => {
                    for event in events {
                        self.publish(topic, event).await?;
                    }
                    return Ok(());
                }
            };
            match attempt {
                Err(status) if status.code() == Code::Unimplemented => {
                    level += 1;
                    tracing::info!(
                        fallback = if level == BULK_ALPHA1 {
                            "BulkPublishEventAlpha1"
                        } else {
                            "PublishEvent"
                        },
                        "sidecar lacks the bulk publish API; falling back"
                    );
                    self.bulk.0.store(level, Ordering::Relaxed);
                }
                other => break other?.into_inner(),
            }
        };
        debug_assert!(level <= BULK_NONE);
        crate::telemetry::metrics::record_published(topic, events.len() - response.failed_entries.len());
        match response.failed_entries.first() {
            None => Ok(()),
            Some(first) => Err(PublishError::PartialBatch {
                failed: response.failed_entries.len(),
                total: events.len(),
                first_error: first.error.clone(),
                failed_ids: response
                    .failed_entries
                    .iter()
                    .map(|entry| entry.entry_id.clone())
                    .collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OutgoingEvent, by_size, kafka_key};
    use crate::events::ContentType;

    fn event(bytes: usize) -> OutgoingEvent {
        OutgoingEvent {
            event_id: "e".into(),
            event_type: "t".into(),
            partition_key: "k".into(),
            data: vec![0; bytes],
            content_type: ContentType::Protobuf,
            traceparent: None,
        }
    }

    #[test]
    fn batches_are_cut_by_size_in_order() {
        let events: Vec<OutgoingEvent> = [400, 400, 400, 5_000, 10].iter().map(|&b| event(b)).collect();
        let runs = by_size(&events, 1_000);
        let lengths: Vec<usize> = runs.iter().map(|run| run.len()).collect();
        assert_eq!(lengths, [1, 1, 1, 1, 1]);
        let runs = by_size(&events, 2_000);
        let lengths: Vec<usize> = runs.iter().map(|run| run.len()).collect();
        assert_eq!(lengths, [3, 1, 1]);
        assert!(by_size(&[], 10).is_empty());
    }

    #[test]
    fn a_kafka_key_is_printable_ascii_and_one_to_one() {
        assert_eq!(kafka_key("user-42|a.b@c"), "user-42|a.b@c");
        let keys = ["josé", "jos%C3%A9", "a b", "a%20b", "tab\there", "", "東京"];
        let encoded: Vec<String> = keys.iter().map(|key| kafka_key(key)).collect();
        for key in &encoded {
            assert!(key.bytes().all(|byte| (0x21..=0x7e).contains(&byte)), "{key:?}");
        }
        let distinct: std::collections::HashSet<&String> = encoded.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{encoded:?}");
    }
}
