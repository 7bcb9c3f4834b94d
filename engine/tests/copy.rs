//! The data plane end to end: fake-imap -> engine -> fake tenant, checked by reconciliation.

mod common;

use common::{target_folder, world};
use engine::control::status::{BatchStatus, UserStatus};
use fake_imap::config::Extensions;
use fake_imap::{AdminMode, FakeImapServer, Fault, FaultAction};

#[tokio::test]
async fn dovecot_master_user_copy_and_incremental_sync() {
    let w = world(
        FakeImapServer::new()
            .mode(AdminMode::Dovecot)
            .seed(4)
            .admin("mailadmin", "P@ssw0rd")
            .user("terry", "pw")
            .user("ann", "pw2")
            .generated("terry", "INBOX", 30)
            .generated("terry", "Sent", 5)
            .generated("terry", "Archive/2019", 4)
            .generated("ann", "INBOX", 7),
        &["terry", "ann"],
    )
    .await;
    w.batch("EmailAddress,UserName,Password\nterry@contoso.edu,terry*mailadmin,P@ssw0rd\nann@contoso.edu,ann,pw2\n")
        .await;
    w.run().await;
    assert_eq!(w.engine.batch("B").unwrap().status, BatchStatus::Synced);
    let terry = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!((terry.status, terry.items_synced), (UserStatus::Synced, 39));
    w.exact("terry").await;
    w.exact("ann").await;

    // New mail, a flag change and an expunge at the source; then the 24-hour sync.
    let store = w.source.store();
    deliver_new(store, &["\\Flagged"]);
    store
        .set_flags("terry", "INBOX", 3, &["\\Seen", "\\Answered"])
        .unwrap();
    let gone = store.messages("terry", "INBOX").unwrap()[5].clone();
    store.expunge_uids("terry", "INBOX", &[gone.uid]).unwrap();
    w.clock.advance(chrono::Duration::hours(24));
    w.run().await;
    // Additive: the expunged message stays at the target; everything else matches.
    let r = w.reconcile_with("terry", target_folder).await;
    assert!(
        r.missing.is_empty() && r.duplicated.is_empty() && r.flag_mismatches.is_empty(),
        "{r:#?}"
    );
    assert_eq!(r.unexpected.len(), 1, "the expunged message stays");
    assert_eq!(w.engine.user("terry@contoso.edu").unwrap().items_synced, 40);
}

/// A new message in terry's INBOX, with `flags`.
fn deliver_new(store: &fake_imap::Store, flags: &[&str]) {
    let date = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
    store
        .append(
            "terry",
            "INBOX",
            &b"Subject: new\r\nMessage-ID: <new@x>\r\n\r\nnew\r\n"[..],
            flags,
            date,
        )
        .unwrap();
}

/// terry's mailbox on `server`, copied by a first sync and checked exact.
async fn terry_copied(server: FakeImapServer) -> common::World {
    let w = world(server, &["terry"]).await;
    w.batch("EmailAddress,UserName,Password\nterry@contoso.edu,terry,pw\n")
        .await;
    w.run().await;
    w.exact("terry").await;
    w
}

/// terry's mailbox: INBOX (20) and Archive (5), with every UID FETCH counted (a zero delay:
/// the fault's count is the number of UID FETCHes sent).
async fn counted(extensions: Extensions) -> common::World {
    let count = Fault::new(FaultAction::Delay).command("UID FETCH").ms(0);
    terry_copied(
        FakeImapServer::new()
            .seed(3)
            .extensions(extensions)
            .user("terry", "pw")
            .generated("terry", "INBOX", 20)
            .generated("terry", "Archive", 5)
            .fault(count),
    )
    .await
}

/// The 24-hour sync again; returns how many UID FETCHes it sent. It must end Synced, with
/// nothing missing at the target.
async fn resync(w: &common::World) -> u32 {
    let before = w.source.faults_fired()[0];
    let last = w.engine.user("terry@contoso.edu").unwrap();
    w.clock.advance(chrono::Duration::hours(24));
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Synced, "{:?}", u.error);
    assert!(u.last_successful_sync_time > last.last_successful_sync_time);
    assert_eq!(u.missing_in_target, Some(0));
    assert_eq!(
        u.source_items,
        Some(w.source.store().messages("terry", "INBOX").unwrap().len() as u64 + 5)
    );
    w.source.faults_fired()[0] - before
}

