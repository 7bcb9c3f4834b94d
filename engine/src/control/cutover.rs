//! New-MigrationBatch for a cutover (cutover.md §4 and §6): no CSV, the whole organisation.
//! The directory is read as the endpoint's admin and planned; the batch is refused outright by
//! the rules of [`crate::exchange::provision::check_batch`]; every recipient taken becomes a
//! user of the batch, with its kind, in Provisioning (or Failed with its message when it cannot
//! be provisioned at all). The service then provisions and copies (`service.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::state::{BatchRow, UserRow};
use super::status::BatchStatus;
use super::{Engine, NewBatch, validate_name};
use crate::error::Error;
use crate::exchange::directory::{self, Plan};
use crate::exchange::http::HttpClient;
use crate::exchange::provision::check_batch;
use crate::exchange::{ExchangeError, ExchangeSettings};
use crate::target::Target;

/// Every wait for the organisation while a batch is created or provisioned.
pub const ORGANISATION_TIMEOUT: Duration = Duration::from_secs(30);

/// What creating a cutover batch took.
#[derive(Clone, Debug, Default)]
pub struct CutoverOutcome {
    pub recipients: usize,
    pub mailboxes: usize,
    /// Recipients that cannot be provisioned: (identity, message).
    pub failed: Vec<(String, String)>,
    /// Left out on purpose (hidden, public folders ...): (identity, why).
    pub not_taken: Vec<(String, String)>,
}

/// Reads and plans the organisation an endpoint names.
pub async fn read_plan(settings: &ExchangeSettings) -> Result<Plan, ExchangeError> {
    let http = Arc::new(HttpClient::new(
        settings.ca_file.as_deref(),
        settings.accept_untrusted_certificates,
        settings.connect_to.clone(),
        ORGANISATION_TIMEOUT,
    )?);
    let d = directory::read(&http, settings).await?;
    Ok(directory::plan(&d))
}

fn organisation_error(e: ExchangeError) -> Error {
    Error::Refused(format!(
        "The on-premises organisation couldn't be read: {e}"
    ))
}

/// A cutover batch's refusal of Complete-MigrationBatch.
pub const NO_COMPLETE: &str = "A cutover migration batch isn't completed: it ends by removal (mailmig batch remove) once MX points to the tenant and every user's last sync is later than the switch.";

impl Engine {
    /// Whether a batch's endpoint is an Exchange (cutover) one.
    pub fn is_cutover(&self, batch: &BatchRow) -> bool {
        self.endpoint(&batch.endpoint)
            .is_ok_and(|e| e.endpoint_type().is_cutover())
    }

