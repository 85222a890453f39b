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
    refreshed_every(url, Duration::from_millis(200))
}

fn refreshed_every(url: String, jwks_refresh: Duration) -> AuthConfig {
    AuthConfig {
        jwt_secret: None,
        jwks_file: None,
        jwks_url: Some(url),
        jwks_refresh,
        issuer: None,
        audience: None,
        leeway_secs: 0,
        development: false,
        rate_limit: Default::default(),
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

#[tokio::test]
async fn a_token_with_an_unknown_kid_brings_the_refresh_forward() {
    let body = Arc::new(Mutex::new(Some(jwks("k1", KEY_1_X))));
    // Refreshed on schedule only every five minutes.
    let verifier = auth::start(&refreshed_every(
        serve_jwks(body.clone()).await,
        Duration::from_secs(300),
    ))
    .await
    .unwrap();
    assert!(verifier.verify(&token("k1", KEY_1_PEM, "alice")).is_ok());
    // The provider rotates; the first token signed with the new key makes
    // the service look again, and a retry moments later is accepted.
    *body.lock().unwrap() = Some(jwks("k2", KEY_2_X));
    eventually("the rotated key is fetched on demand", || {
        verifier.verify(&token("k2", KEY_2_PEM, "bob")).is_ok()
    })
    .await;
}

/// Key sets as providers publish them hold keys beside the signing ones
/// that this service cannot use: an encryption key that does not say so
/// with `use` (Keycloak's RSA-OAEP), an algorithm outside the JWT crate's
/// (ES512 on P-521). They are skipped; the usable key still verifies.
#[tokio::test]
async fn keys_this_service_cannot_use_do_not_reject_the_set() {
    let set = json!({"keys": [
        {"kty": "EC", "crv": "P-521", "alg": "ES512", "kid": "p521",
         "x": "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
         "y": "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"},
        {"kty": "RSA", "alg": "RSA-OAEP", "kid": "enc",
         "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
         "e": "AQAB"},
        {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1", "x": KEY_1_X},
    ]})
    .to_string();
    let body = Arc::new(Mutex::new(Some(set)));
    let verifier = auth::start(&config(serve_jwks(body).await)).await.unwrap();
    assert_eq!(
        verifier.verify(&token("k1", KEY_1_PEM, "alice")).unwrap().as_str(),
        "alice"
    );
}
