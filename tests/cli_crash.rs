//! SIGKILL at many random points during a sync: every restart goes on, and in the end the
//! target equals the source exactly — nothing lost, nothing twice. Also IMAP to IMAP through
//! the CLI.

mod common;

use std::time::Duration;

use common::{BIN, Lcg, assert_exact, embedded_batch, mailmig_ok as mailmig};

use fake_imap::{AdminMode, FakeImapServer, Fault, FaultAction};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_then_target_equals_source() {
    let users = ["ann", "bob", "cid", "dee"];
    let mut s = FakeImapServer::new().seed(12);
    for u in users {
        s = s
            .user(u, "pw")
            .generated(u, "INBOX", 200)
            .generated(u, "Sent", 20);
    }
    let server = s
        .fault(Fault::new(FaultAction::Delay).command("UID FETCH").ms(15))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    let state = embedded_batch(dir.path(), &server, &names, "B", 2).await;

    let mut rng = Lcg(2024);
    let mut kills = 0;
    for _ in 0..40 {
        let mut child = Command::new(BIN)
            .arg("--state-dir")
            .arg(&state)
            .args(["run", "--until-idle"])
            .env("MAILMIG_FETCH_CHUNK", "5")
            .spawn()
            .unwrap();
        let at = Duration::from_millis(30 + rng.next(100));
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
    mailmig(
        &state,
        &[
            "target",
            "set",
            "--imap",
            "--remote-server",
            "127.0.0.1",
            "--port",
            &tport,
            "--security",
            "none",
            "--username-format",
            "{local}*mailadmin",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    )
    .await;
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
