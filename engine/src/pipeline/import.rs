//! Settling one message's import: the target's throttling waited out (on the engine's clock,
//! which is the target's), passing refusals retried, refusals turned into skips or a failed
//! user. The first try is usually one of a chunk's pipelined imports
//! ([`crate::target::Target::import_many`]); only what it did not settle is tried again, alone.

use std::time::Duration;

use bytes::Bytes;

use super::{Copier, SyncError};
use crate::sync::{Side, SkipReason, SyncJob, SyncProgress};
use crate::target::{ImportOutcome, ImportRequest, Probe, Rejection, TargetError, TargetItem};

pub(super) enum Imported {
    /// In the target now (created, or there from before), with the target's id of it.
    Yes(Option<String>),
    /// Refused for a reason that costs this message only.
    Skipped(SkipReason, String),
}

/// Settles a message whose first import gave `first`. A connection failure is not retried
/// here: the write may have landed, so it is left to the chunk's intent, which the next
/// attempt resolves against the target.
pub(super) async fn settle(
    copier: &Copier,
    job: &SyncJob,
    request: &ImportRequest,
    raw: &Bytes,
    probe: &Probe,
    first: Result<ImportOutcome, TargetError>,
) -> Result<Imported, SyncError> {
    let email = &job.email_address;
    let mut transient = 0u32;
    let mut next = Some(first);
    loop {
        let outcome = match next.take() {
            Some(first) => first?,
            None => copier.target.import(email, request, raw.clone()).await?,
        };
        match outcome {
            ImportOutcome::Created(id) => return Ok(Imported::Yes(Some(id))),
            ImportOutcome::AlreadyPresent(id) => {
                // Landed before (a crash, a lost acknowledgement): its flags may have changed
                // at the source since.
                let item = TargetItem {
                    source_key: request.source_key.clone(),
                    target_id: Some(id.clone()),
                    probe: probe.clone(),
                };
                copier
                    .target
                    .update_flags_of(email, &request.folder, &item, &request.flags)
                    .await?;
                return Ok(Imported::Yes(Some(id)));
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
