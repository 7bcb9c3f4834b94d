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
    let password = password.read()?;
    if user_name.is_none() && password.is_none() {
        anyhow::bail!(
            "nothing to change: give --username, or the password (--password-file, --password-env or --password)"
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
