//! SIGKILL at many random points during a sync: every restart goes on, and in the end the
//! target equals the source exactly — nothing lost, nothing twice. Also IMAP to IMAP through
//! the CLI.

mod common;

use std::time::Duration;

use common::{BIN, Lcg, assert_exact, embedded_batch, mailmig_ok as mailmig};

use fake_imap::{AdminMode, FakeImapServer, Fault, FaultAction};
use real_servers::{Message, RealServer, start_or_skip};
use tokio::process::Command;

/// A fake-imap source whose users have `inbox` messages in INBOX and 20 in Sent, each UID
/// FETCH delayed 15 ms (so a sync lasts long enough to be killed many times).
async fn slow_source(seed: u64, users: &[&str], inbox: usize) -> fake_imap::ServerHandle {
    let mut s = FakeImapServer::new().seed(seed);
    for u in users {
        s = s
            .user(u, "pw")
            .generated(u, "INBOX", inbox)
            .generated(u, "Sent", 20);
    }
    s.fault(Fault::new(FaultAction::Delay).command("UID FETCH").ms(15))
        .start()
        .await
        .unwrap()
}

/// `target set --imap` on 127.0.0.1:`port` in plain text, as `{local}*mailadmin` with the
/// password in `password_file`.
async fn imap_target(state: &std::path::Path, port: &str, password_file: &std::path::Path) {
    mailmig(
        state,
        &[
            "target",
            "set",
            "--imap",
            "--remote-server",
            "127.0.0.1",
            "--port",
            port,
            "--security",
            "none",
            "--username-format",
            "{local}*mailadmin",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    )
    .await;
}

/// `mailmig run --until-idle` in 5-message chunks, SIGKILLed `base_ms` plus up to 100 ms
/// after each start (an Lcg from `seed`), at most `tries` times: asserts 20 to 25 kills landed
/// before a run finished by itself.
async fn kill_repeatedly(state: &std::path::Path, seed: u64, tries: usize, base_ms: u64) {
    let mut rng = Lcg(seed);
    let mut kills = 0;
    for _ in 0..tries {
        let mut child = Command::new(BIN)
            .arg("--state-dir")
            .arg(state)
            .args(["run", "--until-idle"])
            .env("MAILMIG_FETCH_CHUNK", "5")
            .spawn()
            .unwrap();
        let at = Duration::from_millis(base_ms + rng.next(100));
        match tokio::time::timeout(at, child.wait()).await {
            Ok(status) => {
                assert!(status.unwrap().success());
                break; // it finished before this kill point
            }
            Err(_) => {
                child.kill().await.unwrap(); // SIGKILL
                let _ = child.wait().await;
                kills += 1;
            }
        }
        if kills >= 25 {
            break;
        }
    }
    assert!(kills >= 20, "only {kills} kills landed during the sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_then_target_equals_source() {
    let users = ["ann", "bob", "cid", "dee"];
    let server = slow_source(12, &users, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    let state = embedded_batch(dir.path(), &server, &names, "B", 2).await;

    kill_repeatedly(&state, 2024, 40, 30).await;
    // The last run finishes it.
    mailmig(&state, &["run", "--until-idle"]).await;
    let o = mailmig(&state, &["user", "get", "--json"]).await;
    let users_json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for u in users_json.as_array().unwrap() {
        assert_eq!(u["status"], "Synced", "{u}");
        assert_eq!(u["itemsSynced"], 220, "{u}");
    }
    // After all the kills: target == source exactly, nothing lost, nothing twice.
    assert_exact(&state, &server, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_to_imap_from_the_command_line() {
    let source = FakeImapServer::new()
        .seed(1)
        .user("terry", "pw")
        .generated("terry", "INBOX", 15)
        .start()
        .await
        .unwrap();
    let target = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .admin("mailadmin", "secret")
        .user("terry", "x")
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tport = target.imap_addr().port().to_string();
    // The target's password from a file, as everywhere a password is taken.
    let password_file = dir.path().join("target.pw");
    std::fs::write(&password_file, "secret\n").unwrap();
    imap_target(&state, &tport, &password_file).await;
    let o = mailmig(&state, &["target", "get", "--json"]).await;
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("secret"),
        "no password printed"
    );
    let sport = source.imap_addr().port().to_string();
    mailmig(
        &state,
        &[
            "endpoint",
            "new",
            "--imap",
            "--name",
            "src",
            "--remote-server",
            "127.0.0.1",
            "--port",
            &sport,
            "--security",
            "none",
        ],
    )
    .await;
    std::fs::write(
        dir.path().join("u.csv"),
        "EmailAddress,UserName,Password\nterry@contoso.edu,terry,pw\n",
    )
    .unwrap();
    mailmig(
        &state,
        &[
            "batch",
            "new",
            "--name",
            "B",
            "--source-endpoint",
            "src",
            "--csv",
            dir.path().join("u.csv").to_str().unwrap(),
            "--autostart",
        ],
    )
    .await;
    mailmig(&state, &["run", "--until-idle"]).await;
    assert_eq!(target.store().messages("terry", "INBOX").unwrap().len(), 15);
    // A second run after a day copies nothing again.
    mailmig(&state, &["batch", "set", "B", "--sync-now"]).await;
    mailmig(&state, &["run", "--until-idle"]).await;
    assert_eq!(target.store().messages("terry", "INBOX").unwrap().len(), 15);
}

/// `target folders` and `target export` show what the tenant holds: the exported files are the
/// source's messages byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_is_looked_into_and_exported_from_the_command_line() {
    let server = FakeImapServer::new()
        .seed(5)
        .user("ann", "pw")
        .generated("ann", "INBOX", 7)
        .generated("ann", "Archive/2019", 3)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = embedded_batch(dir.path(), &server, &["ann".to_string()], "B", 2).await;
    mailmig(&state, &["run", "--until-idle"]).await;
    let o = mailmig(
        &state,
        &["target", "folders", "--mailbox", "ann@contoso.edu"],
    )
    .await;
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Inbox") && l.ends_with(" 7")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Archive/2019") && l.ends_with(" 3")),
        "{shown}"
    );
    let out = dir.path().join("export");
    let o = mailmig(
        &state,
        &[
            "target",
            "export",
            "--mailbox",
            "ann@contoso.edu",
            "--dir",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Exported 10 items"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let mut exported: Vec<Vec<u8>> = manifest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| std::fs::read(out.join(e["file"].as_str().unwrap())).unwrap())
        .collect();
    let store = server.store();
    let mut source: Vec<Vec<u8>> = ["INBOX", "Archive/2019"]
        .iter()
        .flat_map(|f| store.messages("ann", f).unwrap())
        .map(|m| m.raw.to_vec())
        .collect();
    exported.sort();
    source.sort();
    assert_eq!(exported, source, "every message exported byte for byte");
}

/// SIGKILL at 20+ points while copying into a real Dovecot as the IMAP target, with no key
/// header: every unacknowledged APPEND a killed run left is found again by size and headers,
/// so in the end each target folder holds the source's messages once each, byte for byte,
/// flags and dates kept, in the source's order. The source's Sent lands in the target's own
/// Sent, beside the message that was there before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_into_a_real_dovecot_target_leave_exact_copies() {
    let users = ["ann", "bob"];
    let Some(dovecot) = start_or_skip(
        RealServer::dovecot()
            .user("ann", "t-ann")
            .user("bob", "t-bob")
            .admin("mailadmin", "adminpw"),
    )
    .await
    else {
        return;
    };
    let own =
        b"From: <x@contoso.edu>\r\nSubject: there before\r\nMessage-ID: <own@x>\r\n\r\nmine\r\n";
    for u in users {
        dovecot
            .seed(u, &[Message::new("Sent", own.to_vec())])
            .await
            .unwrap();
    }
    let server = slow_source(31, &users, 150).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let password_file = dir.path().join("target.pw");
    std::fs::write(&password_file, "adminpw\n").unwrap();
    let port = dovecot.imap_port().to_string();
    imap_target(&state, &port, &password_file).await;
    common::plain_endpoint(&state, server.imap_addr().port(), 2).await;
    let csv = dir.path().join("users.csv");
    let mut rows = String::from("EmailAddress,UserName,Password\n");
    for u in users {
        rows.push_str(&format!("{u}@contoso.edu,{u},pw\n"));
    }
    std::fs::write(&csv, rows).unwrap();
    let csv = csv.to_str().unwrap();
    mailmig(
        &state,
        &[
            "batch",
            "new",
            "--name",
            "B",
            "--source-endpoint",
            "src",
            "--csv",
            csv,
            "--autostart",
        ],
    )
    .await;

    kill_repeatedly(&state, 77, 60, 40).await;
    mailmig(&state, &["run", "--until-idle"]).await;
    let o = mailmig(&state, &["user", "get", "--json"]).await;
    let users_json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for u in users_json.as_array().unwrap() {
        assert_eq!(u["status"], "Synced", "{u}");
        assert_eq!(u["itemsSynced"], 170, "{u}");
    }
    for u in users {
        let held = dovecot.mailbox(u).await.unwrap();
        let mut folders: Vec<&str> = held.iter().map(|m| m.folder.as_str()).collect();
        folders.sort_unstable();
        folders.dedup();
        assert_eq!(folders, ["INBOX", "Sent"], "{u}: no Sent Items beside Sent");
        for (src, dst) in [("INBOX", "INBOX"), ("Sent", "Sent")] {
            let want: Vec<(Vec<u8>, Vec<String>, String)> = server
                .store()
                .messages(u, src)
                .unwrap()
                .iter()
                .map(|m| {
                    let mut flags: Vec<String> = m.flags.iter().cloned().collect();
                    flags.sort();
                    (m.raw.to_vec(), flags, m.internal_date.to_utc().to_rfc3339())
                })
                .collect();
            let mut got: Vec<&real_servers::Stored> = held
                .iter()
                .filter(|m| m.folder == dst && m.raw != own)
                .collect();
            got.sort_by_key(|m| m.uid);
            let got: Vec<(Vec<u8>, Vec<String>, String)> = got
                .into_iter()
                .map(|m| {
                    let mut flags = m.flags.clone();
                    flags.sort();
                    (m.raw.clone(), flags, m.internal_date.to_rfc3339())
                })
                .collect();
            assert_eq!(want.len(), got.len(), "{u} {src}: no loss, no duplicate");
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert!(
                    w.0 == g.0,
                    "{u} {src}: message {i} differs (or is out of order)"
                );
                assert_eq!(
                    (&w.1, &w.2),
                    (&g.1, &g.2),
                    "{u} {src}: flags and date of {i}"
                );
            }
        }
        assert_eq!(
            held.iter().filter(|m| m.raw == own).count(),
            1,
            "{u}: the target's own message stays"
        );
    }
}
