//! A rehearsal: every CSV row checked as the service would check it (CSV rules, the recipient,
//! a login with the row's form), each mailbox surveyed read-only ([`survey`]), and the real
//! migration forecast from a measured rate at the endpoint's concurrency. Nothing is written
//! to the source, the state or the target.
//!
//! [`survey`]: crate::pipeline::survey

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::control::Engine;
use crate::control::endpoint::Endpoint;
use crate::pipeline::CopyOptions;
use crate::pipeline::survey::{MailboxSurvey, ReadSample, survey};
use crate::source::{self, Credential, SourceSettings};
use crate::sync::{FolderFilter, SkipReason};
use crate::target::Target;

/// What a rehearsal found of one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Readiness {
    /// Everything would be copied.
    Ready,
    /// The user would sync, but something would be skipped or looks wrong (an empty mailbox).
    Warning,
    /// The user would fail.
    Failed,
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Readiness::Ready => "Ready",
            Readiness::Warning => "Warning",
            Readiness::Failed => "Failed",
        })
    }
}

/// A timed copy of a user's mailbox into a scratch tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyMeasure {
    pub items: u64,
    pub bytes: u64,
    pub elapsed_ms: u64,
    /// The copy's own error, if it did not complete.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRehearsal {
    pub email_address: String,
    /// The CSV line.
    pub line: u64,
    pub user_name: String,
    /// A cutover's recipient kind (a contact or group is provisioned, not surveyed).
    pub kind: Option<mailmig_model::DirectoryKind>,
    pub status: Readiness,
    /// Why the user would fail, in the service's words.
    pub error: Option<String>,
    /// What deserves a look although the user would sync.
    pub warnings: Vec<String>,
    pub survey: Option<MailboxSurvey>,
    pub copy: Option<CopyMeasure>,
    /// How long the initial sync of this mailbox would take at the measured rate (to a
    /// tenth of a second).
    pub forecast_seconds: Option<f64>,
}

/// A rate per running user, and how it was measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// `copy` (into a scratch tenant) or `read` (a timed read at the source only).
    pub method: String,
    pub items: u64,
    pub bytes: u64,
    pub elapsed_ms: u64,
    pub items_per_second: f64,
    pub bytes_per_second: f64,
}

impl Rate {
    /// Over the measurements given (items, bytes, elapsed ms each); `None` without any that
    /// moved something in measurable time.
    pub fn over(method: &str, parts: impl IntoIterator<Item = (u64, u64, u64)>) -> Option<Rate> {
        let (mut items, mut bytes, mut ms) = (0, 0, 0);
        for (i, b, e) in parts {
            if i > 0 {
                items += i;
                bytes += b;
                ms += e.max(1);
            }
        }
        (items > 0).then(|| Rate {
            method: method.to_string(),
            items,
            bytes,
            elapsed_ms: ms,
            items_per_second: items as f64 * 1000.0 / ms as f64,
            bytes_per_second: bytes as f64 * 1000.0 / ms as f64,
        })
    }

    /// Seconds to copy this much at this rate: the slower of the two measured rates (items
    /// and bytes), so a mailbox of small messages and one of large ones are both forecast.
    pub fn seconds(&self, items: u64, bytes: u64) -> f64 {
        let by_items = items as f64 / self.items_per_second.max(f64::MIN_POSITIVE);
        let by_bytes = bytes as f64 / self.bytes_per_second.max(f64::MIN_POSITIVE);
        (by_items.max(by_bytes) * 10.0).ceil() / 10.0
    }
}

/// The real migration, forecast.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    /// MaxConcurrentMigrations of the endpoint.
    pub concurrency: u32,
    /// Until the last user's initial sync ends, the longest first.
    pub seconds: f64,
    pub rate: Rate,
}

/// Longest-first on `concurrency` lanes: when the last of `durations` would end.
pub fn makespan(durations: &[f64], concurrency: u32) -> f64 {
    let mut sorted = durations.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut lanes = vec![0f64; concurrency.max(1) as usize];
    for d in sorted {
        let lane = lanes
            .iter_mut()
            .min_by(|a, b| a.total_cmp(b))
            .expect("at least one lane");
        *lane += d;
    }
    lanes.into_iter().fold(0.0, f64::max)
}

