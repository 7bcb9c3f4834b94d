//! The reconciliation that closes every sync: each listed, not skipped message must be
//! recorded as copied and be in the target ("in source, not in target" must be empty).

use std::collections::HashSet;

use super::folder::{self, FolderWork};
use super::{Copier, SyncError};
use crate::control::state::checkpoint::FolderKey;
use crate::sync::{SyncJob, SyncReport};

/// What a sync listed of one folder (after the item cap).
pub(super) struct Listed {
    name: String,
    relative: String,
    uid_validity: u32,
    uids: Vec<u32>,
    /// The folder's records when its copy recorded nothing new (else read again here).
    pub(super) copied: folder::Unchanged,
}

impl Listed {
    pub(super) fn of(w: &FolderWork) -> Self {
        Self {
            name: w.folder.name.clone(),
            relative: w.folder.relative.clone(),
            uid_validity: w.listing.uid_validity,
            uids: w.listing.items.iter().map(|m| m.uid).collect(),
            copied: None,
        }
    }
}

/// How many listed messages the target lacks; `None` when the target cannot be listed.
pub(super) async fn missing(
    copier: &Copier,
    job: &SyncJob,
    listed: &[Listed],
    report: &SyncReport,
) -> Result<Option<u64>, SyncError> {
    let email = &job.email_address;
    let Some(target_keys) = copier.target.source_keys(email).await? else {
        return Ok(None);
    };
    let skipped: HashSet<(&str, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.folder.as_str(), s.item.as_str()))
        .collect();
    let mut missing = 0u64;
    for l in listed {
        let key = FolderKey {
            email,
            folder: &l.name,
            uid_validity: l.uid_validity,
        };
        let read;
        let copied = match &l.copied {
            Some(c) => c,
            None => {
                read = copier.engine.db.read(|tx| tx.copied(key))?;
                &read
            }
        };
        // Only a folder with skips has a UID's name looked up (made for each of its UIDs).
        let any_skipped = skipped.iter().any(|(f, _)| *f == l.relative);
        for uid in &l.uids {
            if any_skipped
                && skipped.contains(&(l.relative.as_str(), format!("UID {uid}").as_str()))
            {
                continue;
            }
            // Held under its source key, or (a target without keys) under its own id.
            let present = copied.get(uid).is_some_and(|r| {
                target_keys.contains(&r.source_key)
                    || r.target_id
                        .as_ref()
                        .is_some_and(|id| target_keys.contains(id))
            });
            if !present {
                missing += 1;
                tracing::warn!(%email, folder = %l.relative, uid, "in source, not in target");
            }
        }
    }
    Ok(Some(missing))
}
