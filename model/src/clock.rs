//! Time as the engine and a tenant see it: the system clock, or a manual one that tests move
//! forward, so a 30-day licence grace, a 24-hour incremental interval or a throttle window passes
//! in microseconds.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Waits `d` of this clock's time: real time for the system clock; for a manual clock the
    /// time moves on at once (a tenant's Retry-After passes without a real wait).
    fn sleep(
        &self,
        d: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// 2026-01-01T00:00:00Z, a fixed start for deterministic tests.
    pub fn at_epoch() -> Self {
        Self::new(
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .expect("valid")
                .to_utc(),
        )
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep(
        &self,
        d: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.advance(Duration::from_std(d).unwrap_or(Duration::zero()));
        Box::pin(tokio::task::yield_now())
    }
}
