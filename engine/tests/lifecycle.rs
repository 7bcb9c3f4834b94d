//! The control plane end to end with a scripted copy: batches and users through their
//! lifecycle on a virtual clock, within concurrency limits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use engine::clock::ManualClock;
use engine::control::endpoint::Endpoint;
use engine::control::state::BatchSettings;
use engine::control::status::{BatchStatus, UserStatus};
use engine::control::{Engine, NewBatch, SetBatch};
use engine::imap::Security;
use engine::service::{RunOptions, Service};
use engine::sync::SyncKind;
use engine::sync::{SyncJob, SyncOutcome, SyncReport, UserSync};
use engine::target::Target;
use fake_target::Settings;
use harness::TenantTarget;

/// A copy that does what it is told per user, and remembers what it was asked.
#[derive(Default)]
struct Scripted {
    /// Fail this many times, then succeed.
    failures: Mutex<HashMap<String, usize>>,
    calls: Mutex<Vec<(String, SyncKind)>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    delay: Duration,
}

#[async_trait]
impl UserSync for Scripted {
    async fn sync(&self, mut job: SyncJob) -> SyncReport {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let email = job.email_address.to_ascii_lowercase();
        self.calls.lock().unwrap().push((email.clone(), job.kind));
        let stopped = tokio::select! {
            _ = tokio::time::sleep(self.delay) => false,
            _ = job.stop.wait_for(|s| *s) => true,
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        let fail = {
            let mut f = self.failures.lock().unwrap();
            match f.get_mut(&email) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        let mut report = SyncReport::failed("");
        report.outcome = if stopped {
            SyncOutcome::Stopped
        } else if fail {
            SyncOutcome::Failed("We had trouble signing in to this account.".into())
        } else {
            SyncOutcome::Completed
        };
        report.items_synced = 10;
        report
    }
}

struct World {
    engine: Arc<Engine>,
    clock: ManualClock,
    target: Arc<TenantTarget>,
    sync: Arc<Scripted>,
    _dir: tempfile::TempDir,
}

fn world(max_migrations: u32, max_incremental: u32, sync: Scripted) -> World {
    let names: Vec<String> = ["a", "b", "c", "e", "f"]
        .iter()
        .map(|u| format!("{u}@contoso.edu"))
        .collect();
    world_of(max_migrations, max_incremental, sync, &names)
}

/// A world whose tenant has these mailboxes.
fn world_of(
    max_migrations: u32,
    max_incremental: u32,
    sync: Scripted,
    mailboxes: &[String],
) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch();
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    let tenant = harness::contoso_tenant(Arc::new(clock.clone()), Settings::default(), mailboxes);
    let mut endpoint = Endpoint::imap("src", "127.0.0.1", 143, Security::None);
    endpoint.max_concurrent_migrations = max_migrations;
    endpoint.max_concurrent_incremental_syncs = max_incremental;
    engine.endpoint_new(endpoint).unwrap();
    World {
        engine,
        clock,
        target: Arc::new(TenantTarget(Arc::new(tenant))),
        sync: Arc::new(sync),
        _dir: dir,
    }
}

impl World {
    fn service(&self) -> Service {
        Service::new(self.engine.clone(), self.sync.clone(), self.target.clone())
    }

    async fn run(&self) {
        self.service()
            .run(RunOptions {
                poll: Duration::from_millis(5),
                ..RunOptions::default()
            })
            .await
            .unwrap();
    }

    async fn new_batch(
        &self,
        name: &str,
        csv: &str,
        settings: BatchSettings,
    ) -> engine::control::CsvOutcome {
        self.engine
            .batch_new(
                NewBatch {
                    name: name.into(),
                    source_endpoint: "src".into(),
                    autostart: false,
                    settings,
                },
                Path::new("users.csv"),
                csv.as_bytes(),
                &*self.target as &dyn Target,
            )
            .await
            .unwrap()
    }

    fn status(&self, batch: &str) -> BatchStatus {
        self.engine.batch(batch).unwrap().status
    }

    fn user(&self, email: &str) -> UserStatus {
        self.engine.user(email).unwrap().status
    }

