//! Property tests: (a) the batch lifecycle against a small reference model, (b) arbitrary
//! mailboxes, changes and interruptions converge to target == source, (c) the CSV parser, and
//! (d) folder names.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::Engine;
use engine::clock::ManualClock;
use engine::control::csv::{CsvOptions, parse};
use engine::control::endpoint::Endpoint;
use engine::control::status::{BatchStatus, UserStatus};
use engine::control::{NewBatch, SetBatch};
use engine::imap::Security;
use engine::pipeline::plan::{Plan, SourceFolder, plan};
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::sync::{SyncJob, SyncOutcome, SyncReport, UserSync};
use engine::target::Target;
use fake_imap::FakeImapServer;
use fake_target::inspect::{reconcile, target_messages};
use fake_target::{Recipient, Settings, Tenant};
use harness::TenantTarget;
use harness::source_from_fake_imap;
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ----- (a) the batch lifecycle against a reference model -----

#[derive(Clone, Copy, Debug)]
enum Op {
    Start,
    Stop,
    Complete,
    Remove,
    SyncNow,
    Run,
    Advance,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Start),
        Just(Op::Stop),
        Just(Op::Complete),
        Just(Op::Remove),
        Just(Op::SyncNow),
        Just(Op::Run),
        Just(Op::Advance),
    ]
}

/// What the spec says, for a batch whose copies always succeed and run only in `Run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Model {
    Created,
    Syncing,
    Synced,
    Stopped,
    Completing,
    Completed,
    Gone,
}

impl Model {
    /// The next state, or None when the service refuses the operation.
    fn apply(self, op: Op) -> Option<Model> {
        use Model as M;
        Some(match (self, op) {
            (M::Gone, Op::Run | Op::Advance) => M::Gone,
            (M::Gone, _) => return None,
            (M::Created | M::Stopped, Op::Start) => M::Syncing,
            (_, Op::Start) => return None,
            (M::Syncing | M::Synced, Op::Stop) => M::Stopped,
            (_, Op::Stop) => return None,
            (M::Synced, Op::Complete) | (M::Completing, Op::Complete) => M::Completing,
            (_, Op::Complete) => return None,
            (M::Syncing | M::Completing, Op::Remove) => return None,
            (_, Op::Remove) => M::Gone,
            (M::Synced, Op::SyncNow) => M::Synced,
            (_, Op::SyncNow) => return None,
            (M::Syncing, Op::Run) => M::Synced,
            (M::Completing, Op::Run) => M::Completed,
            (s, Op::Run | Op::Advance) => s,
        })
    }

    fn status(self) -> Option<BatchStatus> {
        Some(match self {
            Model::Created => BatchStatus::Created,
            Model::Syncing => BatchStatus::Syncing,
            Model::Synced => BatchStatus::Synced,
            Model::Stopped => BatchStatus::Stopped,
            Model::Completing => BatchStatus::Completing,
            Model::Completed => BatchStatus::Completed,
            Model::Gone => return None,
        })
    }
}

struct Instant;
#[async_trait::async_trait]
impl UserSync for Instant {
    async fn sync(&self, _job: SyncJob) -> SyncReport {
        let mut r = SyncReport::failed("");
        r.outcome = SyncOutcome::Completed;
        r
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn batch_lifecycle_follows_the_reference_model(ops in prop::collection::vec(op(), 1..25)) {
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::at_epoch();
            let engine = Arc::new(Engine::open(dir.path(), Arc::new(clock.clone())).unwrap());
            let tenant = Tenant::with_clock(
                Settings { accepted_domains: vec!["contoso.edu".into()], ..Settings::default() },
                Arc::new(clock.clone()),
            );
            tenant.add_recipient(Recipient::mailbox("a@contoso.edu", true, tenant.now())).unwrap();
            let target = Arc::new(TenantTarget(Arc::new(tenant)));
            engine.endpoint_new(Endpoint::imap("src", "127.0.0.1", 143, Security::None)).unwrap();
            engine
                .batch_new(
                    NewBatch { name: "B".into(), source_endpoint: "src".into(), ..NewBatch::default() },
                    Path::new("u.csv"),
                    b"EmailAddress,UserName,Password\na@contoso.edu,a,p\n",
                    &*target as &dyn Target,
                )
                .await
                .unwrap();
            let service = Service::new(engine.clone(), Arc::new(Instant), target.clone());
            let mut model = Model::Created;
            for (i, op) in ops.iter().enumerate() {
                let accepted = match op {
                    Op::Start => engine.batch_start("B").is_ok(),
                    Op::Stop => engine.batch_stop("B").is_ok(),
                    Op::Complete => engine.batch_complete("B").is_ok(),
                    Op::Remove => engine.batch_remove("B").is_ok(),
                    Op::SyncNow => engine
                        .batch_set("B", SetBatch { sync_now: true, ..SetBatch::default() }, &*target as &dyn Target)
                        .await
                        .is_ok(),
                    Op::Run => {
                        service.run(RunOptions { poll: Duration::from_millis(1), ..RunOptions::default() }).await.unwrap();
                        true
                    }
                    Op::Advance => {
                        clock.advance(chrono::Duration::hours(24));
                        true
                    }
                };
                let next = model.apply(*op);
                assert_eq!(accepted, next.is_some(), "step {i} {op:?} from {model:?}: accepted = {accepted}");
                if let Some(n) = next {
                    model = n;
                }
                let status = engine.batch("B").ok().map(|b| b.status);
                assert_eq!(status, model.status(), "after step {i} {op:?}");
                // Users follow their batch: never syncing in a stopped batch.
                if model == Model::Stopped {
                    let u = engine.user("a@contoso.edu").unwrap();
                    assert_eq!(u.status, UserStatus::Stopped);
                }
            }
        });
    }
}

