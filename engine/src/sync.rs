//! The seam between the control plane and the copy: the service hands a source-neutral
//! [`SyncJob`] to a [`UserSync`] and records the [`SyncReport`] it gets back, so the loop can be
//! tested with a scripted copy while the pipeline provides the real one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use mailmig_model::{SkipReason, SyncKind};
use serde::Serialize;
use tokio::sync::watch;

use crate::source::{Credential, SourceSettings};

/// Which folders a batch migrates (ExcludeFolders / IncludeFolders).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderFilter {
    pub exclude: Vec<String>,
    pub include: Vec<String>,
}

/// One sync of one mailbox: what it needs, and nothing of how the state stores it.
pub struct SyncJob {
    pub kind: SyncKind,
    /// The mailbox's address, at the target and in the checkpoint.
    pub email_address: String,
    pub batch: String,
    pub credential: Credential,
    /// The endpoint's connection settings.
    pub source: SourceSettings,
    pub folders: FolderFilter,
    /// Becomes true when the batch is stopped: end soon, keeping what was copied.
    pub stop: watch::Receiver<bool>,
    /// The user's totals (items, bytes) when the sync was claimed: a sync's own numbers are
    /// what it adds to them.
    pub totals_before: (u64, u64),
    /// Told as the sync goes (a progress display); `None`: nobody listens.
    pub progress: Option<ProgressHook>,
}

impl SyncJob {
    /// Tells the listener, if any.
    pub fn tell(&self, progress: SyncProgress) {
        if let Some(hook) = &self.progress {
            hook(progress);
        }
    }
}

/// What a running sync tells as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncProgress {
    /// The mailbox as planned: what the target will hold once this sync is done (after the
    /// item cap and the size limit), copied before or not.
    Planned { items: u64, bytes: u64 },
    /// A chunk acknowledged by the target and recorded.
    Copied { items: u64, bytes: u64 },
    /// The source or the target asked to wait this long.
    Throttled { wait: Duration, by: Side },
}

/// Which end of the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "the source",
            Side::Target => "the target",
        })
    }
}

pub type ProgressHook = Arc<dyn Fn(SyncProgress) + Send + Sync>;

/// An item (or a whole folder) the sync did not copy, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedItem {
    pub folder: String,
    /// How a report names it (`UID 42`), or `(folder)` for the folder itself.
    pub item: String,
    pub reason: SkipReason,
    pub detail: String,
}

/// The `item` of a skip that concerns a whole folder.
pub const FOLDER_ITEM: &str = "(folder)";

impl SkippedItem {
    /// A message of `folder` (relative name), by UID.
    pub fn message(folder: &str, uid: u32, reason: SkipReason, detail: impl Into<String>) -> Self {
        Self {
            folder: folder.to_string(),
            item: format!("UID {uid}"),
            reason,
            detail: detail.into(),
        }
    }

    /// A whole folder.
    pub fn folder(folder: &str, reason: SkipReason, detail: impl Into<String>) -> Self {
        Self {
            folder: folder.to_string(),
            item: FOLDER_ITEM.to_string(),
            reason,
            detail: detail.into(),
        }
    }

    pub fn is_folder(&self) -> bool {
        self.item == FOLDER_ITEM
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    Completed,
    /// Ended early because `stop` was set.
    Stopped,
    /// The user failed, with the error an admin sees.
    Failed(String),
}

impl fmt::Display for SyncOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncOutcome::Completed => f.write_str("synced"),
            SyncOutcome::Stopped => f.write_str("stopped"),
            SyncOutcome::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

/// What one sync moved, and what its closing reconciliation found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub items: u64,
    pub bytes: u64,
    pub elapsed_ms: u64,
    /// Messages listed at the source (and not skipped) that the target does not hold; `None`
    /// when the target cannot be listed.
    pub missing_in_target: Option<u64>,
}

/// What a sync did. Counts are totals for the user so far, not increments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    pub outcome: SyncOutcome,
    pub items_synced: u64,
    pub items_skipped: u64,
    pub bytes_synced: u64,
    pub skipped: Vec<SkippedItem>,
    pub stats: SyncStats,
}

impl SyncReport {
    pub fn completed() -> Self {
        Self {
            outcome: SyncOutcome::Completed,
            items_synced: 0,
            items_skipped: 0,
            bytes_synced: 0,
            skipped: Vec::new(),
            stats: SyncStats::default(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            outcome: SyncOutcome::Failed(message.into()),
            ..Self::completed()
        }
    }
}

#[async_trait]
pub trait UserSync: Send + Sync {
    async fn sync(&self, job: SyncJob) -> SyncReport;
}