    fn calls(&self) -> Vec<(String, SyncKind)> {
        std::mem::take(&mut *self.sync.calls.lock().unwrap())
    }
}

const CSV: &str = "EmailAddress,UserName,Password\n\
    a@contoso.edu,a,pa\n\
    b@contoso.edu,b,pb\n\
    c@contoso.edu,c,pc\n\
    d@contoso.edu,d,pd\n\
    not-an-address,x,px\n";

#[tokio::test]
async fn a_batch_from_creation_to_removal() {
    let w = world(2, 1, Scripted::default());
    let out = w.new_batch("Batch1", CSV, BatchSettings::default()).await;
    assert_eq!(out.added, 4);
    assert_eq!(out.row_errors.len(), 1);
    assert_eq!(out.row_errors[0].line, 6);
    assert_eq!(w.status("Batch1"), BatchStatus::Created);
    assert_eq!(w.user("a@contoso.edu"), UserStatus::Queued);
    let d = w.engine.user("d@contoso.edu").unwrap();
    assert_eq!(d.status, UserStatus::Failed);
    assert!(
        d.error
            .unwrap()
            .starts_with("A recipient wasn't found for d@contoso.edu on the target.")
    );

    // Nothing runs before Start.
    w.run().await;
    assert!(w.calls().is_empty());

    assert_eq!(
        w.engine.batch_start("Batch1").unwrap(),
        BatchStatus::Syncing
    );
    w.run().await;
    let calls = w.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|(_, k)| *k == SyncKind::Initial));
    assert!(
        w.sync.peak.load(Ordering::SeqCst) <= 2,
        "MaxConcurrentMigrations = 2"
    );
    assert_eq!(w.status("Batch1"), BatchStatus::SyncedWithErrors);
    let a = w.engine.user("a@contoso.edu").unwrap();
    assert_eq!((a.status, a.items_synced), (UserStatus::Synced, 10));
    assert_eq!(a.last_successful_sync_time, Some(w.clock.now_utc()));

    // Incremental syncs come every 24 hours, one at a time here.
    w.clock.advance(chrono::Duration::hours(23));
    w.run().await;
    assert!(w.calls().is_empty(), "not yet due");
    w.clock.advance(chrono::Duration::hours(1));
    w.sync.peak.store(0, Ordering::SeqCst);
    w.run().await;
    let calls = w.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|(_, k)| *k == SyncKind::Incremental)
            .count(),
        3
    );
    assert_eq!(
        w.sync.peak.load(Ordering::SeqCst),
        1,
        "MaxConcurrentIncrementalSyncs = 1"
    );
    assert_eq!(
        w.status("Batch1"),
        BatchStatus::SyncedWithErrors,
        "shows Synced while incremental"
    );

    // Remove is refused while users sync: hold one sync open.
    // (Here nothing runs, so Complete then Remove.)
    assert_eq!(
        w.engine.batch_complete("Batch1").unwrap(),
        BatchStatus::Completing
    );
    assert_eq!(
        w.engine.batch_complete("Batch1").unwrap(),
        BatchStatus::Completing,
        "repeat ignored"
    );
    w.run().await;
    assert!(w.calls().iter().all(|(_, k)| *k == SyncKind::Final));
    assert_eq!(w.status("Batch1"), BatchStatus::CompletedWithErrors);
    assert_eq!(w.user("a@contoso.edu"), UserStatus::Completed);

    w.engine.batch_remove("Batch1").unwrap();
    assert!(w.engine.batch("Batch1").is_err());
    assert!(w.engine.users(None).unwrap().is_empty());
    // The name and the addresses can be used again.
    w.new_batch("Batch1", CSV, BatchSettings::default()).await;
}

trait NowUtc {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc>;
}
impl NowUtc for ManualClock {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        engine::clock::Clock::now(self)
    }
}

