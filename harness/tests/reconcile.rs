//! Reconciliation of a tenant against a fake-imap source: exact after a faithful copy, and each
//! kind of difference caught.

use std::sync::Arc;

use fake_target::inspect::{fingerprint, reconcile, target_messages};
use fake_target::{
    ImportOutcome, ImportRequest, ItemFlags, ManualClock, Recipient, Settings, Tenant,
};
use harness::source_from_fake_imap;

fn tenant() -> Tenant {
    let t = Tenant::with_clock(
        Settings {
            accepted_domains: vec!["contoso.edu".into()],
            ..Settings::default()
        },
        Arc::new(ManualClock::at_epoch()),
    );
    t.add_recipient(Recipient::mailbox("terry@contoso.edu", true, t.now()))
        .unwrap();
    t
}

/// Copies a fake-imap user's INBOX into the tenant, the way an engine would.
async fn copy_inbox(
    store: &fake_imap::Store,
    t: &Tenant,
    skip_uid: Option<u32>,
    dup_uid: Option<u32>,
) {
    for m in store.messages("terry", "INBOX").unwrap() {
        if Some(m.uid) == skip_uid {
            continue;
        }
        let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
        let mut request = ImportRequest {
            kind: Default::default(),
            folder: "Inbox".into(),
            source_key: format!("terry|INBOX|1|{}", m.uid),
            received_time: Some(m.internal_date.to_utc()),
            flags: ItemFlags::from_imap(&flags),
        };
        let outcome = t
            .import("terry@contoso.edu", &request, m.raw.clone())
            .await
            .unwrap();
        assert!(matches!(outcome, ImportOutcome::Created(_)));
        if Some(m.uid) == dup_uid {
            // A buggy engine that lost its checkpoint and used another key.
            request.source_key.push_str("-again");
            t.import("terry@contoso.edu", &request, m.raw.clone())
                .await
                .unwrap();
        }
    }
}

async fn source_server() -> fake_imap::ServerHandle {
    fake_imap::FakeImapServer::new()
        .seed(3)
        .user("terry", "pw")
        .generated("terry", "INBOX", 10)
        .start()
        .await
        .unwrap()
}

fn inbox_only(name: &str) -> Option<String> {
    (name == "INBOX").then(|| "Inbox".to_string())
}

#[tokio::test]
async fn reconciliation_is_exact_after_a_faithful_copy() {
    let server = source_server().await;
    let t = tenant();
    copy_inbox(server.store(), &t, None, None).await;
    let source = source_from_fake_imap(server.store(), "terry", inbox_only).unwrap();
    let target = target_messages(&t, "terry@contoso.edu").await.unwrap();
    assert_eq!(source.len(), 10);
    let r = reconcile(&source, &target);
    assert!(r.is_exact(), "{r:?}");
}

#[tokio::test]
async fn reconciliation_catches_a_missing_and_a_duplicated_message() {
    let server = source_server().await;
    let t = tenant();
    copy_inbox(server.store(), &t, Some(4), Some(7)).await;
    let source = source_from_fake_imap(server.store(), "terry", inbox_only).unwrap();
    let target = target_messages(&t, "terry@contoso.edu").await.unwrap();
    let r = reconcile(&source, &target);
    assert_eq!(r.missing, vec!["INBOX UID 4"]);
    assert_eq!(r.duplicated.len(), 1);
    let dup = &server.store().messages("terry", "INBOX").unwrap()[6];
    assert_eq!(dup.uid, 7);
    assert_eq!(
        r.duplicated[0],
        ("inbox".to_string(), fingerprint(&dup.raw), 2)
    );
    assert!(!r.is_exact());
}

#[tokio::test]
async fn reconciliation_catches_flag_and_date_mismatches() {
    let server = source_server().await;
    let t = tenant();
    copy_inbox(server.store(), &t, None, None).await;
    // The source changes after the copy: a flag and nothing else.
    server
        .store()
        .set_flags("terry", "INBOX", 2, &["\\Seen", "\\Flagged"])
        .unwrap();
    let source = source_from_fake_imap(server.store(), "terry", inbox_only).unwrap();
    let mut target = target_messages(&t, "terry@contoso.edu").await.unwrap();
    target[5].received_time += chrono::Duration::hours(1);
    let r = reconcile(&source, &target);
    assert_eq!(r.flag_mismatches.len(), 1);
    assert_eq!(r.flag_mismatches[0].0, "INBOX UID 2");
    assert_eq!(r.date_mismatches.len(), 1);
    assert!(r.missing.is_empty() && r.duplicated.is_empty());
}
