//! IMAP to IMAP: a fake-imap source into a second fake-imap as the target (Dovecot master
//! user login template), flags and dates kept, nothing twice after a crash-like restart.

use std::path::Path;
use std::sync::Arc;

use engine::clock::ManualClock;
use engine::control::endpoint::Endpoint;
use engine::control::status::UserStatus;
use engine::control::{Engine, NewBatch};
use engine::imap::Security;
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::target::Target;
use engine::target::imap::{ImapTarget, ImapTargetConfig, KEY_HEADER};
use fake_imap::{AdminMode, FakeImapServer, ServerHandle};

/// The target's copy of each source message, matched by bytes (once the key header is
/// removed, when `keyed`).
fn compare(
    source: &ServerHandle,
    target: &ServerHandle,
    user: &str,
    pairs: &[(&str, &str)],
    keyed: bool,
) {
    for (src_folder, dst_folder) in pairs {
        let src = source.store().messages(user, src_folder).unwrap();
        let dst = target.store().messages(user, dst_folder).unwrap();
        assert_eq!(src.len(), dst.len(), "{src_folder} -> {dst_folder}: counts");
        let strip = |raw: &[u8]| -> Vec<u8> {
            let text = raw.to_vec();
            if !keyed {
                return text;
            }
            let prefix = format!("{KEY_HEADER}: ");
            assert!(
                text.starts_with(prefix.as_bytes()),
                "the key header is first"
            );
            let end = text.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
            text[end..].to_vec()
        };
        let mut want: Vec<(Vec<u8>, Vec<String>, String)> = src
            .iter()
            .map(|m| {
                (
                    m.raw.to_vec(),
                    m.flags.iter().cloned().collect(),
                    m.internal_date.to_utc().to_rfc3339(),
                )
            })
            .collect();
        let mut got: Vec<(Vec<u8>, Vec<String>, String)> = dst
            .iter()
            .map(|m| {
                (
                    strip(&m.raw),
                    m.flags.iter().cloned().collect(),
                    m.internal_date.to_utc().to_rfc3339(),
                )
            })
            .collect();
        // The target numbers the messages in the source's order (oldest first).
        let in_order: Vec<&Vec<u8>> = want.iter().map(|w| &w.0).collect();
        let target_order: Vec<&Vec<u8>> = got.iter().map(|g| &g.0).collect();
        assert!(
            in_order == target_order,
            "{src_folder}: the target's UIDs are not in the source's order"
        );
        want.sort();
        got.sort();
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.0.len(), g.0.len(), "{src_folder}: sizes");
            assert_eq!((&w.1, &w.2), (&g.1, &g.2), "{src_folder}: flags and dates");
        }
        assert!(want == got, "{src_folder}: message bytes differ");
    }
}

/// By default no byte changes: the copies are the source's messages exactly, the source's
/// Sent lands in the target's own `\\Sent` folder, and a re-run copies nothing twice (the
/// checkpoint's records, with the target's ids from APPENDUID, carry flag changes).
#[tokio::test]
async fn dovecot_to_dovecot_exact_copies_keep_flags_and_dates_and_never_duplicate() {
    dovecot_to_dovecot(false).await;
}

/// With the key header, even a restart that has lost its records copies nothing twice.
#[tokio::test]
async fn dovecot_to_dovecot_with_the_key_header_survives_a_lost_checkpoint() {
    dovecot_to_dovecot(true).await;
}

