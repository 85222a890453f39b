//! Who is calling: JWT verification and the tonic interceptor that turns a
//! bearer token into the caller's [`UserId`].
//!
//! - [`jwt`]: the verifier: HS256 with a shared secret, and EdDSA / RS256 /
//!   ES256 public keys from a JWKS, each key pinned to one algorithm.
//! - [`jwks`]: keys from a JWKS URL, refreshed in the background.
//! - [`interceptor`]: reads `authorization: Bearer <JWT>`, answers
//!   UNAUTHENTICATED when it is missing or invalid, and stores the user id in
//!   the request's extensions for the handlers, once [`rate_limit`] admits
//!   the call.
//! - [`rate_limit`]: a token bucket per user.

pub mod interceptor;
pub mod jwks;
pub mod jwt;
pub mod rate_limit;

pub use interceptor::{AuthInterceptor, UserId};
pub use jwks::start;
pub use jwt::{AuthError, JwtVerifier};
pub use rate_limit::{RateLimit, RateLimiter};
