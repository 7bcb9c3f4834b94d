//! The HTTPS client Autodiscover and EWS use: hyper's HTTP/1.1 client over the engine's TLS
//! (verified unless the endpoint accepts untrusted certificates), Basic authentication, a
//! timeout on every exchange, a cap on every body, `--connect-to` names, and idle connections
//! kept per server so a sync does not pay a handshake per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{ConnectTo, ExchangeError, resolve};
use crate::tls::{self, Protocol};

/// Responses larger than this are refused (an EWS page of MIME content stays far below).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Basic credentials. `Debug` never shows the password.
#[derive(Clone)]
pub struct Basic {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Basic({}, <hidden>)", self.user)
    }
}

impl Basic {
    fn header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One client per endpoint (or per test-server run).
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    untrusted: Arc<AtomicBool>,
    connect_to: Vec<ConnectTo>,
    timeout: Duration,
    idle: Mutex<HashMap<String, Vec<SendRequest<Full<Bytes>>>>>,
}

impl HttpClient {
    pub fn new(
        ca_file: Option<&std::path::Path>,
        accept_untrusted: bool,
        connect_to: Vec<ConnectTo>,
        timeout: Duration,
    ) -> Result<Self, ExchangeError> {
        let untrusted = Arc::new(AtomicBool::new(false));
        let tls = tls::client_config(ca_file, accept_untrusted, untrusted.clone())
            .map_err(|e| ExchangeError::Invalid(e.to_string()))?;
        Ok(Self {
            tls,
            untrusted,
            connect_to,
            timeout,
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a certificate failed verification but was accepted (the endpoint accepts
    /// untrusted certificates): a Warning, not a Success.
    pub fn accepted_untrusted(&self) -> bool {
        self.untrusted.load(Ordering::SeqCst)
    }

    pub fn connect_to(&self) -> &[ConnectTo] {
        &self.connect_to
    }

    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One request; the whole exchange (connect, TLS, request, response body) within the
    /// client's timeout.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        auth: Option<&Basic>,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, ExchangeError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| ExchangeError::Invalid(format!("invalid URL {url}: {e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(ExchangeError::Invalid(format!("not an HTTP(S) URL: {url}"))),
        };
        let host = uri
            .host()
            .ok_or_else(|| ExchangeError::Invalid(format!("no host in {url}")))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let timeout = self.timeout;
        let exchange = async {
            let key = format!("{}://{host}:{port}", if https { "https" } else { "http" });
            let mut sender = match self.take_idle(&key).await {
                Some(s) => s,
                None => self.connect(&host, port, https, url).await?,
            };
            let mut request = hyper::Request::builder()
                .method(method)
                .uri(path.as_str())
                .header(hyper::header::HOST, host_header(&host, port, https))
                .header(hyper::header::USER_AGENT, "mailmig");
            if let Some(a) = auth {
                request = request.header(hyper::header::AUTHORIZATION, a.header());
            }
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            let request = request
                .body(Full::new(body))
                .map_err(|e| ExchangeError::Invalid(format!("request to {url}: {e}")))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| ExchangeError::Transient(format!("{url}: {}", chain(&e))))?;
            let (parts, incoming) = response.into_parts();
            let body = Limited::new(incoming, MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    ExchangeError::Transient(format!("{url}: the response broke off: {e}"))
                })?
                .to_bytes();
            if !sender.is_closed() {
                self.idle
                    .lock()
                    .expect("idle pool")
                    .entry(key)
                    .or_default()
                    .push(sender);
            }
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ExchangeError::Transient(format!(
                "{url}: no answer within {}s",
                timeout.as_secs()
            ))),
        }
    }

    async fn take_idle(&self, key: &str) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let mut s = self.idle.lock().expect("idle pool").get_mut(key)?.pop()?;
            if !s.is_closed() && s.ready().await.is_ok() {
                return Some(s);
            }
        }
    }

    async fn connect(
        &self,
        host: &str,
        port: u16,
        https: bool,
        url: &str,
    ) -> Result<SendRequest<Full<Bytes>>, ExchangeError> {
        let (to_host, to_port) = resolve(&self.connect_to, host, port);
        let tcp = TcpStream::connect((to_host, to_port)).await.map_err(|e| {
            ExchangeError::Unreachable(format!(
                "{url}: the connection to {host}:{port} could not be completed: {e}"
            ))
        })?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if https {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| ExchangeError::Invalid(format!("invalid server name {host}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| classify_tls(&e, host, url))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ExchangeError::Transient(format!("{url}: {}", chain(&e))))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

fn host_header(host: &str, port: u16, https: bool) -> String {
    if (https && port == 443) || (!https && port == 80) {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// A handshake failure: a certificate problem, or a server that does not speak TLS.
fn classify_tls(e: &std::io::Error, host: &str, url: &str) -> ExchangeError {
    let text = format!("{url}: {}", tls::advice(e, host, Protocol::Https));
    let certificate = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .is_some_and(|t| matches!(t, rustls::Error::InvalidCertificate(_)));
    if certificate {
        ExchangeError::Certificate(text)
    } else {
        ExchangeError::Unreachable(text)
    }
}

/// An error with its causes, for people.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
