//! A server certificate made the usual way (`openssl req -x509`: self-signed and marked
//! CA:TRUE) given as the CA file is trusted as that very certificate, but only for its names and
//! its validity period; TLS failures say what to do.

use std::sync::Arc;
use std::time::Duration;

use engine::imap::{ImapSettings, Security};
use engine::test_server::{TestResult, test_server};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type Made = (String, CertificateDer<'static>, PrivateKeyDer<'static>);

/// A self-signed CA:TRUE certificate for `names`, valid over the years `years`.
fn self_signed(names: &[&str], years: (i32, i32)) -> Made {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    (
        cert.pem(),
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// An implicit-TLS IMAP greeter on 127.0.0.1 with this certificate; returns its port.
async fn serve(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> u16 {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut tls = BufReader::new(tls);
                let _ = tls.write_all(b"* OK ready\r\n").await;
                let _ = tls.flush().await;
                // CAPABILITY and LOGOUT, as test-server sends them.
                let mut line = String::new();
                while tls.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                    let tag = line.split_whitespace().next().unwrap_or("*").to_string();
                    let reply = if line.to_ascii_uppercase().contains("CAPABILITY") {
                        format!("* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n")
                    } else {
                        format!("* BYE\r\n{tag} OK done\r\n")
                    };
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.flush().await;
                    line.clear();
                }
            });
        }
    });
    port
}

async fn check(
    names: &[&str],
    years: (i32, i32),
    with_ca_file: bool,
) -> engine::test_server::Availability {
    let (pem, der, key) = self_signed(names, years);
    let port = serve(der, key).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("server.pem");
    std::fs::write(&ca, pem).unwrap();
    let mut s = ImapSettings::new("127.0.0.1", port, Security::Ssl);
    if with_ca_file {
        s.ca_file = Some(ca);
    }
    test_server(&s, None, Duration::from_secs(5)).await
}

#[tokio::test]
async fn the_servers_own_self_signed_certificate_as_the_ca_file_is_trusted() {
    let r = check(&["127.0.0.1", "localhost"], (2020, 2099), true).await;
    assert_eq!(r.result, TestResult::Success, "{r:?}");
}

#[tokio::test]
async fn without_it_the_error_says_what_to_do() {
    let r = check(&["127.0.0.1"], (2020, 2099), false).await;
    assert_eq!(r.result, TestResult::Failed, "{r:?}");
    let detail = r.error_detail.unwrap();
    assert!(
        detail.contains("--ca-file") && detail.contains("--accept-untrusted-certificates"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_pinned_certificate_for_other_names_is_refused() {
    let r = check(&["mail.contoso.edu"], (2020, 2099), true).await;
    assert_eq!(r.result, TestResult::Failed, "{r:?}");
    assert!(
        r.error_detail
            .unwrap()
            .contains("not valid for the name 127.0.0.1")
    );
}

#[tokio::test]
async fn an_expired_pinned_certificate_is_refused() {
    let r = check(&["127.0.0.1"], (2020, 2021), true).await;
    assert_eq!(r.result, TestResult::Failed, "{r:?}");
    assert!(r.error_detail.unwrap().contains("validity period"));
}
