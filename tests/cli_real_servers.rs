//! The CLI against real servers: Test-MigrationServerAvailability takes every login option an
//! endpoint takes, so an admin form can be checked before the migration.

mod common;

use common::{mailmig, text};
use real_servers::{RealServer, start_or_skip};

#[tokio::test]
async fn test_server_with_sasl_plain_succeeds_against_real_cyrus() {
    let Some(cyrus) = start_or_skip(
        RealServer::cyrus()
            .user("alice", "alicepw")
            .admin("admin", "adminpw"),
    )
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = cyrus.imap_port().to_string();
    let ca = cyrus.ca_file().to_str().unwrap().to_string();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "test-server",
            "--imap",
            "--remote-server",
            "127.0.0.1",
            "--port",
            &port,
            "--security",
            "tls",
            "--ca-file",
            &ca,
            "--username",
            "alice*admin",
            "--password",
            "adminpw",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let plain = args(&["--authentication", "plain"]);
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let o = mailmig(&state, &plain).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o), cyrus.log());
    assert!(text(&o).contains("Result: Success"), "{}", text(&o));
    assert!(!text(&o).contains("adminpw"));
    // As a LOGIN, Cyrus knows no user `alice*admin`: the form needs SASL PLAIN.
    let login = args(&[]);
    let login: Vec<&str> = login.iter().map(String::as_str).collect();
    let o = mailmig(&state, &login).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("We had trouble signing in"),
        "{}",
        text(&o)
    );
}
