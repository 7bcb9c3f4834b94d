//! One attempt at a whole mailbox: log in, list and plan the folders, list their items, apply
//! the item cap, copy folder by folder, log out, reconcile.

use std::collections::HashMap;

use super::folder::FolderWork;
use super::plan::{Plan, plan};
use super::reconcile::Listed;
use super::{Attempts, Copier, SyncError, cap, folder, reconcile};
use crate::control::state::checkpoint::{CopiedRecord, FolderKey, FolderSeen};
use crate::source::{self, ItemMeta, MailSource, SourceFolder};
use crate::sync::{SkipReason, SkippedItem, SyncJob, SyncProgress, SyncReport, SyncStats};

/// `attempts` (fetch attempts per message) outlives the attempt, so a message that breaks the
/// connection every time is still skipped in the end.
pub(super) async fn run(
    copier: &Copier,
    job: &SyncJob,
    report: &mut SyncReport,
    attempts: &mut Attempts,
) -> Result<(), SyncError> {
    let stop = Some(job.stop.clone());
    let mut source = source::open(
        &job.source,
        &job.email_address,
        &job.credential,
        copier.options.timeout,
        stop,
        copier.engine.clone(),
    )
    .await?;
    let listed = source.folders().await?;
    report.stats = SyncStats::default();
    for reply in &listed.unreadable {
        report.skipped.push(SkippedItem::folder(
            reply,
            SkipReason::FolderName,
            "the server listed a folder whose name cannot be read; its mail is not migrated",
        ));
    }
    let mut work = list_folders(copier, job, source.as_mut(), &listed.folders, report).await?;
    let total: usize = work.iter().map(|w| w.listing.items.len()).sum();
    if total > copier.options.item_cap {
        // The cap keeps the newest over all folders, by date, which an unchanged folder's
        // items (made from the records) do not carry: those folders are listed after all.
        for w in work.iter_mut().filter(|w| w.unchanged.is_some()) {
            w.listing = source.list(&w.folder, None).await?;
            w.unchanged = None;
        }
    }
    let skips = report.skipped.len();
    let mut work = cap::apply(work, copier.options.item_cap, report);
    if report.skipped.len() > skips {
        // A folder the cap cut was not copied whole: its state is not one to skip it by.
        for w in &mut work {
            w.listing.state = None;
        }
    }
    let max = copier.options.max_message_size;
    let fits = || {
        work.iter()
            .flat_map(|w| &w.listing.items)
            .filter(|m| folder::large_item(m, max).is_none())
    };
    let (items, bytes) = (fits().count() as u64, fits().map(|m| m.size).sum());
    copier
        .engine
        .db
        .transaction(|tx| tx.set_user_source_totals(&job.email_address, items, bytes))?;
    job.tell(SyncProgress::Planned { items, bytes });
    let mut listed: Vec<Listed> = work.iter().map(Listed::of).collect();
    for (w, l) in work.into_iter().zip(listed.iter_mut()) {
        l.copied = folder::copy(copier, job, source.as_mut(), w, report, attempts).await?;
    }
    source.close().await;
    report.stats.missing_in_target = reconcile::missing(copier, job, &listed, report).await?;
    Ok(())
}

/// Plans every folder and lists the ones to copy; skipped and merged folders are reported.
/// Listed last to first, so the first folder copied is the one its listing left open.
async fn list_folders(
    copier: &Copier,
    job: &SyncJob,
    source: &mut dyn MailSource,
    folders: &[SourceFolder],
    report: &mut SyncReport,
) -> Result<Vec<FolderWork>, SyncError> {
    let mut to_copy = Vec::new();
    for (folder, p) in plan(folders, &job.folders.exclude, &job.folders.include) {
        match p {
            Plan::Skip { reason, detail } => {
                report
                    .skipped
                    .push(SkippedItem::folder(&folder.relative, reason, detail))
            }
            Plan::Copy { target, merged } => {
                if let Some(first) = merged {
                    report.skipped.push(SkippedItem::folder(
                        &folder.relative,
                        SkipReason::Merged,
                        format!("{} is merged into {target} with {first}", folder.relative),
                    ));
                }
                to_copy.push((folder, target));
            }
        }
    }
    let mut seen = copier
        .engine
        .db
        .read(|tx| tx.folders_seen(&job.email_address))?;
    let mut work = Vec::with_capacity(to_copy.len());
    for (folder, target) in to_copy.into_iter().rev() {
        if *job.stop.borrow() {
            return Err(SyncError::Stopped);
        }
        let last = seen.remove(&folder.name);
        let mut listing = source.list(&folder, last.as_ref().map(|s| s.state)).await?;
        let mut unchanged = None;
        if listing.unchanged {
            match last.and_then(|s| unchanged_items(copier, job, &folder, s).transpose()) {
                Some(Ok((items, records))) => {
                    listing.items = items;
                    unchanged = Some(records);
                }
                Some(Err(e)) => return Err(e),
                // The records do not say what the folder holds: it is listed after all.
                None => listing = source.list(&folder, None).await?,
            }
        }
        work.push(FolderWork {
            folder,
            target,
            listing,
            unchanged,
        });
    }
    work.reverse();
    Ok(work)
}

/// An unchanged folder's items, and its records by UID.
type Taken = (Vec<ItemMeta>, HashMap<u32, CopiedRecord>);

/// An unchanged folder's items as its last complete copy listed them, made from their records
/// (with the records, for the reconciliation). `None` when the records do not hold every one
/// of them, or an earlier run left intents for the folder: then it must be listed.
fn unchanged_items(
    copier: &Copier,
    job: &SyncJob,
    folder: &SourceFolder,
    seen: FolderSeen,
) -> Result<Option<Taken>, SyncError> {
    let key = FolderKey {
        email: &job.email_address,
        folder: &folder.name,
        uid_validity: seen.state.uid_validity,
    };
    let (records, intents) = copier.engine.db.read(|tx| {
        Ok((
            tx.copied(key)?,
            tx.intents(&job.email_address, &folder.name)?,
        ))
    })?;
    if !intents.is_empty() {
        return Ok(None);
    }
    let mut items = Vec::with_capacity(seen.uids.len());
    for uid in seen.uids {
        let Some(r) = records.get(&uid) else {
            return Ok(None);
        };
        items.push(ItemMeta {
            uid,
            size: r.size,
            flags: r
                .flags
                .split(' ')
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect(),
            date: None,
        });
    }
    Ok(Some((items, records)))
}
