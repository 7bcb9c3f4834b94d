//! The copy behind a trait: the control plane runs per-user syncs (initial, incremental,
//! final) through `UserSync`, so it can be tested with a scripted implementation while the
//! data plane provides the real one.

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::watch;

use crate::endpoint::Endpoint;
use crate::state::{BatchRow, SyncKind, UserRow};

/// One sync of one user.
pub struct SyncJob {
    pub kind: SyncKind,
    pub user: UserRow,
    pub batch: BatchRow,
    pub endpoint: Endpoint,
    /// Becomes true when the batch is stopped: end soon, keeping what was copied.
    pub stop: watch::Receiver<bool>,
}

/// An item the sync did not copy, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedItem {
    pub folder: String,
    /// How a report names it (UID, subject, date).
    pub item: String,
    /// `LargeItem`, `BadItem`, `ItemCap`, `FolderName`, ...
    pub reason: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    Completed,
    /// Ended early because `stop` was set.
    Stopped,
    /// The user failed, with the error an admin sees.
    Failed(String),
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
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            outcome: SyncOutcome::Failed(message.into()),
            items_synced: 0,
            items_skipped: 0,
            bytes_synced: 0,
            skipped: Vec::new(),
            stats: SyncStats::default(),
        }
    }
}

#[async_trait]
pub trait UserSync: Send + Sync {
    async fn sync(&self, job: SyncJob) -> SyncReport;
}