/// Totals over the users.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub users: usize,
    pub ready: usize,
    pub warning: usize,
    pub failed: usize,
    pub items: u64,
    pub bytes: u64,
    pub to_copy_items: u64,
    pub to_copy_bytes: u64,
    pub skipped_items: u64,
}

/// The limits the plan applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_message_bytes: u64,
    pub item_cap: usize,
    pub exclude_folders: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rehearsal {
    pub generated_at: DateTime<Utc>,
    pub endpoint: String,
    /// The server, as `host:port` (IMAP) or its EWS URL (cutover).
    pub server: String,
    pub csv: Option<String>,
    /// Why New-MigrationBatch would refuse the whole batch (a cutover's rules).
    pub refusal: Option<String>,
    pub limits: Limits,
    pub totals: Totals,
    pub forecast: Option<Forecast>,
    pub users: Vec<UserRehearsal>,
}

/// Told of each user as its survey ends (a progress display).
pub type UserHook<'a> = Box<dyn Fn(&UserRehearsal) + Send + Sync + 'a>;

/// What a rehearsal is asked to do.
pub struct RehearsalInput<'a> {
    pub endpoint: &'a Endpoint,
    /// The CSV (an IMAP endpoint) and its bytes; a cutover takes none.
    pub csv: Option<(&'a Path, &'a [u8])>,
    pub allow_unknown_columns: bool,
    pub filter: FolderFilter,
    pub options: CopyOptions,
    /// Bytes to read from each mailbox to time the source (0: none).
    pub sample_bytes: u64,
    /// Called as each user's survey ends.
    pub on_user: Option<UserHook<'a>>,
}

/// A user of the rehearsal before its survey: not checked yet, or failed already.
fn user(email: &str, line: u64, user_name: &str, error: Option<String>) -> UserRehearsal {
    UserRehearsal {
        email_address: email.to_string(),
        line,
        user_name: user_name.to_string(),
        kind: None,
        status: Readiness::Failed,
        error,
        warnings: Vec::new(),
        survey: None,
        copy: None,
        forecast_seconds: None,
    }
}

/// Users decided already (failed, or with nothing to survey), and users to survey with
/// their credential.
type Rows = (Vec<UserRehearsal>, Vec<(UserRehearsal, Credential)>);

/// An IMAP migration's rows: the CSV checked as New-MigrationBatch would check it.
async fn csv_rows(
    engine: &Engine,
    target: &dyn Target,
    input: &RehearsalInput<'_>,
) -> Result<Rows, crate::Error> {
    let Some((path, bytes)) = input.csv else {
        return Err(crate::Error::Invalid(format!(
            "The endpoint \"{}\" is an IMAP endpoint: its rehearsal takes the migration CSV (--csv FILE).",
            input.endpoint.name
        )));
    };
    let (parsed, checks) = engine
        .check_csv(path, bytes, input.allow_unknown_columns, target)
        .await?;
    let mut failed: Vec<UserRehearsal> = parsed
        .errors
        .iter()
        .map(|e| user(&e.email_address, e.line, "", Some(e.message.clone())))
        .collect();
    let mut to_survey = Vec::new();
    for (row, check) in parsed.rows.iter().zip(checks) {
        let error = match check {
            Ok(None) => None,
            Ok(Some(message)) => Some(message),
            Err(e) => Some(format!(
                "The target did not answer the recipient check: {e}"
            )),
        };
        let u = user(&row.email_address, row.line, &row.user_name, error);
        if u.error.is_some() {
            failed.push(u);
        } else {
            let credential = Credential {
                user_name: row.user_name.clone(),
                password: row.password.clone(),
                user_root: row.user_root.clone(),
            };
            to_survey.push((u, credential));
        }
    }
    Ok((failed, to_survey))
}

