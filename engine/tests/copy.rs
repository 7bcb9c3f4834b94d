//! The data plane end to end: fake-imap -> engine -> fake tenant, checked by reconciliation.

use std::path::Path;
use std::sync::Arc;

use engine::clock::ManualClock;
use engine::control::{Engine, NewBatch};
use engine::copy::{CopyOptions, ImapCopy};
use engine::endpoint::{Endpoint, Security};
use engine::service::{RunOptions, Service};
use engine::state::BatchSettings;
use engine::status::{BatchStatus, UserStatus};
use engine::target::{Target, TenantTarget};
use fake_imap::{AdminMode, FakeImapServer, ServerHandle};
use fake_target::inspect::{reconcile, source_from_fake_imap, target_messages};
use fake_target::{Recipient, Settings, Tenant};

struct World {
    engine: Arc<Engine>,
    clock: ManualClock,
    tenant: Tenant,
    source: ServerHandle,
    options: CopyOptions,
    _dir: tempfile::TempDir,
}

fn target_folder(name: &str) -> Option<String> {
    let mapped = match name {
        "INBOX" => "Inbox".to_string(),
        "Sent" => "Sent Items".to_string(),
        other => other.to_string(),
    };
    Some(mapped)
}

async fn world(source: FakeImapServer, users: &[&str]) -> World {
    let source = source.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch();
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    let tenant = Tenant::with_clock(
        Settings {
            accepted_domains: vec!["contoso.edu".into()],
            ..Settings::default()
        },
        Arc::new(clock.clone()),
    );
    for u in users {
        tenant
            .add_recipient(Recipient::mailbox(
                &format!("{u}@contoso.edu"),
                true,
                tenant.now(),
            ))
            .unwrap();
    }
    engine
        .endpoint_new(Endpoint::new(
            "src",
            "127.0.0.1",
            source.imap_addr().port(),
            Security::None,
        ))
        .unwrap();
    World {
        engine,
        clock,
        tenant,
        source,
        options: CopyOptions::default(),
        _dir: dir,
    }
}

impl World {
    fn target(&self) -> Arc<TenantTarget> {
        Arc::new(TenantTarget(Arc::new(self.tenant.clone())))
    }

    async fn batch(&self, csv: &str) {
        self.engine
            .batch_new(
                NewBatch {
                    name: "B".into(),
                    source_endpoint: "src".into(),
                    autostart: true,
                    settings: BatchSettings::default(),
                },
                Path::new("users.csv"),
                csv.as_bytes(),
                &*self.target() as &dyn Target,
            )
            .await
            .unwrap();
    }

    async fn run(&self) {
        let copy = ImapCopy {
            engine: self.engine.clone(),
            target: self.target(),
            options: self.options.clone(),
        };
        Service::new(self.engine.clone(), Arc::new(copy), self.target())
            .run(RunOptions::default())
            .await
            .unwrap();
    }

    async fn exact(&self, user: &str) {
        let source = source_from_fake_imap(self.source.store(), user, target_folder).unwrap();
        let target = target_messages(&self.tenant, &format!("{user}@contoso.edu"))
            .await
            .unwrap();
        let r = reconcile(&source, &target);
        assert!(r.is_exact(), "{user}: {r:#?}");
    }
}

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
    let date = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
    store
        .append(
            "terry",
            "INBOX",
            &b"Subject: new\r\nMessage-ID: <new@x>\r\n\r\nnew\r\n"[..],
            &["\\Flagged"],
            date,
        )
        .unwrap();
    store
        .set_flags("terry", "INBOX", 3, &["\\Seen", "\\Answered"])
        .unwrap();
    let gone = store.messages("terry", "INBOX").unwrap()[5].clone();
    store.expunge_uids("terry", "INBOX", &[gone.uid]).unwrap();
    w.clock.advance(chrono::Duration::hours(24));
    w.run().await;
    // Additive: the expunged message stays at the target; everything else matches.
    let source = source_from_fake_imap(store, "terry", target_folder).unwrap();
    let target = target_messages(&w.tenant, "terry@contoso.edu")
        .await
        .unwrap();
    let r = reconcile(&source, &target);
    assert!(
        r.missing.is_empty() && r.duplicated.is_empty() && r.flag_mismatches.is_empty(),
        "{r:#?}"
    );
    assert_eq!(r.unexpected.len(), 1, "the expunged message stays");
    assert_eq!(w.engine.user("terry@contoso.edu").unwrap().items_synced, 40);
}

#[tokio::test]
async fn a_uidvalidity_change_copies_nothing_twice() {
    let w = world(
        FakeImapServer::new()
            .seed(2)
            .user("terry", "pw")
            .generated("terry", "INBOX", 12),
        &["terry"],
    )
    .await;
    w.batch("EmailAddress,UserName,Password\nterry@contoso.edu,terry,pw\n")
        .await;
    w.run().await;
    w.exact("terry").await;
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
