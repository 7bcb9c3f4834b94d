//! Test-MigrationServerAvailability against fake-imap in every security mode, and the ways it
//! fails: an untrusted certificate, wrong credentials, a closed port, a silent server.

use std::time::Duration;

use engine::imap::{ImapSettings, SIGN_IN_FAILED, Security};
use engine::test_server::{TestResult, test_server};
use fake_imap::{AdminMode, FakeImapServer, ServerHandle};

async fn server() -> ServerHandle {
    FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .implicit_tls(true)
        .admin("mailadmin", "P@ssw0rd")
        .user("terry.adams", "1091990")
        .start()
        .await
        .unwrap()
}

fn endpoint(port: u16, security: Security, ca: Option<&std::path::Path>) -> ImapSettings {
    let mut e = ImapSettings::new("127.0.0.1", port, security);
    e.ca_file = ca.map(|p| p.to_path_buf());
    e
}

fn ca_file(server: &ServerHandle, dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, server.ca_pem()).unwrap();
    path
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn every_security_mode_succeeds_with_the_right_ca() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&s, &dir);
    let imap = s.imap_addr().port();
    let imaps = s.imaps_addr().unwrap().port();

    let r = test_server(&endpoint(imap, Security::None, None), None, T).await;
    assert_eq!(r.result, TestResult::Success, "{r:?}");
    assert!(r.message.contains("No login was tried"), "{r:?}");
    assert!(
        r.capabilities.iter().any(|c| c == "IMAP4rev1"),
        "{:?}",
        r.capabilities
    );

    let r = test_server(
        &endpoint(imaps, Security::Ssl, Some(&ca)),
        Some(("terry.adams", "1091990")),
        T,
    )
    .await;
    assert_eq!(r.result, TestResult::Success, "{r:?}");
    assert_eq!(
        r.message,
        "The connection to the server '127.0.0.1' was successful. 'terry.adams' signed in."
    );

    let r = test_server(
        &endpoint(imap, Security::Tls, Some(&ca)),
        Some(("terry.adams*mailadmin", "P@ssw0rd")),
        T,
    )
    .await;
    assert_eq!(r.result, TestResult::Success, "{r:?}");
}

#[tokio::test]
async fn plain_text_credentials_give_a_warning() {
    let s = server().await;
    let r = test_server(
        &endpoint(s.imap_addr().port(), Security::None, None),
        Some(("terry.adams", "1091990")),
        T,
    )
    .await;
    assert_eq!(r.result, TestResult::Warning, "{r:?}");
    assert!(r.message.contains("clear text"));
    assert!(
        !format!("{r:?}").contains("1091990"),
        "no password in the result"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_fails_unless_accepted() {
    let s = server().await;
    let imaps = s.imaps_addr().unwrap().port();
    for security in [Security::Ssl, Security::Tls] {
        let port = if security == Security::Ssl {
            imaps
        } else {
            s.imap_addr().port()
        };
        let r = test_server(&endpoint(port, security, None), None, T).await;
        assert_eq!(r.result, TestResult::Failed, "{r:?}");
        assert_eq!(
            r.message,
            "The TLS negotiation with the server '127.0.0.1' failed."
        );
        assert!(r.error_detail.unwrap().contains("UnknownIssuer"));
        let mut accepting = endpoint(port, security, None);
        accepting.accept_untrusted_certificates = true;
        let r = test_server(&accepting, Some(("terry.adams", "1091990")), T).await;
        assert_eq!(r.result, TestResult::Warning, "{r:?}");
        assert!(r.message.contains("AcceptUntrustedCertificates"));
    }
}

#[tokio::test]
async fn wrong_credentials() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&s, &dir);
    let r = test_server(
        &endpoint(s.imaps_addr().unwrap().port(), Security::Ssl, Some(&ca)),
        Some(("terry.adams", "not-it")),
        T,
    )
    .await;
    assert_eq!(r.result, TestResult::Failed);
    assert_eq!(r.message, SIGN_IN_FAILED);
    assert!(
        !format!("{r:?}").contains("not-it"),
        "no password in the result"
    );
}

#[tokio::test]
async fn a_closed_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let r = test_server(&endpoint(port, Security::Ssl, None), None, T).await;
    assert_eq!(r.result, TestResult::Failed);
    assert_eq!(
        r.message,
        "The connection to the server '127.0.0.1' could not be completed."
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(socket);
    });
    let r = test_server(
        &endpoint(port, Security::None, None),
        None,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(r.result, TestResult::Failed);
    assert_eq!(
        r.message,
        "The connection to the server 127.0.0.1 timed out after 00:00:01."
    );
    hold.abort();
}

#[tokio::test]
async fn no_starttls_offered() {
    let s = FakeImapServer::new()
        .starttls(false)
        .user("u", "p")
        .start()
        .await
        .unwrap();
    let r = test_server(
        &endpoint(s.imap_addr().port(), Security::Tls, None),
        None,
        T,
    )
    .await;
    assert_eq!(r.result, TestResult::Failed);
    assert!(
        r.message.contains("doesn't offer STARTTLS"),
        "{}",
        r.message
    );
}

/// `--security tls` (or none) on a port that speaks TLS from the first byte: no greeting comes,
/// and the detail says what to use instead of only "timed out".
#[tokio::test]
async fn plain_text_on_an_implicit_tls_port_advises_ssl() {
    let s = server().await;
    let imaps = s.imaps_addr().unwrap().port();
    for security in [Security::Tls, Security::None] {
        // A long timeout: the probe answers long before it (not "timed out" after it).
        let started = std::time::Instant::now();
        let r = test_server(
            &endpoint(imaps, security, None),
            None,
            Duration::from_secs(60),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.result, TestResult::Failed);
        assert_eq!(
            r.message,
            format!(
                "The server '127.0.0.1' expects TLS from the first byte on port {imaps}; use Security Ssl."
            )
        );
        let detail = r.error_detail.unwrap();
        assert!(detail.contains("--security ssl"), "{security:?}: {detail}");
    }
}

/// A port that accepts and says nothing, in plain text or TLS: the whole timeout is waited,
/// and the advice still names implicit TLS as the likely cause.
#[tokio::test]
async fn a_silent_port_times_out_with_the_greeting_named() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            open.push(c);
        }
    });
    let r = test_server(
        &endpoint(port, Security::None, None),
        None,
        Duration::from_secs(1),
    )
    .await;
    held.abort();
    assert_eq!(r.result, TestResult::Failed);
    assert_eq!(
        r.message,
        "The connection to the server 127.0.0.1 timed out after 00:00:01."
    );
    let detail = r.error_detail.unwrap();
    assert!(detail.contains("waiting for the IMAP greeting"), "{detail}");
}

/// `--security ssl` on a plain port: the TLS failure is explained in the flags' words, not
/// as rustls's "corrupt message".
#[tokio::test]
async fn ssl_on_a_plain_port_advises_tls_or_none() {
    let s = server().await;
    let imap = s.imap_addr().port();
    let r = test_server(&endpoint(imap, Security::Ssl, None), None, T).await;
    assert_eq!(r.result, TestResult::Failed);
    assert_eq!(
        r.message,
        "The TLS negotiation with the server '127.0.0.1' failed."
    );
    let detail = r.error_detail.unwrap();
    assert!(
        detail.contains("did not answer in TLS") && detail.contains("--security tls"),
        "{detail}"
    );
}
