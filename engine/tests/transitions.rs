//! Every (batch status, operation) and (user status, event) pair against the spec
//! (exchange-migration.md §4-5), written out as the matrices below so a reader can check them
//! against the spec line by line.
//!
//! Batch cells: `x` refused, `=` accepted without a status change, `Name` moves to that status,
//! `Name*` queues failed users again and moves to that status.

use engine::control::status::{
    BatchOp, BatchStatus, Effect, UserEvent, UserStatus, batch_op, user_event,
};

/// Columns: Start (no failed users), Start (failed users), Stop, Complete, Remove,
/// Set (no failed users), Set (failed users), SyncNow.
const BATCH: &str = "
Created             Syncing*    Syncing*    x         x           Removing  =  =  x
Waiting             x           x           Stopping  x           Removing  =  =  x
Starting            x           Syncing*    Stopping  x           x         =  =  x
Syncing             x           Syncing*    Stopping  x           x         =  =  x
Synced              x           Syncing*    Stopping  Completing  Removing  =  =  =
SyncedWithErrors    Syncing*    Syncing*    Stopping  Completing  Removing  =  =  =
Stopping            x           x           x         x           x         =  =  x
Stopped             Syncing*    Syncing*    x         x           Removing  =  =  x
Completing          x           x           x         =           x         =  =  x
Completed           x           Completing* x         x           Removing  x  =  x
CompletedWithErrors Completing* Completing* x         x           Removing  =  =  x
Removing            x           x           x         x           x         x  x  x
Failed              Syncing*    Syncing*    x         x           Removing  =  =  x
Corrupted           x           x           x         x           Removing  =  =  x
";

fn cell(effect: Result<Effect, String>) -> String {
    match effect {
        Err(_) => "x".into(),
        Ok(Effect::Stay) => "=".into(),
        Ok(Effect::To(s)) => s.as_str().into(),
        Ok(Effect::RetryFailed(s)) => format!("{}*", s.as_str()),
    }
}

#[test]
fn batch_operations_match_the_spec() {
    let rows: Vec<Vec<&str>> = BATCH
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), BatchStatus::ALL.len(), "one row per status");
    for row in rows {
        let status = BatchStatus::parse(row[0]).unwrap_or_else(|| panic!("status {}", row[0]));
        let got = [
            cell(batch_op(status, BatchOp::Start, false)),
            cell(batch_op(status, BatchOp::Start, true)),
            cell(batch_op(status, BatchOp::Stop, false)),
            cell(batch_op(status, BatchOp::Complete, false)),
            cell(batch_op(status, BatchOp::Remove, false)),
            cell(batch_op(status, BatchOp::Set, false)),
            cell(batch_op(status, BatchOp::Set, true)),
            cell(batch_op(status, BatchOp::SyncNow, false)),
        ];
        assert_eq!(got.to_vec(), row[1..].to_vec(), "row {}", row[0]);
    }
}

#[test]
fn refusals_say_why() {
    let m = batch_op(BatchStatus::Syncing, BatchOp::Remove, false).unwrap_err();
    assert_eq!(
        m,
        "The migration batch can't be removed while it's Syncing. Stop it first (mailmig batch stop), then remove it."
    );
    let m = batch_op(BatchStatus::Stopped, BatchOp::Stop, false).unwrap_err();
    assert_eq!(
        m,
        "The migration batch can't be stopped because it's Stopped."
    );
    let m = batch_op(BatchStatus::Completed, BatchOp::Start, false).unwrap_err();
    assert_eq!(
        m,
        "The migration batch is completed and has no failed users to retry."
    );
    let m = batch_op(BatchStatus::Completed, BatchOp::Set, false).unwrap_err();
    assert_eq!(
        m,
        "A completed migration batch without failed users can't be changed."
    );
}

/// Columns, in order: Validated, Invalid, SlotAcquired, IncrementalDue, CompleteRequested,
/// Succeeded, SucceededWithWarnings, SyncFailed, StopRequested, SyncStopped, Retry,
/// RemoveRequested, Interrupted, then cutover's Provisioned (a mailbox), Provisioned (no
/// mailbox), ProvisionWaiting, ProvisionFailed, RetryProvisioning. `-` means the event does
/// not apply.
const USER: &str = "
Validating            Queued Failed - - - - - - Stopped - - Removing - - - - - -
Queued                - - Syncing - - - - - Stopped - - Removing - - - - - -
Provisioning          - - - - - - - - Stopped - - Removing - Queued Synced ProvisionUpdating Failed -
ProvisionUpdating     - - - - - - - - Stopped - - Removing - Queued Synced ProvisionUpdating Failed -
Syncing               - - - - - Synced Synced Failed Stopping - - - Queued - - - - -
Synced                - - - IncrementalSyncing Completing - - - Stopped - - Removing - - - - - -
IncrementalSyncing    - - - - - Synced Synced Failed Stopping - - - Synced - - - - -
Completing            - - - - - Completed CompletedWithWarnings Failed - - - - Completing - - - - -
Completed             - - - - - - - - - - - Removing - - - - - -
CompletedWithWarnings - - - - - - - - - - - Removing - - - - - -
Failed                - - - - - - - - - - Validating Removing - - - - - Provisioning
Stopping              - - - - - Stopped Stopped Stopped - Stopped - Removing Stopped - - - - -
Stopped               - - - - - - - - - - Queued Removing - - - - - Provisioning
Removing              - - - - - - - - - - - Removing - - - - - -
";

#[test]
fn user_events_match_the_spec() {
    let rows: Vec<Vec<&str>> = USER
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), UserStatus::ALL.len(), "one row per status");
    for row in rows {
        let status = UserStatus::parse(row[0]).unwrap_or_else(|| panic!("status {}", row[0]));
        assert_eq!(row.len(), UserEvent::ALL.len() + 1, "row {}", row[0]);
        let got: Vec<String> = UserEvent::ALL
            .iter()
            .map(|&e| user_event(status, e).map_or("-".to_string(), |s| s.as_str().to_string()))
            .collect();
        assert_eq!(got, row[1..].to_vec(), "row {}", row[0]);
    }
}
