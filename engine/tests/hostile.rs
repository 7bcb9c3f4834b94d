//! The engine against a broken or hostile source (harness::hostile): every misbehaviour ends in
//! a known outcome (the item skipped with a reason, the folder reported, the user failed with a
//! short message, or the sync completed), never a hang (each test's own limit is generous; the
//! engine's timeouts are what end it), and what the checkpoint says was copied is what the
//! target holds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::clock::ManualClock;
use engine::control::endpoint::Endpoint;
use engine::control::state::UserRow;
use engine::control::status::UserStatus;
use engine::control::{Engine, NewBatch};
use engine::imap::Security;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use fake_target::{Settings, Tenant};
use harness::TenantTarget;
use harness::hostile::{HostileFolder, HostileServer, Misbehaviour};

const EMAIL: &str = "terry@contoso.edu";

struct Run {
    user: UserRow,
    /// (folder, item, reason, detail) of the skips.
    skipped: Vec<(String, String, String, String)>,
    /// Target folder -> items.
    target: std::collections::BTreeMap<String, usize>,
}

fn inbox(n: usize) -> Vec<HostileFolder> {
    vec![HostileFolder::new(b"INBOX", n)]
}

/// An engine with terry's batch started from the hostile server, and the tenant it writes to.
struct World {
    engine: Arc<Engine>,
    tenant: Tenant,
    target: Arc<TenantTarget>,
    _dir: tempfile::TempDir,
}

async fn world(server: &HostileServer) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch();
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    let tenant = harness::contoso_tenant(
        Arc::new(clock.clone()),
        Settings::default(),
        &[EMAIL.to_string()],
    );
    let target = Arc::new(TenantTarget::new(tenant.clone()));
    engine
        .endpoint_new(Endpoint::imap(
            "src",
            "127.0.0.1",
            server.port(),
            Security::None,
        ))
        .unwrap();
    engine
        .batch_new(
            NewBatch {
                name: "B".into(),
                source_endpoint: "src".into(),
                autostart: true,
                settings: Default::default(),
            },
            Path::new("users.csv"),
            format!("EmailAddress,UserName,Password\n{EMAIL},terry,pw\n").as_bytes(),
            &*target,
        )
        .await
        .unwrap();
    World {
        engine,
        tenant,
        target,
        _dir: dir,
    }
}

/// Migrates terry from the hostile server into a fresh tenant, and says how it went.
async fn migrate(server: &HostileServer, options: CopyOptions) -> Run {
    let World {
        engine,
        tenant,
        target,
        _dir,
    } = world(server).await;
    let copy = Copier::new(engine.clone(), target.clone(), options);
    let service = Service::new(engine.clone(), Arc::new(copy), target);
    let run = service.run(RunOptions {
        poll: Duration::from_millis(5),
        ..RunOptions::default()
    });
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the engine's own timeouts end every exchange")
        .unwrap();
    let mut by_folder = std::collections::BTreeMap::new();
    for item in tenant.items(EMAIL, None).unwrap() {
        *by_folder.entry(item.folder).or_default() += 1;
    }
    let skipped = engine
        .db
        .read(|tx| tx.skipped_items(EMAIL))
        .unwrap()
        .into_iter()
        .map(|s| (s.folder, s.item, s.reason.to_string(), s.detail))
        .collect();
    Run {
        user: engine.user(EMAIL).unwrap(),
        skipped,
        target: by_folder,
    }
}

fn quick() -> CopyOptions {
    CopyOptions {
        // Short, but far above a reply's time on loopback even on a loaded machine.
        timeout: Duration::from_secs(1),
        error_budget: 3,
        ..CopyOptions::default()
    }
}

/// Synced, `copied` messages in the target, nothing in source but not in target.
fn synced(r: &Run, copied: usize) {
    assert_eq!(
        r.user.status,
        UserStatus::Synced,
        "{:?} {:?}",
        r.user.error,
        r.skipped
    );
    assert_eq!(r.user.items_synced as usize, copied, "{:?}", r.skipped);
    assert_eq!(
        r.target.values().sum::<usize>(),
        copied,
        "the target holds what was copied"
    );
    assert_eq!(r.user.missing_in_target, Some(0));
}

