//! Connecting to an IMAP server the way its settings say: plain, implicit TLS (Ssl) or
//! STARTTLS (Tls), with the certificate verified against the system's CAs (plus an optional
//! CA file) unless the settings accept untrusted certificates.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::client::{Client, ClientError, Limits, Part};
use super::settings::{ImapSettings, Security};

/// A connection, plain or TLS, or an in-memory pipe (tests and fuzzing drive the client with
/// bytes of their choosing).
#[derive(Debug)]
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<Buffered>>),
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
    /// No greeting came in plain text, and a TLS handshake on the same port succeeded: the
    /// port speaks TLS from the first byte.
    #[error(
        "port {0} speaks TLS from the first byte (implicit TLS, usually 993) and sends no greeting in plain text: use --security ssl"
    )]
    ImplicitTls(u16),
    #[error("TLS negotiation failed: {0}")]
    Tls(String),
    #[error("the server does not offer STARTTLS")]
    NoStartTls,
    #[error("the server did not greet as an IMAP server: {0}")]
    NotImap(String),
    #[error("CA file {path}: {message}")]
    CaFile { path: String, message: String },
}

/// The socket under TLS, read through a buffer: rustls asks for 4 KB at a time, so reading
/// the socket directly costs a system call per 4 KB of mail (50,000 for 200 MB).
pub type Buffered = BufReader<TcpStream>;

/// Bytes read from the socket at once under TLS.
const TLS_READ_BUFFER: usize = 64 * 1024;

/// A connected client, and whether its certificate was untrusted but accepted.
pub struct Connected {
    pub client: Client,
    pub untrusted_certificate: bool,
    /// The greeting's text (`Courier-IMAP ready. ...`), which names some servers.
    pub greeting: String,
}

async fn tls_handshake(
    endpoint: &ImapSettings,
    tcp: TcpStream,
    untrusted: Arc<AtomicBool>,
) -> Result<TlsStream<Buffered>, ConnectError> {
    let config = crate::tls::client_config(
        endpoint.ca_file.as_deref(),
        endpoint.accept_untrusted_certificates,
        untrusted,
    )
    .map_err(|e| match e {
        crate::tls::TlsSetupError::CaFile { path, message } => {
            ConnectError::CaFile { path, message }
        }
        crate::tls::TlsSetupError::Config(m) => ConnectError::Tls(m),
    })?;
    let name = ServerName::try_from(endpoint.remote_server.clone())
        .map_err(|e| ConnectError::Tls(format!("invalid server name: {e}")))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, BufReader::with_capacity(TLS_READ_BUFFER, tcp))
        .await
        .map_err(|e| {
            ConnectError::Tls(crate::tls::advice(
                &e,
                &endpoint.remote_server,
                crate::tls::Protocol::Imap,
            ))
        })
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

/// How long a plain-text greeting is awaited before the port is probed for implicit TLS
/// (servers greet at once; one that waits for a TLS handshake never will).
const PROBE_AFTER: Duration = Duration::from_secs(2);

/// The greeting of a plain-text connection, which must come before the connection's
/// deadline; none at all is told apart from a slow network. If none has come after a moment,
/// a second connection tries a TLS handshake on the same port: when it succeeds, the port
/// speaks implicit TLS, said at once instead of after the whole timeout.
async fn plain_greeting(
    client: &mut Client,
    endpoint: &ImapSettings,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<String, ConnectError> {
    let early = deadline - Duration::from_millis(50).min(timeout / 10);
    let probe = async {
        tokio::time::sleep(PROBE_AFTER.min(timeout / 3)).await;
        if speaks_tls(endpoint).await {
            ConnectError::ImplicitTls(endpoint.port)
        } else {
            // Not TLS either: the greeting keeps its chance until the deadline.
            std::future::pending().await
        }
    };
    tokio::select! {
        r = tokio::time::timeout_at(early, greeting(client)) => match r {
            Err(_) | Ok(Err(ConnectError::Timeout(_))) => Err(ConnectError::NoGreeting(timeout)),
            Ok(r) => r,
        },
        e = probe => Err(e),
    }
}

/// Whether a TLS handshake on the endpoint's port completes (any certificate accepted: this
/// only asks whether the port speaks TLS; nothing is sent over it).
async fn speaks_tls(endpoint: &ImapSettings) -> bool {
    let Ok(tcp) = TcpStream::connect((endpoint.remote_server.as_str(), endpoint.port)).await else {
        return false;
    };
    let Ok(config) = crate::tls::client_config(None, true, Arc::new(AtomicBool::new(false))) else {
        return false;
    };
    let name = ServerName::try_from(endpoint.remote_server.clone())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid name"));
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .is_ok()
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
            let g = plain_greeting(&mut c, endpoint, deadline, timeout).await?;
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
            let g = plain_greeting(&mut c, endpoint, deadline, timeout).await?;
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
