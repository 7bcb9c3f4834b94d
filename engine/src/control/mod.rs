//! The control plane: what an admin does (the cmdlets: endpoints, batches, users), with its
//! inputs ([`csv`], [`endpoint`]), its transition tables ([`status`]) and its durable state
//! ([`state`]). Every operation checks the transition table and changes the state in one
//! transaction.

pub mod csv;
pub mod cutover;
pub mod endpoint;
pub mod state;
pub mod status;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use self::csv::{CsvOptions, ParsedCsv, RowError};
use self::endpoint::Endpoint;
use self::state::{BatchRow, BatchSettings, StateDb, Tx, UserRow};
use self::status::{BatchOp, BatchStatus, Effect, UserEvent, UserStatus, batch_op, user_event};
use crate::clock::Clock;
use crate::error::Error;
use crate::sync::FolderFilter;
use crate::target::{RecipientCheck, Target, TargetError};

pub const MAX_BATCH_NAME: usize = 64;

pub struct Engine {
    pub db: StateDb,
    pub clock: Arc<dyn Clock>,
}

/// New-MigrationBatch's parameters.
#[derive(Clone, Debug, Default)]
pub struct NewBatch {
    pub name: String,
    pub source_endpoint: String,
    pub autostart: bool,
    pub settings: BatchSettings,
}

/// What creating a batch (or adding users) did with the CSV.
#[derive(Clone, Debug, Default)]
pub struct CsvOutcome {
    pub added: usize,
    pub row_errors: Vec<RowError>,
}

/// Set-MigrationBatch's parameters.
#[derive(Clone, Debug, Default)]
pub struct SetBatch {
    pub sync_now: bool,
    pub add_users: Option<(std::path::PathBuf, Vec<u8>)>,
    pub exclude_folders: Option<Vec<String>>,
    pub include_folders: Option<Vec<String>>,
    pub complete_after: Option<DateTime<Utc>>,
}

/// A batch's statistics, like imapsync's: totals, rates and an ETA.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchStats {
    pub total_count: usize,
    pub active_count: usize,
    pub synced_count: usize,
    pub completed_count: usize,
    pub failed_count: usize,
    pub stopped_count: usize,
    pub items_synced: u64,
    pub items_skipped: u64,
    pub bytes_synced: u64,
    /// Over the users' last syncs.
    pub items_per_second: f64,
    pub mib_per_second: f64,
    /// Users still to copy times the mean duration of a user's sync, over the endpoint's
    /// concurrency; `None` until a user has been copied.
    pub estimated_seconds_remaining: Option<u64>,
}

/// Seconds for `remaining` users at `concurrency` at once, each taking `mean_ms`.
pub fn estimate_seconds(remaining: usize, concurrency: u32, mean_ms: u64) -> u64 {
    let waves = remaining.div_ceil(concurrency.max(1) as usize) as u64;
    (waves * mean_ms).div_ceil(1000)
}

/// A batch's time left: the running syncs' own progress (what each has copied of what its
/// plan found, at its rate so far) plus the users still waiting, in waves of `concurrency`,
/// each taking the mean of the syncs that ended (or, before any has, of the running ones'
/// projections). `None` until something has been measured.
pub fn estimate_remaining(
    users: &[UserRow],
    now: DateTime<Utc>,
    concurrency: u32,
    mean_ended_ms: Option<u64>,
    remaining: usize,
) -> Option<u64> {
    // (projected whole duration, elapsed) of each running initial sync with progress.
    let running: Vec<(f64, f64)> = users
        .iter()
        .filter(|u| u.status == UserStatus::Syncing && u.items_synced > 0)
        .filter_map(|u| {
            let total = u.source_items? as f64;
            let elapsed = (now - u.sync_started_at?).num_milliseconds().max(1) as f64;
            Some((
                elapsed * total.max(u.items_synced as f64) / u.items_synced as f64,
                elapsed,
            ))
        })
        .collect();
    if running.is_empty() {
        return mean_ended_ms.map(|mean| estimate_seconds(remaining, concurrency, mean));
    }
    let left_ms = running.iter().map(|(d, e)| d - e).fold(0.0, f64::max);
    let mean = mean_ended_ms.unwrap_or_else(|| {
        (running.iter().map(|r| r.0).sum::<f64>() / running.len() as f64) as u64
    });
    let waiting = remaining.saturating_sub(running.len());
    Some((left_ms / 1000.0).ceil() as u64 + estimate_seconds(waiting, concurrency, mean))
}

