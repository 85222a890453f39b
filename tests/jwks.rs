//! Keys from a JWKS URL: fetched at start-up, refreshed so a rotated key is
//! accepted without a restart, and an unreachable provider does not stop
//! the service.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use todo_core::{auth, config::AuthConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

// Throw-away Ed25519 keys, generated for this test only.
const KEY_1_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGTUMDvH28Vk02sYTwDK91eePe+HWsD0V48FUJvLDdrM\n-----END PRIVATE KEY-----\n";
const KEY_1_X: &str = "G402f7FBS4oENnQJRBNviAPmrrtepLCSNIY89tz-Lmk";
const KEY_2_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJRpPtrkm/MwCFBkU29wW36daWJxgdCHxyFzhBG2raPI\n-----END PRIVATE KEY-----\n";
const KEY_2_X: &str = "5mt58G6zWzBSNpLsS-K4r-YEnzhbmkwurqTvZdoOHRQ";

fn jwks(kid: &str, x: &str) -> String {
    json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x}]}).to_string()
}

fn token(kid: &str, pem: &str, user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.into());
    encode(
        &header,
        &json!({"sub": user, "exp": now + 60}),
        &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A minimal HTTP server answering every request with the current body
/// (or 503 when it is None).
async fn serve_jwks(body: Arc<Mutex<Option<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let response = match body {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}/api/auth/jwks")
}

fn config(url: String) -> AuthConfig {
    AuthConfig {
        jwt_secret: None,
        jwks_file: None,
        jwks_url: Some(url),
        jwks_refresh: Duration::from_millis(200),
        issuer: None,
        audience: None,
        leeway_secs: 0,
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rotated_keys_are_picked_up_without_a_restart() {
    let body = Arc::new(Mutex::new(Some(jwks("k1", KEY_1_X))));
    let verifier = auth::start(&config(serve_jwks(body.clone()).await)).await.unwrap();
    assert_eq!(
        verifier.verify(&token("k1", KEY_1_PEM, "alice")).unwrap().as_str(),
        "alice"
    );
    assert!(verifier.verify(&token("k2", KEY_2_PEM, "alice")).is_err());

    *body.lock().unwrap() = Some(jwks("k2", KEY_2_X));
    eventually("the rotated key is accepted", || {
        verifier.verify(&token("k2", KEY_2_PEM, "bob")).is_ok()
    })
    .await;
    assert!(
        verifier.verify(&token("k1", KEY_1_PEM, "alice")).is_err(),
        "the retired key no longer works"
    );
}

#[tokio::test]
async fn an_unreachable_provider_delays_keys_but_does_not_stop_start_up() {
    let body = Arc::new(Mutex::new(None));
    let verifier = auth::start(&config(serve_jwks(body.clone()).await)).await.unwrap();
    assert!(verifier.verify(&token("k1", KEY_1_PEM, "alice")).is_err());
    *body.lock().unwrap() = Some(jwks("k1", KEY_1_X));
    eventually("keys arrive once the provider answers", || {
        verifier.verify(&token("k1", KEY_1_PEM, "alice")).is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_non_http_url_is_a_configuration_error() {
    let err = auth::start(&config("ftp://example.com/jwks".into()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("http"), "{err}");
}