async fn dovecot_to_dovecot(keyed: bool) {
    let source = FakeImapServer::new()
        .seed(6)
        .user("terry", "pw")
        .generated("terry", "INBOX", 25)
        .generated("terry", "Sent", 4)
        .start()
        .await
        .unwrap();
    let target = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .delimiter('.')
        .admin("mailadmin", "admin-pw")
        .user("terry", "other")
        .generated("terry", "Gesendet", 0)
        .special_use("terry", "Gesendet", "\\Sent")
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch();
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    engine
        .endpoint_new(Endpoint::imap(
            "src",
            "127.0.0.1",
            source.imap_addr().port(),
            Security::None,
        ))
        .unwrap();
    let make_target = || -> Arc<dyn Target> {
        Arc::new(ImapTarget::new(ImapTargetConfig {
            remote_server: "127.0.0.1".into(),
            port: target.imap_addr().port(),
            security: Security::None,
            ca_file: None,
            username_format: "{local}*mailadmin".into(),
            password: "admin-pw".into(),
            source_key_header: keyed,
        }))
    };
    let t = make_target();
    engine
        .batch_new(
            NewBatch {
                name: "B".into(),
                source_endpoint: "src".into(),
                autostart: true,
                ..NewBatch::default()
            },
            Path::new("u.csv"),
            b"EmailAddress,UserName,Password\nterry@contoso.edu,terry,pw\nghost@contoso.edu,ghost,pw\n",
            &*t,
        )
        .await
        .unwrap();
    let run = |t: Arc<dyn Target>| {
        let engine = engine.clone();
        async move {
            let copy = Copier {
                engine: engine.clone(),
                target: t.clone(),
                options: CopyOptions::default(),
            };
            Service::new(engine, Arc::new(copy), t)
                .run(RunOptions::default())
                .await
                .unwrap();
        }
    };
    run(t.clone()).await;
    assert_eq!(
        engine.user("terry@contoso.edu").unwrap().status,
        UserStatus::Synced
    );
    // Each user's target session is logged out when its sync ends.
    let mut open = target.stats().open();
    for _ in 0..100 {
        if open == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        open = target.stats().open();
    }
    assert_eq!(open, 0, "target sessions left open after the run");
    let ghost = engine.user("ghost@contoso.edu").unwrap();
    assert_eq!(
        ghost.status,
        UserStatus::Failed,
        "no such mailbox at the target"
    );
    assert!(ghost.error.unwrap().contains("AUTHENTICATIONFAILED"));
    let pairs = [("INBOX", "INBOX"), ("Sent", "Gesendet")];
    compare(&source, &target, "terry", &pairs, keyed);
    let terry = engine.user("terry@contoso.edu").unwrap();
    if keyed {
        assert_eq!(
            terry.missing_in_target, None,
            "keys are not listed each sync"
        );
    } else {
        // The closing reconciliation lists the target's folders.
        assert_eq!(terry.missing_in_target, Some(0));
    }
    assert!(
        target.store().messages("terry", "Sent Items").is_err(),
        "no Sent Items folder made beside the target's own \\Sent"
    );

    if keyed {
        // A restart that has forgotten what it copied (the state lost its records): the
        // target's key headers stop every second copy.
        engine.db.transaction(|tx| tx.forget_copied()).unwrap();
    }
    source
        .store()
        .set_flags("terry", "INBOX", 2, &["\\Flagged", "$Work"])
        .unwrap();
    clock.advance(chrono::Duration::hours(24));
    run(make_target()).await;
    compare(&source, &target, "terry", &pairs, keyed);
    if !keyed {
        // A copy lost at the target (deleted there) is named by the next sync's reconciliation,
        // never reported as all there.
        let uid = target.store().messages("terry", "INBOX").unwrap()[3].uid;
        target
            .store()
            .expunge_uids("terry", "INBOX", &[uid])
            .unwrap();
        clock.advance(chrono::Duration::hours(24));
        run(make_target()).await;
        let terry = engine.user("terry@contoso.edu").unwrap();
        assert_eq!(terry.missing_in_target, Some(1), "{terry:?}");
    }
}

