//! Batch and user statuses and what moves them: the one place where the allowed transitions
//! of exchange-migration.md §4-5 can be read at a glance. Every (status, operation) and
//! (status, event) pair has an answer here: the next status, or a refusal with its message.

use serde::{Deserialize, Serialize};

/// Batch statuses, spelt as Exchange spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BatchStatus {
    Created,
    Waiting,
    Starting,
    Syncing,
    Synced,
    SyncedWithErrors,
    Stopping,
    Stopped,
    Completing,
    Completed,
    CompletedWithErrors,
    Removing,
    Failed,
    Corrupted,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 14] = [
        BatchStatus::Created,
        BatchStatus::Waiting,
        BatchStatus::Starting,
        BatchStatus::Syncing,
        BatchStatus::Synced,
        BatchStatus::SyncedWithErrors,
        BatchStatus::Stopping,
        BatchStatus::Stopped,
        BatchStatus::Completing,
        BatchStatus::Completed,
        BatchStatus::CompletedWithErrors,
        BatchStatus::Removing,
        BatchStatus::Failed,
        BatchStatus::Corrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Created => "Created",
            BatchStatus::Waiting => "Waiting",
            BatchStatus::Starting => "Starting",
            BatchStatus::Syncing => "Syncing",
            BatchStatus::Synced => "Synced",
            BatchStatus::SyncedWithErrors => "SyncedWithErrors",
            BatchStatus::Stopping => "Stopping",
            BatchStatus::Stopped => "Stopped",
            BatchStatus::Completing => "Completing",
            BatchStatus::Completed => "Completed",
            BatchStatus::CompletedWithErrors => "CompletedWithErrors",
            BatchStatus::Removing => "Removing",
            BatchStatus::Failed => "Failed",
            BatchStatus::Corrupted => "Corrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

impl std::fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an admin asks of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BatchOp {
    Start,
    Stop,
    Complete,
    Remove,
    /// Set-MigrationBatch: settings, AddUsers.
    Set,
    /// Set-MigrationBatch -SyncNow.
    SyncNow,
}

impl BatchOp {
    pub const ALL: [BatchOp; 6] = [
        BatchOp::Start,
        BatchOp::Stop,
        BatchOp::Complete,
        BatchOp::Remove,
        BatchOp::Set,
        BatchOp::SyncNow,
    ];
}

/// What an accepted operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The batch moves to this status.
    To(BatchStatus),
    /// Failed users are queued again; the batch moves to this status.
    RetryFailed(BatchStatus),
    /// Settings change; the status stays.
    Stay,
}

/// The batch transition table. `failed_users` is whether any user of the batch has failed.
pub fn batch_op(status: BatchStatus, op: BatchOp, failed_users: bool) -> Result<Effect, String> {
    use BatchOp as O;
    use BatchStatus as S;
    let refused = |why: &str| {
        Err(format!(
            "The migration batch can't be {why} because it's {status}."
        ))
    };
    match (op, status) {
        // Start: "can be run at any time to retry failed users".
        (O::Start, S::Created | S::Stopped | S::Failed) => Ok(Effect::RetryFailed(S::Syncing)),
        (O::Start, S::SyncedWithErrors) => Ok(Effect::RetryFailed(S::Syncing)),
        (O::Start, S::CompletedWithErrors) => Ok(Effect::RetryFailed(S::Completing)),
        (O::Start, S::Starting | S::Syncing) if failed_users => Ok(Effect::RetryFailed(S::Syncing)),
        (O::Start, S::Starting | S::Syncing | S::Waiting) => refused("started"),
        (O::Start, S::Synced) if failed_users => Ok(Effect::RetryFailed(S::Syncing)),
        (O::Start, S::Synced) => {
            Err("The migration batch is already synced and has no failed users to retry.".into())
        }
        (O::Start, S::Completed) if failed_users => Ok(Effect::RetryFailed(S::Completing)),
        (O::Start, S::Completed) => {
            Err("The migration batch is completed and has no failed users to retry.".into())
        }
        (O::Start, S::Stopping | S::Completing | S::Removing | S::Corrupted) => refused("started"),

        // Stop: while users sync or wait, and on a synced batch (pauses incremental syncs).
        (O::Stop, S::Waiting | S::Starting | S::Syncing) => Ok(Effect::To(S::Stopping)),
        (O::Stop, S::Synced | S::SyncedWithErrors) => Ok(Effect::To(S::Stopping)),
        (O::Stop, _) => refused("stopped"),

        // Complete: from a synced batch; a repeat while completing is ignored.
        (O::Complete, S::Synced | S::SyncedWithErrors) => Ok(Effect::To(S::Completing)),
        (O::Complete, S::Completing) => Ok(Effect::Stay),
        (O::Complete, _) => refused("completed"),

        // Remove: not while users are being copied. The advice is what the batch allows: a
        // syncing batch can be stopped; a stopping, completing or removing one cannot, so it
        // says to wait (a Completing batch refuses Stop, and must not be told to stop).
        (O::Remove, S::Starting | S::Syncing) => Err(format!(
            "The migration batch can't be removed while it's {status}. Stop it first (mailmig batch stop), then remove it."
        )),
        (O::Remove, S::Stopping | S::Completing | S::Removing) => Err(format!(
            "The migration batch can't be removed while it's {status}. Wait until it's {}, then remove it.",
            match status {
                S::Stopping => "Stopped",
                S::Completing => "Completed",
                _ => "gone",
            }
        )),
        (O::Remove, _) => Ok(Effect::To(S::Removing)),

        // Set: refused on a completed batch without failures and while removing.
        (O::Set, S::Completed) if !failed_users => {
            Err("A completed migration batch without failed users can't be changed.".into())
        }
        (O::Set, S::Removing) => refused("changed"),
        (O::Set, _) => Ok(Effect::Stay),

        // SyncNow: an incremental sync of the synced users, now.
        (O::SyncNow, S::Synced | S::SyncedWithErrors) => Ok(Effect::Stay),
        (O::SyncNow, _) => Err(format!(
            "SyncNow needs a synced migration batch; this one is {status}."
        )),
    }
}

