//! The tonic interceptor that authenticates every public RPC.

use std::{sync::Arc, time::Instant};

use tonic::{Request, Status, service::Interceptor};

use super::{jwt::JwtVerifier, rate_limit::RateLimiter};

/// The authenticated caller: the token's `sub` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

impl UserId {
    /// The caller of an authenticated request. A handler behind
    /// [`AuthInterceptor`] always has one; without it, the call is refused.
    pub fn of<T>(request: &Request<T>) -> Result<&UserId, Status> {
        request
            .extensions()
            .get::<UserId>()
            .ok_or_else(|| Status::unauthenticated("request was not authenticated"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Verifies `authorization: Bearer <JWT>`, admits the call under the
/// user's rate limit, and attaches the [`UserId`].
#[derive(Clone)]
pub struct AuthInterceptor {
    verifier: Arc<JwtVerifier>,
    limiter: RateLimiter,
}

impl AuthInterceptor {
    pub fn new(verifier: Arc<JwtVerifier>, limiter: RateLimiter) -> Self {
        Self { verifier, limiter }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <JWT> header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("authorization header must be `Bearer <JWT>`"))?;
        // The reason goes to the log, not to the caller: it would help an
        // attacker tell which check failed.
        let user = self.verifier.verify(token).map_err(|err| {
            tracing::debug!(error = %err, "rejected token");
            Status::unauthenticated("invalid or expired token")
        })?;
        self.limiter.admit(user.as_str(), Instant::now()).map_err(|limited| {
            Status::resource_exhausted(format!(
                "too many calls for this user; retry in {} ms",
                limited.retry_after.as_millis().max(1)
            ))
        })?;
        request.extensions_mut().insert(user);
        Ok(request)
    }
}
