//! The service's provisioning step for cutover batches (cutover.md §4): each started batch
//! with recipients in Provisioning or ProvisionUpdating gets one provisioning run per tick —
//! the organisation read again, both passes against the tenant, the outcome recorded per user
//! in one transaction. Generated passwords go to an owner-only file in the state directory
//! before the outcome is recorded, and never into a log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::control::cutover::read_plan;
use crate::control::state::UserRow;
use crate::control::status::{BatchStatus, UserEvent, UserStatus};
use crate::control::{Engine, apply_user_event, refresh_batch};
use crate::error::Error;
use crate::exchange::directory::Plan;
use crate::exchange::provision::{ProvisionState, Provisioned, provision};
use crate::target::Target;

/// The file a cutover's generated passwords are written to (mode 0600).
pub const PASSWORDS_FILE: &str = "cutover-passwords.csv";

pub fn passwords_path(state_dir: &Path) -> PathBuf {
    state_dir.join(PASSWORDS_FILE)
}

fn pending(u: &UserRow) -> bool {
    matches!(
        u.status,
        UserStatus::Provisioning | UserStatus::ProvisionUpdating
    )
}

/// A batch whose recipients only wait for others (ProvisionUpdating) is tried again at most
/// this often: each try reads the whole directory.
pub const RETRY_WAITING_MINUTES: i64 = 5;

/// Runs the step for every cutover batch that needs it: at once for recipients in
/// Provisioning, every few minutes for those only waiting (`last` remembers the tries of this
/// run). Returns why a batch could not be provisioned this time (its users keep their status,
/// with the reason as their error).
pub async fn provision_due(
    engine: &Engine,
    target: &dyn Target,
    last: &mut HashMap<String, DateTime<Utc>>,
) -> Result<Option<String>, Error> {
    let mut problem = None;
    for batch in engine.batches()? {
        if !matches!(batch.status, BatchStatus::Starting | BatchStatus::Syncing) {
            continue;
        }
        let Ok(endpoint) = engine.endpoint(&batch.endpoint) else {
            continue;
        };
        let Some(settings) = endpoint.exchange_settings() else {
            continue;
        };
        let users = engine.db.read(|tx| tx.users(Some(&batch.name)))?;
        if !users.iter().any(pending) {
            continue;
        }
        let now = engine.now();
        let only_waiting = !users.iter().any(|u| u.status == UserStatus::Provisioning);
        let key = batch.name.to_ascii_lowercase();
        if only_waiting
            && last
                .get(&key)
                .is_some_and(|t| now - *t < chrono::Duration::minutes(RETRY_WAITING_MINUTES))
        {
            continue;
        }
        last.insert(key, now);
        let outcome = match read_plan(settings).await {
            Ok(plan) => {
                let plan = of_batch(plan, &users);
                match choose_passwords(engine, target, &plan, &users).await {
                    Ok(passwords) => provision(&plan, target, &passwords)
                        .await
                        .map_err(|e| format!("the tenant didn't answer: {e}")),
                    Err(e) => Err(format!("the tenant didn't answer: {e}")),
                }
            }
            Err(e) => Err(format!(
                "the on-premises organisation couldn't be read: {e}"
            )),
        };
        let now = engine.now();
        match outcome {
            Ok(results) => {
                let dir = engine.db.path().parent().unwrap_or(Path::new("."));
                write_passwords(dir, &results, now)?;
                record(engine, &batch.name, &results, now)?;
            }
            Err(reason) => {
                tracing::warn!(batch = %batch.name, %reason, "provisioning waits");
                let text = format!("Provisioning waits: {reason}");
                engine.db.transaction(|tx| {
                    for u in users.iter().filter(|u| pending(u)) {
                        tx.set_user_error(&u.email_address, Some(&text))?;
                    }
                    Ok(())
                })?;
                problem.get_or_insert(format!("batch \"{}\": {reason}", batch.name));
            }
        }
    }
    Ok(problem)
}

/// The initial password of every recipient that signs in and has no tenant object yet, chosen
/// and committed to the state before the tenant is asked to create it (write-ahead: a crash
/// after the creation and before the answer leaves the password known, and the next run
/// reports it as made). A password chosen by an earlier run is kept; an object that already
/// exists in the tenant (pre-created, or the admin's own) gets none.
async fn choose_passwords(
    engine: &Engine,
    target: &dyn Target,
    plan: &Plan,
    users: &[UserRow],
) -> Result<HashMap<String, String>, Error> {
    let rows: HashMap<String, &UserRow> = users
        .iter()
        .map(|u| (u.email_address.to_ascii_lowercase(), u))
        .collect();
    let mut passwords = HashMap::new();
    let mut chosen = Vec::new();
    for p in plan
        .recipients
        .iter()
        .filter(|p| p.failure.is_none() && p.kind.signs_in())
    {
        let key = p.identity.to_ascii_lowercase();
        let Some(row) = rows.get(&key) else { continue };
        if row.status != UserStatus::Provisioning {
            continue;
        }
        if !row.password.is_empty() {
            passwords.insert(key, row.password.clone());
            continue;
        }
        if target.directory_entry(&p.identity).await?.is_some() {
            continue;
        }
        let password = mailmig_model::generate_password(&mut rand::rng());
        chosen.push((row.email_address.clone(), password.clone()));
        passwords.insert(key, password);
    }
    if !chosen.is_empty() {
        engine.db.transaction(|tx| {
            for (email, password) in &chosen {
                tx.set_user_password(email, password)?;
            }
            Ok(())
        })?;
    }
    Ok(passwords)
}