    /// New-MigrationBatch -SourceEndpoint <cutover endpoint>, no CSV.
    pub async fn cutover_batch_new(
        &self,
        new: NewBatch,
        target: &dyn Target,
    ) -> Result<CutoverOutcome, Error> {
        let name = validate_name(&new.name)?;
        let endpoint = self.endpoint(&new.source_endpoint)?;
        let Some(settings) = endpoint.exchange_settings() else {
            return Err(Error::Invalid(format!(
                "The endpoint \"{}\" is an {} endpoint: its batches need a CSV of users (--csv).",
                endpoint.name,
                endpoint.endpoint_type()
            )));
        };
        if self.db.read(|tx| tx.batch(&name))?.is_some() {
            return Err(Error::Refused("The migration batch already exists.".into()));
        }
        let other = self
            .batches()?
            .into_iter()
            .find(|b| self.is_cutover(b))
            .map(|b| b.name);
        let Some(org) = target.organization().await? else {
            return Err(Error::Refused(
                "The target has no directory: a cutover migration provisions recipients into a tenant (the embedded one or a fake tenant over HTTP), not into an IMAP server.".into(),
            ));
        };
        let plan = read_plan(settings).await.map_err(organisation_error)?;
        check_batch(&plan, &org, other.as_deref()).map_err(Error::Refused)?;
        let now = self.now();
        let mut outcome = CutoverOutcome {
            recipients: plan.recipients.len(),
            mailboxes: plan.mailboxes(),
            not_taken: plan.not_taken.clone(),
            ..CutoverOutcome::default()
        };
        self.db.transaction(|tx| {
            tx.insert_batch(&BatchRow {
                name: name.clone(),
                endpoint: endpoint.name.clone(),
                status: BatchStatus::Created,
                settings: new.settings.clone(),
                created_at: now,
                last_admin_action_at: now,
                status_since: now,
            })?;
            for (line, p) in plan.recipients.iter().enumerate() {
                let mut u = UserRow::new(&p.identity, &name, line as u64 + 1);
                u.kind = Some(p.kind);
                let elsewhere = tx.user(&p.identity)?;
                let failure = match (&p.failure, elsewhere) {
                    (_, Some(other)) => {
                        // A user belongs to one batch: the other keeps it.
                        outcome.failed.push((
                            p.identity.clone(),
                            format!(
                                "The user {} is already in the migration batch \"{}\".",
                                p.identity, other.batch
                            ),
                        ));
                        continue;
                    }
                    (Some(f), None) => Some(f.clone()),
                    (None, None) => None,
                };
                match failure {
                    Some(f) => {
                        u.status = super::status::UserStatus::Failed;
                        u.error = Some(f.clone());
                        outcome.failed.push((p.identity.clone(), f));
                    }
                    None => u.status = super::status::UserStatus::Provisioning,
                }
                tx.insert_user(&u)?;
            }
            Ok(())
        })?;
        if new.autostart {
            self.batch_start(&name)?;
        }
        Ok(outcome)
    }
}

/// How long after the MX switch the old servers may still receive mail (DNS caches).
pub const MX_WAIT_HOURS: i64 = 72;

/// Remove-MigrationBatch for a cutover batch: what the admin says about the MX switch.
#[derive(Clone, Copy, Debug, Default)]
pub struct CutoverRemoval {
    /// When MX was pointed at the tenant.
    pub mx_switched_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Remove whatever the users' last syncs say.
    pub force: bool,
}

/// One line of the post-migration checklist.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChecklistItem {
    pub done: bool,
    pub step: String,
    pub detail: String,
}