/// User statuses (Get-MigrationUser), spelt as Exchange spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserStatus {
    Validating,
    Queued,
    /// Cutover: the recipient is being created in the tenant.
    Provisioning,
    /// Cutover: the recipient exists; links or members wait for other recipients.
    ProvisionUpdating,
    Syncing,
    Synced,
    IncrementalSyncing,
    Completing,
    Completed,
    CompletedWithWarnings,
    Failed,
    Stopping,
    Stopped,
    Removing,
}

impl UserStatus {
    pub const ALL: [UserStatus; 14] = [
        UserStatus::Validating,
        UserStatus::Queued,
        UserStatus::Provisioning,
        UserStatus::ProvisionUpdating,
        UserStatus::Syncing,
        UserStatus::Synced,
        UserStatus::IncrementalSyncing,
        UserStatus::Completing,
        UserStatus::Completed,
        UserStatus::CompletedWithWarnings,
        UserStatus::Failed,
        UserStatus::Stopping,
        UserStatus::Stopped,
        UserStatus::Removing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Validating => "Validating",
            UserStatus::Queued => "Queued",
            UserStatus::Provisioning => "Provisioning",
            UserStatus::ProvisionUpdating => "ProvisionUpdating",
            UserStatus::Syncing => "Syncing",
            UserStatus::Synced => "Synced",
            UserStatus::IncrementalSyncing => "IncrementalSyncing",
            UserStatus::Completing => "Completing",
            UserStatus::Completed => "Completed",
            UserStatus::CompletedWithWarnings => "CompletedWithWarnings",
            UserStatus::Failed => "Failed",
            UserStatus::Stopping => "Stopping",
            UserStatus::Stopped => "Stopped",
            UserStatus::Removing => "Removing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// A sync of this user is running.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            UserStatus::Syncing | UserStatus::IncrementalSyncing | UserStatus::Completing
        )
    }

    /// Get-MigrationUser's summary buckets.
    pub fn summary(self) -> &'static str {
        match self {
            UserStatus::Validating
            | UserStatus::Queued
            | UserStatus::Provisioning
            | UserStatus::ProvisionUpdating
            | UserStatus::Syncing
            | UserStatus::IncrementalSyncing
            | UserStatus::Completing
            | UserStatus::Stopping
            | UserStatus::Removing => "Active",
            UserStatus::Synced => "Synced",
            UserStatus::Completed => "Completed",
            UserStatus::CompletedWithWarnings | UserStatus::Failed => "Failed",
            UserStatus::Stopped => "Stopped",
        }
    }
}

impl std::fmt::Display for UserStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserEvent {
    /// The row passed validation (recipient found, ...).
    Validated,
    /// Validation failed (e.g. no recipient on the target).
    Invalid,
    /// A concurrency slot was free: the initial sync starts.
    SlotAcquired,
    /// The 24-hour incremental sync (or SyncNow) starts.
    IncrementalDue,
    /// Complete-MigrationBatch: the final sync starts.
    CompleteRequested,
    /// The running sync finished; `with_warnings` when items were skipped.
    SyncSucceeded { with_warnings: bool },
    /// The running sync failed (error budget spent, login refused, ...).
    SyncFailed,
    /// Stop-MigrationBatch.
    StopRequested,
    /// The running sync noticed the stop and ended.
    SyncStopped,
    /// Start-MigrationBatch: failed or stopped users are queued again.
    Retry,
    /// Remove-MigrationBatch.
    RemoveRequested,
    /// The engine restarted and found this sync interrupted.
    Interrupted,
    /// Cutover: the recipient, its links and members exist; `mailbox` when it has content to
    /// copy (it is queued), else there is nothing more to do (it is synced).
    Provisioned { mailbox: bool },
    /// Cutover: the recipient exists but waits for others (links, members).
    ProvisionWaiting,
    /// Cutover: the recipient cannot be provisioned (its message is the user's error).
    ProvisionFailed,
    /// Start-MigrationBatch on a cutover batch: failed and stopped recipients are provisioned
    /// again (the admin may have fixed the cause on-premises).
    RetryProvisioning,
}