#[tokio::test]
async fn an_unchanged_folder_is_not_listed_again_and_every_change_is_still_seen() {
    let w = counted(Extensions::default()).await;
    // EXAMINE (CONDSTORE) shows both folders as their copies left them: nothing is fetched,
    // not even a listing.
    assert_eq!(resync(&w).await, 0);
    let store = w.source.store();
    // A flag change raises Archive's HIGHESTMODSEQ: Archive alone is listed, the flag is
    // carried over, nothing is downloaded.
    store
        .set_flags("terry", "Archive", 2, &["\\Flagged"])
        .unwrap();
    assert_eq!(resync(&w).await, 1);
    w.exact("terry").await;
    assert_eq!(resync(&w).await, 0, "the new state is the one to skip by");
    // A new message raises UIDNEXT: INBOX is listed and the message fetched.
    deliver_new(store, &[]);
    assert_eq!(resync(&w).await, 2);
    w.exact("terry").await;
    // An expunge is a change too (INBOX listed; the copy stays at the target).
    let gone = store.messages("terry", "INBOX").unwrap()[0].uid;
    store.expunge_uids("terry", "INBOX", &[gone]).unwrap();
    assert_eq!(resync(&w).await, 1);
    assert_eq!(resync(&w).await, 0);
    // Records lost (the folder's state alone is no proof of a copy): both folders are listed
    // again and, the target knowing its keys, nothing is copied twice.
    w.engine.db.transaction(|tx| tx.forget_copied()).unwrap();
    assert_eq!(resync(&w).await, 2 + 2);
    let r = w.reconcile_with("terry", target_folder).await;
    assert!(r.missing.is_empty() && r.duplicated.is_empty(), "{r:#?}");
    assert_eq!(resync(&w).await, 0);
}

#[tokio::test]
async fn without_condstore_every_folder_is_listed_on_every_sync() {
    // No HIGHESTMODSEQ, no way to tell a flag change: each sync lists both folders.
    let w = counted(Extensions::none()).await;
    assert_eq!(resync(&w).await, 2);
    w.source
        .store()
        .set_flags("terry", "INBOX", 4, &["\\Seen"])
        .unwrap();
    assert_eq!(resync(&w).await, 2);
    w.exact("terry").await;
}

#[tokio::test]
async fn a_uidvalidity_change_copies_nothing_twice() {
    let w = terry_copied(
        FakeImapServer::new()
            .seed(2)
            .user("terry", "pw")
            .generated("terry", "INBOX", 12),
    )
    .await;
    w.source
        .store()
        .reset_uid_validity("terry", "INBOX")
        .unwrap();
    w.source
        .store()
        .set_flags("terry", "INBOX", 1, &["\\Flagged"])
        .unwrap();
    w.clock.advance(chrono::Duration::hours(24));
    w.run().await;
    w.exact("terry").await;
    assert_eq!(w.tenant.items("terry@contoso.edu", None).unwrap().len(), 12);
}

#[tokio::test]
async fn a_crash_between_an_import_and_its_record_then_a_uidvalidity_change_copies_nothing_twice() {
    let w = world(
        FakeImapServer::new()
            .seed(3)
            .user("terry", "pw")
            .generated("terry", "INBOX", 8),
        &["terry"],
    )
    .await;
    w.batch("EmailAddress,UserName,Password\nterry@contoso.edu,terry,pw\n")
        .await;
    // The run dies right after the tenant stored the first message (the folder, then one
    // import): the engine never heard back, so its checkpoint doesn't have it.
    let switch = harness::crash::CrashSwitch::after(2);
    let crashing: std::sync::Arc<dyn engine::target::Target> =
        std::sync::Arc::new(harness::crash::Crashing {
            inner: w.target(),
            switch: switch.clone(),
        });
    tokio::select! {
        _ = w.run_with(crashing) => panic!("the run crashes before it ends"),
        _ = switch.crashed() => {}
    }
    assert_eq!(w.tenant.items("terry@contoso.edu", None).unwrap().len(), 1);
    // The folder is renumbered before the next run: the message comes back under a new UID.
    w.source
        .store()
        .reset_uid_validity("terry", "INBOX")
        .unwrap();
    w.run().await;
    w.exact("terry").await;
    assert_eq!(w.tenant.items("terry@contoso.edu", None).unwrap().len(), 8);
}