#[tokio::test]
async fn duplicate_batch_names_and_addresses_are_refused() {
    let w = world(20, 10, Scripted::default());
    w.new_batch(
        "B",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\n",
        BatchSettings::default(),
    )
    .await;
    let err = w
        .engine
        .batch_new(
            NewBatch {
                name: "b".into(),
                source_endpoint: "src".into(),
                ..NewBatch::default()
            },
            Path::new("x.csv"),
            b"EmailAddress,UserName,Password\nb@contoso.edu,b,p\n",
            &*w.target as &dyn Target,
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "The migration batch already exists.");
    let out = w
        .new_batch(
            "C",
            "EmailAddress,UserName,Password\nA@contoso.edu,a,p\nb@contoso.edu,b,p\n",
            BatchSettings::default(),
        )
        .await;
    assert_eq!(out.added, 1);
    assert!(
        out.row_errors[0]
            .message
            .contains("already in migration batch \"B\"")
    );
    let err = w
        .engine
        .batch_new(
            NewBatch {
                name: "D".into(),
                source_endpoint: "src".into(),
                ..NewBatch::default()
            },
            Path::new("empty.csv"),
            b"",
            &*w.target as &dyn Target,
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "empty.csv: Upload file can't be empty");
}

#[tokio::test]
async fn failed_users_are_retried_by_start() {
    let sync = Scripted::default();
    sync.failures
        .lock()
        .unwrap()
        .insert("b@contoso.edu".into(), 1);
    let w = world(20, 10, sync);
    w.new_batch(
        "B",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\nb@contoso.edu,b,p\n",
        BatchSettings::default(),
    )
    .await;
    w.engine.batch_start("B").unwrap();
    w.run().await;
    assert_eq!(w.status("B"), BatchStatus::SyncedWithErrors);
    let b = w.engine.user("b@contoso.edu").unwrap();
    assert_eq!(b.status, UserStatus::Failed);
    assert!(b.error.unwrap().starts_with("We had trouble signing in"));
    w.calls();
    assert_eq!(w.engine.batch_start("B").unwrap(), BatchStatus::Syncing);
    assert_eq!(w.user("b@contoso.edu"), UserStatus::Validating);
    w.run().await;
    assert_eq!(
        w.calls(),
        vec![("b@contoso.edu".into(), SyncKind::Initial)],
        "only the failed user"
    );
    assert_eq!(w.status("B"), BatchStatus::Synced);
    assert_eq!(w.engine.user("b@contoso.edu").unwrap().error, None);
    let err = w.engine.batch_start("B").unwrap_err().to_string();
    assert_eq!(
        err,
        "The migration batch is already synced and has no failed users to retry."
    );
}

#[tokio::test]
async fn stop_pauses_and_start_resumes() {
    let w = world(20, 10, Scripted::default());
    w.new_batch(
        "B",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\n",
        BatchSettings::default(),
    )
    .await;
    w.engine.batch_start("B").unwrap();
    w.run().await;
    assert_eq!(w.engine.batch_stop("B").unwrap(), BatchStatus::Stopped);
    assert_eq!(w.user("a@contoso.edu"), UserStatus::Stopped);
    let err = w.engine.batch_stop("B").unwrap_err().to_string();
    assert_eq!(
        err,
        "The migration batch can't be stopped because it's Stopped."
    );
    w.calls();
    w.clock.advance(chrono::Duration::days(2));
    w.run().await;
    assert!(w.calls().is_empty(), "no incremental sync while stopped");
    w.engine.batch_start("B").unwrap();
    w.run().await;
    assert_eq!(w.calls().len(), 1);
    assert_eq!(w.status("B"), BatchStatus::Synced);
}

