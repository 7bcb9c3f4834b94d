//! A mailbox surveyed read-only, for a rehearsal: the folders and where they land, what each
//! holds, and every item a migration would skip and why — decided by the same rules as the
//! copy (folder plan, item cap, size limit), without writing anything anywhere. Optionally a
//! sample is read (BODY.PEEK: no flag changes) to measure the source's read rate.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::folder::{FolderWork, large_item};
use super::plan::{Plan, plan};
use super::{CopyOptions, cap};
use crate::source::{FetchOutcome, MailSource, SourceError, SourceFolder, SourceItem};
use crate::sync::{FolderFilter, SkipReason, SkippedItem, SyncReport};

/// One source folder in the survey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderSurvey {
    /// The name relative to the user's root.
    pub source: String,
    /// Where it lands (`None`: skipped as a whole).
    pub target: Option<String>,
    /// Messages and bytes it holds (`None` when it could not be listed).
    pub items: Option<u64>,
    pub bytes: Option<u64>,
    /// How many of its messages would be copied.
    pub to_copy: u64,
}

/// An item a migration would skip, with what the listing shows of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SurveyedSkip {
    #[serde(flatten)]
    pub item: SkippedItem,
    pub size: Option<u64>,
    pub date: Option<DateTime<Utc>>,
}

/// A timed read of some messages, as the copy would read them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadSample {
    pub items: u64,
    pub bytes: u64,
    pub elapsed_ms: u64,
}

/// What a mailbox holds and what a migration of it would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxSurvey {
    pub folders: Vec<FolderSurvey>,
    /// Every message in the listed folders (skipped or not).
    pub items: u64,
    pub bytes: u64,
    /// What would be copied.
    pub to_copy_items: u64,
    pub to_copy_bytes: u64,
    pub skipped: Vec<SurveyedSkip>,
    pub sample: Option<ReadSample>,
}

/// Surveys a logged-in source. `sample_bytes` > 0 reads up to that many bytes of messages
/// that would be copied, timed.
pub async fn survey(
    source: &mut dyn MailSource,
    filter: &FolderFilter,
    options: &CopyOptions,
    sample_bytes: u64,
) -> Result<MailboxSurvey, SourceError> {
    let (mut out, work) = planned(source, filter, options).await?;
    if sample_bytes > 0 {
        out.sample = Some(read_sample(source, &work, sample_bytes).await?);
    }
    Ok(out)
}

/// Reads every message a migration would copy, folder by folder, in chunks (BODY.PEEK: no
/// flag changes), handing each to `each` with its source folder (relative name) and the
/// target folder it lands in: what a verification compares the target with.
pub async fn read_planned(
    source: &mut dyn MailSource,
    filter: &FolderFilter,
    options: &CopyOptions,
    mut each: impl FnMut(&str, &str, SourceItem),
) -> Result<MailboxSurvey, SourceError> {
    let (mut out, work) = planned(source, filter, options).await?;
    for w in &work {
        if w.listing.items.is_empty() {
            continue;
        }
        source.open(&w.folder).await?;
        for chunk in w.listing.items.chunks(options.fetch_chunk.clamp(1, 256)) {
            for outcome in source.fetch(chunk).await? {
                // What cannot be read is what a migration skips as a bad item: said, not
                // compared.
                let bad = |uid: u32, why: &str| SurveyedSkip {
                    item: SkippedItem::message(&w.folder.relative, uid, SkipReason::BadItem, why),
                    size: None,
                    date: None,
                };
                match outcome {
                    FetchOutcome::Item(item) => each(&w.folder.relative, &w.target, item),
                    FetchOutcome::Vanished(_) => {}
                    FetchOutcome::Refused(uid) | FetchOutcome::Retry(uid) => out
                        .skipped
                        .push(bad(uid, "the source server would not return it")),
                    FetchOutcome::Damaged(uid, why) => out.skipped.push(bad(uid, &why)),
                }
            }
        }
    }
    Ok(out)
}

/// The folder plan, the listings, the item cap and the size limit: the survey's numbers, and
/// what would be copied of each folder.
/// A listed message's size and date, by (folder, UID).
type Listed = (u64, Option<DateTime<Utc>>);

