//! `mailmig user`: migration users — get (Get-MigrationUser, with the last sync's numbers), set
//! (Set-MigrationUser: a row's username or password) and remove (Remove-MigrationUser).

use std::collections::BTreeMap;
use std::path::Path;

use clap::Subcommand;
use engine::control::state::UserRow;
use serde::Serialize;

use super::{EXIT_OK, PasswordArgs, engine};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Get-MigrationUser: status, counts, the last sync's rate and what it could not find in
    /// the target.
    Get {
        /// Only the users of this batch.
        #[arg(long)]
        batch: Option<String>,
        /// One user, by email address.
        email: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// List every skipped item with its folder, reason and detail
        /// (Get-MigrationUserStatistics -IncludeSkippedItems).
        #[arg(long)]
        skipped: bool,
    },
    /// Get-MigrationUserStatistics: one user's numbers as a list (items in the source, synced,
    /// skipped, percentage complete, bytes, rates, times), optionally every skipped item.
    Statistics {
        /// The user, by email address.
        email: String,
        /// List every skipped item (-IncludeSkippedItems).
        #[arg(long)]
        include_skipped_items: bool,
        /// Print as JSON (the cmdlet's field names).
        #[arg(long)]
        json: bool,
    },
    /// Set-MigrationUser: a new source login for one user (a mistyped password in one CSV row
    /// is fixed without removing its batch); a failed user is retried at once, alone.
    Set {
        /// The user, by email address.
        email: String,
        /// The new UserName (in the source's admin form, as in the CSV).
        #[arg(long)]
        username: Option<String>,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Remove-MigrationUser: the user leaves its batch (what was copied stays in the target).
    Remove {
        /// The user, by email address.
        email: String,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserView {
    #[serde(flatten)]
    user: UserRow,
    skipped_by_reason: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_items: Option<Vec<engine::sync::SkippedItem>>,
    last_sync_items_per_second: f64,
    last_sync_mib_per_second: f64,
}

pub fn run(state_dir: &Path, command: UserCommand) -> anyhow::Result<u8> {
    let (batch, email, json, list_skipped) = match command {
        UserCommand::Get {
            batch,
            email,
            json,
            skipped,
        } => (batch, email, json, skipped),
        UserCommand::Set {
            email,
            username,
            password,
        } => return set(state_dir, &email, username, &password),
        UserCommand::Statistics {
            email,
            include_skipped_items,
            json,
        } => return statistics(state_dir, &email, include_skipped_items, json),
        UserCommand::Remove { email } => {
            engine(state_dir)?.user_remove(&email)?;
            println!("The migration user \"{email}\" was removed from its batch.");
            return Ok(EXIT_OK);
        }
    };
    let engine = engine(state_dir)?;
    let users = match email {
        Some(e) => vec![engine.user(&e)?],
        None => engine.users(batch.as_deref())?,
    };
    let mut views = Vec::new();
    for u in users {
        let skipped = engine
            .db
            .read(|tx| tx.skipped_by_reason(&u.email_address))?;
        let secs = (u.last_sync_ms as f64 / 1000.0).max(0.001);
        let skipped_items = if list_skipped {
            Some(engine.db.read(|tx| tx.skipped_items(&u.email_address))?)
        } else {
            None
        };
        views.push(UserView {
            skipped_by_reason: skipped.into_iter().collect(),
            skipped_items,
            last_sync_items_per_second: (u.last_sync_items as f64 / secs * 10.0).round() / 10.0,
            last_sync_mib_per_second: (u.last_sync_bytes as f64 / 1_048_576.0 / secs * 100.0)
                .round()
                / 100.0,
            user: u,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(EXIT_OK);
    }
    if views.is_empty() {
        match &batch {
            Some(b) => println!("No migration users in the batch \"{b}\"."),
            None => println!("No migration users."),
        }
        return Ok(EXIT_OK);
    }
    // A cutover's users are recipients of every kind: the kind says why a contact has no items.
    let kinds = views.iter().any(|v| v.user.kind.is_some());
    let kind_of = |u: &engine::control::state::UserRow| {
        if kinds {
            format!(" {:<24}", u.kind.map_or("-", |k| k.name()))
        } else {
            String::new()
        }
    };
    println!(
        "{:<32} {:<14}{} {:<22} {:>8} {:>8} {:>9} {:>8}  Error",
        "EmailAddress",
        "Batch",
        if kinds {
            format!(" {:<24}", "RecipientType")
        } else {
            String::new()
        },
        "Status",
        "Synced",
        "Skipped",
        "Msgs/s",
        "Missing"
    );
    for v in &views {
        let u = &v.user;
        println!(
            "{:<32} {:<14}{} {:<22} {:>8} {:>8} {:>9} {:>8}  {}",
            u.email_address,
            u.batch,
            kind_of(u),
            u.status.as_str(),
            u.items_synced,
            u.items_skipped,
            v.last_sync_items_per_second,
            u.missing_in_target
                .map_or("-".to_string(), |m| m.to_string()),
            u.error.clone().unwrap_or_default()
        );
    }
    for v in views.iter().filter(|v| v.skipped_items.is_some()) {
        let items = v.skipped_items.as_deref().unwrap_or_default();
        println!();
        if items.is_empty() {
            println!("{}: no skipped items.", v.user.email_address);
            continue;
        }
        println!("{}: {} skipped items", v.user.email_address, items.len());
        println!("{:<28} {:<12} {:<18} Detail", "Folder", "Item", "Reason");
        for i in items {
            println!(
                "{:<28} {:<12} {:<18} {}",
                i.folder,
                i.item,
                i.reason.to_string(),
                i.detail
            );
        }
    }
    Ok(EXIT_OK)
}

fn set(
    state_dir: &Path,
    email: &str,
    user_name: Option<String>,
    password: &PasswordArgs,
) -> anyhow::Result<u8> {
    let password = password.read("The new password")?;
    if user_name.is_none() && password.is_none() {
        anyhow::bail!(
            "nothing to change: give --username, or the password (--password-file, --password-env, --password-prompt or --password)"
        );
    }
    let engine = engine(state_dir)?;
    let status = engine.user_set(
        email,
        engine::control::SetUser {
            user_name,
            password,
        },
    )?;
    match status {
        engine::control::status::UserStatus::Validating => println!(
            "The migration user \"{email}\" was changed and is retried: `mailmig run` syncs it."
        ),
        s => println!("The migration user \"{email}\" was changed ({s})."),
    }
    Ok(EXIT_OK)
}

/// Get-MigrationUserStatistics' fields, as its Format-List and ConvertTo-Json show them.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserStatistics {
    identity: String,
    batch_id: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_type: Option<String>,
    error: Option<String>,
    total_items_in_source_mailbox_count: Option<u64>,
    synced_item_count: u64,
    skipped_item_count: u64,
    percentage_complete: u8,
    bytes_transferred: u64,
    estimated_total_transfer_size: Option<u64>,
    bytes_transferred_per_minute: u64,
    last_sync_item_count: u64,
    last_sync_duration_seconds: f64,
    missing_in_target_count: Option<u64>,
    queued_timestamp: Option<String>,
    start_timestamp: Option<String>,
    last_successful_sync_timestamp: Option<String>,
    skipped_items_by_reason: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_items: Option<Vec<engine::sync::SkippedItem>>,
}

/// How far a user is: all of it once synced with nothing missing in the target; else what
/// it holds of what the last plan found, short of 100 until a sync has ended.
fn percentage_complete(u: &UserRow) -> u8 {
    use engine::control::status::UserStatus as S;
    let synced = matches!(
        u.status,
        S::Synced | S::IncrementalSyncing | S::Completing | S::Completed | S::CompletedWithWarnings
    );
    if synced && u.missing_in_target.unwrap_or(0) == 0 {
        return 100;
    }
    match u.source_items {
        Some(0) => 0,
        Some(n) => (u.items_synced.min(n) * 100 / n).min(99) as u8,
        None => 0,
    }
}

fn statistics(
    state_dir: &Path,
    email: &str,
    include_skipped: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    let u = engine.user(email)?;
    let by_reason = engine
        .db
        .read(|tx| tx.skipped_by_reason(&u.email_address))?;
    let skipped_items = if include_skipped {
        Some(engine.db.read(|tx| tx.skipped_items(&u.email_address))?)
    } else {
        None
    };
    let ts = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let minutes = (u.last_sync_ms as f64 / 60_000.0).max(1.0 / 60_000.0);
    let s = UserStatistics {
        identity: u.email_address.clone(),
        batch_id: u.batch.clone(),
        status: u.status.as_str().to_string(),
        recipient_type: u.kind.map(|k| k.name().to_string()),
        error: u.error.clone(),
        total_items_in_source_mailbox_count: u.source_items,
        synced_item_count: u.items_synced,
        skipped_item_count: u.items_skipped,
        percentage_complete: percentage_complete(&u),
        bytes_transferred: u.bytes_synced,
        estimated_total_transfer_size: u.source_bytes,
        bytes_transferred_per_minute: (u.last_sync_bytes as f64 / minutes) as u64,
        last_sync_item_count: u.last_sync_items,
        last_sync_duration_seconds: u.last_sync_ms as f64 / 1000.0,
        missing_in_target_count: u.missing_in_target,
        queued_timestamp: ts(u.queued_at),
        start_timestamp: ts(u.sync_started_at),
        last_successful_sync_timestamp: ts(u.last_successful_sync_time),
        skipped_items_by_reason: by_reason.into_iter().collect(),
        skipped_items,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(EXIT_OK);
    }
    let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut rows: Vec<(&str, String)> = vec![
        ("Identity", s.identity.clone()),
        ("BatchId", s.batch_id.clone()),
        ("Status", s.status.clone()),
    ];
    if let Some(k) = &s.recipient_type {
        rows.push(("RecipientType", k.clone()));
    }
    rows.extend([
        ("Error", text(&s.error)),
        (
            "TotalItemsInSourceMailboxCount",
            opt(s.total_items_in_source_mailbox_count),
        ),
        ("SyncedItemCount", s.synced_item_count.to_string()),
        ("SkippedItemCount", s.skipped_item_count.to_string()),
        ("PercentageComplete", s.percentage_complete.to_string()),
        ("BytesTransferred", bytes(s.bytes_transferred)),
        (
            "EstimatedTotalTransferSize",
            s.estimated_total_transfer_size
                .map(bytes)
                .unwrap_or_default(),
        ),
        (
            "BytesTransferredPerMinute",
            bytes(s.bytes_transferred_per_minute),
        ),
        ("LastSyncItemCount", s.last_sync_item_count.to_string()),
        (
            "LastSyncDuration",
            format!("{:.1}s", s.last_sync_duration_seconds),
        ),
        ("MissingInTargetCount", opt(s.missing_in_target_count)),
        ("QueuedTimestamp", text(&s.queued_timestamp)),
        ("StartTimestamp", text(&s.start_timestamp)),
        (
            "LastSuccessfulSyncTimestamp",
            text(&s.last_successful_sync_timestamp),
        ),
        (
            "SkippedItemsByReason",
            s.skipped_items_by_reason
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]);
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$} : {v}");
    }
    if let Some(items) = &s.skipped_items {
        println!();
        if items.is_empty() {
            println!("No skipped items.");
        }
        for i in items {
            println!("{} {} {}: {}", i.folder, i.item, i.reason, i.detail);
        }
    }
    Ok(EXIT_OK)
}

/// `1.2 MB (1,234,567 bytes)`, as Exchange shows sizes.
fn bytes(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let (value, unit) = match n {
        n if n >= 1 << 30 => (n as f64 / (1u64 << 30) as f64, "GB"),
        n if n >= 1 << 20 => (n as f64 / (1u64 << 20) as f64, "MB"),
        n if n >= 1 << 10 => (n as f64 / 1024.0, "KB"),
        n => (n as f64, "B"),
    };
    format!("{value:.1} {unit} ({grouped} bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_exchange_prints_them() {
        assert_eq!(bytes(0), "0.0 B (0 bytes)");
        assert_eq!(bytes(1_234_567), "1.2 MB (1,234,567 bytes)");
        assert_eq!(bytes(999), "999.0 B (999 bytes)");
    }

    #[test]
    fn a_user_is_complete_only_once_synced_with_nothing_missing() {
        use engine::control::status::UserStatus;
        let mut u = UserRow::new("a@contoso.edu", "B", 2);
        assert_eq!(percentage_complete(&u), 0, "not planned yet");
        u.status = UserStatus::Syncing;
        u.source_items = Some(200);
        u.items_synced = 50;
        assert_eq!(percentage_complete(&u), 25);
        u.items_synced = 200;
        assert_eq!(percentage_complete(&u), 99, "not 100 before the sync ended");
        u.status = UserStatus::Synced;
        u.missing_in_target = Some(3);
        assert_eq!(percentage_complete(&u), 99, "the target lacks some");
        u.missing_in_target = Some(0);
        assert_eq!(percentage_complete(&u), 100);
    }
}
