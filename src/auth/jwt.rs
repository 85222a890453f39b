//! JWT verification.
//!
//! Every key is pinned to exactly one algorithm: the shared secret to HS256,
//! each JWKS key to its `alg` (or the one its key type implies). A token is
//! checked only with a key whose pinned algorithm equals the token's, so an
//! RSA public key can never be abused as an HMAC secret, and `alg: none` has
//! no key at all. `exp` is required; `exp` and `nbf` are enforced with the
//! configured leeway (0 s by default, unlike the crate's 60 s); issuer and
//! audience are required to match when configured.

use std::{
    fs,
    path::Path,
    sync::{Arc, RwLock},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::UserId;
use crate::config::AuthConfig;
pub use crate::config::DEV_SECRET;

/// Longest accepted user id (`sub`); it becomes a partition key and a column.
pub const MAX_USER_ID_LEN: usize = 255;

/// Why a token was refused, or why the verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("malformed token: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    #[error("no key accepts algorithm {0:?} (with this key id)")]
    NoKeyForAlgorithm(Algorithm),
    #[error("token rejected: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("token has an empty or over-long `sub`, or one with control characters")]
    BadSubject,
    #[error("cannot read JWKS file {path}: {reason}")]
    Jwks { path: String, reason: String },
    #[error("JWKS key {kid:?} is unusable: {reason}")]
    UnusableKey { kid: Option<String>, reason: String },
}

/// A verification key and the one algorithm it accepts.
pub struct PinnedKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens against the configured keys and claims.
pub struct JwtVerifier {
    /// From `JWT_SECRET` and `JWKS_FILE`: fixed for the process's life.
    keys: Vec<PinnedKey>,
    /// From `JWKS_URL`: replaced whenever the key set is refreshed.
    remote_keys: RwLock<Arc<Vec<PinnedKey>>>,
    /// Woken by a token whose `kid` no key has: the provider may have
    /// rotated, so the refresher fetches the key set now, not on schedule.
    pub(crate) unknown_kid: Arc<tokio::sync::Notify>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl JwtVerifier {
    /// Builds the verifier from `JWT_SECRET` and/or `JWKS_FILE`.
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthError> {
        let mut keys = Vec::new();
        if let Some(secret) = &config.jwt_secret {
            keys.push(PinnedKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            });
        }
        if let Some(path) = &config.jwks_file {
            keys.extend(read_jwks_file(path)?);
        }
        Ok(Self {
            keys,
            remote_keys: RwLock::new(Arc::new(Vec::new())),
            unknown_kid: Arc::default(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_secs: config.leeway_secs,
        })
    }

    /// Swaps in a freshly fetched JWKS.
    pub fn replace_remote_keys(&self, keys: Vec<PinnedKey>) {
        *self
            .remote_keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
    }

    /// Checks signature and claims; returns the caller's user id.
    pub fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        // `alg: none` and unknown algorithms fail here: the header type has
        // no variant for them.
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::Malformed)?;
        let validation = self.validation(header.alg);
        let remote = self
            .remote_keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut candidates = self
            .keys
            .iter()
            .chain(remote.iter())
            .filter(|key| key.algorithm == header.alg)
            .filter(|key| match (&header.kid, &key.kid) {
                (Some(wanted), Some(have)) => wanted == have,
                // A shared secret has no kid; a kid-less token may try every
                // key pinned to its algorithm.
                _ => true,
            })
            .peekable();
        if candidates.peek().is_none() {
            if header.kid.is_some() {
                self.unknown_kid.notify_one();
            }
            return Err(AuthError::NoKeyForAlgorithm(header.alg));
        }
        let mut last_error = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let sub = data.claims.sub;
                    // Control characters (NUL above all) cannot be stored
                    // or carried in a header; no identity provider issues them.
                    if sub.trim().is_empty() || sub.len() > MAX_USER_ID_LEN || sub.chars().any(char::is_control) {
                        return Err(AuthError::BadSubject);
                    }
                    return Ok(UserId(sub));
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(AuthError::Invalid(last_error.expect("at least one key was tried")))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // The crate checks `iss` and `aud` only when the token has them;
        // requiring them makes a token that omits them fail as well.
        let mut required = vec!["exp", "sub"];
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

fn read_jwks_file(path: &Path) -> Result<Vec<PinnedKey>, AuthError> {
    let jwks_error = |reason: String| AuthError::Jwks {
        path: path.display().to_string(),
        reason,
    };
    let text = fs::read(path).map_err(|err| jwks_error(err.to_string()))?;
    pinned_keys(&text).map_err(jwks_error)
}

/// Turns a JWKS document into pinned verification keys. Encryption keys and
/// symmetric keys are skipped: a published key set holds public keys. So is
/// any key this service cannot use (an algorithm or curve it does not
/// support, a key it cannot parse), with a warning: providers publish such
/// keys beside the ones they sign with, and refusing the whole set for one
/// of them would refuse every token. A set with no usable key is an error.
pub(crate) fn pinned_keys(document: &[u8]) -> Result<Vec<PinnedKey>, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(document).map_err(|err| format!("not a JWKS: {err}"))?;
    let mut keys = Vec::new();
    for value in document.keys {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(err) => {
                tracing::warn!(error = %err, "JWKS key skipped: not a key this service can read");
                continue;
            }
        };
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            continue;
        }
        let pinned = pinned_algorithm(&jwk).and_then(|algorithm| {
            let key = DecodingKey::from_jwk(&jwk).map_err(|err| err.to_string())?;
            Ok(PinnedKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            })
        });
        match pinned {
            Ok(key) => keys.push(key),
            Err(reason) => {
                let unusable = AuthError::UnusableKey {
                    kid: jwk.common.key_id.clone(),
                    reason,
                };
                tracing::warn!(error = %unusable, "JWKS key skipped");
            }
        }
    }
    if keys.is_empty() {
        return Err("no key in the set can verify signatures here".to_owned());
    }
    Ok(keys)
}

