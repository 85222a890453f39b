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
use jsonwebtoken::jwk::JwkSet;

use super::jwt::{AuthError, JwtVerifier, PinnedKey, pinned_keys};

/// Largest key set accepted; real ones are a few kilobytes.
const MAX_JWKS_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches a JWKS over HTTPS (or HTTP, for local development).
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
        let set: JwkSet = serde_json::from_slice(&body).map_err(|err| failed(err.to_string()))?;
        pinned_keys(&set)
    }

    /// Refreshes `verifier`'s remote keys every `interval` until the verifier
    /// is dropped; after a failure, retries sooner (1 s doubling up to the
    /// interval) and keeps the last good keys meanwhile.
    pub fn spawn_refresh(self, verifier: Weak<JwtVerifier>, interval: Duration) {
        tokio::spawn(async move {
            let mut retry = Duration::from_secs(1).min(interval);
            loop {
                let Some(target) = verifier.upgrade() else { return };
                let wait = match self.fetch().await {
                    Ok(keys) => {
                        tracing::debug!(keys = keys.len(), "JWKS refreshed");
                        target.replace_remote_keys(keys);
                        retry = Duration::from_secs(1).min(interval);
                        interval
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in = ?retry, "JWKS refresh failed; keeping the last keys");
                        let wait = retry;
                        retry = (retry * 2).min(interval);
                        wait
                    }
                };
                drop(target);
                tokio::time::sleep(wait).await;
            }
        });
    }
}

/// Builds the verifier and, with `JWKS_URL`, starts keeping its keys fresh.
pub async fn start(config: &crate::config::AuthConfig) -> Result<Arc<JwtVerifier>, AuthError> {
    let verifier = Arc::new(JwtVerifier::from_config(config)?);
    if let Some(url) = &config.jwks_url {
        let source = JwksSource::new(url)?;
        match source.fetch().await {
            Ok(keys) => verifier.replace_remote_keys(keys),
            Err(err) => tracing::warn!(error = %err, "JWKS not available yet; retrying in the background"),
        }
        source.spawn_refresh(Arc::downgrade(&verifier), config.jwks_refresh);
    }
    Ok(verifier)
}
