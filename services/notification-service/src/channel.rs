//! Where a notification goes once it is recorded.
//!
//! Delivery happens inside the transaction that records the notification:
//! if it fails, nothing is recorded and the reminder is retried. If the
//! commit fails after a successful delivery, the retry delivers again —
//! external side effects are at least once; the record is exactly once.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Serialize;

use crate::config::WebhookConfig;

/// A notification as channels see it.
#[derive(Debug, Clone, Serialize)]
pub struct Outgoing {
    pub id: String,
    pub event_id: String,
    pub user_id: String,
    pub task_id: String,
    pub title: String,
    pub message: String,
    pub due_at: Option<String>,
    pub kind: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[error("delivery through {channel} failed: {reason}")]
pub struct DeliveryError {
    pub channel: &'static str,
    pub reason: String,
    /// The receiver refused this notification (a webhook's 4xx): trying
    /// again would be refused the same way.
    pub permanent: bool,
}

#[tonic::async_trait]
pub trait Channel: Send + Sync + 'static {
    /// Recorded with each notification (`Notification.channel`).
    fn name(&self) -> &'static str;
    async fn deliver(&self, notification: &Outgoing) -> Result<(), DeliveryError>;
}

/// The default: one structured log line per notification.
pub struct LogChannel;

#[tonic::async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn deliver(&self, n: &Outgoing) -> Result<(), DeliveryError> {
        tracing::info!(
            target: "notification",
            notification_id = %n.id,
            user_id = %n.user_id,
            task_id = %n.task_id,
            kind = n.kind,
            "{}",
            n.message
        );
        Ok(())
    }
}

/// POSTs the notification as JSON; retries timeouts, connection errors and
/// 5xx answers with a short backoff; a 4xx is final.
pub struct WebhookChannel {
    url: http::Uri,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    attempts: u32,
}

impl WebhookChannel {
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let url = config
            .url
            .parse()
            .map_err(|err: http::uri::InvalidUri| err.to_string())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url,
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: config.timeout,
            attempts: config.attempts,
        })
    }

    async fn attempt(&self, body: Bytes) -> Result<(), (bool, String)> {
        let request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|err| (false, err.to_string()))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| (true, "timed out".to_owned()))?
            .map_err(|err| (true, err.to_string()))?;
        let status = response.status();
        // Drain the body so the connection can be reused.
        let _ = tokio::time::timeout(self.timeout, response.into_body().collect()).await;
        match status {
            s if s.is_success() => Ok(()),
            s if s.is_server_error() || s == http::StatusCode::TOO_MANY_REQUESTS => Err((true, format!("HTTP {s}"))),
            s => Err((false, format!("HTTP {s}"))),
        }
    }
}

#[tonic::async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn deliver(&self, notification: &Outgoing) -> Result<(), DeliveryError> {
        let body = Bytes::from(serde_json::to_vec(notification).expect("notifications serialize"));
        let mut backoff = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.attempt(body.clone()).await {
                Ok(()) => return Ok(()),
                Err((retryable, reason)) => {
                    tracing::debug!(attempt, %reason, "webhook delivery failed");
                    if !retryable {
                        return Err(DeliveryError {
                            channel: "webhook",
                            reason,
                            permanent: true,
                        });
                    }
                    last = reason;
                }
            }
            if attempt < self.attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(DeliveryError {
            channel: "webhook",
            reason: last,
            permanent: false,
        })
    }
}