async fn planned(
    source: &mut dyn MailSource,
    filter: &FolderFilter,
    options: &CopyOptions,
) -> Result<(MailboxSurvey, Vec<FolderWork>), SourceError> {
    let listed = source.folders().await?;
    let mut out = MailboxSurvey::default();
    let mut report = SyncReport::completed();
    for reply in &listed.unreadable {
        report.skipped.push(SkippedItem::folder(
            reply,
            SkipReason::FolderName,
            "the server listed a folder whose name cannot be read; its mail is not migrated",
        ));
    }
    let mut work = Vec::new();
    for (folder, p) in plan(&listed.folders, &filter.exclude, &filter.include) {
        match p {
            Plan::Skip { reason, detail } => {
                let skip = skipped_folder(source, &folder, reason, detail, &mut out).await;
                report.skipped.push(skip);
            }
            Plan::Copy { target, merged } => {
                if let Some(first) = merged {
                    report.skipped.push(SkippedItem::folder(
                        &folder.relative,
                        SkipReason::Merged,
                        format!("{} is merged into {target} with {first}", folder.relative),
                    ));
                }
                let listing = source.list(&folder, None).await?;
                let bytes: u64 = listing.items.iter().map(|m| m.size).sum();
                out.items += listing.items.len() as u64;
                out.bytes += bytes;
                out.folders.push(FolderSurvey {
                    source: folder.relative.clone(),
                    target: Some(target.clone()),
                    items: Some(listing.items.len() as u64),
                    bytes: Some(bytes),
                    to_copy: 0,
                });
                work.push(FolderWork {
                    folder,
                    target,
                    listing,
                    unchanged: None,
                });
            }
        }
    }
    // Size and date of every listed message, for the skipped ones' report.
    let known: HashMap<(String, u32), Listed> = work
        .iter()
        .flat_map(|w| {
            w.listing
                .items
                .iter()
                .map(|m| ((w.folder.relative.clone(), m.uid), (m.size, m.date)))
        })
        .collect();
    let mut work = cap::apply(work, options.item_cap, &mut report);
    for w in &mut work {
        let relative = w.folder.relative.clone();
        w.listing
            .items
            .retain(|m| match large_item(m, options.max_message_size) {
                None => true,
                Some(detail) => {
                    let skip =
                        SkippedItem::message(&relative, m.uid, SkipReason::LargeItem, detail);
                    report.skipped.push(skip);
                    false
                }
            });
        let n = w.listing.items.len() as u64;
        out.to_copy_items += n;
        out.to_copy_bytes += w.listing.items.iter().map(|m| m.size).sum::<u64>();
        if let Some(f) = out.folders.iter_mut().find(|f| f.source == relative) {
            f.to_copy = n;
        }
    }
    out.skipped = report
        .skipped
        .into_iter()
        .map(|item| {
            let uid = item.item.strip_prefix("UID ").and_then(|u| u.parse().ok());
            let k = uid.and_then(|u: u32| known.get(&(item.folder.clone(), u)));
            SurveyedSkip {
                size: k.map(|k| k.0),
                date: k.and_then(|k| k.1),
                item,
            }
        })
        .collect();
    Ok((out, work))
}

/// A folder the plan skips: counted when it can be listed (what it holds is worth saying; a
/// \Noselect or refused folder holds nothing countable), and its skip worded with that count.
async fn skipped_folder(
    source: &mut dyn MailSource,
    folder: &SourceFolder,
    reason: SkipReason,
    detail: String,
    out: &mut MailboxSurvey,
) -> SkippedItem {
    let listing = if folder.selectable && reason != SkipReason::NotMail {
        source.list(folder, None).await.ok()
    } else {
        None
    };
    let (items, bytes) = match &listing {
        Some(l) => (
            Some(l.items.len() as u64),
            Some(l.items.iter().map(|m| m.size).sum()),
        ),
        None => (None, None),
    };
    out.items += items.unwrap_or(0);
    out.bytes += bytes.unwrap_or(0);
    out.folders.push(FolderSurvey {
        source: folder.relative.clone(),
        target: None,
        items,
        bytes,
        to_copy: 0,
    });
    let detail = match items {
        Some(n) if n > 0 => format!("{detail} ({n} messages not migrated)"),
        _ => detail,
    };
    SkippedItem::folder(&folder.relative, reason, detail)
}

/// Reads the first messages to copy of the biggest folder, up to `limit` bytes, timed.
async fn read_sample(
    source: &mut dyn MailSource,
    work: &[FolderWork],
    limit: u64,
) -> Result<ReadSample, SourceError> {
    let mut sample = ReadSample::default();
    let Some(w) = work.iter().max_by_key(|w| w.listing.items.len()) else {
        return Ok(sample);
    };
    let mut uids = Vec::new();
    let mut bytes = 0;
    for m in &w.listing.items {
        if bytes >= limit {
            break;
        }
        bytes += m.size;
        uids.push(m.clone());
    }
    if uids.is_empty() {
        return Ok(sample);
    }
    let started = Instant::now();
    source.open(&w.folder).await?;
    for chunk in uids.chunks(64) {
        for outcome in source.fetch(chunk).await? {
            if let FetchOutcome::Item(item) = outcome {
                sample.items += 1;
                sample.bytes += item.raw.len() as u64;
            }
        }
    }
    sample.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(sample)
}
