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