#[tokio::test]
async fn stop_and_remove_while_syncing() {
    let w = world(
        20,
        10,
        Scripted {
            delay: Duration::from_secs(30),
            ..Scripted::default()
        },
    );
    w.new_batch(
        "B",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\n",
        BatchSettings::default(),
    )
    .await;
    w.engine.batch_start("B").unwrap();
    let service = w.service();
    let run = tokio::spawn(async move {
        service
            .run(RunOptions {
                poll: Duration::from_millis(5),
                ..RunOptions::default()
            })
            .await
    });
    for _ in 0..200 {
        if w.sync.running.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(w.user("a@contoso.edu"), UserStatus::Syncing);
    let err = w.engine.batch_remove("B").unwrap_err().to_string();
    assert_eq!(
        err,
        "The migration batch can't be removed while it's Syncing. Stop it first (mailmig batch stop), then remove it."
    );
    assert_eq!(w.engine.batch_stop("B").unwrap(), BatchStatus::Stopping);
    assert_eq!(w.user("a@contoso.edu"), UserStatus::Stopping);
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(w.user("a@contoso.edu"), UserStatus::Stopped);
    assert_eq!(w.status("B"), BatchStatus::Stopped);
    w.engine.batch_remove("B").unwrap();
}

#[tokio::test]
async fn add_users_and_sync_now() {
    let w = world(20, 10, Scripted::default());
    w.new_batch(
        "B",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\n",
        BatchSettings::default(),
    )
    .await;
    w.engine.batch_start("B").unwrap();
    w.run().await;
    w.calls();
    let set = SetBatch {
        add_users: Some((
            "more.csv".into(),
            b"EmailAddress,UserName,Password\na@contoso.edu,a,p\ne@contoso.edu,e,p\n".to_vec(),
        )),
        ..SetBatch::default()
    };
    let out = w
        .engine
        .batch_set("B", set, &*w.target as &dyn Target)
        .await
        .unwrap();
    assert_eq!(out.added, 1, "only the new row");
    assert_eq!(out.row_errors.len(), 1);
    assert_eq!(w.status("B"), BatchStatus::Syncing);
    w.run().await;
    assert_eq!(w.calls(), vec![("e@contoso.edu".into(), SyncKind::Initial)]);
    assert_eq!(w.status("B"), BatchStatus::Synced);
    // SyncNow: incremental syncs now, not in 24 hours.
    let set = SetBatch {
        sync_now: true,
        ..SetBatch::default()
    };
    w.engine
        .batch_set("B", set, &*w.target as &dyn Target)
        .await
        .unwrap();
    w.run().await;
    let calls = w.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|(_, k)| *k == SyncKind::Incremental));
}

#[tokio::test]
async fn start_after_and_complete_after() {
    let w = world(20, 10, Scripted::default());
    let t0 = w.clock.now_utc();
    let settings = BatchSettings {
        start_after: Some(t0 + chrono::Duration::hours(5)),
        complete_after: Some(t0 + chrono::Duration::days(3)),
        ..BatchSettings::default()
    };
    w.new_batch(
        "B",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\n",
        settings,
    )
    .await;
    assert_eq!(w.engine.batch_start("B").unwrap(), BatchStatus::Waiting);
    w.run().await;
    assert!(w.calls().is_empty());
    w.clock.advance(chrono::Duration::hours(5));
    w.run().await;
    assert_eq!(w.calls().len(), 1);
    assert_eq!(w.status("B"), BatchStatus::Synced);
    w.clock.advance(chrono::Duration::days(3));
    w.run().await;
    assert_eq!(w.status("B"), BatchStatus::Completed);
    assert!(w.calls().iter().any(|(_, k)| *k == SyncKind::Final));
}

#[tokio::test]
async fn housekeeping_after_sixty_and_ninety_days() {
    let w = world(20, 10, Scripted::default());
    w.new_batch(
        "Idle",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\n",
        BatchSettings::default(),
    )
    .await;
    w.new_batch(
        "Done",
        "EmailAddress,UserName,Password\nb@contoso.edu,b,p\n",
        BatchSettings::default(),
    )
    .await;
    w.engine.batch_start("Idle").unwrap();
    w.engine.batch_start("Done").unwrap();
    w.run().await;
    w.engine.batch_complete("Done").unwrap();
    w.run().await;
    assert_eq!(w.status("Done"), BatchStatus::Completed);
    // Day by day, with the daily incremental syncs running.
    for _ in 0..59 {
        w.clock.advance(chrono::Duration::days(1));
        w.run().await;
    }
    assert_eq!(
        w.status("Idle"),
        BatchStatus::Synced,
        "59 days without admin action"
    );
    assert!(w.engine.batch("Done").is_ok());
    w.clock.advance(chrono::Duration::days(1));
    w.run().await;
    assert_eq!(w.status("Idle"), BatchStatus::Stopped, "60 days: stopped");
    assert!(
        w.engine.batch("Done").is_err(),
        "completed 60 days ago: deleted"
    );
    w.clock.advance(chrono::Duration::days(89));
    w.run().await;
    assert!(w.engine.batch("Idle").is_ok());
    w.clock.advance(chrono::Duration::days(1));
    w.run().await;
    assert!(w.engine.batch("Idle").is_err(), "stopped 90 days: deleted");
}