/// A cutover's users: the organisation read and planned as New-MigrationBatch would, its
/// mailboxes surveyed as the endpoint's admin; the batch's own refusal, if any, beside them.
async fn organisation_rows(
    settings: &crate::exchange::ExchangeSettings,
    target: &dyn Target,
    input: &RehearsalInput<'_>,
) -> Result<(Rows, Option<String>), crate::Error> {
    if input.csv.is_some() {
        return Err(crate::Error::Invalid(format!(
            "The endpoint \"{}\" is an Exchange Outlook Anywhere endpoint: a cutover takes the whole organisation and no CSV (leave out --csv).",
            input.endpoint.name
        )));
    }
    let plan = crate::control::cutover::read_plan(settings)
        .await
        .map_err(|e| {
            crate::Error::Refused(format!(
                "The on-premises organisation couldn't be read: {e}"
            ))
        })?;
    let refusal = match target.organization().await {
        Ok(Some(org)) => crate::exchange::provision::check_batch(&plan, &org, None).err(),
        Ok(None) => Some(
            "The target has no directory: a cutover migration provisions recipients into a tenant, not into an IMAP server.".into(),
        ),
        Err(e) => Some(format!("The target did not answer: {e}")),
    };
    let (mut done, mut to_survey) = (Vec::new(), Vec::new());
    for (i, p) in plan.recipients.iter().enumerate() {
        let mut u = user(&p.identity, i as u64 + 1, "", p.failure.clone());
        u.kind = Some(p.kind);
        if u.error.is_some() {
            done.push(u);
        } else if p.kind.has_mailbox() {
            let admin = Credential {
                user_name: String::new(),
                password: String::new(),
                user_root: None,
            };
            to_survey.push((u, admin));
        } else {
            // Provisioned only: nothing to survey or copy.
            u.status = Readiness::Ready;
            done.push(u);
        }
    }
    Ok(((done, to_survey), refusal))
}

/// Checks and surveys every user; the forecast is left to [`Rehearsal::forecast_with`] once
/// a rate is known (a copy measures a better one than the survey's reads).
pub async fn rehearse(
    engine: &Arc<Engine>,
    target: &dyn Target,
    input: RehearsalInput<'_>,
) -> Result<Rehearsal, crate::Error> {
    let endpoint = input.endpoint;
    let (((mut users, to_survey), refusal), server) = match &endpoint.connection {
        SourceSettings::Imap(imap) => (
            (csv_rows(engine, target, &input).await?, None),
            format!("{}:{}", imap.remote_server, imap.port),
        ),
        SourceSettings::ExchangeOutlookAnywhere(settings) => (
            organisation_rows(settings, target, &input).await?,
            settings.ews_url.clone(),
        ),
    };
    let input = &input;
    let surveyed = futures::stream::iter(to_survey)
        .map(|(mut user, credential)| async move {
            let result = survey_one(engine, input, &user.email_address, &credential).await;
            match result {
                Ok(s) => {
                    user.warnings = warnings_of(&s);
                    user.status = if user.warnings.is_empty() {
                        Readiness::Ready
                    } else {
                        Readiness::Warning
                    };
                    user.survey = Some(s);
                }
                Err(e) => user.error = Some(e),
            }
            if let Some(f) = &input.on_user {
                f(&user);
            }
            user
        })
        .buffer_unordered(endpoint.max_concurrent_migrations.max(1) as usize)
        .collect::<Vec<_>>()
        .await;
    users.extend(surveyed);
    users.sort_by_key(|u| u.line);
    let mut r = Rehearsal {
        generated_at: engine.now(),
        endpoint: endpoint.name.clone(),
        server,
        csv: input.csv.map(|(p, _)| p.display().to_string()),
        refusal,
        limits: Limits {
            max_message_bytes: input.options.max_message_size,
            item_cap: input.options.item_cap,
            exclude_folders: input.filter.exclude.clone(),
        },
        totals: Totals::default(),
        forecast: None,
        users,
    };
    r.totals = r.totals();
    Ok(r)
}

