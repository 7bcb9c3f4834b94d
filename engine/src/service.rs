//! The migration service loop (`mailmig run`): housekeeping, validation, and per-user syncs
//! scheduled within each endpoint's concurrency limits; incremental syncs every 24 hours while
//! a batch is synced. A sync's claim and its end are each one transaction, so a killed run
//! restarts exactly the syncs that were in flight and nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::control::endpoint::Endpoint;
use crate::control::state::{BatchRow, UserRow};
use crate::control::status::{BatchStatus, UserEvent, UserStatus};
use crate::control::{Engine, apply_user_event, refresh_batch};
use crate::error::Error;
use crate::source::Credential;
use crate::sync::{FolderFilter, SyncJob, SyncKind, SyncOutcome, SyncReport, UserSync};
use crate::target::{Target, TargetError};

pub const INCREMENTAL_INTERVAL_HOURS: i64 = 24;
pub const IDLE_SYNCED_DAYS: i64 = 60;
pub const STOPPED_OR_FAILED_DAYS: i64 = 90;
pub const COMPLETED_DAYS: i64 = 60;

/// Something the loop did, for progress displays.
#[derive(Clone, Debug)]
pub enum ServiceEvent {
    Started {
        email: String,
        kind: SyncKind,
        /// The user's totals when the sync began.
        items_before: u64,
        bytes_before: u64,
    },
    Finished {
        email: String,
        kind: SyncKind,
        outcome: SyncOutcome,
        /// The user's totals so far.
        items_synced: u64,
        items_skipped: u64,
        /// What this sync moved, and what it skipped.
        stats: crate::sync::SyncStats,
        skipped_now: usize,
        /// This sync's skips by reason (folders and items), in the reasons' order.
        skipped_by_reason: Vec<(crate::sync::SkipReason, usize)>,
    },
    /// A running sync's progress.
    Progress {
        email: String,
        progress: crate::sync::SyncProgress,
    },
}

pub type EventHook = Arc<dyn Fn(&ServiceEvent) + Send + Sync>;

pub struct RunOptions {
    /// Return once nothing is due now and nothing runs.
    pub until_idle: bool,
    /// How often to look for new work while syncs run (or while idle).
    pub poll: Duration,
    pub on_event: Option<EventHook>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            until_idle: true,
            poll: Duration::from_millis(200),
            on_event: None,
        }
    }
}

pub struct Service {
    pub engine: Arc<Engine>,
    pub sync: Arc<dyn UserSync>,
    pub target: Arc<dyn Target>,
}

type Finished = (String, SyncKind, SyncReport);

impl Service {
    pub fn new(engine: Arc<Engine>, sync: Arc<dyn UserSync>, target: Arc<dyn Target>) -> Self {
        Self {
            engine,
            sync,
            target,
        }
    }

