//! Plain HTTP GETs on loopback: health endpoints and Jaeger's query API.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use crate::RuntimeError;

/// GET `url`; the status code and the body.
pub async fn get(url: &str) -> Result<(u16, String), RuntimeError> {
    let error = |detail: String| RuntimeError::Http {
        url: url.to_owned(),
        detail,
    };
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(hyper_util::client::legacy::connect::HttpConnector::new());
    let uri: http::Uri = url
        .parse()
        .map_err(|err: http::uri::InvalidUri| error(err.to_string()))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| error("timed out".into()))?
        .map_err(|err| error(err.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| error(err.to_string()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Waits until GET `url` answers a 2xx status; on time-out the error
/// carries `log` (the tail of the process's log).
pub async fn wait_until_ok(
    what: &str,
    url: &str,
    timeout: Duration,
    log: impl FnOnce() -> String,
) -> Result<(), RuntimeError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match get(url).await {
            Ok((status, _)) if (200..300).contains(&status) => return Ok(()),
            Ok((status, body)) => format!("status {status}: {body}"),
            Err(err) => err.to_string(),
        };
        if Instant::now() > deadline {
            return Err(RuntimeError::NotReady {
                what: what.to_owned(),
                timeout,
                detail: format!("{url}: {last}"),
                log: log(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
