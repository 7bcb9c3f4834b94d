//! The copy, whatever the source: one user's mailbox from a [`MailSource`] into a [`Target`].
//!
//! One attempt ([`attempt`]) lists the folders, plans them ([`plan`]), lists each folder's
//! items, applies the item cap ([`cap`]), copies folder by folder ([`folder`], importing with
//! [`import`]) and closes with a reconciliation ([`reconcile`]). [`Copier`] runs attempts until
//! one ends, reconnecting after passing faults within an error budget per side: a failing
//! target never spends the source's budget, and the reverse.
//!
//! A message is recorded as copied only after the target acknowledged it (Created or
//! AlreadyPresent), under the source key `email|folder|UIDVALIDITY|UID` the target's import is
//! idempotent by, so a crash at any point is followed by a re-run that neither loses nor
//! duplicates anything.
//!
//! [`MailSource`]: crate::source::MailSource

mod attempt;
mod cap;
mod folder;
mod import;
pub mod plan;
mod reconcile;
pub mod survey;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::control::Engine;
pub use crate::identity::{fingerprint, fingerprint_of, source_key};
use crate::source::SourceError;
use crate::sync::{Side, SyncJob, SyncOutcome, SyncProgress, SyncReport, UserSync};
use crate::target::{Target, TargetError};

/// 35 MiB: bigger messages are skipped as large items, decided before downloading.
pub const MAX_MESSAGE_SIZE: u64 = 36_700_160;
/// Bytes of messages per fetch (a single bigger message still goes alone).
pub const CHUNK_BYTES: u64 = 64 * 1024 * 1024;
/// At most this many items per mailbox, newest first.
pub const ITEM_CAP: usize = 500_000;

#[derive(Clone, Debug)]
pub struct CopyOptions {
    pub max_message_size: u64,
    pub item_cap: usize,
    /// Messages per fetch command, at most (a folder's first chunks are smaller; every chunk
    /// is also bounded by its bytes).
    pub fetch_chunk: usize,
    /// Connection and command timeout.
    pub timeout: Duration,
    /// Passing errors tolerated per sync, per side (source, target, state), before the user
    /// fails.
    pub error_budget: u32,
    /// Fetch attempts for a message before it is skipped as a bad item.
    pub fetch_attempts: u32,
    /// However few the errors, a side that has kept failing this long ends the user.
    pub retry_window: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            max_message_size: MAX_MESSAGE_SIZE,
            item_cap: ITEM_CAP,
            fetch_chunk: 1024,
            timeout: Duration::from_secs(60),
            error_budget: 10,
            fetch_attempts: 3,
            retry_window: Duration::from_secs(15 * 60),
        }
    }
}

/// The real [`UserSync`]: any source to a [`Target`].
pub struct Copier {
    pub engine: Arc<Engine>,
    pub target: Arc<dyn Target>,
    pub options: CopyOptions,
}

impl Copier {
    pub fn new(engine: Arc<Engine>, target: Arc<dyn Target>, options: CopyOptions) -> Self {
        Self {
            engine,
            target,
            options,
        }
    }
}

/// Why an attempt ended early.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The source refused the credentials.
    #[error("{0}")]
    Authentication(String),
    #[error("{message}")]
    Source { transient: bool, message: String },
    /// The source asked us to wait this long.
    #[error("{message}")]
    Throttled { wait: Duration, message: String },
    #[error("{message}")]
    Target { transient: bool, message: String },
    /// The checkpoint could not be read or written.
    #[error("the state database: {0}")]
    State(String),
    /// The batch was stopped.
    #[error("stopped")]
    Stopped,
}

impl From<SourceError> for SyncError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Authentication(m) => SyncError::Authentication(m),
            SourceError::Throttled { wait, message } => SyncError::Throttled { wait, message },
            SourceError::Transient(message) => SyncError::Source {
                transient: true,
                message,
            },
            SourceError::Permanent(message) => SyncError::Source {
                transient: false,
                message,
            },
            SourceError::Stopped => SyncError::Stopped,
        }
    }
}

impl From<TargetError> for SyncError {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Transient(message) => SyncError::Target {
                transient: true,
                message,
            },
            TargetError::Refused(message) => SyncError::Target {
                transient: false,
                message,
            },
            TargetError::Failed(m) => SyncError::Target {
                transient: false,
                message: format!("The target failed: {m}"),
            },
        }
    }
}

impl From<crate::Error> for SyncError {
    fn from(e: crate::Error) -> Self {
        SyncError::State(e.to_string())
    }
}

/// Fetch attempts per (folder, UID) over one sync, reconnects included.
type Attempts = HashMap<(String, u32), u32>;

/// Passing errors so far, per side; each side has its own budget, in count and in time.
#[derive(Debug, Default)]
struct Failures {
    source: u32,
    target: u32,
    state: u32,
    /// When the first error of this sync happened.
    since: Option<Instant>,
}

/// What to do after an attempt failed.
#[derive(Debug, PartialEq)]
enum Next {
    Retry(Duration),
    End(SyncOutcome),
}

/// Capped exponential backoff with jitter.
fn backoff(errors: u32) -> Duration {
    Duration::from_millis(50u64 << errors.min(7))
        + Duration::from_millis(rand::random::<u64>() % 50)
}