/// A batch name as New-MigrationBatch takes it: trimmed, 1 to 64 characters, no control
/// characters (a name is printed in every table).
pub fn validate_name(name: &str) -> Result<String, Error> {
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_BATCH_NAME {
        return Err(Error::Invalid(format!(
            "The batch name must be 1 to {MAX_BATCH_NAME} characters long."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "The batch name \"{}\" holds a control character.",
            csv::shown(&name)
        )));
    }
    Ok(name)
}

/// The user Set-/Remove-MigrationUser act on: an IMAP user that no sync is running for
/// (`cutover_why` says why a cutover recipient is refused, `then` what to do after the sync).
fn idle_imap_user(
    tx: &Tx<'_>,
    email: &str,
    cutover_why: &str,
    then: &str,
) -> Result<UserRow, Error> {
    let u = tx
        .user(email)?
        .ok_or_else(|| Error::NotFound(format!("The migration user \"{email}\" wasn't found.")))?;
    if u.kind.is_some() {
        return Err(Error::Refused(format!(
            "{} is a cutover recipient: {cutover_why}.",
            u.email_address
        )));
    }
    if u.status.is_active() || u.running.is_some() {
        return Err(Error::Refused(format!(
            "The migration user \"{}\" is being synced: stop its batch (mailmig batch stop {}) or wait for the sync to end, then {then}.",
            u.email_address, u.batch
        )));
    }
    Ok(u)
}

/// Set-MigrationUser's changes (None: unchanged).
#[derive(Clone, Default)]
pub struct SetUser {
    pub user_name: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SetUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetUser")
            .field("user_name", &self.user_name)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// Applies one user event from the table, or reports that it does not apply.
pub fn apply_user_event(
    tx: &Tx<'_>,
    user: &UserRow,
    event: UserEvent,
    now: DateTime<Utc>,
) -> Result<UserStatus, Error> {
    let next = user_event(user.status, event).ok_or_else(|| {
        Error::State(format!(
            "user {}: {event:?} does not apply in status {}",
            user.email_address, user.status
        ))
    })?;
    if next == UserStatus::Queued {
        tx.set_user_queued(&user.email_address, now)?;
    } else {
        tx.set_user_status(&user.email_address, next)?;
    }
    Ok(next)
}

/// The batch status its users imply, for batches whose status follows their users.
pub fn refresh_batch(
    tx: &Tx<'_>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<BatchStatus>, Error> {
    let Some(batch) = tx.batch(name)? else {
        return Ok(None);
    };
    // Index probes, not a read of every user: this runs after every sync.
    let c = tx.census(name)?;
    use BatchStatus as B;
    let next = match batch.status {
        B::Stopping if !c.active => B::Stopped,
        B::Starting | B::Syncing if !c.active && !c.waiting => {
            if c.any && c.all_failed {
                B::Failed
            } else if c.failed {
                B::SyncedWithErrors
            } else {
                B::Synced
            }
        }
        B::Synced | B::SyncedWithErrors | B::Stopped if c.waiting => B::Syncing,
        B::Synced if c.failed && !c.active => B::SyncedWithErrors,
        B::Completing if !c.completing => {
            if c.failed || c.warned {
                B::CompletedWithErrors
            } else {
                B::Completed
            }
        }
        s => s,
    };
    if next != batch.status {
        tx.set_batch_status(name, next, now)?;
    }
    Ok(Some(next))
}

impl Engine {
    /// Opens the state in `state_dir`, creating it when there is none yet.
    pub fn open(state_dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        Ok(Self {
            db: StateDb::open(state_dir)?,
            clock,
        })
    }

