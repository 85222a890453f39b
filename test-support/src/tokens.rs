//! Signed tokens for tests and the development tools.

/// An HS256 JWT for `user` signed with `secret`, valid for `ttl_secs`: for
/// development and tests; production tokens come from an identity provider.
pub fn hs256(secret: &str, user: &str, ttl_secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = serde_json::json!({"sub": user, "iat": now, "exp": now + ttl_secs});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}
