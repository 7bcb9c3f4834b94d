//! The item cap: at most `item_cap` messages a mailbox, the newest kept, over all folders.

use std::collections::HashSet;

use super::folder::FolderWork;
use crate::sync::{SkipReason, SkippedItem, SyncReport};

/// Drops the messages over the cap from the folders' listings and reports each as skipped.
pub(super) fn apply(
    mut work: Vec<FolderWork>,
    item_cap: usize,
    report: &mut SyncReport,
) -> Vec<FolderWork> {
    let mut all: Vec<_> = work
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.listing.items.iter().map(move |m| (m.date, i, m.uid)))
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0).then(b.2.cmp(&a.2)));
    let over_cap: HashSet<(usize, u32)> = all
        .iter()
        .skip(item_cap)
        .map(|&(_, i, uid)| (i, uid))
        .collect();
    if over_cap.is_empty() {
        return work;
    }
    for (i, w) in work.iter_mut().enumerate() {
        let relative = w.folder.relative.clone();
        w.listing.items.retain(|m| {
            if !over_cap.contains(&(i, m.uid)) {
                return true;
            }
            report.skipped.push(SkippedItem::message(
                &relative,
                m.uid,
                SkipReason::ItemCap,
                format!("over the limit of {item_cap} items a mailbox"),
            ));
            false
        });
    }
    work
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::source::{FolderListing, ItemMeta, SourceFolder};

    fn folder(name: &str, items: &[(u32, i64)]) -> FolderWork {
        FolderWork {
            folder: SourceFolder {
                name: name.into(),
                relative: name.into(),
                delimiter: Some('/'),
                selectable: true,
                content: Default::default(),
            },
            target: name.into(),
            listing: FolderListing {
                uid_validity: 1,
                items: items
                    .iter()
                    .map(|&(uid, day)| ItemMeta {
                        uid,
                        size: 10,
                        flags: Vec::new(),
                        date: Some(Utc.timestamp_opt(day * 86_400, 0).unwrap()),
                    })
                    .collect(),
                ..FolderListing::default()
            },
            unchanged: None,
        }
    }

    #[test]
    fn the_newest_are_kept_across_folders() {
        let mut report = crate::sync::SyncReport::completed();
        let work = vec![
            folder("INBOX", &[(1, 1), (2, 5)]),
            folder("Sent", &[(1, 3), (2, 4)]),
        ];
        let kept = apply(work, 2, &mut report);
        let uids = |i: usize| {
            kept[i]
                .listing
                .items
                .iter()
                .map(|m| m.uid)
                .collect::<Vec<_>>()
        };
        assert_eq!((uids(0), uids(1)), (vec![2], vec![2]));
        let skipped: Vec<_> = report
            .skipped
            .iter()
            .map(|s| (s.folder.as_str(), s.item.as_str(), s.reason))
            .collect();
        assert_eq!(
            skipped,
            vec![
                ("INBOX", "UID 1", SkipReason::ItemCap),
                ("Sent", "UID 1", SkipReason::ItemCap)
            ]
        );
    }
}