    /// Opens the state `state_dir` holds; an error when there is none.
    pub fn open_existing(state_dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        Ok(Self {
            db: StateDb::open_existing(state_dir)?,
            clock,
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    // ----- endpoints -----

    /// Stores a new endpoint. Verification (the connectivity test) is the caller's, before.
    pub fn endpoint_new(&self, endpoint: Endpoint) -> Result<(), Error> {
        endpoint.validate()?;
        self.db.transaction(|tx| {
            if tx.endpoint(&endpoint.name)?.is_some() {
                return Err(Error::Refused(format!(
                    "The migration endpoint \"{}\" already exists.",
                    endpoint.name
                )));
            }
            tx.put_endpoint(&endpoint)
        })
    }

    pub fn endpoint_set(&self, endpoint: Endpoint) -> Result<(), Error> {
        endpoint.validate()?;
        self.db.transaction(|tx| {
            if tx.endpoint(&endpoint.name)?.is_none() {
                return Err(Error::NotFound(format!(
                    "The migration endpoint \"{}\" wasn't found.",
                    endpoint.name
                )));
            }
            tx.put_endpoint(&endpoint)
        })
    }

    pub fn endpoint(&self, name: &str) -> Result<Endpoint, Error> {
        self.db.read(|tx| tx.endpoint(name))?.ok_or_else(|| {
            Error::NotFound(format!("The migration endpoint \"{name}\" wasn't found."))
        })
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        self.db.read(|tx| tx.endpoints())
    }

    pub fn endpoint_remove(&self, name: &str) -> Result<(), Error> {
        self.db.transaction(|tx| {
            if let Some(b) = tx
                .batches()?
                .iter()
                .find(|b| b.endpoint.eq_ignore_ascii_case(name))
            {
                return Err(Error::Refused(format!(
                    "The migration endpoint \"{name}\" is used by the migration batch \"{}\".",
                    b.name
                )));
            }
            if !tx.delete_endpoint(name)? {
                return Err(Error::NotFound(format!(
                    "The migration endpoint \"{name}\" wasn't found."
                )));
            }
            Ok(())
        })
    }

    // ----- batches -----

    fn existing_addresses(&self) -> Result<HashMap<String, String>, Error> {
        Ok(self.db.read(|tx| tx.all_addresses())?.into_iter().collect())
    }

    fn parse_csv(
        &self,
        path: &Path,
        bytes: &[u8],
        allow_unknown: bool,
    ) -> Result<ParsedCsv, Error> {
        let options = CsvOptions {
            allow_unknown_columns: allow_unknown,
            existing: self.existing_addresses()?,
            ..CsvOptions::default()
        };
        csv::parse(bytes, &options).map_err(|r| Error::File {
            path: path.to_path_buf(),
            message: r.message,
        })
    }

    /// New-MigrationBatch. Rows with errors become Failed users (the rest of the batch goes on);
    /// valid rows are validated against the target.
    pub async fn batch_new(
        &self,
        new: NewBatch,
        csv_path: &Path,
        csv_bytes: &[u8],
        target: &dyn Target,
    ) -> Result<CsvOutcome, Error> {
        let name = validate_name(&new.name)?;
        let endpoint = self.endpoint(&new.source_endpoint)?;
        if endpoint.endpoint_type().is_cutover() {
            return Err(Error::Invalid(format!(
                "The endpoint \"{}\" is an Exchange Outlook Anywhere endpoint: a cutover batch takes the whole organisation and no CSV (leave out --csv).",
                endpoint.name
            )));
        }
        if self.db.read(|tx| tx.batch(&name))?.is_some() {
            return Err(Error::Refused("The migration batch already exists.".into()));
        }
        let parsed = self.parse_csv(csv_path, csv_bytes, new.settings.allow_unknown_columns)?;
        let now = self.now();
        let checks = self.validate_rows(&parsed, target).await;
        let outcome = self.db.transaction(|tx| {
            tx.insert_batch(&BatchRow {
                name: name.clone(),
                endpoint: new.source_endpoint.clone(),
                status: BatchStatus::Created,
                settings: new.settings.clone(),
                created_at: now,
                last_admin_action_at: now,
                status_since: now,
            })?;
            insert_users(tx, &name, &parsed, &checks, now)
        })?;
        if new.autostart {
            self.batch_start(&name)?;
        }
        Ok(outcome)
    }

    /// How a user's mailbox is read: its endpoint's settings, its login, and its batch's
    /// folder filters (what a verification reads, as the sync would).
    pub fn user_source(
        &self,
        email: &str,
    ) -> Result<
        (
            crate::source::SourceSettings,
            crate::source::Credential,
            FolderFilter,
        ),
        Error,
    > {
        let u = self.user(email)?;
        let batch = self.batch(&u.batch)?;
        let endpoint = self.endpoint(&batch.endpoint)?;
        Ok((
            endpoint.connection,
            crate::source::Credential {
                user_name: u.user_name,
                password: u.password,
                user_root: u.user_root,
            },
            FolderFilter {
                exclude: batch.settings.exclude_folders,
                include: batch.settings.include_folders,
            },
        ))
    }

    /// A CSV checked as New-MigrationBatch would check it, nothing stored: the rows, the row
    /// errors, and each valid row's recipient check (a rehearsal's first step).
    pub async fn check_csv(
        &self,
        csv_path: &Path,
        csv_bytes: &[u8],
        allow_unknown_columns: bool,
        target: &dyn Target,
    ) -> Result<(ParsedCsv, Vec<RecipientCheck>), Error> {
        let parsed = self.parse_csv(csv_path, csv_bytes, allow_unknown_columns)?;
        let checks = self.validate_rows(&parsed, target).await;
        Ok((parsed, checks))
    }

    /// Recipient checks for valid rows: an error = the target did not answer (the row stays
    /// Validating, with the reason as its error).
    async fn validate_rows(&self, parsed: &ParsedCsv, target: &dyn Target) -> Vec<RecipientCheck> {
        let addresses: Vec<String> = parsed
            .rows
            .iter()
            .map(|r| r.email_address.clone())
            .collect();
        target.check_recipients(&addresses).await
    }

    pub fn batch(&self, name: &str) -> Result<BatchRow, Error> {
        self.db
            .read(|tx| tx.batch(name))?
            .ok_or_else(|| Error::NotFound(format!("The migration batch \"{name}\" wasn't found.")))
    }

    pub fn batches(&self) -> Result<Vec<BatchRow>, Error> {
        self.db.read(|tx| tx.batches())
    }

    pub fn users(&self, batch: Option<&str>) -> Result<Vec<UserRow>, Error> {
        if let Some(b) = batch {
            self.batch(b)?;
        }
        self.db.read(|tx| tx.users(batch))
    }

    pub fn batch_stats(&self, name: &str) -> Result<BatchStats, Error> {
        let batch = self.batch(name)?;
        let users = self.users(Some(name))?;
        let endpoint = self.endpoint(&batch.endpoint).ok();
        let count = |s: &str| users.iter().filter(|u| u.status.summary() == s).count();
        let done: Vec<&UserRow> = users.iter().filter(|u| u.last_sync_ms > 0).collect();
        let (items, bytes, ms) = done.iter().fold((0u64, 0u64, 0u64), |a, u| {
            (
                a.0 + u.last_sync_items,
                a.1 + u.last_sync_bytes,
                a.2 + u.last_sync_ms,
            )
        });
        let secs = (ms as f64 / 1000.0).max(0.001);
        let remaining = users
            .iter()
            .filter(|u| {
                matches!(
                    u.status,
                    UserStatus::Validating | UserStatus::Queued | UserStatus::Syncing
                )
            })
            .count();
        Ok(BatchStats {
            total_count: users.len(),
            active_count: count("Active"),
            synced_count: count("Synced"),
            completed_count: count("Completed"),
            failed_count: count("Failed"),
            stopped_count: count("Stopped"),
            items_synced: users.iter().map(|u| u.items_synced).sum(),
            items_skipped: users.iter().map(|u| u.items_skipped).sum(),
            bytes_synced: users.iter().map(|u| u.bytes_synced).sum(),
            items_per_second: if done.is_empty() {
                0.0
            } else {
                items as f64 / secs
            },
            mib_per_second: if done.is_empty() {
                0.0
            } else {
                bytes as f64 / 1_048_576.0 / secs
            },
            estimated_seconds_remaining: estimate_remaining(
                &users,
                self.now(),
                endpoint.map_or(1, |e| e.max_concurrent_migrations),
                (!done.is_empty()).then(|| ms / done.len() as u64),
                remaining,
            ),
        })
    }

    pub fn user(&self, email: &str) -> Result<UserRow, Error> {
        self.db
            .read(|tx| tx.user(email))?
            .ok_or_else(|| Error::NotFound(format!("The migration user \"{email}\" wasn't found.")))
    }

    /// Set-MigrationUser: a new source login for one IMAP user (a mistyped password in one
    /// CSV row is fixed without removing the batch). A failed user of a syncing or synced
    /// batch is retried at once, alone; returns the user's status after the change. Refused while the user is being synced, and for cutover recipients (they
    /// are read as the endpoint's admin).
    pub fn user_set(&self, email: &str, set: SetUser) -> Result<UserStatus, Error> {
        let now = self.now();
        self.db.transaction(|tx| {
            let u = idle_imap_user(
                tx,
                email,
                "it is read with the endpoint's admin credentials (change them with mailmig endpoint new)",
                "change it",
            )?;
            let user_name = set.user_name.unwrap_or_else(|| u.user_name.clone());
            let password = set.password.unwrap_or_else(|| u.password.clone());
            if user_name.trim().is_empty() {
                return Err(Error::Refused("UserName is empty.".into()));
            }
            if password.is_empty()
                || password.chars().count() > 256
                || password.contains('\0')
                || password.trim() != password
            {
                return Err(Error::Refused(
                    "The password must be 1 to 256 characters, without NUL and without white space at either end.".into(),
                ));
            }
            tx.set_user_login(&u.email_address, &user_name, &password)?;
            let batch = tx.batch(&u.batch)?;
            // A failed user of a batch that is syncing (or has synced) is retried alone; in a
            // stopped or completed batch it waits for Start-MigrationBatch like the others.
            let retry = u.status == UserStatus::Failed
                && batch.as_ref().is_some_and(|b| {
                    matches!(
                        b.status,
                        BatchStatus::Syncing
                            | BatchStatus::Synced
                            | BatchStatus::SyncedWithErrors
                            | BatchStatus::Failed
                    )
                });
            if !retry {
                return Ok(u.status);
            }
            tx.set_user_error(&u.email_address, None)?;
            let status = apply_user_event(tx, &u, UserEvent::Retry, now)?;
            if let Some(b) = batch
                && b.status != BatchStatus::Syncing
            {
                tx.set_batch_status(&b.name, BatchStatus::Syncing, now)?;
            }
            refresh_batch(tx, &u.batch, now)?;
            Ok(status)
        })
    }

    /// Remove-MigrationUser: the user leaves its batch (what was copied stays in the target).
    /// Refused while it is being synced, and for cutover recipients (a cutover batch is the
    /// whole organisation).
    pub fn user_remove(&self, email: &str) -> Result<(), Error> {
        let now = self.now();
        self.db.transaction(|tx| {
            let u = idle_imap_user(
                tx,
                email,
                "a cutover batch migrates the whole organisation, and is removed as a whole",
                "remove it",
            )?;
            tx.delete_user(&u.email_address)?;
            refresh_batch(tx, &u.batch, now)?;
            Ok(())
        })
    }

    /// Checks an operation against the table, in a transaction that then applies it.
    fn operate<T>(
        &self,
        name: &str,
        op: BatchOp,
        apply: impl FnOnce(&Tx<'_>, &BatchRow, Effect, DateTime<Utc>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let now = self.now();
        self.db.transaction(|tx| {
            let batch = tx.batch(name)?.ok_or_else(|| {
                Error::NotFound(format!("The migration batch \"{name}\" wasn't found."))
            })?;
            let failed = tx
                .users(Some(&batch.name))?
                .iter()
                .any(|u| u.status == UserStatus::Failed);
            let effect = batch_op(batch.status, op, failed).map_err(Error::Refused)?;
            if op != BatchOp::Remove {
                tx.touch_batch(&batch.name, now)?;
            }
            apply(tx, &batch, effect, now)
        })
    }

    /// Start-MigrationBatch: starts, or retries failed (and stopped) users.
    pub fn batch_start(&self, name: &str) -> Result<BatchStatus, Error> {
        self.operate(name, BatchOp::Start, |tx, batch, effect, now| {
            let Effect::RetryFailed(mut next) = effect else {
                return Err(Error::State(format!(
                    "unexpected effect {effect:?} of Start"
                )));
            };
            if batch.status == BatchStatus::Created
                && batch.settings.start_after.is_some_and(|t| t > now)
            {
                next = BatchStatus::Waiting;
            }
            for u in tx.users(Some(&batch.name))? {
                // Rows the CSV rejected have no credentials: retrying them cannot help. A
                // cutover's recipients (with a kind) read the organisation as the endpoint's
                // admin: they are provisioned again.
                let retryable = !u.user_name.is_empty() || u.kind.is_some();
                if matches!(u.status, UserStatus::Failed | UserStatus::Stopped) && retryable {
                    // A completed batch's retried users get the final sync.
                    if next == BatchStatus::Completing {
                        tx.set_user_error(&u.email_address, None)?;
                        tx.set_user_status(&u.email_address, UserStatus::Completing)?;
                    } else if u.kind.is_some() {
                        apply_user_event(tx, &u, UserEvent::RetryProvisioning, now)?;
                    } else {
                        apply_user_event(tx, &u, UserEvent::Retry, now)?;
                    }
                }
            }
            tx.set_batch_status(&batch.name, next, now)?;
            Ok(next)
        })
    }

    /// Stop-MigrationBatch: waiting users stop now, running syncs are asked to stop.
    pub fn batch_stop(&self, name: &str) -> Result<BatchStatus, Error> {
        self.operate(name, BatchOp::Stop, |tx, batch, _, now| {
            for u in tx.users(Some(&batch.name))? {
                if user_event(u.status, UserEvent::StopRequested).is_some() {
                    apply_user_event(tx, &u, UserEvent::StopRequested, now)?;
                }
            }
            tx.set_batch_status(&batch.name, BatchStatus::Stopping, now)?;
            Ok(refresh_batch(tx, &batch.name, now)?.unwrap_or(BatchStatus::Stopping))
        })
    }

    /// Complete-MigrationBatch: a final incremental sync of every synced user. A cutover batch
    /// is not completed: it ends by removal.
    pub fn batch_complete(&self, name: &str) -> Result<BatchStatus, Error> {
        if self.is_cutover(&self.batch(name)?) {
            return Err(Error::Refused(cutover::NO_COMPLETE.into()));
        }
        self.operate(name, BatchOp::Complete, |tx, batch, effect, now| {
            if effect == Effect::Stay {
                return Ok(batch.status); // repeated while completing: ignored
            }
            for u in tx.users(Some(&batch.name))? {
                if u.status == UserStatus::Synced {
                    apply_user_event(tx, &u, UserEvent::CompleteRequested, now)?;
                }
            }
            tx.set_batch_status(&batch.name, BatchStatus::Completing, now)?;
            Ok(refresh_batch(tx, &batch.name, now)?.unwrap_or(BatchStatus::Completing))
        })
    }

    /// Remove-MigrationBatch: the batch and its users are gone; the name can be reused. A
    /// cutover batch goes only after the MX switch ([`Engine::batch_remove_cutover`]).
    pub fn batch_remove(&self, name: &str) -> Result<(), Error> {
        self.batch_remove_cutover(name, cutover::CutoverRemoval::default())
    }

    /// Remove-MigrationBatch with what the admin says about the MX switch (cutover batches).
    pub fn batch_remove_cutover(
        &self,
        name: &str,
        removal: cutover::CutoverRemoval,
    ) -> Result<(), Error> {
        if self.is_cutover(&self.batch(name)?) {
            self.check_cutover_removal(name, removal)?;
        }
        self.operate(name, BatchOp::Remove, |tx, batch, _, _| {
            tx.delete_batch(&batch.name)
        })
    }

    /// Set-MigrationBatch: settings, AddUsers (new rows only), SyncNow.
    pub async fn batch_set(
        &self,
        name: &str,
        set: SetBatch,
        target: &dyn Target,
    ) -> Result<CsvOutcome, Error> {
        let batch = self.batch(name)?;
        if self.is_cutover(&batch) {
            if set.complete_after.is_some() {
                return Err(Error::Refused(cutover::NO_COMPLETE.into()));
            }
            if set.add_users.is_some() {
                return Err(Error::Refused(
                    "A cutover migration batch takes the whole organisation: users can't be added from a CSV.".into(),
                ));
            }
        }
        let parsed = match &set.add_users {
            Some((path, bytes)) => {
                Some(self.parse_csv(path, bytes, batch.settings.allow_unknown_columns)?)
            }
            None => None,
        };
        let checks = match &parsed {
            Some(p) => self.validate_rows(p, target).await,
            None => Vec::new(),
        };
        let op = if set.sync_now {
            BatchOp::SyncNow
        } else {
            BatchOp::Set
        };
        self.operate(name, op, |tx, batch, _, now| {
            let mut settings = batch.settings.clone();
            if let Some(x) = &set.exclude_folders {
                settings.exclude_folders = x.clone();
            }
            if let Some(i) = &set.include_folders {
                settings.include_folders = i.clone();
            }
            if set.complete_after.is_some() {
                settings.complete_after = set.complete_after;
            }
            tx.set_batch_settings(&batch.name, &settings)?;
            if set.sync_now {
                for u in tx.users(Some(&batch.name))? {
                    if u.status == UserStatus::Synced {
                        tx.set_sync_now(&u.email_address)?;
                    }
                }
            }
            let mut outcome = CsvOutcome::default();
            if let Some(parsed) = &parsed {
                outcome = insert_users(tx, &batch.name, parsed, &checks, now)?;
                // New users of a running or synced batch start right away.
                if matches!(
                    batch.status,
                    BatchStatus::Syncing | BatchStatus::Synced | BatchStatus::SyncedWithErrors
                ) {
                    refresh_batch(tx, &batch.name, now)?;
                }
            }
            Ok(outcome)
        })
    }

    /// Validates users still in Validating (the target was unreachable when they were added).
    /// Checks the recipients of users still Validating. Returns how many the target did not
    /// answer for, with its reason (they stay Validating, the reason as their error).
    pub async fn revalidate(
        &self,
        target: &dyn Target,
    ) -> Result<Option<(usize, TargetError)>, Error> {
        let pending: Vec<UserRow> = self
            .db
            .read(|tx| tx.users_in_status(UserStatus::Validating))?;
        if pending.is_empty() {
            return Ok(None);
        }
        let addresses: Vec<String> = pending.iter().map(|u| u.email_address.clone()).collect();
        let checks = target.check_recipients(&addresses).await;
        let mut unanswered_count = 0;
        let mut reason = None;
        let now = self.now();
        self.db.transaction(|tx| {
            let mut batches: Vec<String> = Vec::new();
            for (u, check) in pending.iter().zip(&checks) {
                let Some(u) = tx.user(&u.email_address)? else {
                    continue;
                };
                if u.status != UserStatus::Validating {
                    continue;
                }
                match check {
                    Ok(None) => apply_user_event(tx, &u, UserEvent::Validated, now)?,
                    Ok(Some(message)) => {
                        tx.set_user_error(&u.email_address, Some(message))?;
                        apply_user_event(tx, &u, UserEvent::Invalid, now)?
                    }
                    Err(e) => {
                        unanswered_count += 1;
                        tx.set_user_error(&u.email_address, Some(&unanswered(e)))?;
                        reason.get_or_insert_with(|| e.clone());
                        continue;
                    }
                };
                if !batches.iter().any(|b| b.eq_ignore_ascii_case(&u.batch)) {
                    batches.push(u.batch.clone());
                }
            }
            for b in &batches {
                refresh_batch(tx, b, now)?;
            }
            Ok(())
        })?;
        if let Some(e) = &reason {
            tracing::warn!(
                users = unanswered_count,
                error = %e,
                "the target did not answer the recipient check; the users stay Validating"
            );
        }
        Ok(reason.map(|e| (unanswered_count, e)))
    }
}

/// The state keeps the UIDs of string item ids (EWS), so they outlive a run.
impl crate::source::ItemIds for Engine {
    fn uids(&self, mailbox: &str, folder: &str, ids: &[String]) -> Result<Vec<u32>, String> {
        self.db
            .transaction(|tx| tx.item_uids(mailbox, folder, ids))
            .map_err(|e| e.to_string())
    }

    fn snapshot(
        &self,
        mailbox: &str,
        folder: &str,
    ) -> Result<Option<crate::source::FolderSnapshot>, String> {
        self.db
            .read(|tx| tx.ews_snapshot(mailbox, folder))
            .map_err(|e| e.to_string())
    }

    fn save_snapshot(
        &self,
        mailbox: &str,
        folder: &str,
        change: &crate::source::SnapshotChange<'_>,
    ) -> Result<(), String> {
        self.db
            .transaction(|tx| tx.save_ews_snapshot(mailbox, folder, change))
            .map_err(|e| e.to_string())
    }
}

/// A user's error while the target cannot be asked whether its recipient exists.
fn unanswered(e: &TargetError) -> String {
    format!(
        "The target didn't answer the recipient check (the user is validated again on the next run): {e}"
    )
}

/// Adds a parsed CSV's users to a batch: errors as Failed users, valid rows per their check.
fn insert_users(
    tx: &Tx<'_>,
    batch: &str,
    parsed: &ParsedCsv,
    checks: &[RecipientCheck],
    now: DateTime<Utc>,
) -> Result<CsvOutcome, Error> {
    let mut outcome = CsvOutcome {
        row_errors: parsed.errors.clone(),
        ..CsvOutcome::default()
    };
    let blank = |email: &str, line: u64| UserRow::new(email, batch, line);
    for (row, check) in parsed.rows.iter().zip(checks) {
        let mut u = blank(&row.email_address, row.line);
        u.user_name = row.user_name.clone();
        u.password = row.password.clone();
        u.user_root = row.user_root.clone();
        match check {
            Ok(None) => {
                u.status = UserStatus::Queued;
                u.queued_at = Some(now);
            }
            Ok(Some(message)) => {
                u.status = UserStatus::Failed;
                u.error = Some(message.clone());
            }
            Err(e) => u.error = Some(unanswered(e)),
        }
        tx.insert_user(&u)?;
        outcome.added += 1;
    }
    // Rows with errors show up as failed users, except those already elsewhere or duplicated
    // (they belong to another row).
    for e in &parsed.errors {
        if e.email_address.trim().is_empty()
            || tx.user(&e.email_address)?.is_some()
            || !csv::is_smtp_address(&e.email_address)
        {
            continue;
        }
        let mut u = blank(&e.email_address, e.line);
        u.status = UserStatus::Failed;
        u.error = Some(e.message.clone());
        tx.insert_user(&u)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::{UserRow, UserStatus, Utc};

    #[test]
    fn eta_counts_waves_of_concurrent_users() {
        assert_eq!(super::estimate_seconds(0, 20, 5000), 0);
        let now = Utc::now();
        let mut u = UserRow::new("a@contoso.edu", "B", 2);
        u.status = UserStatus::Syncing;
        u.source_items = Some(100);
        u.items_synced = 25;
        u.sync_started_at = Some(now - chrono::Duration::seconds(10));
        let mut queued = UserRow::new("b@contoso.edu", "B", 3);
        queued.status = UserStatus::Queued;
        let users = [u, queued];
        // 25 of 100 in 10 s: 30 s left; the queued one waits for a lane and takes ~40 s.
        assert_eq!(super::estimate_remaining(&users, now, 1, None, 2), Some(70));
        assert_eq!(
            super::estimate_remaining(&users, now, 2, Some(20_000), 2),
            Some(50)
        );
        assert_eq!(
            super::estimate_remaining(&users[1..], now, 2, None, 1),
            None,
            "nothing measured"
        );
        assert_eq!(super::estimate_seconds(40, 20, 5000), 10);
        assert_eq!(super::estimate_seconds(41, 20, 5000), 15);
        assert_eq!(
            super::estimate_seconds(3, 0, 1500),
            5,
            "a zero limit counts as one"
        );
    }
}
