//! Importing one message: the target's throttling waited out (on the engine's clock, which is
//! the target's), passing faults retried, refusals turned into skips or a failed user.

use std::time::Duration;

use bytes::Bytes;

use super::{Copier, SyncError};
use crate::sync::{Side, SkipReason, SyncJob, SyncProgress};
use crate::target::{ImportOutcome, ImportRequest, Rejection};

pub(super) enum Imported {
    /// In the target now (created, or there from before).
    Yes,
    /// Refused for a reason that costs this message only.
    Skipped(SkipReason, String),
}

pub(super) async fn import(
    copier: &Copier,
    job: &SyncJob,
    request: &ImportRequest,
    raw: Bytes,
) -> Result<Imported, SyncError> {
    let email = &job.email_address;
    let mut transient = 0u32;
    loop {
        match copier.target.import(email, request, raw.clone()).await? {
            ImportOutcome::Created(_) => return Ok(Imported::Yes),
            ImportOutcome::AlreadyPresent(_) => {
                // Landed before (a crash, a lost acknowledgement): its flags may have changed
                // at the source since.
                copier
                    .target
                    .update_flags(email, &request.folder, &request.source_key, &request.flags)
                    .await?;
                return Ok(Imported::Yes);
            }
            ImportOutcome::Throttled(wait) => {
                if *job.stop.borrow() {
                    return Err(SyncError::Stopped);
                }
                job.tell(SyncProgress::Throttled {
                    wait,
                    by: Side::Target,
                });
                // The target's Retry-After is in the target's time (the engine's clock).
                copier.engine.clock.sleep(wait).await;
            }
            ImportOutcome::Transient(m) => {
                transient += 1;
                if transient > copier.options.error_budget {
                    return Err(SyncError::Target {
                        transient: false,
                        message: format!("The target kept failing: {m}"),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20 << transient.min(8))).await;
            }
            ImportOutcome::Rejected(Rejection::TooLarge { size, max }) => {
                return Ok(Imported::Skipped(
                    SkipReason::LargeItem,
                    format!("{size} bytes, over the target's limit of {max}"),
                ));
            }
            ImportOutcome::Rejected(r @ Rejection::InvalidFolder { .. }) => {
                return Ok(Imported::Skipped(SkipReason::FolderName, r.message(email)));
            }
            ImportOutcome::Rejected(r) => {
                return Err(SyncError::Target {
                    transient: false,
                    message: r.message(email),
                });
            }
        }
    }
}