// ----- (b) arbitrary mailboxes, changes and interruptions converge -----

#[derive(Clone, Debug)]
enum Change {
    Deliver(usize, u8),
    Flag(usize, u32),
    Expunge(usize, u32),
    Rebuild(usize),
    Kill(u64),
    /// Killed right after the tenant applied the n-th write, before the engine heard back.
    Crash(usize),
    Run,
    NextDay,
}

const FOLDERS: [&str; 3] = ["INBOX", "Sent", "Archive/2019"];

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0..3usize, 1..5u8).prop_map(|(f, n)| Change::Deliver(f, n)),
        (0..3usize, 1..20u32).prop_map(|(f, u)| Change::Flag(f, u)),
        (0..3usize, 1..20u32).prop_map(|(f, u)| Change::Expunge(f, u)),
        (0..3usize).prop_map(Change::Rebuild),
        (0..60u64).prop_map(Change::Kill),
        (0..40usize).prop_map(Change::Crash),
        Just(Change::Run),
        Just(Change::NextDay),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn any_mailbox_any_changes_any_interruptions_converge(
        counts in prop::collection::vec(0..15usize, 3),
        changes in prop::collection::vec(change(), 0..10),
        seed in 0..1000u64,
    ) {
        let rt = runtime();
        rt.block_on(async {
            let mut server = FakeImapServer::new().seed(seed).user("u", "pw");
            for (f, n) in FOLDERS.iter().zip(&counts) {
                server = server.generated("u", f, *n);
            }
            // A slow source, so that kills land mid-sync.
            let server = server
                .fault(fake_imap::Fault::new(fake_imap::FaultAction::Delay).command("UID FETCH").ms(3))
                .start()
                .await
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::at_epoch();
            let engine = Arc::new(Engine::open(dir.path(), Arc::new(clock.clone())).unwrap());
            let tenant = Tenant::with_clock(
                Settings { accepted_domains: vec!["contoso.edu".into()], ..Settings::default() },
                Arc::new(clock.clone()),
            );
            tenant.add_recipient(Recipient::mailbox("u@contoso.edu", true, tenant.now())).unwrap();
            let target = Arc::new(TenantTarget(Arc::new(tenant.clone())));
            engine.endpoint_new(Endpoint::imap("src", "127.0.0.1", server.imap_addr().port(), Security::None)).unwrap();
            engine
                .batch_new(
                    NewBatch { name: "B".into(), source_endpoint: "src".into(), autostart: true, ..NewBatch::default() },
                    Path::new("u.csv"),
                    b"EmailAddress,UserName,Password\nu@contoso.edu,u,pw\n",
                    &*target as &dyn Target,
                )
                .await
                .unwrap();
            let run = || {
                let copy = Copier { engine: engine.clone(), target: target.clone(), options: CopyOptions { fetch_chunk: 3, ..CopyOptions::default() } };
                let service = Service::new(engine.clone(), Arc::new(copy), target.clone());
                async move {
                    service.run(RunOptions { poll: Duration::from_millis(1), ..RunOptions::default() }).await
                }
            };
            let crash = |writes: usize| {
                let switch = harness::crash::CrashSwitch::after(writes);
                let crashing: Arc<dyn Target> = Arc::new(harness::crash::Crashing {
                    inner: target.clone(),
                    switch: switch.clone(),
                });
                let copy = Copier { engine: engine.clone(), target: crashing.clone(), options: CopyOptions { fetch_chunk: 3, ..CopyOptions::default() } };
                let service = Service::new(engine.clone(), Arc::new(copy), crashing);
                async move {
                    tokio::select! {
                        _ = service.run(RunOptions { poll: Duration::from_millis(1), ..RunOptions::default() }) => {}
                        _ = switch.crashed() => {}
                    }
                }
            };
            let store = server.store();
            let date = chrono::DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z").unwrap();
            let mut delivered = 0;
            for c in &changes {
                match c {
                    Change::Deliver(f, n) => {
                        for _ in 0..*n {
                            delivered += 1;
                            let raw = format!("Message-ID: <d{delivered}@x>\r\nSubject: new {delivered}\r\n\r\nbody\r\n");
                            store.append("u", FOLDERS[*f], raw.into_bytes(), &[], date).unwrap();
                        }
                    }
                    Change::Flag(f, uid) => {
                        let _ = store.set_flags("u", FOLDERS[*f], *uid, &["\\Seen", "\\Flagged"]);
                    }
                    Change::Expunge(f, uid) => {
                        let _ = store.expunge_uids("u", FOLDERS[*f], &[*uid]);
                    }
                    Change::Rebuild(f) => {
                        store.reset_uid_validity("u", FOLDERS[*f]).unwrap();
                    }
                    Change::Kill(ms) => {
                        let _ = tokio::time::timeout(Duration::from_millis(*ms), run()).await;
                    }
                    Change::Crash(n) => crash(*n).await,
                    Change::Run => run().await.unwrap(),
                    Change::NextDay => clock.advance(chrono::Duration::hours(24)),
                }
            }
            // Converge: a run, then the next day's incremental sync.
            run().await.unwrap();
            clock.advance(chrono::Duration::hours(24));
            run().await.unwrap();
            let user = engine.user("u@contoso.edu").unwrap();
            assert_eq!(user.status, UserStatus::Synced, "{:?}", user.error);
            let map = |f: &str| Some(match f { "INBOX" => "Inbox".to_string(), "Sent" => "Sent Items".to_string(), o => o.to_string() });
            let source = source_from_fake_imap(store, "u", map).unwrap();
            let target_items = target_messages(&tenant, "u@contoso.edu").await.unwrap();
            let r = reconcile(&source, &target_items);
            assert!(r.missing.is_empty(), "lost: {r:#?}");
            assert!(r.duplicated.is_empty(), "duplicated: {r:#?}");
            assert!(r.flag_mismatches.is_empty(), "flags: {r:#?}");
            // Statistics add up: what the user reports is what the target holds.
            assert_eq!(user.items_synced as usize, target_items.len());
            assert_eq!(user.missing_in_target, Some(0));
        });
    }
}

