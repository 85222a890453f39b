//! Public keys from an identity provider's JWKS URL, fetched at start-up and
//! refreshed in the background, so key rotation needs no restart.
//!
//! A provider that is briefly unreachable does not stop the service: the
//! last good key set stays in use and the fetch is retried with backoff.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use super::jwt::{AuthError, JwtVerifier, PinnedKey, pinned_keys};

/// Largest key set accepted; real ones are a few kilobytes.
const MAX_JWKS_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The least time between two fetches of the key set.
pub const UNKNOWN_KID_REFRESH_GAP: Duration = Duration::from_secs(2);

/// Fetches a JWKS over HTTPS (or HTTP, in development: see
/// [`crate::config::DEV_MODE`]).
pub struct JwksSource {
    url: http::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl JwksSource {
    pub fn new(url: &str) -> Result<Self, AuthError> {
        let invalid = |reason: String| AuthError::Jwks {
            path: url.to_owned(),
            reason,
        };
        let url: http::Uri = url
            .parse()
            .map_err(|err: http::uri::InvalidUri| invalid(err.to_string()))?;
        if !matches!(url.scheme_str(), Some("https" | "http")) {
            return Err(invalid("JWKS_URL must be an http(s) URL".into()));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Fetches and parses the key set once.
    pub async fn fetch(&self) -> Result<Vec<PinnedKey>, AuthError> {
        let failed = |reason: String| AuthError::Jwks {
            path: self.url.to_string(),
            reason,
        };
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.get(self.url.clone()))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|err| failed(err.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .map_err(|_| failed("timed out reading the body".into()))?
        .map_err(|err| failed(err.to_string()))?
        .to_bytes();
        pinned_keys(&body).map_err(failed)
    }

    /// Refreshes `verifier`'s remote keys every `interval` until the verifier
    /// is dropped, starting after a first fetch that `first_fetch_ok` says
    /// how it went; after a failure, retries sooner (1 s doubling up to the
    /// interval) and keeps the last good keys meanwhile. A token with an
    /// unknown `kid` brings the next refresh forward (at most one fetch per
    /// [`UNKNOWN_KID_REFRESH_GAP`]), so a rotation is picked up at once.
    pub fn spawn_refresh(self, verifier: Weak<JwtVerifier>, interval: Duration, first_fetch_ok: bool) {
        let Some(unknown_kid) = verifier.upgrade().map(|verifier| verifier.unknown_kid.clone()) else {
            return;
        };
        tokio::spawn(async move {
            let first_retry = Duration::from_secs(1).min(interval);
            let gap = UNKNOWN_KID_REFRESH_GAP.min(interval);
            let (mut wait, mut retry) = if first_fetch_ok {
                (interval, first_retry)
            } else {
                (first_retry, (first_retry * 2).min(interval))
            };
            let mut fetched_at = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    // A flood of made-up kids costs the provider one fetch
                    // per gap, no more.
                    () = unknown_kid.notified() => tokio::time::sleep_until(fetched_at + gap).await,
                }
                let Some(target) = verifier.upgrade() else { return };
                fetched_at = tokio::time::Instant::now();
                wait = match self.fetch().await {
                    Ok(keys) => {
                        tracing::debug!(keys = keys.len(), "JWKS refreshed");
                        target.replace_remote_keys(keys);
                        retry = first_retry;
                        interval
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in = ?retry, "JWKS refresh failed; keeping the last keys");
                        let wait = retry;
                        retry = (retry * 2).min(interval);
                        wait
                    }
                };
            }
        });
    }
}

/// Builds the verifier and, with `JWKS_URL`, starts keeping its keys fresh.
pub async fn start(config: &crate::config::AuthConfig) -> Result<Arc<JwtVerifier>, AuthError> {
    if config.development {
        tracing::warn!(
            "{}=true: the development JWT secret, short secrets and a key set over plain HTTP are accepted; \
             never set it in a deployment",
            crate::config::DEV_MODE
        );
    }
    let verifier = Arc::new(JwtVerifier::from_config(config)?);
    if let Some(url) = &config.jwks_url {
        let source = JwksSource::new(url)?;
        let fetched = match source.fetch().await {
            Ok(keys) => {
                verifier.replace_remote_keys(keys);
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "JWKS not available yet; retrying in the background");
                false
            }
        };
        source.spawn_refresh(Arc::downgrade(&verifier), config.jwks_refresh, fetched);
    }
    Ok(verifier)
}
