//! Calling the apps: the AppCallback client of each app id, with the app
//! API token daprd would send, trace context, and the Alpha1 fallbacks.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use todo_core::dapr::{
    API_TOKEN_HEADER,
    runtime::{
        JobEventRequest, TopicEventBulkRequest, TopicEventBulkResponse, TopicEventRequest, TopicEventResponse,
        TopicSubscription, app_callback_alpha_client::AppCallbackAlphaClient, app_callback_client::AppCallbackClient,
    },
};
use tonic::{Code, Request, Status, metadata::AsciiMetadataValue, transport::Channel};

/// How long one delivery may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

struct AppClient {
    channel: Channel,
    /// The app lacks the stable bulk/job callbacks (learned once).
    alpha1_only: AtomicBool,
}

/// Clients for every app of the run file; cheap to clone.
#[derive(Clone)]
pub struct AppClients {
    apps: Arc<HashMap<String, AppClient>>,
    token: Option<AsciiMetadataValue>,
}

impl AppClients {
    /// `apps`: app id → app port. `token`: sent as `dapr-api-token`.
    pub fn new(apps: impl IntoIterator<Item = (String, u16)>, token: Option<&str>) -> Result<Self, String> {
        let mut clients = HashMap::new();
        for (app_id, port) in apps {
            let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .map_err(|err| err.to_string())?
                .connect_timeout(Duration::from_secs(1))
                .timeout(CALL_TIMEOUT)
                .connect_lazy();
            clients.insert(
                app_id,
                AppClient {
                    channel,
                    alpha1_only: AtomicBool::new(false),
                },
            );
        }
        let token = token
            .map(|token| {
                token
                    .parse()
                    .map_err(|_| "APP_API_TOKEN is not a valid header value".to_owned())
            })
            .transpose()?;
        Ok(Self {
            apps: Arc::new(clients),
            token,
        })
    }

    fn client(&self, app_id: &str) -> Result<&AppClient, Status> {
        self.apps
            .get(app_id)
            .ok_or_else(|| Status::not_found(format!("unknown app {app_id}")))
    }