/// The key's declared `alg`, or the one its key type implies.
fn pinned_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let algorithm = match (jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::EdDSA), _) => Algorithm::EdDSA,
        (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
        (Some(KeyAlgorithm::RS384), _) => Algorithm::RS384,
        (Some(KeyAlgorithm::RS512), _) => Algorithm::RS512,
        (Some(KeyAlgorithm::PS256), _) => Algorithm::PS256,
        (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
        (Some(KeyAlgorithm::ES384), _) => Algorithm::ES384,
        (Some(other), _) => return Err(format!("algorithm {other} is not accepted for signatures")),
        (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(ec)) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            ref other => return Err(format!("curve {other:?} is not supported")),
        },
        (None, AlgorithmParameters::OctetKey(_)) => return Err("symmetric keys do not belong in a JWKS".into()),
    };
    Ok(algorithm)
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    // A throw-away Ed25519 key pair, generated for these tests only.
    const ED25519_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGTUMDvH28Vk02sYTwDK91eePe+HWsD0V48FUJvLDdrM\n-----END PRIVATE KEY-----\n";
    const ED25519_PUBLIC_X: &str = "G402f7FBS4oENnQJRBNviAPmrrtepLCSNIY89tz-Lmk";

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    fn hs256_verifier(issuer: Option<&str>, audience: Option<&str>) -> JwtVerifier {
        JwtVerifier::from_config(&AuthConfig {
            jwt_secret: Some("dev-secret".into()),
            jwks_file: None,
            jwks_url: None,
            jwks_refresh: std::time::Duration::from_secs(300),
            issuer: issuer.map(Into::into),
            audience: audience.map(Into::into),
            leeway_secs: 0,
            development: false,
            rate_limit: Default::default(),
        })
        .unwrap()
    }

    fn hs256(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn valid_hs256_token_yields_subject() {
        let token = hs256(json!({"sub": "alice", "exp": now() + 60}), "dev-secret");
        assert_eq!(
            hs256_verifier(None, None).verify(&token).unwrap(),
            UserId("alice".into())
        );
    }

    #[test]
    fn wrong_secret_expired_and_not_yet_valid_are_refused() {
        let verifier = hs256_verifier(None, None);
        let wrong = hs256(json!({"sub": "alice", "exp": now() + 60}), "other");
        assert!(matches!(verifier.verify(&wrong), Err(AuthError::Invalid(_))));
        let expired = hs256(json!({"sub": "alice", "exp": now() - 5}), "dev-secret");
        assert!(verifier.verify(&expired).is_err());
        let early = hs256(
            json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 300}),
            "dev-secret",
        );
        assert!(verifier.verify(&early).is_err());
        let no_exp = hs256(json!({"sub": "alice"}), "dev-secret");
        assert!(verifier.verify(&no_exp).is_err());
        let empty_sub = hs256(json!({"sub": " ", "exp": now() + 60}), "dev-secret");
        assert!(matches!(verifier.verify(&empty_sub), Err(AuthError::BadSubject)));
        let nul_sub = hs256(json!({"sub": "al\u{0}ice", "exp": now() + 60}), "dev-secret");
        assert!(matches!(verifier.verify(&nul_sub), Err(AuthError::BadSubject)));
        let accented = hs256(json!({"sub": "josé", "exp": now() + 60}), "dev-secret");
        assert_eq!(verifier.verify(&accented).unwrap().0, "josé");
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = b64.encode(format!(r#"{{"sub":"alice","exp":{}}}"#, now() + 60));
        let verifier = hs256_verifier(None, None);
        assert!(verifier.verify(&format!("{header}.{claims}.")).is_err());
        assert!(verifier.verify("not-a-jwt").is_err());
        assert!(verifier.verify("").is_err());
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let verifier = hs256_verifier(Some("https://auth.example"), Some("todo"));
        let good = hs256(
            json!({"sub": "a", "exp": now() + 60, "iss": "https://auth.example", "aud": "todo"}),
            "dev-secret",
        );
        assert!(verifier.verify(&good).is_ok());
        let wrong_iss = hs256(
            json!({"sub": "a", "exp": now() + 60, "iss": "evil", "aud": "todo"}),
            "dev-secret",
        );
        assert!(verifier.verify(&wrong_iss).is_err());
        let wrong_aud = hs256(
            json!({"sub": "a", "exp": now() + 60, "iss": "https://auth.example", "aud": "other"}),
            "dev-secret",
        );
        assert!(verifier.verify(&wrong_aud).is_err());
        let no_aud = hs256(
            json!({"sub": "a", "exp": now() + 60, "iss": "https://auth.example"}),
            "dev-secret",
        );
        assert!(verifier.verify(&no_aud).is_err());
        let no_iss = hs256(json!({"sub": "a", "exp": now() + 60, "aud": "todo"}), "dev-secret");
        assert!(verifier.verify(&no_iss).is_err());
    }

    fn eddsa_verifier() -> JwtVerifier {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let jwks =
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ED25519_PUBLIC_X, "kid": "k1", "use": "sig"}]});
        fs::write(&path, jwks.to_string()).unwrap();
        JwtVerifier::from_config(&AuthConfig {
            jwt_secret: None,
            jwks_file: Some(path),
            jwks_url: None,
            jwks_refresh: std::time::Duration::from_secs(300),
            issuer: None,
            audience: None,
            leeway_secs: 0,
            development: false,
            rate_limit: Default::default(),
        })
        .unwrap()
    }

    #[test]
    fn eddsa_token_from_jwks_verifies_and_key_is_pinned() {
        let verifier = eddsa_verifier();
        let key = EncodingKey::from_ed_pem(ED25519_PRIVATE_PEM.as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let token = encode(&header, &json!({"sub": "bob", "exp": now() + 60}), &key).unwrap();
        assert_eq!(verifier.verify(&token).unwrap(), UserId("bob".into()));

        header.kid = Some("unknown".into());
        let token = encode(&header, &json!({"sub": "bob", "exp": now() + 60}), &key).unwrap();
        assert!(matches!(verifier.verify(&token), Err(AuthError::NoKeyForAlgorithm(_))));

        // HS256 signed with the public key's bytes must not pass: no key is
        // pinned to HS256 here.
        let forged = hs256(json!({"sub": "bob", "exp": now() + 60}), ED25519_PUBLIC_X);
        assert!(matches!(
            verifier.verify(&forged),
            Err(AuthError::NoKeyForAlgorithm(Algorithm::HS256))
        ));
    }
}
