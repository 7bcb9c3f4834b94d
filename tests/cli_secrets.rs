//! Secrets never reach a log, at any level: a trace-level log of a real migration (LOGIN and
//! SASL PLAIN admin forms) and of test-server runs holds neither the password nor the SASL
//! message, nor message bodies.

mod common;

use std::path::Path;

use common::{BIN, mailmig_ok};
use fake_imap::{AdminMode, FakeImapServer};
use tokio::process::Command;

const ADMIN_PASSWORD: &str = "Adm1n-S3cret-xyzzy";
const USER_PASSWORD: &str = "Us3r-S3cret-plugh";

/// Runs mailmig with a trace-level log; returns its standard error.
async fn traced(state: &Path, args: &[&str]) -> String {
    let o = Command::new(BIN)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env("MAILMIG_LOG", "trace")
        .output()
        .await
        .expect("mailmig runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The base64 of the SASL PLAIN message, as it would go on the wire.
fn sasl_plain(authzid: &str, authcid: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{authcid}\0{password}"))
}

fn assert_clean(log: &str, what: &str) {
    assert!(
        log.contains("IMAP command"),
        "{what}: the log is at trace level:\n{log}"
    );
    for secret in [
        ADMIN_PASSWORD.to_string(),
        USER_PASSWORD.to_string(),
        sasl_plain("terry", "mailadmin", ADMIN_PASSWORD),
        sasl_plain("", "terry", USER_PASSWORD),
    ] {
        assert!(
            !log.contains(&secret),
            "{what}: {secret} is in the log:\n{log}"
        );
    }
    assert!(
        !log.contains("Subject:"),
        "{what}: message text is in the log"
    );
}

#[tokio::test]
async fn a_traced_migration_and_test_server_show_no_secret() {
    let server = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .seed(4)
        .admin("mailadmin", ADMIN_PASSWORD)
        .user("terry", USER_PASSWORD)
        .generated("terry", "INBOX", 3)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tenant = dir.path().join("tenant.toml");
    std::fs::write(
        &tenant,
        "[tenant]\naccepted_domains = [\"contoso.edu\"]\n[[mailboxes]]\naddress = \"terry@contoso.edu\"\n",
    )
    .unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        format!(
            "EmailAddress,UserName,Password\nterry@contoso.edu,terry*mailadmin,{ADMIN_PASSWORD}\n"
        ),
    )
    .unwrap();
    let port = server.imap_addr().port().to_string();
    mailmig_ok(
        &state,
        &[
            "target",
            "set",
            "--embedded",
            "--config",
            tenant.to_str().unwrap(),
        ],
    )
    .await;
    let endpoint = [
        "endpoint",
        "new",
        "--imap",
        "--name",
        "src",
        "--remote-server",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        "none",
        "--authentication",
        "plain",
    ];
    let log = traced(&state, &endpoint).await;
    assert!(log.contains("Created the migration endpoint"), "{log}");
    mailmig_ok(
        &state,
        &[
            "batch",
            "new",
            "--name",
            "B",
            "--source-endpoint",
            "src",
            "--csv",
            csv.to_str().unwrap(),
            "--autostart",
        ],
    )
    .await;
    let log = traced(&state, &["run", "--until-idle"]).await;
    assert!(log.contains("AUTHENTICATE PLAIN <hidden>"), "{log}");
    assert_clean(&log, "run");
    let o = mailmig_ok(&state, &["user", "get", "--json"]).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"status\": \"Synced\""));
    for (user, password, auth) in [
        ("terry*mailadmin", ADMIN_PASSWORD, "plain"),
        ("terry", USER_PASSWORD, "basic"),
    ] {
        let log = traced(
            &state,
            &[
                "test-server",
                "--imap",
                "--remote-server",
                "127.0.0.1",
                "--port",
                &port,
                "--security",
                "none",
                "--authentication",
                auth,
                "--username",
                user,
                "--password",
                password,
            ],
        )
        .await;
        assert!(log.contains("Result: Warning"), "{log}");
        assert_clean(&log, "test-server");
    }
}
