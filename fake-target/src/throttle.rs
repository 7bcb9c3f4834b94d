//! Token buckets on the tenant's clock: per mailbox and per tenant, for messages and bytes.
//! A bucket holds one second's worth of tokens, so a burst is bounded and the rate is exact.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Rates; 0 (or absent) turns a limit off.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Imports per second, per mailbox.
    pub messages_per_second: f64,
    /// Bytes per second, per mailbox.
    pub bytes_per_second: f64,
    /// Imports per second over the whole tenant.
    pub tenant_messages_per_second: f64,
    /// Bytes per second over the whole tenant.
    pub tenant_bytes_per_second: f64,
}

#[derive(Clone, Debug)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    last: DateTime<Utc>,
}

impl Bucket {
    pub fn new(rate: f64, now: DateTime<Utc>) -> Self {
        Self {
            rate,
            tokens: rate.max(0.0),
            last: now,
        }
    }

    fn refill(&mut self, now: DateTime<Utc>) {
        let elapsed = (now - self.last).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        // Capacity: one second's worth, but never less than one request of any size.
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.last = now;
    }

    /// How long until `amount` tokens are there (zero if now). Takes nothing.
    pub fn wait_for(&mut self, amount: f64, now: DateTime<Utc>) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        self.refill(now);
        // A request bigger than the capacity may go once the bucket is full.
        let need = amount.min(self.rate.max(1.0));
        if self.tokens >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / self.rate)
        }
    }

    pub fn take(&mut self, amount: f64) {
        if self.rate > 0.0 {
            self.tokens -= amount.min(self.rate.max(1.0));
        }
    }
}

/// The four buckets an import passes through (per mailbox: messages, bytes).
#[derive(Clone, Debug)]
pub struct Buckets {
    pub messages: Bucket,
    pub bytes: Bucket,
}

impl Buckets {
    pub fn new(messages_per_second: f64, bytes_per_second: f64, now: DateTime<Utc>) -> Self {
        Self {
            messages: Bucket::new(messages_per_second, now),
            bytes: Bucket::new(bytes_per_second, now),
        }
    }

    pub fn wait_for(&mut self, bytes: u64, now: DateTime<Utc>) -> Duration {
        self.messages
            .wait_for(1.0, now)
            .max(self.bytes.wait_for(bytes as f64, now))
    }

    pub fn take(&mut self, bytes: u64) {
        self.messages.take(1.0);
        self.bytes.take(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_per_second() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let mut b = Bucket::new(2.0, t0);
        for _ in 0..2 {
            assert_eq!(b.wait_for(1.0, t0), Duration::ZERO);
            b.take(1.0);
        }
        assert_eq!(b.wait_for(1.0, t0), Duration::from_millis(500));
        let later = t0 + chrono::Duration::milliseconds(500);
        assert_eq!(b.wait_for(1.0, later), Duration::ZERO);
    }

    #[test]
    fn off_when_zero() {
        let t0 = Utc::now();
        let mut b = Buckets::new(0.0, 0.0, t0);
        for _ in 0..1000 {
            assert_eq!(b.wait_for(1 << 30, t0), Duration::ZERO);
            b.take(1 << 30);
        }
    }
}