impl Failures {
    fn after(&mut self, e: SyncError, budget: u32, window: Duration) -> Next {
        let since = *self.since.get_or_insert_with(Instant::now);
        let (count, who, message, asked) = match e {
            SyncError::Stopped => return Next::End(SyncOutcome::Stopped),
            SyncError::Authentication(m)
            | SyncError::Source {
                transient: false,
                message: m,
            }
            | SyncError::Target {
                transient: false,
                message: m,
            } => return Next::End(SyncOutcome::Failed(m)),
            SyncError::Source { message, .. } => {
                (&mut self.source, "The source server", message, None)
            }
            SyncError::Throttled { wait, message } => {
                (&mut self.source, "The source server", message, Some(wait))
            }
            SyncError::Target { message, .. } => (&mut self.target, "The target", message, None),
            SyncError::State(message) => (&mut self.state, "The state database", message, None),
        };
        *count += 1;
        if *count > budget {
            return Next::End(SyncOutcome::Failed(format!(
                "{who} kept failing ({count} errors); the last: {message}"
            )));
        }
        if since.elapsed() >= window {
            return Next::End(SyncOutcome::Failed(format!(
                "{who} kept failing for {}s ({count} errors); the last: {message}",
                since.elapsed().as_secs()
            )));
        }
        let wait = asked
            .unwrap_or_else(|| backoff(*count))
            .min(Duration::from_secs(300));
        tracing::debug!(error = %message, ?wait, "{who} failed; trying again");
        Next::Retry(wait)
    }
}

#[async_trait]
impl UserSync for Copier {
    async fn sync(&self, job: SyncJob) -> SyncReport {
        let mut report = SyncReport::completed();
        let started = Instant::now();
        let (before_items, before_bytes) = job.totals_before;
        let mut failures = Failures::default();
        let mut attempts = Attempts::new();
        loop {
            report.skipped.clear();
            let Err(e) = attempt::run(self, &job, &mut report, &mut attempts).await else {
                break;
            };
            let (budget, window) = (self.options.error_budget, self.options.retry_window);
            let throttled = matches!(e, SyncError::Throttled { .. });
            match failures.after(e, budget, window) {
                Next::End(outcome) => {
                    report.outcome = outcome;
                    break;
                }
                Next::Retry(wait) => {
                    if throttled {
                        job.tell(SyncProgress::Throttled {
                            wait,
                            by: Side::Source,
                        });
                    }
                    tokio::time::sleep(wait).await
                }
            }
        }
        self.target.sync_ended(&job.email_address).await;
        let totals = self
            .engine
            .db
            .read(|tx| tx.copied_totals(&job.email_address));
        if let Ok(now) = totals {
            report.items_synced = now.items;
            report.bytes_synced = now.bytes;
            report.stats.items = now.items.saturating_sub(before_items);
            report.stats.bytes = now.bytes.saturating_sub(before_bytes);
        }
        report.stats.elapsed_ms = started.elapsed().as_millis() as u64;
        report.items_skipped = report.skipped.iter().filter(|s| !s.is_folder()).count() as u64;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_side_that_keeps_failing_for_the_window_ends_the_user() {
        let mut f = Failures::default();
        assert!(matches!(
            f.after(transient_source("greeting timed out"), 100, Duration::ZERO),
            Next::End(SyncOutcome::Failed(m)) if m.contains("kept failing for 0s")
        ));
    }

    fn transient_source(m: &str) -> SyncError {
        SyncError::Source {
            transient: true,
            message: m.into(),
        }
    }

    fn transient_target(m: &str) -> SyncError {
        SyncError::Target {
            transient: true,
            message: m.into(),
        }
    }

    #[test]
    fn each_side_spends_its_own_budget() {
        let mut f = Failures::default();
        for _ in 0..2 {
            assert!(matches!(
                f.after(transient_target("503"), 2, HOUR),
                Next::Retry(_)
            ));
        }
        // The target's faults did not spend the source's budget.
        for _ in 0..2 {
            assert!(matches!(
                f.after(transient_source("BYE"), 2, HOUR),
                Next::Retry(_)
            ));
        }
        assert_eq!(
            f.after(transient_target("503"), 2, HOUR),
            Next::End(SyncOutcome::Failed(
                "The target kept failing (3 errors); the last: 503".into()
            ))
        );
        assert_eq!(
            f.after(transient_source("BYE"), 2, HOUR),
            Next::End(SyncOutcome::Failed(
                "The source server kept failing (3 errors); the last: BYE".into()
            ))
        );
    }

    #[test]
    fn permanent_failures_end_at_once_in_their_own_words() {
        let mut f = Failures::default();
        assert_eq!(
            f.after(
                TargetError::Failed("HTTP 400: bad folder".into()).into(),
                10,
                HOUR
            ),
            Next::End(SyncOutcome::Failed(
                "The target failed: HTTP 400: bad folder".into()
            ))
        );
        assert_eq!(
            f.after(SourceError::Authentication("no".into()).into(), 10, HOUR),
            Next::End(SyncOutcome::Failed("no".into()))
        );
        assert_eq!(
            f.after(SyncError::Stopped, 10, HOUR),
            Next::End(SyncOutcome::Stopped)
        );
    }

    #[test]
    fn a_throttling_source_is_waited_as_asked_within_a_cap() {
        let mut f = Failures::default();
        let throttled = |ms| SyncError::Throttled {
            wait: Duration::from_millis(ms),
            message: "slow down".into(),
        };
        assert_eq!(
            f.after(throttled(1234), 10, HOUR),
            Next::Retry(Duration::from_millis(1234))
        );
        assert_eq!(
            f.after(throttled(10_000_000), 10, HOUR),
            Next::Retry(Duration::from_secs(300))
        );
    }
}