impl Engine {
    /// Refuses removing a cutover batch before every user's last sync is later than the MX
    /// switch and 72 hours have passed since it (unless forced).
    pub fn check_cutover_removal(&self, name: &str, removal: CutoverRemoval) -> Result<(), Error> {
        if removal.force {
            return Ok(());
        }
        let Some(switched) = removal.mx_switched_at else {
            return Err(Error::Refused(format!(
                "A cutover batch is removed once MX points to the tenant: give the time of the switch (--mx-switched-at TIME); every user's last sync must be later, and {MX_WAIT_HOURS} hours must have passed. --force removes it anyway."
            )));
        };
        let now = self.now();
        let hours = (now - switched).num_hours();
        if hours < MX_WAIT_HOURS {
            return Err(Error::Refused(format!(
                "The MX switch was {hours} hours ago: wait at least {MX_WAIT_HOURS} hours (mail still reaches the old servers while DNS caches expire), then remove the batch."
            )));
        }
        let users = self.users(Some(name))?;
        let behind: Vec<&str> = users
            .iter()
            .filter(|u| u.last_successful_sync_time.is_none_or(|t| t <= switched))
            .map(|u| u.email_address.as_str())
            .collect();
        if !behind.is_empty() {
            let shown: Vec<&str> = behind.iter().take(5).copied().collect();
            return Err(Error::Refused(format!(
                "{} of {} users haven't synced since the MX switch at {}: {}{}. Wait for the next incremental sync (or mailmig batch set {name} --sync-now, then mailmig run), or remove with --force.",
                behind.len(),
                users.len(),
                switched.to_rfc3339(),
                shown.join(", "),
                if behind.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }

    /// The steps after a cutover (cutover.md §6), with what is still open.
    pub async fn cutover_checklist(
        &self,
        name: &str,
        mx_switched_at: Option<chrono::DateTime<chrono::Utc>>,
        target: &dyn Target,
    ) -> Result<Vec<ChecklistItem>, Error> {
        let batch = self.batch(name)?;
        if !self.is_cutover(&batch) {
            return Err(Error::Invalid(format!(
                "\"{name}\" is not a cutover batch: the checklist is for cutover migrations."
            )));
        }
        let users = self.users(Some(name))?;
        let mut out = Vec::new();
        let unsynced: Vec<&str> = users
            .iter()
            .filter(|u| u.status != super::status::UserStatus::Synced)
            .map(|u| u.email_address.as_str())
            .collect();
        out.push(ChecklistItem {
            done: unsynced.is_empty(),
            step: "Every recipient provisioned and every mailbox synced".into(),
            detail: if unsynced.is_empty() {
                format!("{} users Synced", users.len())
            } else {
                format!("not Synced: {}", unsynced.join(", "))
            },
        });
        out.push(match mx_switched_at {
            None => ChecklistItem {
                done: false,
                step: "Point MX to the tenant".into(),
                detail: "not said (--mx-switched-at TIME once it is done)".into(),
            },
            Some(t) => ChecklistItem {
                done: true,
                step: "Point MX to the tenant".into(),
                detail: format!("switched at {}", t.to_rfc3339()),
            },
        });
        if let Some(t) = mx_switched_at {
            let behind = users
                .iter()
                .filter(|u| u.last_successful_sync_time.is_none_or(|s| s <= t))
                .count();
            let hours = (self.now() - t).num_hours();
            out.push(ChecklistItem {
                done: behind == 0 && hours >= MX_WAIT_HOURS,
                step: format!("Wait {MX_WAIT_HOURS} hours, every user synced after the switch"),
                detail: format!("{hours} hours since the switch; {behind} users not synced since"),
            });
        }
        let mut unlicensed = Vec::new();
        for u in users
            .iter()
            .filter(|u| u.kind.is_some_and(|k| k.has_mailbox()))
        {
            if let Ok(Some(e)) = target.directory_entry(&u.email_address).await
                && !e.licensed
            {
                // Said before the grace ends, with the day it does.
                unlicensed.push(match e.grace_ends {
                    Some(t) if t > self.now() => format!(
                        "{} (disabled on {} unless licensed, in {} days)",
                        u.email_address,
                        t.format("%Y-%m-%d %H:%M UTC"),
                        (t - self.now()).num_days()
                    ),
                    Some(_) => {
                        format!("{} (disabled: its 30-day grace has ended)", u.email_address)
                    }
                    None => u.email_address.clone(),
                });
            }
        }
        out.push(ChecklistItem {
            done: unlicensed.is_empty(),
            step: "Assign licences (an unlicensed mailbox is disabled when its 30-day grace ends)"
                .into(),
            detail: if unlicensed.is_empty() {
                "every migrated mailbox is licensed".into()
            } else {
                format!("unlicensed: {}", unlicensed.join(", "))
            },
        });
        out.push(ChecklistItem {
            done: false,
            step: "Create the CNAME autodiscover -> autodiscover.outlook.com".into(),
            detail: "in every accepted domain's DNS (mailmig cannot check DNS)".into(),
        });
        out.push(ChecklistItem {
            done: false,
            step: "Remove the batch (mailmig batch remove --mx-switched-at TIME)".into(),
            detail:
                "then hand out the initial passwords (cutover-passwords.csv) and delete the file"
                    .into(),
        });
        out.push(ChecklistItem {
            done: false,
            step: "Decommission the on-premises Exchange servers".into(),
            detail: "after the batch is removed and clients use the tenant".into(),
        });
        Ok(out)
    }
}