#[tokio::test]
async fn an_interrupted_run_restarts_only_what_was_in_flight() {
    let w = world(
        1,
        1,
        Scripted {
            delay: Duration::from_secs(60),
            ..Scripted::default()
        },
    );
    w.new_batch(
        "B",
        "EmailAddress,UserName,Password\na@contoso.edu,a,p\nb@contoso.edu,b,p\n",
        BatchSettings::default(),
    )
    .await;
    w.engine.batch_start("B").unwrap();
    let service = w.service();
    let run = tokio::spawn(async move { service.run(RunOptions::default()).await });
    for _ in 0..200 {
        if w.sync.running.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.abort(); // the process dies mid-sync
    let _ = run.await;
    let a = w.engine.user("a@contoso.edu").unwrap();
    assert_eq!(
        (a.status, a.running),
        (UserStatus::Syncing, Some(SyncKind::Initial))
    );
    assert_eq!(w.user("b@contoso.edu"), UserStatus::Queued);
    // A new run with a quick copy: a starts over, b runs once, nothing twice.
    let quick = Arc::new(Scripted::default());
    w.calls();
    Service::new(w.engine.clone(), quick.clone(), w.target.clone())
        .run(RunOptions::default())
        .await
        .unwrap();
    let calls = std::mem::take(&mut *quick.calls.lock().unwrap());
    assert_eq!(
        calls,
        vec![
            ("a@contoso.edu".into(), SyncKind::Initial),
            ("b@contoso.edu".into(), SyncKind::Initial)
        ]
    );
    assert_eq!(w.status("B"), BatchStatus::Synced);
}

/// The limits hold at scale: 5,000 users never run more than MaxConcurrentMigrations syncs at
/// once (and come near it), incrementals never more than MaxConcurrentIncrementalSyncs, and every
/// user gets exactly one sync per pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_hold_with_five_thousand_users() {
    const USERS: usize = 5000;
    let mailboxes: Vec<String> = (0..USERS).map(|i| format!("u{i}@contoso.edu")).collect();
    let w = world_of(
        20,
        7,
        Scripted {
            delay: Duration::from_millis(1),
            ..Scripted::default()
        },
        &mailboxes,
    );
    let mut csv = String::from("EmailAddress,UserName,Password\n");
    for m in &mailboxes {
        csv.push_str(&format!("{m},{m},pw\n"));
    }
    let outcome = w.new_batch("Big", &csv, BatchSettings::default()).await;
    assert!(outcome.row_errors.is_empty());
    w.engine.batch_start("Big").unwrap();
    w.run().await;
    assert_eq!(w.status("Big"), BatchStatus::Synced);
    let calls = w.calls();
    assert_eq!(calls.len(), USERS, "one initial sync per user");
    assert!(calls.iter().all(|(_, k)| *k == SyncKind::Initial));
    let peak = w.sync.peak.swap(0, Ordering::SeqCst);
    // Never more than the limit; many at once (a sync may end before the last one starts).
    assert!((10..=20).contains(&peak), "initial syncs at once: {peak}");

    w.clock.advance(chrono::Duration::hours(25));
    w.run().await;
    let calls = w.calls();
    assert_eq!(calls.len(), USERS, "one incremental sync per user");
    let distinct: std::collections::HashSet<&String> = calls.iter().map(|(e, _)| e).collect();
    assert_eq!(distinct.len(), USERS);
    assert!(calls.iter().all(|(_, k)| *k == SyncKind::Incremental));
    let peak = w.sync.peak.load(Ordering::SeqCst);
    assert!((3..=7).contains(&peak), "incremental syncs at once: {peak}");
    assert!(
        w.engine
            .users(Some("Big"))
            .unwrap()
            .iter()
            .all(|u| u.status == UserStatus::Synced)
    );
}
