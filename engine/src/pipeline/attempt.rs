//! One attempt at a whole mailbox: log in, list and plan the folders, list their items, apply
//! the item cap, copy folder by folder, log out, reconcile.

use super::folder::FolderWork;
use super::plan::{Plan, plan};
use super::reconcile::Listed;
use super::{Attempts, Copier, SyncError, cap, folder, reconcile};
use crate::source::{self, MailSource, SourceFolder};
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
    let work = list_folders(job, source.as_mut(), &listed.folders, report).await?;
    let work = cap::apply(work, copier.options.item_cap, report);
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
    let mut work = Vec::with_capacity(to_copy.len());
    for (folder, target) in to_copy.into_iter().rev() {
        if *job.stop.borrow() {
            return Err(SyncError::Stopped);
        }
        let listing = source.list(&folder).await?;
        work.push(FolderWork {
            folder,
            target,
            listing,
        });
    }
    work.reverse();
    Ok(work)
}
