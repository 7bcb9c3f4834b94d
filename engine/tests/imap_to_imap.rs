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

/// The target's copy of each source message, matched by bytes once the key header is removed.
fn compare(source: &ServerHandle, target: &ServerHandle, user: &str, pairs: &[(&str, &str)]) {
    for (src_folder, dst_folder) in pairs {
        let src = source.store().messages(user, src_folder).unwrap();
        let dst = target.store().messages(user, dst_folder).unwrap();
        assert_eq!(src.len(), dst.len(), "{src_folder} -> {dst_folder}: counts");
        let strip = |raw: &[u8]| -> Vec<u8> {
            let text = raw.to_vec();
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
        want.sort();
        got.sort();
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.0.len(), g.0.len(), "{src_folder}: sizes");
            assert_eq!((&w.1, &w.2), (&g.1, &g.2), "{src_folder}: flags and dates");
        }
        assert!(want == got, "{src_folder}: message bytes differ");
    }
}

#[tokio::test]
async fn dovecot_to_dovecot_keeps_flags_and_dates_and_never_duplicates() {
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
    let ghost = engine.user("ghost@contoso.edu").unwrap();
    assert_eq!(
        ghost.status,
        UserStatus::Failed,
        "no such mailbox at the target"
    );
    assert!(ghost.error.unwrap().contains("AUTHENTICATIONFAILED"));
    compare(
        &source,
        &target,
        "terry",
        &[("INBOX", "INBOX"), ("Sent", "Sent Items")],
    );

    // A restart that has forgotten what it copied (the state lost its records): the target's
    // key headers stop every second copy.
    engine.db.transaction(|tx| tx.forget_copied()).unwrap();
    source
        .store()
        .set_flags("terry", "INBOX", 2, &["\\Flagged", "$Work"])
        .unwrap();
    clock.advance(chrono::Duration::hours(24));
    run(make_target()).await;
    compare(
        &source,
        &target,
        "terry",
        &[("INBOX", "INBOX"), ("Sent", "Sent Items")],
    );
}