    pub async fn run(&self, options: RunOptions) -> Result<(), Error> {
        self.recover()?;
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let mut stops: HashMap<String, watch::Sender<bool>> = HashMap::new();
        // Housekeeping, revalidation and stop requests run on a tick (every `poll`, and
        // whenever nothing runs), not on every finished sync: their cost must not grow with
        // the number of users synced.
        let mut last_tick: Option<Instant> = None;
        // Users the target did not answer for (they stay Validating): a run that would go idle
        // with them says so instead of reporting success.
        let mut unanswered = None;
        // A cutover batch whose organisation or tenant did not answer: said at idle too.
        let mut provisioning_waits: Option<String> = None;
        let mut provisioning_tries = HashMap::new();
        loop {
            let now = self.engine.now();
            if tasks.is_empty() || last_tick.is_none_or(|t| t.elapsed() >= options.poll) {
                self.housekeeping(now)?;
                provisioning_waits = crate::provisioning::provision_due(
                    &self.engine,
                    &*self.target,
                    &mut provisioning_tries,
                )
                .await?;
                unanswered = self.engine.revalidate(&*self.target).await?;
                self.signal_stops(&stops)?;
                last_tick = Some(Instant::now());
            }
            for job in self.claim(now)? {
                let (tx, rx) = watch::channel(false);
                let email = job.0.email_address.clone();
                stops.insert(email.to_ascii_lowercase(), tx);
                let (mut job, kind) = (job.0, job.1);
                job.stop = rx;
                if let Some(cb) = &options.on_event {
                    cb(&ServiceEvent::Started {
                        email: email.clone(),
                        kind,
                        items_before: job.totals_before.0,
                        bytes_before: job.totals_before.1,
                    });
                    let (cb, email) = (cb.clone(), email.clone());
                    job.progress = Some(Arc::new(move |progress| {
                        cb(&ServiceEvent::Progress {
                            email: email.clone(),
                            progress,
                        })
                    }));
                }
                let sync = self.sync.clone();
                tasks.spawn(async move { (email, kind, sync.sync(job).await) });
            }
            if tasks.is_empty() {
                if options.until_idle {
                    if let Some(reason) = provisioning_waits.take() {
                        return Err(Error::Refused(format!(
                            "Recipients are still Provisioning: {reason}; fix it and run again"
                        )));
                    }
                    return match unanswered.take() {
                        None => Ok(()),
                        Some((users, e)) => Err(Error::Target(TargetError::Failed(format!(
                            "{users} user(s) are still Validating: the target didn't answer the recipient check ({e}); check the target (mailmig target get) and run again"
                        )))),
                    };
                }
                tokio::time::sleep(options.poll).await;
                continue;
            }
            tokio::select! {
                joined = tasks.join_next() => {
                    let Some(joined) = joined else { continue };
                    // Every sync that has ended by now is recorded in one transaction.
                    let mut ended = vec![joined];
                    while let Some(more) = tasks.try_join_next() {
                        ended.push(more);
                    }
                    let mut finished = Vec::with_capacity(ended.len());
                    for joined in ended {
                        let (email, kind, report) = joined
                            .map_err(|e| Error::State(format!("a sync task panicked: {e}")))?;
                        stops.remove(&email.to_ascii_lowercase());
                        if let Some(cb) = &options.on_event {
                            cb(&ServiceEvent::Finished {
                                email: email.clone(),
                                kind,
                                outcome: report.outcome.clone(),
                                items_synced: report.items_synced,
                                items_skipped: report.items_skipped,
                                stats: report.stats.clone(),
                                skipped_now: report.skipped.len(),
                                skipped_by_reason: crate::sync::SkipReason::ALL
                                    .into_iter()
                                    .map(|r| {
                                        (r, report.skipped.iter().filter(|s| s.reason == r).count())
                                    })
                                    .filter(|(_, n)| *n > 0)
                                    .collect(),
                            });
                        }
                        finished.push((email, kind, report));
                    }
                    self.finish(&finished)?;
                }
                _ = tokio::time::sleep(options.poll) => {}
            }
        }
    }

    /// Syncs that were in flight when the last run died start over (their copy is idempotent).
    pub fn recover(&self) -> Result<(), Error> {
        let now = self.engine.now();
        self.engine.db.transaction(|tx| {
            for u in tx.running_users()? {
                tx.set_user_running(&u.email_address, None, now)?;
                apply_user_event(tx, &u, UserEvent::Interrupted, now)?;
                refresh_batch(tx, &u.batch, now)?;
            }
            Ok(())
        })
    }

    fn signal_stops(&self, stops: &HashMap<String, watch::Sender<bool>>) -> Result<(), Error> {
        if stops.is_empty() {
            return Ok(());
        }
        for u in self
            .engine
            .db
            .read(|tx| tx.users_in_status(UserStatus::Stopping))?
        {
            if let Some(s) = stops.get(&u.email_address.to_ascii_lowercase()) {
                let _ = s.send(true);
            }
        }
        Ok(())
    }

