//! Per-user rate limits on the public APIs: one user's client (a bug, a
//! script, an attacker with a valid account) cannot take the capacity the
//! others need.
//!
//! A token bucket per user id: `burst` calls at once, refilled at
//! `per_second`. A call beyond it is RESOURCE_EXHAUSTED at once, before any
//! work, with the time to wait in the message. Buckets live in memory, per
//! replica; a bucket that has refilled completely is forgotten, so memory
//! follows the users active in the last few seconds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// `RATE_LIMIT_PER_SECOND` (default 100; 0 turns limiting off) and
/// `RATE_LIMIT_BURST` (default 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 100,
            burst: 200,
        }
    }
}

impl RateLimit {
    pub const OFF: Self = Self {
        per_second: 0,
        burst: 0,
    };
}

/// A refused call: how long until the next one would be admitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limited {
    pub retry_after: Duration,
}

/// The buckets of every user seen lately.
#[derive(Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Arc<Mutex<Buckets>>,
}

#[derive(Default)]
struct Buckets {
    by_user: HashMap<String, Bucket>,
    /// When the map was last swept of full buckets.
    swept: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How often the map is swept of buckets that refilled completely.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Arc::default(),
        }
    }

    /// Admits one call of `user` at `now`, or says how long to wait.
    pub fn admit(&self, user: &str, now: Instant) -> Result<(), Limited> {
        if self.limit.per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(self.limit.per_second);
        let burst = f64::from(self.limit.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets
            .swept
            .is_none_or(|swept| now.duration_since(swept) >= SWEEP_EVERY)
        {
            buckets.swept = Some(now);
            buckets
                .by_user
                .retain(|_, bucket| bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets
            .by_user
            .entry(user.to_owned())
            .or_insert(Bucket { tokens: burst, at: now });
        let refilled = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        if refilled < 1.0 {
            bucket.tokens = refilled;
            bucket.at = now;
            return Err(Limited {
                retry_after: Duration::from_secs_f64((1.0 - refilled) / rate),
            });
        }
        bucket.tokens = refilled - 1.0;
        bucket.at = now;
        Ok(())
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap().by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_the_burst_then_the_rate_and_others_are_untouched() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10,
            burst: 5,
        });
        let start = Instant::now();
        for _ in 0..5 {
            assert!(limiter.admit("greedy", start).is_ok());
        }
        let refused = limiter.admit("greedy", start).unwrap_err();
        assert!(refused.retry_after <= Duration::from_millis(100), "{refused:?}");
        assert!(
            limiter.admit("other", start).is_ok(),
            "one user's bucket is not another's"
        );
        // A tenth of a second later, one more.
        let later = start + Duration::from_millis(100);
        assert!(limiter.admit("greedy", later).is_ok());
        assert!(limiter.admit("greedy", later).is_err());
    }

    #[test]
    fn off_admits_everything_and_full_buckets_are_forgotten() {
        let off = RateLimiter::new(RateLimit::OFF);
        let now = Instant::now();
        assert!((0..10_000).all(|_| off.admit("anyone", now).is_ok()));

        let limiter = RateLimiter::new(RateLimit {
            per_second: 100,
            burst: 10,
        });
        for user in 0..1_000 {
            limiter.admit(&format!("user-{user}"), now).unwrap();
        }
        assert_eq!(limiter.tracked(), 1_000);
        limiter.admit("late", now + SWEEP_EVERY).unwrap();
        assert_eq!(limiter.tracked(), 1, "refilled buckets are swept");
    }
}