/// Failed with a short message that says `what`.
fn failed(r: &Run, what: &str) {
    assert_eq!(r.user.status, UserStatus::Failed);
    let e = r.user.error.clone().unwrap();
    assert!(e.contains(what), "{e}");
    assert!(e.len() < 300, "a short message: {e}");
    assert!(
        !e.contains("Error {") && !e.contains("input: ["),
        "no Debug dump: {e}"
    );
}

fn bad_item(r: &Run, uid: u32, why: &str) {
    let found = r
        .skipped
        .iter()
        .find(|(_, item, _, _)| *item == format!("UID {uid}"))
        .unwrap_or_else(|| panic!("UID {uid} skipped: {:?}", r.skipped));
    assert_eq!(found.2, "BadItem", "{found:?}");
    assert!(found.3.contains(why), "{found:?}");
    assert!(found.3.len() < 300, "{found:?}");
}

#[tokio::test]
async fn a_greeting_that_never_comes_fails_the_user_in_seconds() {
    let s = HostileServer::start(inbox(3), Some(Misbehaviour::NeverGreet), 0)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = migrate(&s, quick()).await;
    failed(&r, "timed out");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stalls_at_each_step_are_timed_out_and_the_sync_goes_on() {
    for step in ["LIST", "EXAMINE", "FETCH"] {
        let s = HostileServer::start(inbox(4), Some(Misbehaviour::StallOn(step)), 1)
            .await
            .unwrap();
        let r = migrate(&s, quick()).await;
        synced(&r, 4);
        assert!(s.connections() >= 2, "{step}: reconnected");
    }
}

#[tokio::test]
async fn a_server_that_always_stalls_fails_the_user_with_a_short_message() {
    let s = HostileServer::start(inbox(2), Some(Misbehaviour::StallOn("EXAMINE")), 0)
        .await
        .unwrap();
    let r = migrate(&s, quick()).await;
    failed(&r, "sent nothing for");
}

#[tokio::test]
async fn endless_untagged_lines_are_cut_by_the_command_deadline() {
    let s = HostileServer::start(inbox(2), Some(Misbehaviour::EndlessUntagged), 0)
        .await
        .unwrap();
    let r = migrate(&s, quick()).await;
    failed(&r, "did not finish EXAMINE");
}

#[tokio::test]
async fn a_stall_in_the_middle_of_a_literal_costs_that_message_only() {
    let s = HostileServer::start(inbox(5), Some(Misbehaviour::StallMidLiteral { uid: 3 }), 0)
        .await
        .unwrap();
    let r = migrate(&s, quick()).await;
    synced(&r, 4);
    bad_item(&r, 3, "connection broke");
}

#[tokio::test]
async fn a_literal_longer_than_announced_costs_that_message_only() {
    let bad = Misbehaviour::LiteralLongerThanAnnounced { uid: 2, by: 12 };
    let s = HostileServer::start(inbox(5), Some(bad), 0).await.unwrap();
    let r = migrate(&s, quick()).await;
    synced(&r, 4);
    bad_item(&r, 2, "UID 2");
}

#[tokio::test]
async fn a_literal_shorter_than_announced_costs_that_message_only() {
    let bad = Misbehaviour::LiteralShorterThanAnnounced { uid: 2, by: 40 };
    let s = HostileServer::start(inbox(5), Some(bad), 0).await.unwrap();
    let r = migrate(&s, quick()).await;
    synced(&r, 4);
    assert!(
        r.skipped.iter().any(|s| s.1 == "UID 2" && s.2 == "BadItem"),
        "{:?}",
        r.skipped
    );
}

#[tokio::test]
async fn a_two_gigabyte_literal_is_refused_without_reading_it() {
    let s = HostileServer::start(inbox(4), Some(Misbehaviour::HugeLiteral { uid: 1 }), 0)
        .await
        .unwrap();
    let r = migrate(&s, quick()).await;
    synced(&r, 3);
    bad_item(&r, 1, "over the limit");
}

#[tokio::test]
async fn an_eight_bit_keyword_costs_that_message_with_a_short_reason() {
    let s = HostileServer::start(inbox(4), Some(Misbehaviour::EightBitKeyword { uid: 4 }), 0)
        .await
        .unwrap();
    let r = migrate(&s, quick()).await;
    synced(&r, 3);
    bad_item(&r, 4, "cannot be read");
}

#[tokio::test]
async fn repeated_and_out_of_order_uids_copy_each_message_once() {
    let s = HostileServer::start(inbox(5), Some(Misbehaviour::RepeatedAndOutOfOrderUids), 0)
        .await
        .unwrap();
    let r = migrate(&s, quick()).await;
    synced(&r, 5);
}

#[tokio::test]
async fn folders_that_are_not_modified_utf7_are_all_copied() {
    // An unencoded `&` (common on old servers): 4 folders, 10 messages each.
    let folders = vec![
        HostileFolder::new(b"INBOX", 10),
        HostileFolder::new(b"AT&T", 10),
        HostileFolder::new(b"R&D Reports", 10),
        HostileFolder::new(b"Caf&AOk-", 10),
    ];
    let s = HostileServer::start(folders, None, 0).await.unwrap();
    let r = migrate(&s, quick()).await;
    synced(&r, 40);
    assert_eq!(r.target.get("AT&T"), Some(&10), "{:?}", r.target);
    assert_eq!(r.target.get("R&D Reports"), Some(&10), "{:?}", r.target);
    assert_eq!(r.target.get("Café"), Some(&10), "{:?}", r.target);
}

#[tokio::test]
async fn folder_names_with_raw_bytes_are_reported_not_dropped() {
    let folders = vec![
        HostileFolder::new(b"INBOX", 3),
        HostileFolder::new(b"Entw\xc3\xbcrfe", 2),
        HostileFolder::new(b"bad\rname", 2),
    ];
    let s = HostileServer::start(folders, None, 0).await.unwrap();
    let r = migrate(&s, quick()).await;
    synced(&r, 3);
    let reported: Vec<_> = r
        .skipped
        .iter()
        .filter(|(_, item, reason, _)| item == "(folder)" && reason == "FolderName")
        .collect();
    assert_eq!(reported.len(), 2, "{:?}", r.skipped);
    assert!(reported.iter().all(|s| s.3.contains("cannot be read")));
}

#[tokio::test]
async fn a_batch_stop_interrupts_a_blocked_exchange_within_seconds() {
    let s = HostileServer::start(inbox(3), Some(Misbehaviour::StallOn("FETCH")), 0)
        .await
        .unwrap();
    let World {
        engine,
        target,
        _dir,
        ..
    } = world(&s).await;
    // Timeouts far longer than the test: only the stop can end the blocked FETCH.
    let options = CopyOptions {
        timeout: Duration::from_secs(600),
        ..CopyOptions::default()
    };
    let copy = Copier::new(engine.clone(), target.clone(), options);
    let service = Service::new(engine.clone(), Arc::new(copy), target);
    let run = tokio::spawn(async move {
        service
            .run(RunOptions {
                poll: Duration::from_millis(20),
                ..RunOptions::default()
            })
            .await
    });
    while engine.user(EMAIL).unwrap().status != UserStatus::Syncing {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.batch_stop("B").unwrap();
    let stopped_at = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the stop ends the blocked exchange within seconds")
        .unwrap()
        .unwrap();
    assert!(stopped_at.elapsed() < Duration::from_secs(3));
    assert_eq!(engine.user(EMAIL).unwrap().status, UserStatus::Stopped);
    assert_eq!(engine.batch("B").unwrap().status.as_str(), "Stopped");
}