    /// Picks the syncs due now within each endpoint's limits and marks them running. Final
    /// syncs first, then initial syncs in queue order, then incrementals (the longest waiting
    /// first). Indexed queries limited to the free slots: the cost is what starts, not the
    /// size of the batches.
    fn claim(&self, now: DateTime<Utc>) -> Result<Vec<(SyncJob, SyncKind)>, Error> {
        self.engine.db.transaction(|tx| {
            let batches = tx.batches()?;
            let endpoints = tx.endpoints()?;
            let cutoff = now - chrono::Duration::hours(INCREMENTAL_INTERVAL_HOURS);
            let mut jobs = Vec::new();
            for endpoint in endpoints {
                let mine: Vec<&BatchRow> = batches
                    .iter()
                    .filter(|b| b.endpoint.eq_ignore_ascii_case(&endpoint.name))
                    .collect();
                let (mut total, mut incremental) = (0u32, 0u32);
                for b in &mine {
                    let (t, i) = tx.running_counts(&b.name)?;
                    total += t;
                    incremental += i;
                }
                let free = |total: u32| endpoint.max_concurrent_migrations.saturating_sub(total);
                let free_incremental =
                    |n: u32| endpoint.max_concurrent_incremental_syncs.saturating_sub(n);
                // Each kind's candidates over the endpoint's batches, in their order.
                let mut candidates: Vec<(UserRow, SyncKind)> = Vec::new();
                let limit = free(total).min(free_incremental(incremental));
                let mut finals = Vec::new();
                for b in mine.iter().filter(|b| b.status == BatchStatus::Completing) {
                    finals.extend(tx.idle_users_in_status(
                        &b.name,
                        UserStatus::Completing,
                        limit,
                    )?);
                }
                finals.sort_by_key(|u| (u.queued_at, u.line));
                candidates.extend(finals.into_iter().map(|u| (u, SyncKind::Final)));
                let mut initials = Vec::new();
                for b in mine
                    .iter()
                    .filter(|b| matches!(b.status, BatchStatus::Syncing | BatchStatus::Starting))
                {
                    initials.extend(tx.queued_users(&b.name, free(total))?);
                }
                initials.sort_by_key(|u| (u.queued_at, u.line));
                candidates.extend(initials.into_iter().map(|u| (u, SyncKind::Initial)));
                let mut due = Vec::new();
                for b in mine.iter().filter(|b| {
                    matches!(
                        b.status,
                        BatchStatus::Synced | BatchStatus::SyncedWithErrors
                    )
                }) {
                    due.extend(tx.due_users(&b.name, cutoff, limit)?);
                }
                due.sort_by_key(|u| (!u.sync_now, u.last_successful_sync_time, u.line));
                candidates.extend(due.into_iter().map(|u| (u, SyncKind::Incremental)));
                for (u, kind) in candidates {
                    if total >= endpoint.max_concurrent_migrations {
                        break;
                    }
                    if u.kind.is_some_and(|k| !k.has_mailbox()) {
                        // A cutover's contact, group or mail user has no content: its
                        // incremental sync is done as soon as it is due (no slot, no source).
                        tx.set_user_running(&u.email_address, Some(kind), now)?;
                        tx.set_user_running(&u.email_address, None, now)?;
                        tx.set_user_stats(
                            &u.email_address,
                            u.items_synced,
                            u.items_skipped,
                            u.bytes_synced,
                            Some(now),
                        )?;
                        continue;
                    }
                    let counts_as_incremental = kind != SyncKind::Initial;
                    if counts_as_incremental
                        && incremental >= endpoint.max_concurrent_incremental_syncs
                    {
                        continue;
                    }
                    match kind {
                        SyncKind::Initial => {
                            apply_user_event(tx, &u, UserEvent::SlotAcquired, now)?;
                        }
                        SyncKind::Incremental => {
                            apply_user_event(tx, &u, UserEvent::IncrementalDue, now)?;
                        }
                        SyncKind::Final => {}
                    }
                    tx.set_user_running(&u.email_address, Some(kind), now)?;
                    total += 1;
                    if counts_as_incremental {
                        incremental += 1;
                    }
                    let batch = mine
                        .iter()
                        .find(|b| b.name.eq_ignore_ascii_case(&u.batch))
                        .expect("a candidate of one of these batches");
                    let user = tx.user(&u.email_address)?.expect("just updated");
                    jobs.push((job(kind, &user, batch, &endpoint), kind));
                }
            }
            for b in &batches {
                refresh_batch(tx, &b.name, now)?;
            }
            Ok(jobs)
        })
    }

    /// Records how syncs ended, all in one transaction; each batch is refreshed once.
    fn finish(&self, finished: &[Finished]) -> Result<(), Error> {
        let now = self.engine.now();
        self.engine.db.transaction(|tx| {
            let mut batches: Vec<String> = Vec::new();
            for (email, kind, report) in finished {
                if let Some(batch) = record_end(tx, email, *kind, report, now)?
                    && !batches.iter().any(|b| b.eq_ignore_ascii_case(&batch))
                {
                    batches.push(batch);
                }
            }
            for b in &batches {
                refresh_batch(tx, b, now)?;
            }
            Ok(())
        })
    }