/// The plan's recipients this batch holds and still migrates (not failed or stopped ones); a
/// recipient that appeared since the batch was created is not added (**ours**: the batch is
/// the directory as it was when it was created).
fn of_batch(mut plan: Plan, users: &[UserRow]) -> Plan {
    let keep: HashMap<String, UserStatus> = users
        .iter()
        .map(|u| (u.email_address.to_ascii_lowercase(), u.status))
        .collect();
    plan.recipients.retain(|p| {
        keep.get(&p.identity.to_ascii_lowercase())
            .is_some_and(|s| !matches!(s, UserStatus::Failed | UserStatus::Stopped))
    });
    plan
}

/// Appends this run's generated passwords, owner-only; the file is written and synced before
/// the users' outcome is recorded, so a crash loses no password that was recorded as made.
fn write_passwords(dir: &Path, results: &[Provisioned], now: DateTime<Utc>) -> Result<(), Error> {
    let made: Vec<&Provisioned> = results
        .iter()
        .filter(|r| r.initial_password.is_some())
        .collect();
    if made.is_empty() {
        return Ok(());
    }
    use std::os::unix::fs::OpenOptionsExt;
    let path = passwords_path(dir);
    let new = !path.exists();
    // A run that crashed after writing the file and before recording the users made them
    // again (with the same passwords): each address goes in once.
    let written = if new {
        std::collections::HashSet::new()
    } else {
        written_addresses(&path)?
    };
    let made: Vec<&Provisioned> = made
        .into_iter()
        .filter(|r| !written.contains(&r.identity.to_ascii_lowercase()))
        .collect();
    if made.is_empty() {
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    let mut w = csv::Writer::from_writer(file);
    let csv_error = |e: csv::Error| Error::File {
        path: path.clone(),
        message: e.to_string(),
    };
    if new {
        w.write_record(["EmailAddress", "InitialPassword", "CreatedAt"])
            .map_err(csv_error)?;
    }
    let at = now.to_rfc3339();
    for r in made {
        w.write_record([
            r.identity.as_str(),
            r.initial_password.as_deref().unwrap_or(""),
            at.as_str(),
        ])
        .map_err(csv_error)?;
    }
    let f = w.into_inner().map_err(|e| Error::File {
        path: path.clone(),
        message: e.to_string(),
    })?;
    f.sync_all()?;
    Ok(())
}

/// The addresses the passwords file already holds (lower-cased).
fn written_addresses(path: &Path) -> Result<std::collections::HashSet<String>, Error> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| Error::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = std::collections::HashSet::new();
    for row in reader.records() {
        let row = row.map_err(|e| Error::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(a) = row.get(0) {
            out.insert(a.to_ascii_lowercase());
        }
    }
    Ok(out)
}

fn record(
    engine: &Engine,
    batch: &str,
    results: &[Provisioned],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let by_id: HashMap<String, &Provisioned> = results
        .iter()
        .map(|r| (r.identity.to_ascii_lowercase(), r))
        .collect();
    engine.db.transaction(|tx| {
        for u in tx.users(Some(batch))?.into_iter().filter(pending) {
            let (event, error) = match by_id.get(&u.email_address.to_ascii_lowercase()) {
                None => (
                    UserEvent::ProvisionFailed,
                    Some(format!(
                        "{} is no longer in the on-premises directory (or is now hidden).",
                        u.email_address
                    )),
                ),
                Some(r) => match &r.state {
                    ProvisionState::Done => (
                        UserEvent::Provisioned {
                            mailbox: r.kind.has_mailbox(),
                        },
                        None,
                    ),
                    ProvisionState::Updating(why) => {
                        (UserEvent::ProvisionWaiting, Some(why.clone()))
                    }
                    ProvisionState::Failed(why) => (UserEvent::ProvisionFailed, Some(why.clone())),
                },
            };
            tx.set_user_error(&u.email_address, error.as_deref())?;
            if !u.password.is_empty() {
                // In the passwords file now (or never to be used): not kept in the state.
                tx.set_user_password(&u.email_address, "")?;
            }
            let next = apply_user_event(tx, &u, event, now)?;
            if next == UserStatus::Synced {
                // Nothing to copy (a contact, a group, a mail user): provisioned is done.
                tx.set_user_stats(&u.email_address, 0, 0, 0, Some(now))?;
            }
        }
        refresh_batch(tx, batch, now)?;
        Ok(())
    })
}
