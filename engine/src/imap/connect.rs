//! Connecting to an IMAP server the way its settings say: plain, implicit TLS (Ssl) or
//! STARTTLS (Tls), with the certificate verified against the system's CAs (plus an optional
//! CA file) unless the settings accept untrusted certificates.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::client::{Client, ClientError, Limits, Part};
use super::settings::{ImapSettings, Security};

/// A connection, plain or TLS, or an in-memory pipe (tests and fuzzing drive the client with
/// bytes of their choosing).
#[derive(Debug)]
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Memory(tokio::io::DuplexStream),
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            ImapStream::Memory(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            ImapStream::Memory(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            ImapStream::Memory(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            ImapStream::Memory(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Why a connection could not be made; each maps to one of Exchange's messages.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the connection could not be completed: {0}")]
    Unreachable(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connected in plain text, but no greeting came: what an implicit-TLS port does (it waits
    /// for the client's TLS handshake).
    #[error(
        "timed out after {0:?} waiting for the IMAP greeting: a port that speaks TLS from the first byte (usually 993) waits for the client to start TLS; there, use --security ssl"
    )]
    NoGreeting(Duration),
    #[error("TLS negotiation failed: {0}")]
    Tls(String),
    #[error("the server does not offer STARTTLS")]
    NoStartTls,
    #[error("the server did not greet as an IMAP server: {0}")]
    NotImap(String),
    #[error("CA file {path}: {message}")]
    CaFile { path: String, message: String },
}

/// A connected client, and whether its certificate was untrusted but accepted.
pub struct Connected {
    pub client: Client,
    pub untrusted_certificate: bool,
    /// The greeting's text (`Courier-IMAP ready. ...`), which names some servers.
    pub greeting: String,
}

/// Verifies normally, but when the endpoint accepts untrusted certificates, lets a failing
/// chain through and remembers that it did (for a Warning).
#[derive(Debug)]
struct Verifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    /// The CA file's certificates: one of them may be the server's own self-signed certificate.
    pinned: Vec<CertificateDer<'static>>,
    accept_untrusted: bool,
    untrusted: Arc<AtomicBool>,
}

impl Verifier {
    /// A self-signed certificate made with `openssl req -x509` is marked CA:TRUE, which webpki
    /// refuses as a server's certificate. When it is byte for byte a certificate the admin gave
    /// as the CA file, it is trusted as pinned, but only for the names it was issued for. Its
    /// validity period was checked before webpki got to the CA flag.
    fn pinned_self_signed(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        error: &rustls::Error,
    ) -> Option<Result<ServerCertVerified, rustls::Error>> {
        let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = error
        else {
            return None;
        };
        let ca_as_server = matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        );
        if !ca_as_server
            || !self
                .pinned
                .iter()
                .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return None;
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity);
        Some(
            parsed
                .and_then(|c| rustls::client::verify_server_name(&c, server_name))
                .map(|()| ServerCertVerified::assertion()),
        )
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(v) => Ok(v),
            Err(e) => match self.pinned_self_signed(end_entity, server_name, &e) {
                Some(pinned) => pinned,
                None => Err(e),
            },
        }
        .or_else(|e| {
            if self.accept_untrusted {
                self.untrusted.store(true, Ordering::SeqCst);
                Ok(ServerCertVerified::assertion())
            } else {
                Err(e)
            }
        })
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn tls_config(
    endpoint: &ImapSettings,
    untrusted: Arc<AtomicBool>,
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let pinned = match &endpoint.ca_file {
        Some(path) => add_ca_file(&mut roots, path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ConnectError::Tls(format!("no usable CA certificates: {e}")))?;
    let verifier = Verifier {
        inner,
        pinned,
        accept_untrusted: endpoint.accept_untrusted_certificates,
        untrusted,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Adds a PEM file's certificates to the roots; returns them.
fn add_ca_file(
    roots: &mut rustls::RootCertStore,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let err = |message: String| ConnectError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    for c in &certs {
        roots.add(c.clone()).map_err(|e| err(e.to_string()))?;
    }
    Ok(certs)
}

async fn tls_handshake(
    endpoint: &ImapSettings,
    tcp: TcpStream,
    untrusted: Arc<AtomicBool>,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let config = tls_config(endpoint, untrusted)?;
    let name = ServerName::try_from(endpoint.remote_server.clone())
        .map_err(|e| ConnectError::Tls(format!("invalid server name: {e}")))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls(tls_advice(&e, &endpoint.remote_server)))
}

/// A TLS failure in words that say what to try next, with rustls's own words after them.
fn tls_advice(e: &io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let raw = e.to_string();
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return raw;
    };
    let advice = match tls {
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            format!(
                "the server's certificate is not valid for the name {host}: use a name it was                  issued for as the remote server"
            )
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the server's certificate is outside its validity period".to_string(),
        rustls::Error::InvalidCertificate(_) => "the server's certificate is not trusted: give              the CA that issued it (or the server's own certificate) with --ca-file FILE, or              accept it with --accept-untrusted-certificates"
            .to_string(),
        rustls::Error::InvalidMessage(_) => "the server did not answer in TLS: with --security              ssl the port must speak TLS from the first byte (usually 993); a plain port (143)              takes --security tls (STARTTLS) or none"
            .to_string(),
        _ => return raw,
    };
    format!("{advice} ({raw})")
}

/// Reads the greeting; returns its text.
async fn greeting(client: &mut Client) -> Result<String, ConnectError> {
    client.greeting().await.map_err(|e| match e {
        ClientError::Bye(text) => ConnectError::NotImap(format!("the server said BYE: {text}")),
        ClientError::Closed => ConnectError::NotImap("the server closed the connection".into()),
        ClientError::Idle(after) | ClientError::Deadline { after, .. } => {
            ConnectError::Timeout(after)
        }
        ClientError::Garbled(line) => {
            ConnectError::NotImap(format!("the first line was not an IMAP greeting: {line}"))
        }
        other => ConnectError::NotImap(other.to_string()),
    })
}

/// Connects per the endpoint's security; the whole connection (TCP, TLS, greeting, STARTTLS)
/// must finish within `timeout`.
pub async fn connect(
    endpoint: &ImapSettings,
    timeout: Duration,
) -> Result<Connected, ConnectError> {
    let limits = Limits {
        idle: timeout,
        command: timeout,
        ..Limits::default()
    };
    connect_with(endpoint, timeout, limits).await
}

/// [`connect`] with the client's own limits for what follows.
pub async fn connect_with(
    endpoint: &ImapSettings,
    timeout: Duration,
    limits: Limits,
) -> Result<Connected, ConnectError> {
    let deadline = tokio::time::Instant::now() + timeout;
    tokio::time::timeout(timeout, connect_inner(endpoint, limits, deadline, timeout))
        .await
        .unwrap_or(Err(ConnectError::Timeout(timeout)))
}

/// The greeting of a plain-text connection, which must come before the connection's
/// deadline; none at all is told apart from a slow network.
async fn plain_greeting(
    client: &mut Client,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<String, ConnectError> {
    let early = deadline - Duration::from_millis(50).min(timeout / 10);
    match tokio::time::timeout_at(early, greeting(client)).await {
        Err(_) | Ok(Err(ConnectError::Timeout(_))) => Err(ConnectError::NoGreeting(timeout)),
        Ok(r) => r,
    }
}

async fn connect_inner(
    endpoint: &ImapSettings,
    limits: Limits,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Connected, ConnectError> {
    let tcp = TcpStream::connect((endpoint.remote_server.as_str(), endpoint.port))
        .await
        .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let untrusted = Arc::new(AtomicBool::new(false));
    let (client, greeted) = match endpoint.security {
        Security::None => {
            let mut c = Client::new(ImapStream::Plain(tcp), limits);
            let g = plain_greeting(&mut c, deadline, timeout).await?;
            (c, g)
        }
        Security::Ssl => {
            let tls = tls_handshake(endpoint, tcp, untrusted.clone()).await?;
            let mut c = Client::new(ImapStream::Tls(Box::new(tls)), limits);
            let g = greeting(&mut c).await?;
            (c, g)
        }
        Security::Tls => {
            let mut c = Client::new(ImapStream::Plain(tcp), limits);
            let g = plain_greeting(&mut c, deadline, timeout).await?;
            match c.run(&[Part::Text("STARTTLS")], |_| {}).await {
                Ok(done) if done.is_ok() => {}
                _ => return Err(ConnectError::NoStartTls),
            }
            let Some(ImapStream::Plain(tcp)) = c.into_stream() else {
                return Err(ConnectError::NoStartTls);
            };
            let tls = tls_handshake(endpoint, tcp, untrusted.clone()).await?;
            (Client::new(ImapStream::Tls(Box::new(tls)), limits), g)
        }
    };
    Ok(Connected {
        client,
        untrusted_certificate: untrusted.load(Ordering::SeqCst),
        greeting: greeted,
    })
}
