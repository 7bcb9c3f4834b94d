//! `mailmig batch`: migration batches (New-, Start-, Stop-, Complete-, Remove-, Set-,
//! Get-MigrationBatch).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use engine::Engine;
use engine::control::state::{BatchRow, BatchSettings};
use engine::control::{BatchStats, NewBatch, SetBatch};
use serde::Serialize;

use super::csv::print_row_errors;
use super::{EXIT_OK, comma_list, engine, rfc3339, target};

#[derive(Subcommand, Debug)]
pub enum BatchCommand {
    /// New-MigrationBatch: a batch of the CSV's users from a source endpoint.
    New(NewArgs),
    /// Start-MigrationBatch: starts a batch, or retries its failed and stopped users.
    Start {
        /// The batch's name.
        name: String,
    },
    /// Stop-MigrationBatch: waiting users stop now, running syncs are asked to stop.
    Stop {
        /// The batch's name.
        name: String,
    },
    /// Complete-MigrationBatch: a final incremental sync of every synced user.
    Complete {
        /// The batch's name.
        name: String,
    },
    /// Remove-MigrationBatch: the batch and its users are gone; the name can be reused. A
    /// cutover batch goes once MX points to the tenant and every user synced after that.
    Remove {
        /// The batch's name.
        name: String,
        /// Cutover: when MX was pointed at the tenant (RFC 3339); every user's last sync must
        /// be later, and 72 hours must have passed.
        #[arg(long, value_name = "TIME", value_parser = rfc3339)]
        mx_switched_at: Option<DateTime<Utc>>,
        /// Cutover: remove the batch whatever the users' last syncs say.
        #[arg(long)]
        force: bool,
    },
    /// The steps after a cutover (MX, 72 hours, licences, the Autodiscover CNAME, removal,
    /// decommissioning), with what is still open.
    Checklist {
        /// The cutover batch's name.
        name: String,
        /// When MX was pointed at the tenant (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = rfc3339)]
        mx_switched_at: Option<DateTime<Utc>>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set-MigrationBatch: folder filters, CompleteAfter, AddUsers, SyncNow.
    Set(SetArgs),
    /// Get-MigrationBatch: status, counts, rates and an ETA.
    Get {
        /// The batch's name (all batches without it).
        name: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The batch's name (1 to 64 characters).
    #[arg(long)]
    pub name: String,
    /// The endpoint the users are migrated from.
    #[arg(long)]
    pub source_endpoint: String,
    /// The CSV of users (see `mailmig csv check --help`); none for a cutover batch (an
    /// Exchange Outlook Anywhere endpoint: the whole organisation).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Start the batch right away (`mailmig run` does the work).
    #[arg(long)]
    pub autostart: bool,
    /// Folders left out, comma-separated; `Folder/*` for a subtree, `#Inbox#/*` for
    /// well-known folders.
    #[arg(long, value_name = "LIST")]
    pub exclude_folders: Option<String>,
    /// The only folders migrated, comma-separated, in the same forms.
    #[arg(long, value_name = "LIST")]
    pub include_folders: Option<String>,
    /// Start no earlier than this RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    pub start_after: Option<DateTime<Utc>>,
    /// Complete at this RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    pub complete_after: Option<DateTime<Utc>>,
    /// Accept CSV columns the migration service does not know.
    #[arg(long)]
    pub allow_unknown_columns: bool,
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// The batch's name.
    pub name: String,
    /// Start an incremental sync of every synced user now.
    #[arg(long)]
    pub sync_now: bool,
    /// A CSV of users to add (rows already in a batch are refused).
    #[arg(long, value_name = "FILE")]
    pub add_users: Option<PathBuf>,
    /// New folder exclusions, comma-separated (replaces the old ones).
    #[arg(long, value_name = "LIST")]
    pub exclude_folders: Option<String>,
    /// New folder inclusions, comma-separated (replaces the old ones).
    #[arg(long, value_name = "LIST")]
    pub include_folders: Option<String>,
    /// Complete at this RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    pub complete_after: Option<DateTime<Utc>>,
}

pub async fn run(state_dir: &Path, command: BatchCommand) -> anyhow::Result<u8> {
    let engine = engine(state_dir)?;
    match command {
        BatchCommand::New(args) => return new(&engine, state_dir, args).await,
        BatchCommand::Set(args) => return set(&engine, state_dir, args).await,
        BatchCommand::Get { name, json } => return get(&engine, name, json),
        BatchCommand::Start { name } => println!("{name}: {}", engine.batch_start(&name)?),
        BatchCommand::Stop { name } => println!("{name}: {}", engine.batch_stop(&name)?),
        BatchCommand::Complete { name } => {
            println!("{name}: {}", engine.batch_complete(&name)?)
        }
        BatchCommand::Remove {
            name,
            mx_switched_at,
            force,
        } => {
            engine.batch_remove_cutover(
                &name,
                engine::control::cutover::CutoverRemoval {
                    mx_switched_at,
                    force,
                },
            )?;
            println!("Removed the migration batch \"{name}\".");
        }
        BatchCommand::Checklist {
            name,
            mx_switched_at,
            json,
        } => {
            let target = target::open(&engine, state_dir)?;
            let items = engine
                .cutover_checklist(&name, mx_switched_at, &*target)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                for i in &items {
                    let mark = if i.done { "[x]" } else { "[ ]" };
                    println!("{mark} {}: {}", i.step, i.detail);
                }
            }
        }
    }
    Ok(EXIT_OK)
}

fn read_csv(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

async fn new(engine: &Engine, state_dir: &Path, args: NewArgs) -> anyhow::Result<u8> {
    let target = target::open(engine, state_dir)?;
    let settings = BatchSettings {
        exclude_folders: args
            .exclude_folders
            .as_deref()
            .map(comma_list)
            .unwrap_or_default(),
        include_folders: args
            .include_folders
            .as_deref()
            .map(comma_list)
            .unwrap_or_default(),
        start_after: args.start_after,
        complete_after: args.complete_after,
        allow_unknown_columns: args.allow_unknown_columns,
    };
    let new = NewBatch {
        name: args.name.clone(),
        source_endpoint: args.source_endpoint.clone(),
        autostart: args.autostart,
        settings,
    };
    let Some(csv) = &args.csv else {
        let out = engine.cutover_batch_new(new, &*target).await?;
        for (who, why) in &out.failed {
            eprintln!("{who}: {why}");
        }
        for (who, why) in &out.not_taken {
            println!("Not taken: {who} ({why})");
        }
        println!(
            "Created the cutover migration batch \"{}\" with {} recipients ({} mailboxes; {} failed).",
            args.name,
            out.recipients,
            out.mailboxes,
            out.failed.len()
        );
        if args.autostart {
            println!(
                "Started: `mailmig run` provisions the recipients, then copies the mailboxes."
            );
        }
        return Ok(EXIT_OK);
    };
    let bytes = read_csv(csv)?;
    let out = engine.batch_new(new, csv, &bytes, &*target).await?;
    print_row_errors(&out.row_errors, csv);
    println!(
        "Created the migration batch \"{}\" with {} users ({} rows with errors).",
        args.name,
        out.added,
        out.row_errors.len()
    );
    Ok(EXIT_OK)
}

async fn set(engine: &Engine, state_dir: &Path, args: SetArgs) -> anyhow::Result<u8> {
    let target = target::open(engine, state_dir)?;
    let add_users = match &args.add_users {
        Some(p) => Some((p.clone(), read_csv(p)?)),
        None => None,
    };
    let set = SetBatch {
        sync_now: args.sync_now,
        add_users,
        exclude_folders: args.exclude_folders.as_deref().map(comma_list),
        include_folders: args.include_folders.as_deref().map(comma_list),
        complete_after: args.complete_after,
    };
    let out = engine.batch_set(&args.name, set, &*target).await?;
    let name = &args.name;
    if let Some(f) = &args.add_users {
        print_row_errors(&out.row_errors, f);
        println!("Added {} users to \"{name}\".", out.added);
    } else {
        println!("Updated the migration batch \"{name}\".");
    }
    Ok(EXIT_OK)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchView {
    #[serde(flatten)]
    batch: BatchRow,
    #[serde(flatten)]
    stats: BatchStats,
}

fn get(engine: &Engine, name: Option<String>, json: bool) -> anyhow::Result<u8> {
    let batches = match name {
        Some(n) => vec![engine.batch(&n)?],
        None => engine.batches()?,
    };
    let mut views = Vec::new();
    for b in batches {
        views.push(BatchView {
            stats: engine.batch_stats(&b.name)?,
            batch: b,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(EXIT_OK);
    }
    if views.is_empty() {
        println!("No migration batches.");
        return Ok(EXIT_OK);
    }
    // Exchange's summaries, each its own column (Synced once counted completed users too).
    println!(
        "{:<20} {:<20} {:<14} {:>6} {:>7} {:>9} {:>7} {:>7}",
        "Identity", "Status", "Endpoint", "Total", "Synced", "Completed", "Failed", "Active"
    );
    for v in views {
        println!(
            "{:<20} {:<20} {:<14} {:>6} {:>7} {:>9} {:>7} {:>7}",
            v.batch.name,
            v.batch.status.as_str(),
            v.batch.endpoint,
            v.stats.total_count,
            v.stats.synced_count,
            v.stats.completed_count,
            v.stats.failed_count,
            v.stats.active_count
        );
        println!(
            "{:<20} {} items ({:.1} MiB), {} skipped; {:.1} msgs/s, {:.2} MiB/s; ETA {}",
            "",
            v.stats.items_synced,
            v.stats.bytes_synced as f64 / 1_048_576.0,
            v.stats.items_skipped,
            v.stats.items_per_second,
            v.stats.mib_per_second,
            v.stats
                .estimated_seconds_remaining
                .map_or("-".to_string(), |s| format!("{s}s"))
        );
    }
    Ok(EXIT_OK)
}
