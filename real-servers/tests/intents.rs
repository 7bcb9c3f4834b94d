//! A run that ends between a write to a real Dovecot target and its record: the next run
//! finds the copy (by size and header fields, no key header in the message) and writes
//! nothing twice. Among the messages one with bare LF line ends, which Dovecot holds, sizes
//! and serves with CRLFs: it is found by its CRLF size.

mod common;

use std::sync::Arc;

use common::{Login, Migration, endpoint_settings};
use engine::imap::{Authentication, Security};
use engine::target::Target;
use fake_imap::FakeImapServer;
use harness::crash::{CrashSwitch, Crashing};
use real_servers::{RealServer, start_or_skip};

const BARE_LF: &[u8] = b"Message-ID: <bare-lf@example.org>\nDate: Fri, 1 Mar 2024 10:00:00 +0000\n\
From: a@example.org\nSubject: bare line feeds\n\nline one\nline two\n";
const CRLF: &[u8] = b"Message-ID: <crlf@example.org>\r\nDate: Fri, 1 Mar 2024 11:00:00 +0000\r\n\
From: a@example.org\r\nSubject: usual\r\n\r\nbody\r\n";

#[tokio::test]
async fn an_unrecorded_write_is_found_by_the_next_run_bare_line_feeds_too() {
    let Some(target) = start_or_skip(
        RealServer::dovecot()
            .user("terry", "terrypw")
            .admin("admin", "adminpw"),
    )
    .await
    else {
        return;
    };
    let source = FakeImapServer::new()
        .user("terry", "terrypw")
        .start()
        .await
        .unwrap();
    let date = chrono::DateTime::parse_from_rfc3339("2024-03-01T10:00:00+00:00").unwrap();
    for raw in [BARE_LF, CRLF] {
        source
            .store()
            .append("terry", "INBOX", raw, &[], date)
            .unwrap();
    }
    let login = Login {
        user_name: "terry".into(),
        password: "terrypw".into(),
        user_root: None,
        authentication: Authentication::Basic,
    };
    let settings = endpoint_settings(source.imap_addr().port(), Security::None, None);
    let m = Migration::new(settings, &login, "terry@contoso.edu", Some(&target));
    m.batch(&login).await;
    // The run dies right after the target stored the first message (the folder, then one
    // write): the engine never heard back, so its checkpoint does not have it.
    let switch = CrashSwitch::after(2);
    let crashing: Arc<dyn Target> = Arc::new(Crashing {
        inner: m.target.clone(),
        switch: switch.clone(),
    });
    tokio::select! {
        _ = m.run_with(crashing) => panic!("the run crashes before it ends"),
        _ = switch.crashed() => {}
    }
    let inbox = |held: Vec<real_servers::Stored>| -> Vec<Vec<u8>> {
        held.into_iter()
            .filter(|s| s.folder == "INBOX")
            .map(|s| s.raw)
            .collect()
    };
    let held = inbox(target.mailbox("terry").await.unwrap());
    assert_eq!(held.len(), 1, "the crash came after the first write");
    assert_ne!(
        held[0].len(),
        BARE_LF.len(),
        "Dovecot holds the bare-LF message with CRLFs (else this test shows nothing)"
    );
    m.run().await;
    let held = inbox(target.mailbox("terry").await.unwrap());
    let subjects: Vec<String> = held
        .iter()
        .map(|raw| {
            String::from_utf8_lossy(raw)
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        subjects,
        ["Subject: bare line feeds", "Subject: usual"],
        "each message once, in order: no second copy of the one written before the crash"
    );
}