    /// StartAfter, CompleteAfter and the 60/90-day rules.
    fn housekeeping(&self, now: DateTime<Utc>) -> Result<(), Error> {
        let days = chrono::Duration::days;
        self.engine.db.transaction(|tx| {
            for b in tx.batches()? {
                match b.status {
                    BatchStatus::Waiting if b.settings.start_after.is_none_or(|t| t <= now) => {
                        tx.set_batch_status(&b.name, BatchStatus::Syncing, now)?;
                    }
                    BatchStatus::Synced | BatchStatus::SyncedWithErrors
                        if b.settings.complete_after.is_some_and(|t| t <= now) =>
                    {
                        for u in tx.users(Some(&b.name))? {
                            if u.status == UserStatus::Synced && u.running.is_none() {
                                apply_user_event(tx, &u, UserEvent::CompleteRequested, now)?;
                            }
                        }
                        tx.set_batch_status(&b.name, BatchStatus::Completing, now)?;
                    }
                    BatchStatus::Synced | BatchStatus::SyncedWithErrors
                        if b.last_admin_action_at + days(IDLE_SYNCED_DAYS) <= now =>
                    {
                        let users = tx.users(Some(&b.name))?;
                        if users.iter().all(|u| u.running.is_none()) {
                            for u in users {
                                if u.status == UserStatus::Synced {
                                    apply_user_event(tx, &u, UserEvent::StopRequested, now)?;
                                }
                            }
                            tx.set_batch_status(&b.name, BatchStatus::Stopped, now)?;
                        }
                    }
                    BatchStatus::Stopped | BatchStatus::Failed
                        if b.status_since + days(STOPPED_OR_FAILED_DAYS) <= now =>
                    {
                        tx.delete_batch(&b.name)?;
                    }
                    BatchStatus::Completed | BatchStatus::CompletedWithErrors
                        if b.status_since + days(COMPLETED_DAYS) <= now =>
                    {
                        tx.delete_batch(&b.name)?;
                    }
                    _ => {}
                }
            }
            Ok(())
        })
    }
}

/// What a sync needs of a claimed user, without the rows it came from.
fn job(kind: SyncKind, user: &UserRow, batch: &BatchRow, endpoint: &Endpoint) -> SyncJob {
    // The service replaces this receiver with one it can signal.
    let (_, stop) = watch::channel(false);
    SyncJob {
        kind,
        email_address: user.email_address.clone(),
        batch: batch.name.clone(),
        credential: Credential {
            user_name: user.user_name.clone(),
            password: user.password.clone(),
            user_root: user.user_root.clone(),
        },
        source: endpoint.connection.clone(),
        folders: FolderFilter {
            exclude: batch.settings.exclude_folders.clone(),
            include: batch.settings.include_folders.clone(),
        },
        stop,
        totals_before: (user.items_synced, user.bytes_synced),
        progress: None,
    }
}

/// One sync's end: statistics, error, the user's next status. Returns the user's batch (None
/// when the user is gone, e.g. its batch was removed meanwhile).
fn record_end(
    tx: &crate::control::state::Tx<'_>,
    email: &str,
    kind: SyncKind,
    report: &SyncReport,
    now: DateTime<Utc>,
) -> Result<Option<String>, Error> {
    let Some(u) = tx.user(email)? else {
        return Ok(None);
    };
    tx.set_user_running(email, None, now)?;
    tx.record_skipped(email, &report.skipped, now)?;
    tx.set_user_last_sync(email, &report.stats)?;
    let success_at = (report.outcome == SyncOutcome::Completed).then_some(now);
    tx.set_user_stats(
        email,
        report.items_synced,
        report.items_skipped,
        report.bytes_synced,
        success_at,
    )?;
    let event = match &report.outcome {
        SyncOutcome::Completed => {
            tx.set_user_error(email, None)?;
            UserEvent::SyncSucceeded {
                with_warnings: kind == SyncKind::Final && report.items_skipped > 0,
            }
        }
        SyncOutcome::Stopped => UserEvent::SyncStopped,
        SyncOutcome::Failed(message) => {
            tx.set_user_error(email, Some(message))?;
            UserEvent::SyncFailed
        }
    };
    let event = if crate::control::status::user_event(u.status, event).is_some() {
        event
    } else {
        // A stop that came after the sync ended on its own, or the like.
        UserEvent::Interrupted
    };
    if crate::control::status::user_event(u.status, event).is_some() {
        apply_user_event(tx, &u, event, now)?;
    }
    Ok(Some(u.batch))
}
