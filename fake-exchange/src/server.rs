//! The HTTPS listener (Autodiscover and EWS, every name of the organisation on one port, told
//! apart by the Host header), the plain-HTTP listener (the Autodiscover redirect), and what they
//! share. Every connection has timeouts: the TLS handshake, the request head, the body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::faults::{EwsCounters, FaultsConfig};
use crate::org::{Organisation, Principal};
use crate::{autodiscover, ews};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BODY: usize = 8 * 1024 * 1024;

/// What the faces share.
pub struct Shared {
    pub org: Organisation,
    pub faults: FaultsConfig,
    pub ews_counters: EwsCounters,
    /// EWS requests in flight per principal (ErrorExceededConnectionCount past the limit).
    pub in_flight: Mutex<HashMap<String, usize>>,
}

/// A request as the handlers see it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub host: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

/// A response before hyper; `cut` answers half of it and closes the connection.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub cut: bool,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
            cut: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    Https,
    Http,
}

/// Any stream a listener hands out (plain TCP or TLS over it).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// The one accept loop of every face: each connection (after the TLS handshake, within its
/// timeout, when `tls` is given) is served by `serve` until it ends or the server stops.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Box<dyn Io>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let (tls, serve, mut stop) = (tls.clone(), serve.clone(), stop.clone());
        tokio::spawn(async move {
            let io: Box<dyn Io> = match tls {
                None => Box::new(tcp),
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => Box::new(stream),
                        _ => return,
                    }
                }
            };
            tokio::select! {
                _ = serve(io) => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// Autodiscover and EWS over HTTPS, or (`tls` none) the plain-HTTP redirect listener.
pub async fn serve_http(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let face = if tls.is_some() {
        Face::Https
    } else {
        Face::Http
    };
    accept_loop(listener, tls, stop, move |io| {
        serve_connection(io, shared.clone(), face)
    })
    .await
}

async fn serve_connection<S>(io: S, shared: Arc<Shared>, face: Face)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(req, &shared, face).await) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let _ = http
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

async fn respond(
    req: hyper::Request<Incoming>,
    shared: &Shared,
    face: Face,
) -> hyper::Response<Body> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_ascii_lowercase();
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':').map_or(h, |(name, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    name
                } else {
                    h
                }
            })
        })
        .unwrap_or("")
        .to_string();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        http_body_util::Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return finish(Reply::new(413, "text/plain", b"request too large".to_vec())),
        Err(_) => return finish(Reply::new(408, "text/plain", b"request timeout".to_vec())),
    };
    let request = Request {
        method,
        path,
        host,
        headers,
        body,
    };
    let reply = route(&request, shared, face).await;
    finish(reply)
}

async fn route(request: &Request, shared: &Shared, face: Face) -> Reply {
    let autodiscover_path = request.path == "/autodiscover/autodiscover.xml";
    match face {
        Face::Http => {
            if autodiscover_path && request.method == "GET" {
                let state = shared.org.lock();
                autodiscover::http_redirect(&state)
            } else {
                Reply::new(404, "text/html", b"<html>404 Not Found</html>".to_vec())
            }
        }
        Face::Https => {
            let principal = {
                let state = shared.org.lock();
                basic_credentials(request).and_then(|(u, p)| state.authenticate(&u, &p))
            };
            if autodiscover_path {
                let state = shared.org.lock();
                autodiscover::handle(
                    &state,
                    &shared.faults.autodiscover,
                    request,
                    principal.as_ref(),
                )
            } else if request.path == "/ews/exchange.asmx" {
                match principal {
                    Some(p) => ews_with_limit(request, shared, p).await,
                    None => Reply::new(401, "text/html", b"401 - Unauthorized".to_vec())
                        .header("WWW-Authenticate", "Basic realm=\"\""),
                }
            } else {
                Reply::new(404, "text/html", b"<html>404 Not Found</html>".to_vec())
            }
        }
    }
}

/// Runs one EWS request, counting it against the principal's concurrent-connection limit.
async fn ews_with_limit(request: &Request, shared: &Shared, principal: Principal) -> Reply {
    let key = principal.address().to_string();
    let (limit, version) = {
        let state = shared.org.lock();
        (state.connection_limit, state.version)
    };
    let slot = InFlight::enter(&shared.in_flight, key);
    if slot.count > limit {
        ews::exceeded_connection_count(&version)
    } else {
        ews::handle(request, shared, &principal).await
    }
}

/// One request counted against its principal's limit until dropped: a client that disconnects
/// mid-request makes hyper drop the request's future, and the slot must be given back then too
/// (as IIS does when the request ends), or a killed client would use up the account's limit.
struct InFlight<'a> {
    map: &'a Mutex<HashMap<String, usize>>,
    key: String,
    count: usize,
}

impl<'a> InFlight<'a> {
    fn enter(map: &'a Mutex<HashMap<String, usize>>, key: String) -> Self {
        let count = {
            let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        Self { map, key, count }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = request.headers.get("authorization")?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn finish(reply: Reply) -> hyper::Response<Body> {
    let mut builder = hyper::Response::builder()
        .status(reply.status)
        .header(hyper::header::CONTENT_TYPE, reply.content_type)
        .header(hyper::header::CONTENT_LENGTH, reply.body.len());
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body: Body = if reply.cut {
        // Half the bytes, then an error: hyper closes the connection mid-response.
        let half = Bytes::from(reply.body[..reply.body.len() / 2].to_vec());
        // The error comes after a pause so that the head and the first half are on the wire.
        let stream = futures::stream::iter(vec![Ok(Frame::data(half))]).chain(
            futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other(
                    "connection closed mid-response (fault)",
                ))
            }),
        );
        BodyExt::boxed(StreamBody::new(stream))
    } else {
        Full::new(Bytes::from(reply.body))
            .map_err(|never: Infallible| match never {})
            .boxed()
    };
    builder.body(body).unwrap_or_else(|_| {
        hyper::Response::new(
            Full::new(Bytes::new())
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
    })
}
