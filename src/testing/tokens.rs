//! Signed tokens for tests.

/// An HS256 JWT for `user` signed with `secret`, valid for `ttl_secs`.
pub fn hs256(secret: &str, user: &str, ttl_secs: u64) -> String {
    crate::auth::jwt::sign_hs256(secret, user, ttl_secs)
}