    fn request<T>(&self, message: T, traceparent: &str) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert(API_TOKEN_HEADER, token.clone());
        }
        if !traceparent.is_empty()
            && let Ok(value) = traceparent.parse()
        {
            request.metadata_mut().insert("traceparent", value);
        }
        request
    }

    /// As daprd sends a bulk delivery: one `traceparent` and one
    /// `grpc-trace-bin` header per traced entry, so an app sees the same
    /// header list (and the same limit on it) on both runtimes.
    fn bulk_request<T>(&self, message: T, traceparents: &[&str]) -> Request<T> {
        let mut request = self.request(message, "");
        for traceparent in traceparents {
            let (Ok(text), Some(binary)) = (traceparent.parse(), grpc_trace_bin(traceparent)) else {
                continue;
            };
            request.metadata_mut().append("traceparent", text);
            request
                .metadata_mut()
                .append_bin("grpc-trace-bin", tonic::metadata::MetadataValue::from_bytes(&binary));
        }
        request
    }

    /// Asked without the app API token, as daprd asks: an app that demands
    /// it here would get no subscriptions on the real runtime.
    pub async fn list_topic_subscriptions(&self, app_id: &str) -> Result<Vec<TopicSubscription>, Status> {
        let app = self.client(app_id)?;
        let response = AppCallbackClient::new(app.channel.clone())
            .max_encoding_message_size(MAX_BODY_BYTES)
            .list_topic_subscriptions(Request::new(()))
            .await?;
        Ok(response.into_inner().subscriptions)
    }

    /// One single delivery. As daprd, the Kafka record's metadata (its key
    /// and headers) travels as gRPC headers; a value gRPC cannot carry fails
    /// the call the way grpc-go fails daprd's, before the app sees it.
    pub async fn on_topic_event(
        &self,
        app_id: &str,
        event: TopicEventRequest,
        traceparent: &str,
        record: &[(&str, &str)],
    ) -> Result<TopicEventResponse, Status> {
        let app = self.client(app_id)?;
        let mut request = self.request(event, traceparent);
        for (key, value) in record {
            let header = printable_header(value).ok_or_else(|| {
                Status::internal(format!(
                    "header key {key:?} contains value with non-printable ASCII characters"
                ))
            })?;
            let name = tonic::metadata::AsciiMetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
                .map_err(|_| Status::internal(format!("invalid header key {key:?}")))?;
            request.metadata_mut().insert(name, header);
        }
        Ok(AppCallbackClient::new(app.channel.clone())
            .max_encoding_message_size(MAX_BODY_BYTES)
            .on_topic_event(request)
            .await?
            .into_inner())
    }

    #[allow(deprecated)]
    pub async fn on_bulk_topic_event(
        &self,
        app_id: &str,
        batch: TopicEventBulkRequest,
        traceparents: &[&str],
    ) -> Result<TopicEventBulkResponse, Status> {
        let app = self.client(app_id)?;
        if !app.alpha1_only.load(Ordering::Relaxed) {
            match AppCallbackClient::new(app.channel.clone())
                .max_encoding_message_size(MAX_BODY_BYTES)
                .on_bulk_topic_event(self.bulk_request(batch.clone(), traceparents))
                .await
            {
                Err(status) if status.code() == Code::Unimplemented => app.alpha1_only.store(true, Ordering::Relaxed),
                other => return other.map(|response| response.into_inner()),
            }
        }
        Ok(AppCallbackAlphaClient::new(app.channel.clone())
            .max_encoding_message_size(MAX_BODY_BYTES)
            .on_bulk_topic_event_alpha1(self.bulk_request(batch, traceparents))
            .await?
            .into_inner())
    }

    #[allow(deprecated)]
    pub async fn on_job_event(&self, app_id: &str, job: JobEventRequest, traceparent: &str) -> Result<(), Status> {
        let app = self.client(app_id)?;
        if !app.alpha1_only.load(Ordering::Relaxed) {
            match AppCallbackClient::new(app.channel.clone())
                .max_encoding_message_size(MAX_BODY_BYTES)
                .on_job_event(self.request(job.clone(), traceparent))
                .await
            {
                Err(status) if status.code() == Code::Unimplemented => app.alpha1_only.store(true, Ordering::Relaxed),
                other => return other.map(|_| ()),
            }
        }
        AppCallbackAlphaClient::new(app.channel.clone())
            .max_encoding_message_size(MAX_BODY_BYTES)
            .on_job_event_alpha1(self.request(job, traceparent))
            .await
            .map(|_| ())
    }
}

/// The most daprd sends to an app in one call (its `--max-body-size`
/// default): a larger delivery fails before it leaves, and is retried and
/// dead-lettered like any failed delivery.
const MAX_BODY_BYTES: usize = 4 << 20;

/// A W3C `traceparent` in gRPC's binary trace context form (OpenCensus
/// `grpc-trace-bin`: version 0, then trace id, span id and options, each
/// after its field number), as daprd sends it beside the text form.
fn grpc_trace_bin(traceparent: &str) -> Option<Vec<u8>> {
    let mut parts = traceparent.split('-');
    let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
        return None;
    }
    let hex = |text: &str| -> Option<Vec<u8>> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect()
    };
    let mut binary = vec![0, 0];
    binary.extend(hex(trace_id)?);
    binary.push(1);
    binary.extend(hex(span_id)?);
    binary.push(2);
    binary.extend(hex(flags)?);
    Some(binary)
}

/// `value` as a header, if grpc-go would send it: printable ASCII only.
fn printable_header(value: &str) -> Option<AsciiMetadataValue> {
    if value.bytes().all(|byte| (0x20..=0x7e).contains(&byte)) {
        value.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{grpc_trace_bin, printable_header};

    #[test]
    fn a_traceparent_becomes_grpc_trace_bin() {
        let binary = grpc_trace_bin("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(binary.len(), 29);
        assert_eq!(&binary[..3], &[0, 0, 0x0a]);
        assert_eq!(&binary[18..20], &[1, 0xb7]);
        assert_eq!(&binary[27..], &[2, 1]);
        assert_eq!(grpc_trace_bin("01-xyz"), None);
        assert_eq!(
            grpc_trace_bin("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01"),
            None
        );
    }

    #[test]
    fn a_header_value_outside_printable_ascii_is_refused_as_grpc_go_does() {
        assert!(printable_header("alice jones-1").is_some());
        assert!(printable_header("josé").is_none());
        assert!(printable_header("tab\there").is_none());
    }
}