// ----- (c) CSV -----

fn field() -> impl Strategy<Value = String> {
    // Commas, quotes and newlines included: RFC 4180 quoting must carry them.
    "[A-Za-z0-9 ,\"\\n._*#/@-]{1,20}"
        .prop_map(|s| s.trim().to_string())
        .prop_filter("non-empty", |s| !s.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_files_round_trip(rows in prop::collection::btree_map("[a-z]{1,10}", (field(), field()), 1..30)) {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["EmailAddress", "UserName", "Password"]).unwrap();
        let rows: BTreeMap<String, (String, String)> = rows;
        for (local, (user, pw)) in &rows {
            w.write_record([format!("{local}@contoso.edu"), user.clone(), pw.clone()]).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let parsed = parse(&bytes, &CsvOptions::default()).unwrap();
        prop_assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        prop_assert_eq!(parsed.rows.len(), rows.len());
        for (row, (local, (user, pw))) in parsed.rows.iter().zip(&rows) {
            prop_assert_eq!(&row.email_address, &format!("{local}@contoso.edu"));
            prop_assert_eq!(&row.user_name, user);
            prop_assert_eq!(&row.password, pw);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse(&bytes, &CsvOptions::default());
        let mut with_header = b"EmailAddress,UserName,Password\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = parse(&with_header, &CsvOptions::default());
    }
}

// ----- (d) folder names -----

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn modified_utf7_round_trips(name in "\\PC{0,30}") {
        let wire = mutf7::encode(&name);
        prop_assert!(wire.bytes().all(|b| (0x20..0x7f).contains(&b)));
        prop_assert_eq!(mutf7::decode(&wire).unwrap(), name);
    }

    #[test]
    fn the_folder_plan_never_merges_silently(
        names in prop::collection::btree_set("[A-Za-z]{1,6}(\\.[A-Za-z]{1,6}){0,2}", 1..12),
        delim in prop::sample::select(vec!['.', '/']),
    ) {
        let folders: Vec<SourceFolder> = names
            .iter()
            .map(|n| {
                let n = n.replace('.', &delim.to_string());
                SourceFolder { name: n.clone(), relative: n, delimiter: Some(delim), selectable: true, content: Default::default() }
            })
            .collect();
        let plans = plan(&folders, &[], &[]);
        prop_assert_eq!(plans.len(), folders.len(), "one plan per folder");
        let mut claimed: BTreeMap<String, String> = BTreeMap::new();
        for (f, p) in &plans {
            if let Plan::Copy { target, merged } = p {
                match claimed.get(&target.to_lowercase()) {
                    // A second folder into one target must say so.
                    Some(first) => prop_assert_eq!(merged.as_deref(), Some(first.as_str()), "{} merged silently", f.relative),
                    None => {
                        prop_assert!(merged.is_none());
                        claimed.insert(target.to_lowercase(), f.relative.clone());
                    }
                }
            }
        }
    }
}