async fn survey_one(
    engine: &Arc<Engine>,
    input: &RehearsalInput<'_>,
    email: &str,
    credential: &Credential,
) -> Result<MailboxSurvey, String> {
    let mut source = source::open(
        &input.endpoint.connection,
        email,
        credential,
        input.options.timeout,
        None,
        engine.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let result = survey(
        source.as_mut(),
        &input.filter,
        &input.options,
        input.sample_bytes,
    )
    .await;
    source.close().await;
    result.map_err(|e| e.to_string())
}

/// What a user would sync with but an admin should know: skipped items by reason, and a
/// mailbox with nothing to copy (never reported as simply ready).
fn warnings_of(s: &MailboxSurvey) -> Vec<String> {
    let mut out = Vec::new();
    if s.to_copy_items == 0 {
        out.push(if s.items == 0 {
            "Nothing would be copied: the mailbox holds no messages at the source.".to_string()
        } else {
            format!(
                "Nothing would be copied: none of the mailbox's {} messages would be migrated.",
                s.items
            )
        });
    }
    for reason in SkipReason::ALL {
        let of: Vec<_> = s
            .skipped
            .iter()
            .filter(|k| k.item.reason == reason)
            .collect();
        if of.is_empty() {
            continue;
        }
        let folders = of.iter().filter(|k| k.item.is_folder()).count();
        let items = of.len() - folders;
        let count = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        let what = match (folders, items) {
            (0, n) => count(n, "item"),
            (f, 0) => count(f, "folder"),
            (f, n) => format!("{} and {}", count(f, "folder"), count(n, "item")),
        };
        out.push(format!("{what} skipped: {}", explain(reason)));
    }
    out
}

/// A skip reason in the words a migration report uses.
pub fn explain(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::LargeItem => {
            "LargeItem: larger than the maximum message size (35 MB), not migrated"
        }
        SkipReason::BadItem => "BadItem: the source server would not return it",
        SkipReason::ItemCap => {
            "ItemCap: over the limit of items a mailbox (500,000 in Exchange Online), the oldest are not migrated"
        }
        SkipReason::FolderName => {
            "FolderName: folders whose name contains '/' (or cannot be read) are not migrated"
        }
        SkipReason::Vanished => "Vanished: deleted at the source during the sync",
        SkipReason::Merged => "Merged: two folders land in the same target folder",
        SkipReason::Excluded => "Excluded: left out by ExcludeFolders/IncludeFolders",
        SkipReason::NotMail => "NotMail: not a mail folder",
        SkipReason::NoSelect => "NoSelect: the folder holds no messages (\\Noselect)",
    }
}

impl Rehearsal {
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            users: self.users.len(),
            ..Totals::default()
        };
        for u in &self.users {
            match u.status {
                Readiness::Ready => t.ready += 1,
                Readiness::Warning => t.warning += 1,
                Readiness::Failed => t.failed += 1,
            }
            if let Some(s) = &u.survey {
                t.items += s.items;
                t.bytes += s.bytes;
                t.to_copy_items += s.to_copy_items;
                t.to_copy_bytes += s.to_copy_bytes;
                t.skipped_items += s.skipped.iter().filter(|k| !k.item.is_folder()).count() as u64;
            }
        }
        t
    }

    /// The rate the survey's timed reads measured (the source alone).
    pub fn read_rate(&self) -> Option<Rate> {
        Rate::over(
            "read",
            self.users
                .iter()
                .filter_map(|u| u.survey.as_ref()?.sample)
                .map(
                    |ReadSample {
                         items,
                         bytes,
                         elapsed_ms,
                     }| (items, bytes, elapsed_ms),
                ),
        )
    }

    /// Forecasts each user's initial sync and the whole migration at `concurrency`.
    pub fn forecast_with(&mut self, rate: Rate, concurrency: u32) {
        let mut durations = Vec::new();
        for u in &mut self.users {
            if let (Some(s), false) = (&u.survey, u.status == Readiness::Failed) {
                let secs = rate.seconds(s.to_copy_items, s.to_copy_bytes);
                u.forecast_seconds = Some(secs);
                durations.push(secs);
            }
        }
        self.forecast = Some(Forecast {
            concurrency,
            seconds: makespan(&durations, concurrency),
            rate,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_makespan_puts_the_longest_first_on_the_free_lanes() {
        assert_eq!(makespan(&[], 3), 0.0);
        assert_eq!(makespan(&[5.0, 5.0, 5.0], 3), 5.0);
        assert_eq!(makespan(&[10.0, 1.0, 1.0, 1.0, 1.0], 2), 10.0);
        assert_eq!(makespan(&[3.0, 3.0, 2.0, 2.0, 2.0], 2), 7.0);
        assert_eq!(
            makespan(&[4.0, 4.0], 0),
            8.0,
            "a zero concurrency is one lane"
        );
    }

    #[test]
    fn a_rate_forecasts_by_the_slower_of_items_and_bytes() {
        let r = Rate::over("copy", [(100, 1_000_000, 1000), (0, 0, 50)]).unwrap();
        assert_eq!(
            (r.items, r.elapsed_ms),
            (100, 1000),
            "nothing moved: not counted"
        );
        assert_eq!(r.seconds(1000, 0), 10.0);
        assert_eq!(r.seconds(10, 50_000_000), 50.0);
        assert_eq!(r.seconds(1, 0), 0.1, "to a tenth, rounded up");
        assert!(Rate::over("read", [(0, 0, 10)]).is_none());
    }
}