impl UserEvent {
    pub const ALL: [UserEvent; 18] = [
        UserEvent::Validated,
        UserEvent::Invalid,
        UserEvent::SlotAcquired,
        UserEvent::IncrementalDue,
        UserEvent::CompleteRequested,
        UserEvent::SyncSucceeded {
            with_warnings: false,
        },
        UserEvent::SyncSucceeded {
            with_warnings: true,
        },
        UserEvent::SyncFailed,
        UserEvent::StopRequested,
        UserEvent::SyncStopped,
        UserEvent::Retry,
        UserEvent::RemoveRequested,
        UserEvent::Interrupted,
        UserEvent::Provisioned { mailbox: true },
        UserEvent::Provisioned { mailbox: false },
        UserEvent::ProvisionWaiting,
        UserEvent::ProvisionFailed,
        UserEvent::RetryProvisioning,
    ];
}

/// The user transition table. `None`: the event does not apply in that status (a bug if it
/// ever happens; the caller reports it instead of corrupting the state).
pub fn user_event(status: UserStatus, event: UserEvent) -> Option<UserStatus> {
    use UserEvent as E;
    use UserStatus as U;
    Some(match (status, event) {
        (U::Validating, E::Validated) => U::Queued,
        // Cutover: provisioning comes before content.
        (U::Provisioning | U::ProvisionUpdating, E::Provisioned { mailbox: true }) => U::Queued,
        (U::Provisioning | U::ProvisionUpdating, E::Provisioned { mailbox: false }) => U::Synced,
        (U::Provisioning | U::ProvisionUpdating, E::ProvisionWaiting) => U::ProvisionUpdating,
        (U::Provisioning | U::ProvisionUpdating, E::ProvisionFailed) => U::Failed,
        (U::Failed | U::Stopped, E::RetryProvisioning) => U::Provisioning,
        (U::Validating, E::Invalid) => U::Failed,
        (U::Queued, E::SlotAcquired) => U::Syncing,
        (U::Syncing, E::SyncSucceeded { .. }) => U::Synced,
        (U::IncrementalSyncing, E::SyncSucceeded { .. }) => U::Synced,
        (
            U::Completing,
            E::SyncSucceeded {
                with_warnings: false,
            },
        ) => U::Completed,
        (
            U::Completing,
            E::SyncSucceeded {
                with_warnings: true,
            },
        ) => U::CompletedWithWarnings,
        (U::Syncing | U::IncrementalSyncing | U::Completing, E::SyncFailed) => U::Failed,
        (U::Synced, E::IncrementalDue) => U::IncrementalSyncing,
        (U::Synced, E::CompleteRequested) => U::Completing,
        // Stop: waiting users stop at once, running syncs are asked to stop.
        (
            U::Validating | U::Queued | U::Provisioning | U::ProvisionUpdating | U::Synced,
            E::StopRequested,
        ) => U::Stopped,
        (U::Syncing | U::IncrementalSyncing, E::StopRequested) => U::Stopping,
        (U::Stopping, E::SyncStopped | E::SyncSucceeded { .. } | E::SyncFailed) => U::Stopped,
        // Retry: failed users are validated again (the admin may have created the missing
        // recipient meanwhile), stopped users go back in the queue.
        (U::Failed, E::Retry) => U::Validating,
        (U::Stopped, E::Retry) => U::Queued,
        // An interrupted sync (engine killed) starts over; its copy is idempotent.
        (U::Syncing, E::Interrupted) => U::Queued,
        (U::Stopping, E::Interrupted) => U::Stopped,
        (U::IncrementalSyncing, E::Interrupted) => U::Synced,
        (U::Completing, E::Interrupted) => U::Completing,
        (s, E::RemoveRequested) if !s.is_active() => U::Removing,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_pair_has_an_answer_and_refusals_have_messages() {
        for s in BatchStatus::ALL {
            for op in BatchOp::ALL {
                for failed in [false, true] {
                    if let Err(m) = batch_op(s, op, failed) {
                        assert!(m.ends_with('.') && m.len() > 20, "{s:?} {op:?}: {m:?}");
                    }
                }
            }
        }
    }

    /// A refusal that advises another operation advises one the batch allows in that status
    /// (removing a Completing batch once said "Stop it first", which Completing refuses).
    #[test]
    fn refusals_never_advise_an_operation_the_table_refuses() {
        for s in BatchStatus::ALL {
            for failed in [false, true] {
                let Err(m) = batch_op(s, BatchOp::Remove, failed) else {
                    continue;
                };
                if m.contains("Stop it first") {
                    assert!(
                        batch_op(s, BatchOp::Stop, failed).is_ok(),
                        "{s:?}: remove says {m:?} but stop is refused"
                    );
                } else {
                    assert!(m.contains("Wait until"), "{s:?}: {m:?}");
                }
            }
        }
    }

    #[test]
    fn statuses_parse_back() {
        for s in BatchStatus::ALL {
            assert_eq!(BatchStatus::parse(s.as_str()), Some(s));
        }
        for u in UserStatus::ALL {
            assert_eq!(UserStatus::parse(u.as_str()), Some(u));
        }
    }
}