/// Each target mailbox has its own session: while one user's APPEND waits on a slow server,
/// another user's copy goes on (no lock shared across users).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_append_for_one_user_does_not_hold_up_another() {
    let target = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .admin("mailadmin", "admin-pw")
        .user("slow", "x")
        .user("fast", "y")
        .fault(
            fake_imap::Fault::new(fake_imap::FaultAction::Delay)
                .command("APPEND")
                .user("slow")
                .ms(3_000),
        )
        .start()
        .await
        .unwrap();
    let t = Arc::new(ImapTarget::new(ImapTargetConfig {
        remote_server: "127.0.0.1".into(),
        port: target.imap_addr().port(),
        security: Security::None,
        ca_file: None,
        username_format: "{local}*mailadmin".into(),
        password: "admin-pw".into(),
        source_key_header: false,
    }));
    let request = |key: &str| engine::target::ImportRequest {
        folder: "Inbox".into(),
        kind: Default::default(),
        source_key: key.into(),
        received_time: None,
        flags: Default::default(),
    };
    let mime = bytes::Bytes::from_static(b"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nhello\r\n");
    let slow = {
        let t = t.clone();
        let (r, m) = (request("slow|INBOX|1|1"), mime.clone());
        tokio::spawn(async move { t.import("slow@contoso.edu", &r, m).await })
    };
    // Let the slow APPEND get under way.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let fast = t
        .import("fast@contoso.edu", &request("fast|INBOX|1|1"), mime)
        .await;
    assert!(fast.is_ok(), "{fast:?}");
    assert!(
        !slow.is_finished(),
        "the other user's copy finished only after the slow APPEND"
    );
    assert!(slow.await.unwrap().is_ok());
}

/// A MULTIAPPEND the target refuses stores nothing (RFC 3502), so its messages go again one
/// APPEND each: the one over the target's size limit is reported as a large item, every other
/// message of the group lands, in order, and nothing lands twice.
#[tokio::test]
async fn a_refused_multiappend_is_retried_one_message_at_a_time() {
    let source = FakeImapServer::new()
        .seed(9)
        .user("terry", "pw")
        .generated("terry", "INBOX", 6)
        .start()
        .await
        .unwrap();
    let date = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00+00:00").unwrap();
    let big = format!(
        "Message-ID: <big@x>\r\nSubject: big\r\n\r\n{}\r\n",
        "x".repeat(40_000)
    );
    let (_, big_uid) = source
        .store()
        .append("terry", "INBOX", big.into_bytes(), &[], date)
        .unwrap();
    source
        .store()
        .append(
            "terry",
            "INBOX",
            b"Message-ID: <after@x>\r\n\r\nlast\r\n".to_vec(),
            &[],
            date,
        )
        .unwrap();
    let target = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .admin("mailadmin", "admin-pw")
        .user("terry", "other")
        .max_literal(20_000)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Engine::open(&dir.path().join("state"), Arc::new(ManualClock::at_epoch())).unwrap(),
    );
    engine
        .endpoint_new(Endpoint::imap(
            "src",
            "127.0.0.1",
            source.imap_addr().port(),
            Security::None,
        ))
        .unwrap();
    let t: Arc<dyn Target> = Arc::new(ImapTarget::new(ImapTargetConfig {
        remote_server: "127.0.0.1".into(),
        port: target.imap_addr().port(),
        security: Security::None,
        ca_file: None,
        username_format: "{local}*mailadmin".into(),
        password: "admin-pw".into(),
        source_key_header: false,
    }));
    engine
        .batch_new(
            NewBatch {
                name: "B".into(),
                source_endpoint: "src".into(),
                autostart: true,
                ..NewBatch::default()
            },
            Path::new("u.csv"),
            b"EmailAddress,UserName,Password\nterry@contoso.edu,terry,pw\n",
            &*t,
        )
        .await
        .unwrap();
    let copy = Copier {
        engine: engine.clone(),
        target: t.clone(),
        options: CopyOptions::default(),
    };
    Service::new(engine.clone(), Arc::new(copy), t)
        .run(RunOptions::default())
        .await
        .unwrap();
    let terry = engine.user("terry@contoso.edu").unwrap();
    assert_eq!(terry.items_synced, 7, "{terry:?}");
    let skipped = engine
        .db
        .read(|tx| tx.skipped_items("terry@contoso.edu"))
        .unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].item, format!("UID {big_uid}"));
    assert_eq!(skipped[0].reason, engine::sync::SkipReason::LargeItem);
    let want: Vec<Vec<u8>> = source
        .store()
        .messages("terry", "INBOX")
        .unwrap()
        .iter()
        .filter(|m| m.uid != big_uid)
        .map(|m| m.raw.to_vec())
        .collect();
    let got: Vec<Vec<u8>> = target
        .store()
        .messages("terry", "INBOX")
        .unwrap()
        .iter()
        .map(|m| m.raw.to_vec())
        .collect();
    assert!(want == got, "every other message once, exact, in order");
}
