//! Asymmetric keys from a JWKS file: each key verifies only tokens of its
//! own algorithm; keys meant for encryption are never used.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use todo_core::{
    auth::{AuthError, JwtVerifier},
    config::AuthConfig,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn verifier() -> JwtVerifier {
    JwtVerifier::from_config(&AuthConfig {
        jwt_secret: None,
        jwks_file: Some(fixture("jwks.json")),
        jwks_url: None,
        jwks_refresh: Duration::from_secs(300),
        issuer: None,
        audience: None,
        leeway_secs: 0,
        development: false,
        rate_limit: Default::default(),
    })
    .unwrap()
}

fn signed(algorithm: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.into());
    encode(&header, &json!({"sub": "carol", "exp": now + 60}), key).unwrap()
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

#[test]
fn es256_rs256_and_eddsa_tokens_verify_with_their_keys() {
    let verifier = verifier();
    let es = EncodingKey::from_ec_pem(&pem("es256.pem")).unwrap();
    let rs = EncodingKey::from_rsa_pem(&pem("rs256.pem")).unwrap();
    let ed = EncodingKey::from_ed_pem(&pem("ed25519.pem")).unwrap();
    for token in [
        signed(Algorithm::ES256, "es", &es),
        signed(Algorithm::RS256, "rs", &rs),
        signed(Algorithm::EdDSA, "ed", &ed),
    ] {
        assert_eq!(verifier.verify(&token).unwrap().as_str(), "carol");
    }
}

#[test]
fn a_key_never_verifies_another_algorithm_or_another_kid() {
    let verifier = verifier();
    let rs = EncodingKey::from_rsa_pem(&pem("rs256.pem")).unwrap();
    // RS384 with the RS256-pinned key: refused.
    assert!(matches!(
        verifier.verify(&signed(Algorithm::RS384, "rs", &rs)),
        Err(AuthError::NoKeyForAlgorithm(Algorithm::RS384))
    ));
    // The right key under the encryption-only kid: refused.
    assert!(verifier.verify(&signed(Algorithm::RS256, "enc", &rs)).is_err());
    // The classic confusion attack: HS256 "signed" with the public key.
    let public = std::fs::read_to_string(fixture("jwks.json")).unwrap();
    let forged = signed(Algorithm::HS256, "rs", &EncodingKey::from_secret(public.as_bytes()));
    assert!(matches!(
        verifier.verify(&forged),
        Err(AuthError::NoKeyForAlgorithm(Algorithm::HS256))
    ));
}
